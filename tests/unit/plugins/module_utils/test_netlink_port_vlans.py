# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""NetlinkSession.port_vlans() and the bridge-port VLAN write helpers."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    NetlinkOperationError,
    NetlinkSession,
    PortVlan,
    PortVlans,
    merge_port_vlans,
    port_vlan_attrs,
    port_vlans_from_msg,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import FakeMsg
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.vlan_fakes import FakeVlanKernel

PVID = netlink.BRIDGE_VLAN_INFO_PVID
UNTAGGED = netlink.BRIDGE_VLAN_INFO_UNTAGGED
BEGIN = netlink.BRIDGE_VLAN_INFO_RANGE_BEGIN
END = netlink.BRIDGE_VLAN_INFO_RANGE_END


def bridge_msg(index, name, master, infos):
    attrs = [('IFLA_IFNAME', name), ('IFLA_MASTER', master)]
    if infos is not None:
        vlan_infos = [('IFLA_BRIDGE_VLAN_INFO', {'vid': vid, 'flags': flags}) for vid, flags in infos]
        attrs.append(('IFLA_AF_SPEC', {'attrs': [('IFLA_BRIDGE_FLAGS', 0)] + vlan_infos}))
    return FakeMsg({'index': index, 'family': netlink.AF_BRIDGE}, attrs)


def test_compressed_dump_entries():
    infos = [(1, PVID | UNTAGGED), (100, BEGIN), (199, END), (200, UNTAGGED | BEGIN), (201, UNTAGGED | END), (300, 0)]
    rec = port_vlans_from_msg(bridge_msg(4, 'trunk0', 3, infos))
    assert rec == PortVlans(index=4, name='trunk0', master_index=3, vlans=(
        PortVlan(1, 1, True, True), PortVlan(100, 199), PortVlan(200, 201, False, True), PortVlan(300, 300)))
    assert rec.pvid == 1 and not rec.is_self
    assert rec.flags_by_vid()[150] == (False, False) and len(rec.flags_by_vid()) == 104
    assert rec.to_dict()['vlans'][1] == {'vlans': '100-199', 'pvid': False, 'untagged': False}


def test_uncompressed_dump_entries_are_merged_into_runs():
    infos = [(vid, 0) for vid in range(10, 20)] + [(20, PVID | UNTAGGED), (21, 0), (22, UNTAGGED)]
    rec = port_vlans_from_msg(bridge_msg(3, 'br0', 3, infos))
    assert rec.vlans == (PortVlan(10, 19), PortVlan(20, 20, True, True), PortVlan(21, 21), PortVlan(22, 22, False, True))
    assert rec.is_self


def test_a_port_without_vlans():
    rec = port_vlans_from_msg(bridge_msg(5, 'tap0', 3, None))
    assert rec.vlans == () and rec.pvid is None


def test_merge_never_merges_the_pvid_and_skips_repeats():
    assert merge_port_vlans([(2, False, False), (1, True, False), (3, False, False), (3, False, True)]) == (
        PortVlan(1, 1, True, False), PortVlan(2, 3))


def test_decoding_real_pyroute2_messages():
    """The parser reads pyroute2's own decoded nla objects (whatever version is installed)."""
    ifinfmsg = pytest.importorskip('pyroute2.netlink.rtnl.ifinfmsg').ifinfmsg
    msg = ifinfmsg()
    msg['family'] = netlink.AF_BRIDGE
    msg['index'] = 9
    msg['attrs'] = [['IFLA_IFNAME', 'tap9'], ['IFLA_MASTER', 3],
                    ['IFLA_AF_SPEC', {'attrs': [['IFLA_BRIDGE_VLAN_INFO', {'flags': PVID | UNTAGGED, 'vid': 7}],
                                                ['IFLA_BRIDGE_VLAN_INFO', {'flags': BEGIN, 'vid': 100}],
                                                ['IFLA_BRIDGE_VLAN_INFO', {'flags': END, 'vid': 110}]]}]]
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    rec = port_vlans_from_msg(decoded)
    assert rec == PortVlans(9, 'tap9', 3, (PortVlan(7, 7, True, True), PortVlan(100, 110)))


def test_port_vlan_attrs():
    assert port_vlan_attrs(PortVlan(5, 5, True, True)) == [['IFLA_BRIDGE_VLAN_INFO', {'flags': PVID | UNTAGGED, 'vid': 5}]]
    assert port_vlan_attrs(PortVlan(5, 9, False, True)) == [['IFLA_BRIDGE_VLAN_INFO', {'flags': UNTAGGED | BEGIN, 'vid': 5}],
                                                            ['IFLA_BRIDGE_VLAN_INFO', {'flags': UNTAGGED | END, 'vid': 9}]]
    for bad, words in ((PortVlan(0, 0), 'outside 1-4094'), (PortVlan(1, 4095), 'outside'), (PortVlan(9, 5), 'reversed'),
                       (PortVlan(5, 9, True), 'cannot be the pvid')):
        with pytest.raises(ValueError, match=words):
            port_vlan_attrs(bad)
    assert PortVlan(5, 9).text == '5-9' and PortVlan(5, 5).text == '5' and list(PortVlan(5, 6).vids) == [5, 6]


