# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Links, module parameters and a fake kernel for the TAP unit tests (no root, no kernel).

Links are made as the kernel sends them: ``link_message()`` encodes an ``RTM_NEWLINK`` with
``rtnl_socket``'s encoder and decodes it with ``rtnl_dump``, so every test also runs the codec.
"""

from __future__ import annotations

import errno

from ansible_collections.nqrust.microvm.plugins.module_utils import rtnl_dump
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_dump import (
    BRIDGE_AF_SPEC_ATTRS,
    BRIDGE_DATA_ATTRS,
    BRIDGE_LINK_ATTRS,
    BRIDGE_PORT_ATTRS,
    LINK_ATTRS,
    LINKINFO_ATTRS,
    TUN_DATA_ATTRS,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_socket import RtnlError, attribute, link_request
from ansible_collections.nqrust.microvm.plugins.module_utils.tap import TapError
from ansible_collections.nqrust.microvm.plugins.module_utils.tap_plan import HostLink, HostState, build_request
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator

MARK = 'nqrust.microvm'
USERS = {'firecracker': 10001, 'root': 0}
GROUPS = {'kvm': 108, 'root': 0}

TOP_LEVEL = dict(name=None, vm_id=None, iface_id=None, guest_mac=None, taps=None, state='present', bridge=None, mtu=None,
                 vlan=None, trunk_vlans=None, owner=None, group=None, multi_queue=None, vnet_hdr=None, isolated=None,
                 purge=False, name_prefix='tap-')
ENTRY = dict(name=None, vm_id=None, iface_id=None, guest_mac=None, state=None, bridge=None, mtu=None, vlan=None,
             trunk_vlans=None, owner=None, group=None, multi_queue=None, vnet_hdr=None, isolated=None)


def params(**given):
    """Module parameters as AnsibleModule hands them over (every option present, unset ones None)."""
    result = dict(TOP_LEVEL)
    result.update(given)
    if result['taps'] is not None:
        result['taps'] = [dict(ENTRY, **entry) for entry in result['taps']]
    return result


def request(**given):
    """``(TapRequest, Validator)`` from module parameters."""
    validator = Validator()
    built = build_request(validator, params(**given), USERS.get, GROUPS.get)
    return built, validator


# --------------------------------------------------------------------------- links, as the kernel sends them

def _nested(table, values):
    return b''.join(attribute(table, name, value) for name, value in values.items() if value is not None)


def link_message(index, name, kind=None, flags=1, ifi_type=1, family=0, data=None, port=None, vlans=None, **attrs):
    """An ``rtnl_dump.LinkMessage`` decoded from the bytes of an ``RTM_NEWLINK``.

    ``attrs``: ``IFLA_*`` link attributes by their name without the prefix (``mtu=1500``);
    ``data``: ``IFLA_INFO_DATA`` of ``kind`` (``{'IFLA_TUN_TYPE': 2}``); ``port``: bridge-port
    data (``{'IFLA_BRPORT_ISOLATED': 1}``); ``vlans``: ``[(flags, vid)]`` of an ``AF_BRIDGE``
    message.
    """
    table = BRIDGE_LINK_ATTRS if family == rtnl_dump.AF_BRIDGE else LINK_ATTRS
    body = attribute(table, 'IFLA_IFNAME', name)
    body += _nested(table, dict(('IFLA_' + key.upper(), value) for key, value in attrs.items()))
    if kind is not None or port is not None:
        data_table = {'tun': TUN_DATA_ATTRS, 'bridge': BRIDGE_DATA_ATTRS}.get(kind, {})
        info = {'IFLA_INFO_KIND': kind, 'IFLA_INFO_DATA': _nested(data_table, data) if data else None}
        if port is not None:
            info.update(IFLA_INFO_SLAVE_KIND='bridge', IFLA_INFO_SLAVE_DATA=_nested(BRIDGE_PORT_ATTRS, port))
        body += attribute(table, 'IFLA_LINKINFO', _nested(LINKINFO_ATTRS, info))
    if vlans is not None:
        body += attribute(table, 'IFLA_AF_SPEC', b''.join(attribute(BRIDGE_AF_SPEC_ATTRS, 'IFLA_BRIDGE_VLAN_INFO', entry)
                                                          for entry in vlans))
    raw = link_request(rtnl_dump.RTM_NEWLINK, 1, index=index, attrs=body, family=family, ifi_flags=flags)
    ((kind_, dummy, dummy2, start, end),) = list(rtnl_dump.messages(raw))
    assert kind_ == rtnl_dump.RTM_NEWLINK
    return rtnl_dump.LinkMessage(raw, start, end)


def bridge_message(index, name, mtu=1500, up=True, filtering=None, default_pvid=None):
    """A bridge; ``default_pvid`` ``None`` is a kernel without bridge VLAN filtering (like the build machine's)."""
    data = {'IFLA_BR_VLAN_FILTERING': int(bool(filtering)), 'IFLA_BR_VLAN_DEFAULT_PVID': default_pvid}
    return link_message(index, name, kind='bridge', flags=1 if up else 0, data=data, mtu=mtu)


def tap_message(index, name, master=None, mtu=1500, up=True, alias=MARK, owner=None, group=None, multi_queue=False,
                vnet_hdr=False, carrier=False, isolated=False):
    data = {'IFLA_TUN_TYPE': 2, 'IFLA_TUN_OWNER': 0xFFFFFFFF if owner is None else owner,
            'IFLA_TUN_GROUP': 0xFFFFFFFF if group is None else group, 'IFLA_TUN_PI': 0, 'IFLA_TUN_PERSIST': 1,
            'IFLA_TUN_MULTI_QUEUE': int(multi_queue), 'IFLA_TUN_VNET_HDR': int(vnet_hdr)}
    port = {'IFLA_BRPORT_ISOLATED': int(isolated)} if master else None
    return link_message(index, name, kind='tun', flags=1 if up else 0, data=data, port=port, mtu=mtu, master=master,
                        ifalias=alias, carrier=int(carrier))


def bridge(index, name, mtu=1500, up=True):
    """A bridge on a kernel without bridge VLAN filtering."""
    return HostLink(bridge_message(index, name, mtu=mtu, up=up))


def vlan_bridge(index, name, mtu=1500, filtering=True):
    """A bridge on a kernel with VLAN filtering (default PVID 1)."""
    return HostLink(bridge_message(index, name, mtu=mtu, filtering=filtering, default_pvid=1))


def tap(index, name, **options):
    return HostLink(tap_message(index, name, **options))


def link(index, name, kind=None):
    return HostLink(link_message(index, name, kind=kind, mtu=1500))


def port_vlans(index, name, master, *entries):
    """The ``AF_BRIDGE`` message of a port with VLAN ``entries``: ``(vid, pvid, untagged)``."""
    vlans = [((0x2 if pvid else 0) | (0x4 if untagged else 0), vid) for vid, pvid, untagged in entries]
    return link_message(index, name, family=rtnl_dump.AF_BRIDGE, master=master, vlans=vlans)


def host(*links, port_vlans=None):
    """A ``HostState`` with ``lo`` and ``links``; ``port_vlans``: ``AF_BRIDGE`` messages (``None``: not read)."""
    from ansible_collections.nqrust.microvm.plugins.module_utils.tap_plan import port_vlan_records
    records = port_vlan_records(port_vlans) if port_vlans is not None else None
    return HostState([link(1, 'lo')] + list(links), records)


# --------------------------------------------------------------------------- a fake kernel

class FakeRtnl(object):
    """``RtnlSocket``'s interface, recording every call as a tuple.

    ``fail`` maps ``(method, index)`` to an errno, or is a callable ``(call) -> errno or None``;
    ``names`` maps link names to ifindexes (for ``fetch_link``).
    """

    def __init__(self, links=(), fail=None, names=None, port_vlans=()):
        self.links = list(links)
        self.port_vlan_messages = list(port_vlans)
        self.fail = fail or {}
        self.names = names if names is not None else {}
        self.calls = []
        self.dumps = {'links': 0, 'port_vlans': 0}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _record(self, call, operation):
        self.calls.append(call)
        code = self.fail(call) if callable(self.fail) else self.fail.get(call[:2])
        if code:
            raise RtnlError(code, operation, 'fake kernel says no')

    def dump_links(self):
        self.dumps['links'] += 1
        return list(self.links)

    def dump_port_vlans(self):
        self.dumps['port_vlans'] += 1
        return list(self.port_vlan_messages)

    def fetch_link(self, link):
        index = self.names.get(link) if isinstance(link, str) else link
        return None if index is None else link_message(index, str(link))

    def set_link(self, index, operation, attrs=b'', up=None):
        settings = {}
        if attrs:
            decoded = rtnl_dump.LinkMessage(b'\0' * rtnl_dump.IFINFOMSG.size + attrs, 0, rtnl_dump.IFINFOMSG.size + len(attrs))
            for key, attr in (('alias', 'IFLA_IFALIAS'), ('mtu', 'IFLA_MTU'), ('master', 'IFLA_MASTER')):
                value = decoded.get_attr(attr)
                if value is not None:
                    settings[key] = value
        if up is not None:
            settings['up'] = up
        self._record(('set_link', index, settings), operation)

    def pipeline(self, requests, operation):
        """Each request recorded as ``read``/``set_link``, all answered (as the kernel answers a chunk)."""
        outcomes = []
        for msg_type, index, attrs, ifi_flags, ifi_change in requests:
            try:
                if msg_type == rtnl_dump.RTM_GETLINK:
                    self._record(('read', index), operation)
                else:
                    self.set_link(index, operation, attrs, up=bool(ifi_flags & 1) if ifi_change else None)
            except RtnlError as exc:
                outcomes.append((exc.code, exc.extack))
            else:
                outcomes.append((0, None))
        return outcomes

    def delete_link(self, index, operation):
        self._record(('delete_link', index), operation)

    def set_port(self, index, operation, **settings):
        self._record(('set_port', index, settings), operation)

    def add_port_vlans(self, link, vlans, bridge_self=False, display=None):
        index = getattr(link, 'index', link)
        self._record(('add_port_vlans', index, [vlan.to_dict() for vlan in vlans]), 'adding VLANs to %s' % display)

    def delete_port_vlans(self, link, vlans, bridge_self=False, display=None):
        index = getattr(link, 'index', link)
        self._record(('delete_port_vlans', index, [vlan.text for vlan in vlans]), 'removing VLANs from %s' % display)


class FakeDevices(object):
    """TUN/TAP ioctls: created TAPs get ifindexes from 100 up; ``fail`` maps (call, name) to an errno."""

    def __init__(self, fail=None, first_index=100, names=None):
        self.calls = []
        self.fail = fail or {}
        self.next_index = first_index
        self.names = names if names is not None else {}

    def _check(self, call, name, operation):
        code = self.fail.get((call, name))
        if code:
            raise TapError(operation, code, 'a link with that name exists already' if code == errno.EBUSY else None)

    def create(self, name, multi_queue=False, vnet_hdr=False, owner=None, group=None):
        self.calls.append(('create', name, multi_queue, vnet_hdr, owner, group))
        self._check('create', name, "creating tap '%s'" % name)
        index = self.next_index
        self.next_index += 1
        self.names[name] = index
        return index

    def reconfigure(self, name, multi_queue=False, vnet_hdr=False, owner=None, group=None):
        self.calls.append(('reconfigure', name, multi_queue, vnet_hdr, owner, group))
        self._check('reconfigure', name, "changing tap '%s'" % name)

    def destroy(self, name, multi_queue=False):
        self.calls.append(('destroy', name, multi_queue))


def kernel(links=(), fail=None, device_fail=None, port_vlans=()):
    """``(FakeRtnl, FakeDevices)`` sharing one name table (TAPs the devices make are found by name)."""
    names = {}
    return (FakeRtnl(links, fail=fail, names=names, port_vlans=port_vlans),
            FakeDevices(fail=device_fail, names=names))
