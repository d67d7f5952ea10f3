# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import host_lock
from ansible_collections.nqrust.microvm.plugins.module_utils.host_lock import (
    HostLock,
    HostLockError,
    HostLockTimeout,
    lock_dir,
    lock_path,
    netns_key,
)


def test_netns_key_is_the_namespace_inode():
    key = netns_key()
    assert re.match(r'^net[0-9]+$', key)
    assert key == 'net%d' % os.stat('/proc/self/ns/net').st_ino
    assert netns_key('/nonexistent/ns/net') == 'host'


def test_lock_path_is_keyed_by_namespace(tmp_path):
    path = lock_path(directory=str(tmp_path), netns='net4026531840')
    assert path == os.path.join(str(tmp_path), 'nqrust.microvm-net4026531840.lock')
    assert lock_path(directory=str(tmp_path)).endswith('-%s.lock' % netns_key())


def test_lock_dir_takes_the_first_writable_directory(tmp_path):
    assert lock_dir(('/nonexistent-lock-dir', str(tmp_path))) == str(tmp_path)
    assert lock_dir(('/nonexistent-a', '/nonexistent-b')) == '/nonexistent-b'
    assert lock_dir() in host_lock.LOCK_DIRS


def test_acquire_release_and_context_manager(tmp_path):
    lock = HostLock(directory=str(tmp_path), timeout=1)
    with lock as held:
        assert held is lock and lock.held
        with open(lock.path) as handle:
            assert handle.read().startswith('pid %d since ' % os.getpid())
        with pytest.raises(HostLockError):
            lock.acquire()
    assert not lock.held
    lock.release()  # releasing twice is harmless
    with lock:
        assert lock.held


def test_lock_fd_is_not_inherited_by_children(tmp_path):
    lock = HostLock(directory=str(tmp_path), timeout=1)
    with lock:
        assert not os.get_inheritable(lock._fd)  # pylint: disable=protected-access


def test_two_holders_in_threads_take_turns(tmp_path):
    first = HostLock(directory=str(tmp_path), timeout=5)
    second = HostLock(directory=str(tmp_path), timeout=5, poll_interval=0.01)
    events = []
    first.acquire()

    def contender():
        with second:
            events.append(('second acquired', time.monotonic()))

    thread = threading.Thread(target=contender)
    thread.start()
    time.sleep(0.3)
    assert events == []  # still blocked
    released_at = time.monotonic()
    first.release()
    thread.join(5)
    assert not thread.is_alive()
    assert len(events) == 1 and events[0][1] >= released_at
    assert second.waited >= 0.25


def test_timeout_names_file_wait_and_holder(tmp_path):
    holder = HostLock(directory=str(tmp_path), timeout=1)
    with holder:
        waiter = HostLock(directory=str(tmp_path), timeout=0.3, poll_interval=0.05)
        started = time.monotonic()
        with pytest.raises(HostLockTimeout) as info:
            waiter.acquire()
        elapsed = time.monotonic() - started
    exc = info.value
    assert 0.3 <= elapsed < 2
    assert exc.path == holder.path and exc.waited >= 0.3
    message = str(exc)
    assert re.match(r'could not take the host lock %s after waiting 0\.[3-9] s: ' % re.escape(holder.path), message)
    assert 'pid %d since' % os.getpid() in message
    assert 'raise the lock timeout' in message
    assert not waiter.held


def test_zero_timeout_is_one_attempt(tmp_path):
    with HostLock(directory=str(tmp_path)):
        started = time.monotonic()
        with pytest.raises(HostLockTimeout):
            HostLock(directory=str(tmp_path), timeout=0).acquire()
        assert time.monotonic() - started < 0.5


def test_different_namespaces_do_not_block_each_other(tmp_path):
    one = HostLock(path=lock_path(directory=str(tmp_path), netns='net1'), timeout=0)
    two = HostLock(path=lock_path(directory=str(tmp_path), netns='net2'), timeout=0)
    with one:
        with two:
            assert one.held and two.held


def test_unopenable_lock_file_is_a_clear_error(tmp_path):
    with pytest.raises(HostLockError) as info:
        HostLock(path=str(tmp_path / 'missing-dir' / 'x.lock')).acquire()
    assert 'cannot open the host lock file' in str(info.value)


def _hold_in_child(path, ready, leave):
    lock = HostLock(path=path, timeout=5)
    lock.acquire()
    ready.set()
    leave.wait(10)
    lock.release()


def test_two_holders_in_processes(tmp_path):
    ctx = multiprocessing.get_context('fork')
    path = lock_path(directory=str(tmp_path))
    ready, leave = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_in_child, args=(path, ready, leave))
    child.start()
    try:
        assert ready.wait(10)
        with pytest.raises(HostLockTimeout) as info:
            HostLock(path=path, timeout=0.2).acquire()
        assert 'pid %d since' % child.pid in str(info.value)
        leave.set()
        with HostLock(path=path, timeout=5) as lock:
            assert lock.held
    finally:
        leave.set()
        child.join(10)


def _hold_until_killed(path, ready):
    lock = HostLock(path=path, timeout=5)
    lock.acquire()
    ready.set()
    time.sleep(60)


def test_lock_is_freed_when_the_holder_dies(tmp_path):
    ctx = multiprocessing.get_context('fork')
    path = lock_path(directory=str(tmp_path))
    ready = ctx.Event()
    child = ctx.Process(target=_hold_until_killed, args=(path, ready))
    child.start()
    try:
        assert ready.wait(10)
        with pytest.raises(HostLockTimeout):
            HostLock(path=path, timeout=0).acquire()
        child.kill()
        child.join(10)
        with HostLock(path=path, timeout=2) as lock:
            assert lock.held
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
