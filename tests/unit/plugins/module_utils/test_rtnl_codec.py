# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rtnetlink codec: rtnl_socket encodes, rtnl_dump decodes, both against the kernel's UAPI layouts."""

from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink, rtnl_dump
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_dump import (
    BRIDGE_AF_SPEC_ATTRS,
    BRIDGE_LINK_ATTRS,
    BRIDGE_PORT_ATTRS,
    LINK_ATTRS,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_socket import (
    NLA_F_NESTED,
    NLM_F_ACK,
    RTM_SETLINK,
    attribute,
    link_request,
    show_vlans,
    vlan_entries,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.tap_fakes import link_message, port_vlans, tap_message


def test_attributes_are_padded_to_four_bytes_and_nested_ones_flagged():
    assert attribute(LINK_ATTRS, 'IFLA_CARRIER', 1) == struct.pack('=HHB3x', 5, 33, 1)
    assert attribute(LINK_ATTRS, 'IFLA_IFNAME', 'tap0') == struct.pack('=HH', 9, 3) + b'tap0\0' + b'\0\0\0'
    inner = attribute(BRIDGE_PORT_ATTRS, 'IFLA_BRPORT_ISOLATED', 1)
    assert attribute(BRIDGE_LINK_ATTRS, 'IFLA_PROTINFO', inner) == struct.pack('=HH', 4 + len(inner), 12 | NLA_F_NESTED) + inner
    with pytest.raises(KeyError):
        attribute(LINK_ATTRS, 'IFLA_PROTINFO', b'')  # only bridge-family messages carry port settings


def test_link_request_layout():
    message = link_request(RTM_SETLINK, 42, index=7, ifi_flags=1, ifi_change=1, attrs=attribute(LINK_ATTRS, 'IFLA_MASTER', 3))
    length, msg_type, flags, seq, port = rtnl_dump.NLMSGHDR.unpack_from(message)
    assert (length, msg_type, flags, seq, port) == (len(message), 19, rtnl_dump.NLM_F_REQUEST | NLM_F_ACK, 42, 0)
    family, dummy, index, ifi_flags, ifi_change = rtnl_dump.IFINFOMSG.unpack_from(message, 16)
    assert (family, index, ifi_flags, ifi_change) == (0, 7, 1, 1)
    assert message[32:] == struct.pack('=HHI', 8, 10, 3)


def test_vlan_entries_send_runs_as_ranges_and_single_ids_alone():
    vlans = [netlink.PortVlan(10, 10, True, True), netlink.PortVlan(20, 29)]
    data = vlan_entries(vlans)
    assert [struct.unpack_from('=HHHH', data, offset) for offset in range(0, len(data), 8)] == [
        (8, 2, 0x6, 10), (8, 2, 0x8, 20), (8, 2, 0x10, 29)]
    assert show_vlans(vlans) == 'VLANs 10,20-29 (pvid, untagged)'
    assert show_vlans(vlans[1:]) == 'VLANs 20-29' and show_vlans(vlans[:1]) == 'VLAN 10 (pvid, untagged)'


def test_a_tap_round_trips_with_owner_group_flags_and_port_isolation():
    msg = tap_message(9, 'tap0', master=2, owner=10001, group=108, multi_queue=True, vnet_hdr=True, isolated=True, carrier=True)
    assert (msg['index'], msg.index, msg['flags']) == (9, 9, 1)
    info = msg.get_attr('IFLA_LINKINFO')
    data = info.get_attr('IFLA_INFO_DATA')
    assert (data.get_attr('IFLA_TUN_TYPE'), data.get_attr('IFLA_TUN_OWNER'), data.get_attr('IFLA_TUN_GROUP')) == (2, 10001, 108)
    assert (data.get_attr('IFLA_TUN_MULTI_QUEUE'), data.get_attr('IFLA_TUN_VNET_HDR')) == (1, 1)
    assert info.get_attr('IFLA_INFO_SLAVE_DATA').get_attr('IFLA_BRPORT_ISOLATED') == 1
    assert (msg.get_attr('IFLA_MASTER'), msg.get_attr('IFLA_CARRIER'), msg.get_attr('IFLA_IFALIAS')) == (2, 1, 'nqrust.microvm')
    record = netlink.link_from_msg(msg)
    assert record.is_tap and record.slave_kind == 'bridge' and record.master_index == 2


def test_bridge_family_messages_carry_vlans_in_pyroute2s_shape():
    msg = port_vlans(7, 'tap0', 2, (1, True, True), (100, False, False))
    assert msg.get_attr('IFLA_AF_SPEC') == {'attrs': [('IFLA_BRIDGE_VLAN_INFO', {'flags': 6, 'vid': 1}),
                                                      ('IFLA_BRIDGE_VLAN_INFO', {'flags': 0, 'vid': 100})]}
    record = netlink.port_vlans_from_msg(msg)
    assert (record.index, record.name, record.master_index, record.pvid) == (7, 'tap0', 2, 1)
    # compressed ranges, as the kernel dumps them with RTEXT_FILTER_BRVLAN_COMPRESSED
    spec = vlan_entries([netlink.PortVlan(100, 103)]) + attribute(BRIDGE_AF_SPEC_ATTRS, 'IFLA_BRIDGE_FLAGS', 1)
    raw = link_request(rtnl_dump.RTM_NEWLINK, 1, index=8, family=rtnl_dump.AF_BRIDGE,
                       attrs=attribute(BRIDGE_LINK_ATTRS, 'IFLA_IFNAME', 'tap1') + attribute(BRIDGE_LINK_ATTRS, 'IFLA_AF_SPEC', spec))
    ((dummy, dummy2, dummy3, start, end),) = rtnl_dump.messages(raw)
    ranged = rtnl_dump.LinkMessage(raw, start, end)
    assert netlink.port_vlans_from_msg(ranged).vlans == (netlink.PortVlan(100, 103),)
    assert ranged.get_attr('IFLA_AF_SPEC')['attrs'][-1] == ('IFLA_BRIDGE_FLAGS', 1)
    with pytest.raises(KeyError):
        link_message(3, 'eth0').get_attr('IFLA_AF_SPEC')  # not decoded outside AF_BRIDGE dumps


def _error(code, request=b'', text=None, capped=True):
    inner = rtnl_dump.NLMSGHDR.pack(16 + len(request), RTM_SETLINK, 5, 9, 0)
    payload = struct.pack('=i', -code) + inner + (b'' if capped else request)
    if text:
        payload += struct.pack('=HH', 4 + len(text) + 1, rtnl_dump.NLMSGERR_ATTR_MSG) + text.encode() + b'\0'
        payload += b'\0' * (-len(payload) % 4)
    return payload


def test_errors_with_and_without_extended_ack():
    payload = _error(0)
    assert rtnl_dump.error_of(payload, 0, len(payload)) == (0, None)
    flags = rtnl_dump.NLM_F_CAPPED | rtnl_dump.NLM_F_ACK_TLVS
    payload = _error(errno.EINVAL, text='mtu greater than device maximum')
    assert rtnl_dump.error_of(payload, 0, len(payload), flags) == (errno.EINVAL, 'mtu greater than device maximum')
    request = rtnl_dump.IFINFOMSG.pack(0, 0, 4, 0, 0) + attribute(LINK_ATTRS, 'IFLA_MTU', 70000)
    payload = _error(errno.ERANGE, request, 'too big', capped=False)
    assert rtnl_dump.error_of(payload, 0, len(payload), rtnl_dump.NLM_F_ACK_TLVS) == (errno.ERANGE, 'too big')


def test_messages_split_a_buffer_and_refuse_a_truncated_one():
    first = link_request(RTM_SETLINK, 1, index=3, attrs=attribute(LINK_ATTRS, 'IFLA_CARRIER', 1))
    second = link_request(17, 2, index=4)
    found = list(rtnl_dump.messages(first + second))
    assert [(kind, seq) for kind, dummy, seq, dummy2, dummy3 in found] == [(19, 1), (17, 2)]
    assert (found[0][3], found[0][4]) == (16, len(first))
    with pytest.raises(OSError) as caught:
        list(rtnl_dump.messages(first[:-4]))
    assert caught.value.errno == errno.EPROTO
