# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake kernel for VLAN unit tests: links, bridge-port VLANs and the pyroute2 calls that change them.

``FakeVlanKernel`` answers ``get_links``, ``get_addr``, ``link('get'|'add'|'set'|'del'|'dump')`` and
``vlan_filter('add'|'del')`` the way Linux with bridge VLAN filtering does (one pvid per port, flags
replaced on re-add, ``BRIDGE_FLAGS_SELF`` only on a bridge, ``MASTER`` only on a bridge port),
so plans can be applied, read back and run again without root.
"""

from __future__ import annotations

import errno

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import FakeMsg, link_msg


class FakeVlanKernel(object):
    """Links as dicts by ifindex, port VLANs as ``{ifindex: {vid: (pvid, untagged)}}``."""

    def __init__(self, vlan_support=True, fail=None):
        self.vlan_support = vlan_support
        self.links = {}
        self.vlans = {}
        self.calls = []
        self.fail = fail or (lambda call: None)
        self.next_index = 1
        self.closed = False
        self.add('lo', mtu=65536, flags=0x49)

    # ------------------------------------------------------------- building the host
    def add(self, name, kind=None, master=None, mtu=1500, up=True, alias=None, parent=None, vlan_id=None,
            vlan_filtering=True, default_pvid=1, tun_type=None, flags=None):
        index = self.next_index
        self.next_index += 1
        self.links[index] = {'name': name, 'kind': kind, 'master': None, 'mtu': mtu, 'up': up, 'alias': alias,
                             'parent': parent, 'vlan_id': vlan_id, 'vlan_filtering': vlan_filtering,
                             'default_pvid': default_pvid, 'tun_type': tun_type, 'flags': flags}
        if kind == 'bridge' and self.vlan_support and default_pvid:
            self.vlans[index] = {default_pvid: (True, True)}
        if master is not None:
            self.enslave(index, self.index(master))
        return index

    def enslave(self, index, master):
        self.links[index]['master'] = master
        bridge = self.links[master]
        self.vlans.pop(index, None)
        if self.vlan_support and bridge['default_pvid']:
            self.vlans[index] = {bridge['default_pvid']: (True, True)}

    def index(self, name):
        for index, rec in self.links.items():
            if rec['name'] == name:
                return index
        raise KeyError(name)

    def membership(self, name):
        return dict(self.vlans.get(self.index(name), {}))

    def snapshot(self):
        return (repr(sorted(self.links.items())), repr(sorted((k, sorted(v.items())) for k, v in self.vlans.items())))

    # ------------------------------------------------------------- messages
    def _msg(self, index):
        rec = self.links[index]
        flags = rec['flags'] if rec['flags'] is not None else (0x1003 if rec['up'] else 0x1002)
        info_data = None
        if rec['kind'] == 'bridge':
            info_data = [('IFLA_BR_VLAN_FILTERING', 1 if rec['vlan_filtering'] and self.vlan_support else 0)]
            if self.vlan_support:
                info_data.append(('IFLA_BR_VLAN_DEFAULT_PVID', rec['default_pvid']))
        elif rec['kind'] == 'vlan':
            info_data = [('IFLA_VLAN_ID', rec['vlan_id'])]
        elif rec['kind'] == 'tun':
            info_data = [('IFLA_TUN_TYPE', 2)]
        return link_msg(index, rec['name'], kind=rec['kind'], flags=flags, master=rec['master'], mtu=rec['mtu'],
                        alias=rec['alias'], info_data=info_data, link=rec['parent'],
                        slave_kind='bridge' if rec['master'] else None)

    def _bridge_msg(self, index):
        rec = self.links[index]
        entries = netlink.merge_port_vlans((vid, pvid, untagged)
                                           for vid, (pvid, untagged) in self.vlans.get(index, {}).items())
        attrs = []
        for entry in entries:
            attrs.extend(netlink.port_vlan_attrs(entry))  # compressed form: ranges
        msg_attrs = [('IFLA_IFNAME', rec['name']), ('IFLA_MASTER', rec['master'] or index)]
        if attrs:
            msg_attrs.append(('IFLA_AF_SPEC', {'attrs': [tuple(pair) for pair in attrs]}))
        return FakeMsg({'index': index, 'family': netlink.AF_BRIDGE}, msg_attrs)

    # ------------------------------------------------------------- pyroute2 API
    def _check_fail(self, call):
        code = self.fail(call)
        if code:
            raise netlink.NetlinkError(code, 'fake failure')

    def get_links(self):
        self.calls.append(('get_links',))
        return tuple(self._msg(index) for index in sorted(self.links))

    def get_addr(self):
        self.calls.append(('get_addr',))
        return ()

    def link(self, command, **kwargs):
        self.calls.append(('link', command, kwargs))
        self._check_fail(('link', command, kwargs))
        if command == 'dump':
            assert kwargs.get('family') == netlink.AF_BRIDGE and kwargs.get('match') == {}
            return tuple(self._bridge_msg(index) for index in sorted(self.links)
                         if self.links[index]['master'] or self.links[index]['kind'] == 'bridge')
        if command == 'get':
            for index, rec in self.links.items():
                if index == kwargs.get('index') or rec['name'] == kwargs.get('ifname'):
                    return [self._msg(index)]
            raise netlink.NetlinkError(errno.ENODEV, 'No such device')
        if command == 'add':
            if any(rec['name'] == kwargs['ifname'] for rec in self.links.values()):
                raise netlink.NetlinkError(errno.EEXIST, 'File exists')
            if kwargs.get('kind') == 'vlan':
                if not self.vlan_support:
                    raise netlink.NetlinkError(errno.EOPNOTSUPP, 'Operation not supported')
                parent = kwargs['link']
                if any(rec['kind'] == 'vlan' and rec['parent'] == parent and rec['vlan_id'] == kwargs['vlan_id']
                       for rec in self.links.values()):
                    raise netlink.NetlinkError(errno.EEXIST, 'File exists')
                self.add(kwargs['ifname'], kind='vlan', parent=parent, vlan_id=kwargs['vlan_id'],
                         mtu=self.links[parent]['mtu'], up=False)
            else:
                self.add(kwargs['ifname'], kind=kwargs.get('kind'), up=False)
            return []
        if command == 'set':
            rec = self.links.get(kwargs['index'])
            if rec is None:
                raise netlink.NetlinkError(errno.ENODEV, 'No such device')
            if 'mtu' in kwargs:
                if rec['parent'] and kwargs['mtu'] > self.links[rec['parent']]['mtu']:
                    raise netlink.NetlinkError(errno.ERANGE, 'Numerical result out of range')
                rec['mtu'] = kwargs['mtu']
            if 'state' in kwargs:
                rec['up'] = kwargs['state'] == 'up'
            if 'ifalias' in kwargs:
                rec['alias'] = kwargs['ifalias']
            if 'master' in kwargs:
                self.enslave(kwargs['index'], kwargs['master'])
            return []
        if command == 'del':
            if kwargs['index'] not in self.links:
                raise netlink.NetlinkError(errno.ENODEV, 'No such device')
            del self.links[kwargs['index']]
            self.vlans.pop(kwargs['index'], None)
            return []
        raise AssertionError('unexpected link command %r' % (command,))

    def vlan_filter(self, command, index=None, IFLA_AF_SPEC=None):  # pylint: disable=invalid-name
        self.calls.append(('vlan_filter', command, index, IFLA_AF_SPEC))
        self._check_fail(('vlan_filter', command, index, IFLA_AF_SPEC))
        rec = self.links.get(index)
        if rec is None:
            raise netlink.NetlinkError(errno.ENODEV, 'No such device')
        attrs = IFLA_AF_SPEC['attrs']
        assert attrs[0][0] == 'IFLA_BRIDGE_FLAGS'
        bridge_self = attrs[0][1] == netlink.BRIDGE_FLAGS_SELF
        if not self.vlan_support or (bridge_self and rec['kind'] != 'bridge') or (not bridge_self and not rec['master']):
            raise netlink.NetlinkError(errno.EOPNOTSUPP, 'Operation not supported')
        table = self.vlans.setdefault(index, {})
        begin = None
        for name, info in attrs[1:]:
            assert name == 'IFLA_BRIDGE_VLAN_INFO'
            flags, vid = info['flags'], info['vid']
            if not 1 <= vid <= 4094:
                raise netlink.NetlinkError(errno.EINVAL, 'Invalid argument')
            if flags & netlink.BRIDGE_VLAN_INFO_RANGE_BEGIN:
                begin = (vid, flags)
                continue
            if flags & netlink.BRIDGE_VLAN_INFO_RANGE_END:
                vids = range(begin[0], vid + 1)
                flags = begin[1]
                if flags & netlink.BRIDGE_VLAN_INFO_PVID:
                    raise netlink.NetlinkError(errno.EINVAL, 'Invalid argument')
            else:
                vids = [vid]
            for number in vids:
                if command == 'del':
                    table.pop(number, None)
                    continue
                pvid = bool(flags & netlink.BRIDGE_VLAN_INFO_PVID)
                if pvid:
                    for other, (was_pvid, untagged) in list(table.items()):
                        if was_pvid:
                            table[other] = (False, untagged)
                table[number] = (pvid, bool(flags & netlink.BRIDGE_VLAN_INFO_UNTAGGED))
        return []

    def close(self):
        self.closed = True


def writes(kernel):
    """The calls that change something."""
    return [call for call in kernel.calls
            if call[0] == 'vlan_filter' or (call[0] == 'link' and call[1] in ('add', 'set', 'del'))]
