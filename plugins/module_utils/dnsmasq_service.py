# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Supervising one network's dnsmasq: a systemd unit where systemd runs, a pidfile daemon elsewhere.

``PidfileSupervisor`` starts dnsmasq the way its own init scripts do: dnsmasq
daemonizes itself (fork, ``setsid``, fork, stdio to ``/dev/null``, pid file)
and its first process exits only once the daemon is ready, with a non-zero
status and the reason on stderr when it is not.  Before a signal is sent, the
pid (from the pid file) is proven to be this network's dnsmasq: its
``/proc/<pid>/cmdline`` is ``dnsmasq --conf-file=<this network's file>`` and
it lives in this network namespace.  A pid file naming anything else is stale
and is never signalled; a daemon whose pid file went missing is found by
scanning ``/proc``.

``SystemdSupervisor`` drives ``systemctl`` for the unit that
``dnsmasq_config.render_unit`` renders; its state comes from ``systemctl
show`` (``KEY=VALUE`` lines, the interface systemd documents for programs).

``resolve_supervisor`` picks one for ``supervisor=auto``: systemd when
``/run/systemd/system`` exists (systemd is PID 1), the pid file otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.managed_files import remove_file

PROC = '/proc'
SYSTEMD_RUN_DIR = '/run/systemd/system'
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PIDFILE_WAIT = 5.0
DAEMON_ENV = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL': 'C'}
SYSTEMD_PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'MainPID', 'UnitFileState')


class ServiceError(Exception):
    """dnsmasq or systemctl did not do what was asked; the message says what and why."""


def systemd_running(path=SYSTEMD_RUN_DIR):
    """True when systemd is PID 1 (it creates ``/run/systemd/system`` at boot)."""
    return os.path.isdir(path)


def resolve_supervisor(requested, systemd=None):
    """``'systemd'`` or ``'pidfile'`` for ``auto``/``systemd``/``pidfile`` (``systemd``: whether it runs)."""
    if requested in ('systemd', 'pidfile'):
        return requested
    if systemd is None:
        systemd = systemd_running()
    return 'systemd' if systemd else 'pidfile'


# --------------------------------------------------------------------------- processes

def cmdline(pid, proc=PROC):
    """The argv of a process as a list, or ``None`` when it is gone (or a kernel thread)."""
    try:
        with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as handle:
            raw = handle.read()
    except OSError:
        return None
    if not raw:
        return None
    return [part.decode('utf-8', 'replace') for part in raw.rstrip(b'\0').split(b'\0')]


def _state_letter(pid, proc=PROC):
    try:
        with open(os.path.join(proc, str(pid), 'stat'), 'rb') as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(b')') + 2:].split()[0].decode('ascii', 'replace')


def _netns_inode(pid, proc=PROC):
    try:
        return os.stat(os.path.join(proc, str(pid), 'ns', 'net')).st_ino
    except OSError:
        return None


def alive(pid, proc=PROC):
    """True while the process exists and is not a zombie."""
    return _state_letter(pid, proc) not in (None, 'Z', 'X')


def is_instance(pid, config_path, proc=PROC):
    """True when ``pid`` is a live dnsmasq run with ``--conf-file=<config_path>`` in this network namespace."""
    if not pid or pid <= 1:
        return False
    argv = cmdline(pid, proc)
    if not argv or os.path.basename(argv[0]) != 'dnsmasq':
        return False
    if '--conf-file=%s' % config_path not in argv[1:]:
        return False
    if not alive(pid, proc):
        return False
    mine, theirs = _netns_inode('self', proc), _netns_inode(pid, proc)
    return mine is None or theirs is None or mine == theirs


def read_pidfile(path):
    """The pid in a pid file, or ``None`` (missing, empty or not a number)."""
    try:
        with open(path, 'rb') as handle:
            text = handle.read(64).decode('ascii', 'replace').strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _scan(config_path, proc=PROC):
    try:
        names = os.listdir(proc)
    except OSError:
        return None
    for name in sorted(names, key=lambda item: (len(item), item)):
        if name.isdigit() and is_instance(int(name), config_path, proc):
            return int(name)
    return None


@dataclasses.dataclass(frozen=True)
class Daemon(object):
    """What runs of one network's dnsmasq: ``pid`` (or ``None``), and whether the pid file is stale."""

    pid: Optional[int] = None
    pidfile_pid: Optional[int] = None

    @property
    def running(self):
        return self.pid is not None

    @property
    def stale_pidfile(self):
        return self.pidfile_pid is not None and self.pidfile_pid != self.pid


def find_daemon(paths, proc=PROC):
    """The network's running dnsmasq: by its pid file, else by scanning ``/proc`` for its command line."""
    recorded = read_pidfile(paths.pidfile)
    if recorded is not None and is_instance(recorded, paths.config, proc):
        return Daemon(pid=recorded, pidfile_pid=recorded)
    return Daemon(pid=_scan(paths.config, proc), pidfile_pid=recorded)


def _wait_gone(pid, timeout, proc=PROC):
    deadline = time.monotonic() + timeout
    while alive(pid, proc):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _remove_if_names(path, pid):
    if read_pidfile(path) == pid:
        remove_file(path)


