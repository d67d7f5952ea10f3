# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""TUN/TAP devices through the ioctls of ``/dev/net/tun`` (what ``ip tuntap`` does, without a process per TAP).

The kernel creates TAPs only through ``/dev/net/tun`` (rtnetlink cannot), so
a persistent TAP is made by opening the device, ``TUNSETIFF`` with
``IFF_TAP | IFF_NO_PI`` (plus ``IFF_VNET_HDR``/``IFF_MULTI_QUEUE`` when
asked), ``TUNSETOWNER``/``TUNSETGROUP`` for the user and group that may open
it later (the Firecracker jailer's), ``TUNSETPERSIST`` and closing the file.
``IFF_TUN_EXCL`` makes the create fail if the name is taken meanwhile,
instead of silently attaching to the existing device.

The owner, group and ``vnet_hdr`` of an existing TAP are changed by attaching
to it the same way (without ``IFF_TUN_EXCL``); that needs the TAP to be free
(no VMM attached) and the same multi-queue setting.  The kernel cannot take
an owner or group away again once set (``-1`` is refused), only change it.

Errors are ``TapError`` naming the TAP and the step, with the errno explained.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

TUN_DEVICE = '/dev/net/tun'

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
SIOCGIFINDEX = 0x8933

IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000

IFREQ = struct.Struct('16sH22x')
IFREQ_INDEX = struct.Struct('16si20x')

_EXPLAIN = {
    errno.EPERM: 'operation not permitted: creating and changing TAPs needs root or the CAP_NET_ADMIN capability',
    errno.EACCES: 'permission denied: opening /dev/net/tun needs root or the CAP_NET_ADMIN capability',
    errno.ENOENT: '/dev/net/tun does not exist: load the tun kernel module (modprobe tun)',
    errno.ENODEV: 'no TUN/TAP support in this kernel: load the tun kernel module (modprobe tun)',
    errno.EMFILE: 'too many open files in this process',
    errno.ENFILE: 'too many open files on this host',
}


class TapError(Exception):
    """A TUN/TAP ioctl failed; the message names the step, the TAP and what the errno means."""

    def __init__(self, operation, code, hint=None):
        self.operation = operation
        self.code = code
        self.hint = hint
        super(TapError, self).__init__(str(self))

    def __str__(self):
        text = self.hint or _EXPLAIN.get(self.code) or os.strerror(self.code)
        return '%s: %s [%s]' % (self.operation, text, errno.errorcode.get(self.code, 'errno %s' % self.code))


def _flags(multi_queue=False, vnet_hdr=False):
    flags = IFF_TAP | IFF_NO_PI
    if multi_queue:
        flags |= IFF_MULTI_QUEUE
    if vnet_hdr:
        flags |= IFF_VNET_HDR
    return flags


class TapDevices(object):
    """Creates and changes TAPs; holds one control socket for ifindex look-ups (a context manager)."""

    def __init__(self, device=TUN_DEVICE):
        self.device = device
        self._control = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self._control is not None:
            self._control.close()
            self._control = None

    def _open(self, operation):
        try:
            return os.open(self.device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise TapError(operation, exc.errno) from exc

    def ifindex(self, name):
        """The ifindex of link ``name`` (``SIOCGIFINDEX`` on one reused socket)."""
        if self._control is None:
            self._control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            answer = fcntl.ioctl(self._control, SIOCGIFINDEX, IFREQ_INDEX.pack(name.encode('utf-8'), 0))
        except OSError as exc:
            raise TapError("reading the ifindex of '%s'" % name, exc.errno) from exc
        return IFREQ_INDEX.unpack(answer)[1]

    def create(self, name, multi_queue=False, vnet_hdr=False, owner=None, group=None):
        """Create persistent TAP ``name``; returns its ifindex.  Nothing is left behind on failure."""
        operation = "creating tap '%s'" % name
        handle = self._open(operation)
        try:
            # until TUNSETPERSIST the TAP lives only as long as this file is open,
            # so any failure below leaves nothing behind when the file is closed
            try:
                fcntl.ioctl(handle, TUNSETIFF, IFREQ.pack(name.encode('utf-8'), _flags(multi_queue, vnet_hdr) | IFF_TUN_EXCL))
            except OSError as exc:
                hint = None
                if exc.errno == errno.EBUSY:
                    hint = 'a link with that name exists already (it appeared after the links were read)'
                elif exc.errno == errno.EINVAL:
                    hint = 'the kernel refused the name or the flags'
                raise TapError(operation, exc.errno, hint) from exc
            self._set_ids(handle, name, owner, group, operation)
            try:
                fcntl.ioctl(handle, TUNSETPERSIST, 1)
            except OSError as exc:
                raise TapError(operation + ' (making it persistent)', exc.errno) from exc
        finally:
            os.close(handle)
        try:
            return self.ifindex(name)
        except TapError:
            self.destroy(name, multi_queue)
            raise

    def destroy(self, name, multi_queue=False):
        """Remove a persistent TAP by attaching and clearing persistence (used when its ifindex is unknown)."""
        operation = "removing tap '%s'" % name
        handle = self._open(operation)
        try:
            fcntl.ioctl(handle, TUNSETIFF, IFREQ.pack(name.encode('utf-8'), _flags(multi_queue)))
            fcntl.ioctl(handle, TUNSETPERSIST, 0)
        except OSError as exc:
            raise TapError(operation, exc.errno) from exc
        finally:
            os.close(handle)

    def reconfigure(self, name, multi_queue=False, vnet_hdr=False, owner=None, group=None):
        """Attach to existing TAP ``name`` to set ``vnet_hdr`` and the owner/group (``None``: leave)."""
        operation = "changing tap '%s'" % name
        handle = self._open(operation)
        try:
            try:
                fcntl.ioctl(handle, TUNSETIFF, IFREQ.pack(name.encode('utf-8'), _flags(multi_queue, vnet_hdr)))
            except OSError as exc:
                hint = {
                    errno.EBUSY: 'the TAP is in use: a VMM has it open (stop the VM first)',
                    errno.EINVAL: 'the TAP has another multi-queue setting, or the name is not a TAP',
                    errno.EPERM: 'the TAP belongs to another user or group, or CAP_NET_ADMIN is missing',
                }.get(exc.errno)
                raise TapError(operation, exc.errno, hint) from exc
            self._set_ids(handle, name, owner, group, operation)
        finally:
            os.close(handle)

    @staticmethod
    def _set_ids(handle, name, owner, group, operation):
        for request, value, what in ((TUNSETOWNER, owner, 'owner'), (TUNSETGROUP, group, 'group')):
            if value is None:
                continue
            try:
                fcntl.ioctl(handle, request, value)
            except OSError as exc:
                hint = None
                if exc.errno == errno.EINVAL:
                    hint = '%s %s is not valid in this user namespace' % (what, value)
                raise TapError('%s (setting the %s to %s)' % (operation, what, value), exc.errno, hint) from exc
