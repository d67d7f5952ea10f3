# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fake netlink messages and a fake IPRoute for unit tests (no root, no kernel)."""

from __future__ import annotations

import errno
import socket

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink


class FakeMsg(object):
    """The part of a pyroute2 message the records use: item access and ``get_attr``."""

    def __init__(self, fields, attrs):
        self.fields = dict(fields)
        self.attrs = list(attrs)

    def __getitem__(self, key):
        return self.fields[key]

    def get_attr(self, name, default=None):
        for key, value in self.attrs:
            if key == name:
                return value
        return default


class FakeNested(object):
    def __init__(self, attrs):
        self.attrs = list(attrs)

    def get_attr(self, name, default=None):
        for key, value in self.attrs:
            if key == name:
                return value
        return default


def link_msg(index, name, kind=None, flags=0x1003, master=None, mtu=1500, mac='02:00:00:00:00:01',
             alias=None, info_data=None, slave_kind=None, ifi_type=1, operstate='UP', link=None):
    attrs = [('IFLA_IFNAME', name), ('IFLA_MTU', mtu), ('IFLA_TXQLEN', 1000), ('IFLA_OPERSTATE', operstate)]
    if mac is not None:
        attrs.append(('IFLA_ADDRESS', mac))
    if master is not None:
        attrs.append(('IFLA_MASTER', master))
    if link is not None:
        attrs.append(('IFLA_LINK', link))
    if alias is not None:
        attrs.append(('IFLA_IFALIAS', alias))
    if kind is not None or slave_kind is not None:
        info = []
        if kind is not None:
            info.append(('IFLA_INFO_KIND', kind))
        if info_data is not None:
            info.append(('IFLA_INFO_DATA', FakeNested(info_data)))
        if slave_kind is not None:
            info.append(('IFLA_INFO_SLAVE_KIND', slave_kind))
        attrs.append(('IFLA_LINKINFO', FakeNested(info)))
    return FakeMsg({'index': index, 'flags': flags, 'ifi_type': ifi_type, 'family': 0}, attrs)


def addr_msg(index, address, prefixlen, family=socket.AF_INET, scope=0, label=None):
    attrs = [('IFA_ADDRESS', address)]
    if family == socket.AF_INET:
        attrs.append(('IFA_LOCAL', address))
    if label:
        attrs.append(('IFA_LABEL', label))
    return FakeMsg({'index': index, 'family': family, 'prefixlen': prefixlen, 'scope': scope}, attrs)


def standard_links():
    """lo, eth0, a collection bridge with a TAP and a veth port, a foreign TAP, a TUN."""
    return [
        link_msg(1, 'lo', flags=0x10049, mac='00:00:00:00:00:00', mtu=65536, operstate='UNKNOWN', ifi_type=772),
        link_msg(2, 'eth0', mac='52:54:00:AA:BB:CC'),
        link_msg(3, 'fcbr0', kind='bridge', mac='02:fc:00:00:00:01', alias='nqrust.microvm',
                 info_data=[('IFLA_BR_VLAN_FILTERING', 0)]),
        link_msg(4, 'tap-vm1', kind='tun', master=3, slave_kind='bridge', alias='nqrust.microvm:vm=1',
                 info_data=[('IFLA_TUN_TYPE', 2)], flags=0x1003, operstate='DOWN'),
        link_msg(5, 'veth-up', kind='veth', master=3, slave_kind='bridge', link=6),
        link_msg(6, 'veth-peer', kind='veth', link=5, flags=0x1002),
        link_msg(7, 'tap-foreign', kind='tun', info_data=[('IFLA_TUN_TYPE', 2)], flags=0x1002, operstate='DOWN'),
        link_msg(8, 'tun0', kind='tun', mac=None, info_data=[('IFLA_TUN_TYPE', 1)], ifi_type=0xFFFE),
        link_msg(9, 'br-other', kind='bridge', flags=0x1002, operstate='DOWN'),
    ]


def standard_addresses():
    return [
        addr_msg(1, '127.0.0.1', 8, label='lo'),
        addr_msg(1, '::1', 128, family=socket.AF_INET6, scope=254),
        addr_msg(3, '10.0.0.1', 24, label='fcbr0'),
        addr_msg(3, 'fd00::1', 64, family=socket.AF_INET6),
        addr_msg(3, 'fe80::fc:ff:fe00:1', 64, family=socket.AF_INET6, scope=253),
        addr_msg(3, '10.0.0.10', 24, label='fcbr0'),
        addr_msg(3, '10.0.0.2', 24, label='fcbr0'),
        addr_msg(2, '192.0.2.2', 24, label='eth0'),
    ]


class FakeIPRoute(object):
    """Records every call; ``fail`` maps (method, command) to an errno to raise."""

    def __init__(self, links=None, addresses=None, fail=None):
        self.link_msgs = list(standard_links() if links is None else links)
        self.addr_msgs = list(standard_addresses() if addresses is None else addresses)
        self.fail = dict(fail or {})
        self.calls = []
        self.closed = False
        self.next_index = 100

    def _maybe_fail(self, key):
        code = self.fail.get(key)
        if code is not None:
            raise netlink.NetlinkError(code, 'fake error')

    def get_links(self):
        self.calls.append(('get_links',))
        self._maybe_fail(('get_links', None))
        return tuple(self.link_msgs)

    def get_addr(self):
        self.calls.append(('get_addr',))
        self._maybe_fail(('get_addr', None))
        return tuple(self.addr_msgs)

    def link(self, command, **kwargs):
        self.calls.append(('link', command, kwargs))
        self._maybe_fail(('link', command))
        if command == 'get':
            for msg in self.link_msgs:
                if msg.fields['index'] == kwargs.get('index') or msg.get_attr('IFLA_IFNAME') == kwargs.get('ifname'):
                    return [msg]
            raise netlink.NetlinkError(errno.ENODEV, 'No such device')
        if command == 'add':
            self.next_index += 1
            self.link_msgs.append(link_msg(self.next_index, kwargs['ifname'], kind=kwargs.get('kind')))
            return []
        if command == 'del':
            self.link_msgs = [msg for msg in self.link_msgs if msg.fields['index'] != kwargs['index']]
            return []
        return []

    def addr(self, command, **kwargs):
        self.calls.append(('addr', command, kwargs))
        self._maybe_fail(('addr', command))
        return []

    def close(self):
        self.closed = True
