# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The TUN/TAP ioctls of tap.py, with the system calls replaced."""

from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import tap


class FakeControl(object):
    def close(self):
        pass


class FakeSystem(object):
    def __init__(self, monkeypatch, fail=None):
        self.calls = []
        self.fail = fail or {}
        self.closed = []
        monkeypatch.setattr(tap.os, 'open', self.open)
        monkeypatch.setattr(tap.os, 'close', self.closed.append)
        monkeypatch.setattr(tap.fcntl, 'ioctl', self.ioctl)
        monkeypatch.setattr(tap.socket, 'socket', lambda *args: FakeControl())

    def open(self, path, flags):
        self.calls.append(('open', path))
        if 'open' in self.fail:
            raise OSError(self.fail['open'], 'fail')
        return 99

    def ioctl(self, handle, request, argument):
        names = {tap.TUNSETIFF: 'SETIFF', tap.TUNSETPERSIST: 'PERSIST', tap.TUNSETOWNER: 'OWNER',
                 tap.TUNSETGROUP: 'GROUP', tap.SIOCGIFINDEX: 'INDEX'}
        name = names[request]
        if name in ('SETIFF',):
            ifname, flags = tap.IFREQ.unpack(argument)
            self.calls.append((name, ifname.rstrip(b'\0').decode(), flags))
        elif name == 'INDEX':
            self.calls.append((name, tap.IFREQ_INDEX.unpack(argument)[0].rstrip(b'\0').decode()))
        else:
            self.calls.append((name, argument))
        code = self.fail.get(name)
        if code:
            raise OSError(code, 'fail')
        if name == 'INDEX':
            return tap.IFREQ_INDEX.pack(argument[:16], 17)
        return 0


def test_create_sets_flags_ids_and_persistence_and_returns_the_index(monkeypatch):
    system = FakeSystem(monkeypatch)
    with tap.TapDevices() as devices:
        assert devices.create('tap0', multi_queue=True, vnet_hdr=True, owner=10001, group=108) == 17
    flags = tap.IFF_TAP | tap.IFF_NO_PI | tap.IFF_MULTI_QUEUE | tap.IFF_VNET_HDR | tap.IFF_TUN_EXCL
    assert system.calls == [('open', '/dev/net/tun'), ('SETIFF', 'tap0', flags), ('OWNER', 10001), ('GROUP', 108),
                            ('PERSIST', 1), ('INDEX', 'tap0')]
    assert system.closed == [99]


def test_create_of_a_taken_name_says_so(monkeypatch):
    FakeSystem(monkeypatch, fail={'SETIFF': errno.EBUSY})
    with pytest.raises(tap.TapError) as info:
        tap.TapDevices().create('tap0')
    assert str(info.value) == "creating tap 'tap0': a link with that name exists already (it appeared after the links were read) [EBUSY]"


def test_failure_before_persistence_leaves_nothing(monkeypatch):
    system = FakeSystem(monkeypatch, fail={'OWNER': errno.EINVAL})
    with pytest.raises(tap.TapError) as info:
        tap.TapDevices().create('tap0', owner=5)
    assert 'setting the owner to 5' in str(info.value) and 'not valid in this user namespace' in str(info.value)
    assert ('PERSIST', 1) not in system.calls and system.closed == [99]


def test_missing_tun_device_is_explained(monkeypatch):
    FakeSystem(monkeypatch, fail={'open': errno.ENOENT})
    with pytest.raises(tap.TapError) as info:
        tap.TapDevices().create('tap0')
    assert 'modprobe tun' in str(info.value)


def test_reconfigure_attaches_without_excl_and_explains_busy(monkeypatch):
    system = FakeSystem(monkeypatch)
    tap.TapDevices().reconfigure('tap0', vnet_hdr=True, owner=None, group=7)
    assert system.calls[1] == ('SETIFF', 'tap0', tap.IFF_TAP | tap.IFF_NO_PI | tap.IFF_VNET_HDR)
    assert system.calls[2:] == [('GROUP', 7)]
    FakeSystem(monkeypatch, fail={'SETIFF': errno.EBUSY})
    with pytest.raises(tap.TapError) as info:
        tap.TapDevices().reconfigure('tap0')
    assert 'a VMM has it open' in str(info.value)


def test_unknown_index_after_create_removes_the_tap_again(monkeypatch):
    system = FakeSystem(monkeypatch, fail={'INDEX': errno.ENODEV})
    with pytest.raises(tap.TapError):
        tap.TapDevices().create('tap0')
    assert system.calls[-2:] == [('SETIFF', 'tap0', tap.IFF_TAP | tap.IFF_NO_PI), ('PERSIST', 0)]


def test_ifreq_layout_matches_the_kernel():
    assert tap.IFREQ.size == 40 and tap.IFREQ_INDEX.size == 40
    assert struct.unpack('=I', struct.pack('=I', tap.TUNSETIFF)) == (0x400454CA,)
