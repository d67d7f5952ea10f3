# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Commit-confirmed for bridged networks: undo an uplink's move into a bridge unless it is confirmed in time.

``arm`` runs before the task that moves an uplink into its bridge: it records which bridges exist
and starts a watchdog process (detached, in the host's network namespace). ``confirm`` runs in
the next task, over a new connection: if the controller still reaches the host, the watchdog is
told to stop. If nobody confirms before the deadline, the watchdog moves the addresses and routes
back from the bridge to the uplink, releases the uplink and deletes the bridges that did not exist
when it was armed (with ``uplink_migration``, the same code fc_bridge moves with), then writes
what it did to ``result.json``; the next ``confirm`` reports that and fails.

Files in ``state_dir``: ``guard.json`` (what is guarded, deadline, watchdog pid and start time),
``confirmed`` (the stop signal), ``result.json`` (after a rollback).
"""

from __future__ import annotations

import json
import os
import signal
import time

from ansible_collections.nqrust.microvm.plugins.module_utils.managed_files import read_text, remove_file, write_file
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkSession
from ansible_collections.nqrust.microvm.plugins.module_utils.uplink_migration import TO_UPLINK, UplinkMove, plan_move

GUARD_FILE = 'guard.json'
CONFIRM_FILE = 'confirmed'
RESULT_FILE = 'result.json'
POLL_SECONDS = 0.2


def paths(state_dir):
    return dict((key, os.path.join(state_dir, name)) for key, name in
                (('guard', GUARD_FILE), ('confirm', CONFIRM_FILE), ('result', RESULT_FILE)))


def unguarded_moves(session, pairs):
    """The (bridge, uplink) pairs whose uplink exists and is not yet a port of that bridge: what a run would move."""
    pending = []
    for bridge, uplink in pairs:
        uplink_link = session.link(uplink)
        bridge_link = session.link(bridge)
        if uplink_link is None:
            continue
        if bridge_link is not None and uplink_link.master_index == bridge_link.index:
            continue
        pending.append((bridge, uplink))
    return pending


def process_start_time(pid):
    """The start time of ``pid`` in clock ticks (``/proc/<pid>/stat`` field 22), or None when it is gone."""
    text = read_text('/proc/%d/stat' % pid)
    if text is None:
        return None
    return int(text.rsplit(')', 1)[1].split()[19])


def watchdog_alive(record):
    pid, started = record.get('pid'), record.get('started')
    return bool(pid) and process_start_time(pid) == started


def roll_back(session, record):
    """Move every guarded uplink's addresses and routes back and delete the bridges made since arming."""
    done, errors = [], []
    for bridge, uplink in record['pairs']:
        session.refresh()
        bridge_link, uplink_link = session.link(bridge), session.link(uplink)
        if bridge_link is None or uplink_link is None:
            continue
        try:
            move = plan_move(TO_UPLINK, bridge, uplink, uplink_link, bridge_link,
                             session.addresses(bridge_link), session.addresses(uplink_link),
                             session.routes(bridge_link), session.routes(uplink_link))
            UplinkMove(session, move, bridge_link.index, uplink_link.index).run()
            done.append('moved %s back from %s to %s' % (', '.join(move.addresses) or 'nothing', bridge, uplink))
            if not record['existed'].get(bridge):
                session.delete_link(bridge_link, display=bridge)
                done.append('deleted bridge %s' % bridge)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append('%s/%s: %s' % (bridge, uplink, exc))
    return done, errors


def _watch(state_dir, record):
    files = paths(state_dir)
    while time.time() < record['deadline']:
        if os.path.exists(files['confirm']):
            return
        time.sleep(POLL_SECONDS)
    if os.path.exists(files['confirm']):
        return
    try:
        # a fresh socket: pyroute2's objects do not survive a fork (0.9 runs an event loop)
        with NetlinkSession() as session:
            done, errors = roll_back(session, record)
    except Exception as exc:  # pylint: disable=broad-except
        done, errors = [], ['%s: %s' % (type(exc).__name__, exc)]
    write_file(files['result'], json.dumps({'rolled_back_at': time.time(), 'done': done, 'errors': errors,
                                            'timeout': record['timeout'], 'pairs': record['pairs']}) + '\n')


def _daemonize(run):
    """Run ``run()`` in a detached grandchild (own session, no stdio); return the grandchild's pid to the caller."""
    read_end, write_end = os.pipe()
    first = os.fork()
    if first:
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            pid = int(pipe.read() or 0)
        os.waitpid(first, 0)
        return pid
    os.close(read_end)
    os.setsid()
    second = os.fork()
    if second:
        os.write(write_end, str(second).encode())
        os._exit(0)  # pylint: disable=protected-access
    os.close(write_end)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        run()
    finally:
        os._exit(0)  # pylint: disable=protected-access


def arm(session, state_dir, pairs, timeout):
    """Start the watchdog for ``pairs``; an older watchdog of the same state_dir is stopped first."""
    disarm(state_dir)
    files = paths(state_dir)
    for key in ('confirm', 'result'):
        remove_file(files[key])
    record = {'pairs': [list(pair) for pair in pairs], 'timeout': timeout, 'deadline': time.time() + timeout,
              'existed': dict((bridge, session.link(bridge) is not None) for bridge, _uplink in pairs)}
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    pid = _daemonize(lambda: _watch(state_dir, record))
    record.update(pid=pid, started=process_start_time(pid))
    write_file(files['guard'], json.dumps(record) + '\n', mode=0o600)
    return record


def disarm(state_dir, wait=10.0):
    """Tell a watchdog to stop and wait for it; returns its record (None when there was none).

    The watchdog is not killed: one that already began rolling back finishes (a half-done move
    back would be worse than either state), and ``rollback_result`` then says so.
    """
    files = paths(state_dir)
    text = read_text(files['guard'])
    if text is None:
        return None
    record = json.loads(text)
    write_file(files['confirm'], 'confirmed at %s\n' % time.time(), mode=0o600)
    deadline = time.time() + wait
    while watchdog_alive(record) and time.time() < deadline:
        time.sleep(POLL_SECONDS / 2)
    remove_file(files['guard'])
    remove_file(files['confirm'])
    return record


def rollback_result(state_dir):
    """What the watchdog did when it rolled back (None when it did not)."""
    text = read_text(paths(state_dir)['result'])
    return json.loads(text) if text is not None else None


def forget(state_dir):
    for path in paths(state_dir).values():
        remove_file(path)