# --------------------------------------------------------------------------- pid file supervision

class PidfileSupervisor(object):
    """dnsmasq as a daemon of its own, tracked by its pid file (hosts without systemd)."""

    name = 'pidfile'

    def __init__(self, dnsmasq_path, paths, proc=PROC, start_timeout=START_TIMEOUT, stop_timeout=STOP_TIMEOUT):
        self.dnsmasq_path = dnsmasq_path
        self.paths = paths
        self.proc = proc
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

    def find(self):
        return find_daemon(self.paths, self.proc)

    def start(self):
        """Start the daemon; returns its pid.  Raises ``ServiceError`` with dnsmasq's own message."""
        for directory in (os.path.dirname(self.paths.pidfile), os.path.dirname(self.paths.leases)):
            os.makedirs(directory, mode=0o755, exist_ok=True)
        stale = read_pidfile(self.paths.pidfile)
        if stale is not None and not is_instance(stale, self.paths.config, self.proc):
            _remove_if_names(self.paths.pidfile, stale)
        argv = [self.dnsmasq_path, '--conf-file=%s' % self.paths.config]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(DAEMON_ENV), timeout=self.start_timeout, close_fds=True, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError('could not run %s: %s' % (' '.join(argv), exc)) from exc
        if done.returncode != 0:
            reason = (done.stderr or done.stdout or b'').decode('utf-8', 'replace').strip() or 'no message'
            raise ServiceError('dnsmasq did not start (exit status %d): %s' % (done.returncode, reason))
        deadline = time.monotonic() + PIDFILE_WAIT
        while True:
            pid = read_pidfile(self.paths.pidfile)
            if pid is not None and is_instance(pid, self.paths.config, self.proc):
                return pid
            if time.monotonic() >= deadline:
                raise ServiceError('dnsmasq started but %s does not name a running dnsmasq with --conf-file=%s'
                                   % (self.paths.pidfile, self.paths.config))
            time.sleep(0.01)

    def stop(self, pid):
        """SIGTERM (SIGKILL after the timeout) to ``pid`` if it still is this network's dnsmasq."""
        if pid is None or not is_instance(pid, self.paths.config, self.proc):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not _wait_gone(pid, self.stop_timeout, self.proc):
            if is_instance(pid, self.paths.config, self.proc):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5.0, self.proc):
                raise ServiceError('dnsmasq (pid %d) did not stop' % pid)
        _remove_if_names(self.paths.pidfile, pid)

    def reload(self, pid):
        """SIGHUP: dnsmasq re-reads the static leases and host names (not the main configuration)."""
        if not is_instance(pid, self.paths.config, self.proc):
            raise ServiceError('pid %s is no longer the dnsmasq of %s; not signalled' % (pid, self.paths.config))
        os.kill(pid, signal.SIGHUP)
        return pid

    def restart(self, pid):
        self.stop(pid)
        return self.start()


# --------------------------------------------------------------------------- systemd supervision

def parse_show(text):
    """``systemctl show`` output (``KEY=VALUE`` lines) -> dict."""
    found = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep:
            found[key.strip()] = value.strip()
    return found


class SystemdSupervisor(object):
    """dnsmasq as the network's systemd unit.  ``run_command(argv)`` -> ``(rc, stdout, stderr)``."""

    name = 'systemd'

    def __init__(self, run_command, paths, systemctl='systemctl'):
        self.run_command = run_command
        self.paths = paths
        self.systemctl = systemctl

    def _ctl(self, *args):
        argv = [self.systemctl] + list(args)
        rc, out, err = self.run_command(argv)
        if rc != 0:
            raise ServiceError('%s failed (exit status %d): %s' % (' '.join(argv), rc, (err or out or '').strip()))
        return out

    def show(self):
        """``{'active': bool, 'enabled': bool, 'main_pid': int|None, 'loaded': bool}`` of the unit."""
        props = parse_show(self._ctl('show', self.paths.unit_name, '--property=' + ','.join(SYSTEMD_PROPERTIES)))
        pid = props.get('MainPID', '0')
        return {
            'loaded': props.get('LoadState') == 'loaded',
            'active': props.get('ActiveState') in ('active', 'activating', 'reloading'),
            'enabled': props.get('UnitFileState') in ('enabled', 'enabled-runtime'),
            'main_pid': int(pid) if pid.isdigit() and int(pid) > 0 else None,
        }

    def daemon_reload(self):
        self._ctl('daemon-reload')

    def enable(self):
        self._ctl('enable', self.paths.unit_name)

    def disable(self):
        self._ctl('disable', self.paths.unit_name)

    def start(self):
        self._ctl('start', self.paths.unit_name)
        return self.show()['main_pid']

    def stop(self, pid=None):  # pylint: disable=unused-argument
        self._ctl('stop', self.paths.unit_name)

    def reload(self, pid=None):
        self._ctl('reload', self.paths.unit_name)
        return pid

    def restart(self, pid=None):  # pylint: disable=unused-argument
        self._ctl('restart', self.paths.unit_name)
        return self.show()['main_pid']