def kernel():
    fake = FakeVlanKernel()
    fake.add('br0', kind='bridge')
    fake.add('tap0', kind='tun', tun_type='tap', master='br0')
    fake.add('eth0')
    return fake


def test_session_reads_port_vlans_with_one_cached_dump():
    fake = kernel()
    fake.vlans[fake.index('tap0')] = {1: (True, True), 100: (False, False), 101: (False, False)}
    with NetlinkSession(ipr=fake) as session:
        every = session.port_vlans()
        assert [rec.name for rec in every] == ['br0', 'tap0']
        assert session.port_vlans('tap0').vlans == (PortVlan(1, 1, True, True), PortVlan(100, 101))
        assert session.port_vlans(fake.index('br0')).is_self
        assert session.port_vlans('eth0') is None and session.port_vlans('nosuch') is None
        assert session.dumps['port_vlans'] == 1
        dumps = [call for call in fake.calls if call[:2] == ('link', 'dump')]
        assert dumps == [('link', 'dump', {'family': netlink.AF_BRIDGE, 'match': {},
                                           'ext_mask': netlink.RTEXT_FILTER_BRVLAN_COMPRESSED})]
        session.refresh()
        session.port_vlans()
        assert session.dumps['port_vlans'] == 2


def test_a_link_reported_twice_keeps_the_entry_with_vlans():
    class Twice(object):
        def link(self, command, **kwargs):
            return [bridge_msg(4, 'eth1', 4, None), bridge_msg(4, 'eth1', 3, [(1, PVID)]), bridge_msg(4, 'eth1', 4, None)]

    with NetlinkSession(ipr=Twice()) as session:
        assert session.port_vlans() == (PortVlans(4, 'eth1', 3, (PortVlan(1, 1, True, False),)),)


def test_add_and_delete_send_one_request_each():
    fake = kernel()
    tap = fake.index('tap0')
    with NetlinkSession(ipr=fake) as session:
        session.add_port_vlans(tap, [PortVlan(100, 110), PortVlan(7, 7, True, True)], display='tap0')
        session.delete_port_vlans(tap, [PortVlan(1, 1)], display='tap0')
        session.add_port_vlans(fake.index('br0'), [PortVlan(5, 5, False, True)], bridge_self=True, display='br0')
    assert fake.membership('tap0') == dict([(vid, (False, False)) for vid in range(100, 111)] + [(7, (True, True))])
    assert fake.membership('br0') == {1: (True, True), 5: (False, True)}
    calls = [call for call in fake.calls if call[0] == 'vlan_filter']
    assert [call[1] for call in calls] == ['add', 'del', 'add']
    assert calls[0][3] == {'attrs': [['IFLA_BRIDGE_FLAGS', netlink.BRIDGE_FLAGS_MASTER],
                                     ['IFLA_BRIDGE_VLAN_INFO', {'flags': BEGIN, 'vid': 100}],
                                     ['IFLA_BRIDGE_VLAN_INFO', {'flags': END, 'vid': 110}],
                                     ['IFLA_BRIDGE_VLAN_INFO', {'flags': PVID | UNTAGGED, 'vid': 7}]]}
    assert calls[2][3]['attrs'][0] == ['IFLA_BRIDGE_FLAGS', netlink.BRIDGE_FLAGS_SELF]


def test_write_errors_name_the_operation_in_plain_english():
    fake = kernel()
    fake.fail = lambda call: errno.EOPNOTSUPP if call[0] == 'vlan_filter' else None
    with NetlinkSession(ipr=fake) as session:
        link = session.link('tap0')
        with pytest.raises(NetlinkOperationError) as info:
            session.add_port_vlans(link, [PortVlan(100, 101, False, True)])
        assert str(info.value).startswith("adding VLANs 100-101 (untagged) to port 'tap0': operation not supported")
        with pytest.raises(NetlinkOperationError) as info:
            session.delete_port_vlans(3, [PortVlan(9, 9)], bridge_self=True, display='br0')
        assert str(info.value).startswith("removing VLAN 9 from bridge 'br0' itself: ")
        with pytest.raises(TypeError):
            session.add_port_vlans('tap0', [PortVlan(1, 1)])
