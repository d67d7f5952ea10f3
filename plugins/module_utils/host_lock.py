# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host-wide lock around read -> plan -> apply.

Two runs of the collection's modules against one host must not interleave
(both would plan from the same state and then trip over each other).  "Host"
means one network stack: the lock file is keyed by the inode of
``/proc/self/ns/net``, so lab hosts living in different network namespaces of
one machine do not block each other, while every run in the same namespace
does.

The lock is an ``fcntl.flock`` on a file in ``/run/lock`` (or ``/tmp`` when
``/run/lock`` is not writable).  It is released when the holder closes the
file or dies, so a crashed run never leaves it stuck.  The file descriptor is
close-on-exec: daemons a module starts (dnsmasq) do not inherit the lock.
Lock files are never deleted (deleting one while another process waits on it
would let two holders in).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time


LOCK_NAME = 'nqrust.microvm'
LOCK_DIRS = ('/run/lock', '/tmp')
NETNS_PATH = '/proc/self/ns/net'
DEFAULT_TIMEOUT = 120.0


class HostLockTimeout(Exception):
    """The lock could not be taken in time; says which file, how long it waited and who holds it."""

    def __init__(self, path, waited, holder=None):
        self.path = path
        self.waited = waited
        self.holder = holder
        text = 'could not take the host lock %s after waiting %.1f s: another nqrust.microvm run is changing this host' % (path, waited)
        if holder:
            text += ' (%s)' % holder
        text += '; wait for it to finish, or raise the lock timeout'
        super(HostLockTimeout, self).__init__(text)


class HostLockError(Exception):
    """The lock file could not be opened or locked (not a timeout)."""


def netns_key(path=NETNS_PATH):
    """``'net4026531840'``: the network namespace's inode, or ``'host'`` when it cannot be read."""
    try:
        return 'net%d' % os.stat(path).st_ino
    except OSError:
        return 'host'


def lock_dir(candidates=LOCK_DIRS):
    """The first of ``candidates`` that is a writable directory (the last one as a fallback)."""
    for candidate in candidates:
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return candidates[-1]


def lock_path(name=LOCK_NAME, directory=None, netns=None):
    """``/run/lock/nqrust.microvm-net4026531840.lock`` for this network namespace."""
    return os.path.join(directory or lock_dir(), '%s-%s.lock' % (name, netns or netns_key()))


class HostLock(object):
    """``with HostLock(timeout=60): read(); plan(); apply()``.

    ``timeout`` in seconds (``0``: one attempt; ``None``: wait forever).
    ``path`` overrides the computed file (tests); otherwise ``name``,
    ``directory`` and the network namespace make it.  ``waited`` says how long
    ``acquire`` waited.
    """

    def __init__(self, name=LOCK_NAME, timeout=DEFAULT_TIMEOUT, directory=None, path=None, poll_interval=0.05):
        self.path = path or lock_path(name, directory)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.waited = 0.0
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        if self._fd is not None:
            raise HostLockError('host lock %s is already held by this object' % self.path)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NOFOLLOW', 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise HostLockError('cannot open the host lock file %s: %s' % (self.path, exc.strerror or exc)) from exc
        started = time.monotonic()
        try:
            self._wait(fd, started)
        except BaseException:
            os.close(fd)
            raise
        self.waited = time.monotonic() - started
        self._fd = fd
        self._record_holder(fd)
        return self

    def _wait(self, fd, started):
        if self.timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        interval = self.poll_interval
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise HostLockError('cannot lock %s: %s' % (self.path, exc.strerror or exc)) from exc
            waited = time.monotonic() - started
            if waited >= self.timeout:
                raise HostLockTimeout(self.path, waited, _read_holder(fd))
            time.sleep(max(0.0, min(interval, self.timeout - waited)))
            interval = min(interval * 2, 0.5)

    @staticmethod
    def _record_holder(fd):
        # Best effort: who holds the lock, for the timeout message of the next waiter.
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, ('pid %d since %s\n' % (os.getpid(), time.strftime('%Y-%m-%dT%H:%M:%S%z'))).encode('ascii'), 0)
        except OSError:
            pass

    def release(self):
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.release()
        return False


def _read_holder(fd):
    try:
        data = os.pread(fd, 200, 0)
    except OSError:
        return None
    text = data.decode('ascii', 'replace').strip()
    return text or None
