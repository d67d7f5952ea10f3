# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink
from ansible_collections.nqrust.microvm.plugins.module_utils.kernel_features import KernelFeatureMissing
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkSession, PortVlan
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import (
    Handlers,
    PlanApplyError,
    apply_changes,
    order_changes,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.port_vlan import (
    Membership,
    PortVlanApplier,
    PortVlanRequest,
    check_unique_ports,
    membership_changes,
    parse_membership,
    plan_port_vlans,
    resolve_port_requests,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors, Validator
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.vlan_fakes import FakeVlanKernel, writes


# --------------------------------------------------------------------------- Membership

def test_membership_constructors_and_view():
    assert Membership.access(100).flags() == {100: (True, True)}
    trunk = Membership.trunk([(100, 100), (200, 203)], native=1)
    assert trunk.view() == {'pvid': 1, 'tagged': [100, '200-203'], 'untagged': [1]}
    built = Membership.build(tagged=[(10, 20)], untagged=[(15, 15)], pvid=15)
    assert built.view() == {'pvid': 15, 'tagged': ['10-14', '16-20'], 'untagged': [15]}
    assert Membership.build(pvid=7).flags() == {7: (True, False)}
    assert Membership.default(1) == Membership.access(1) and len(Membership.default(0)) == 0
    assert Membership().view() == {'pvid': None, 'tagged': [], 'untagged': []}


def test_membership_entries_are_port_vlan_runs():
    table = {vid: (False, False) for vid in range(1, 4095)}
    table[1] = (True, True)
    assert Membership(table).entries() == (PortVlan(1, 1, True, True), PortVlan(2, 4094, False, False))


def test_membership_refuses_two_pvids_and_bad_ids():
    with pytest.raises(ValueError, match='more than one pvid: 1, 2'):
        Membership({1: (True, False), 2: (True, True)})
    with pytest.raises(ValueError, match='outside'):
        Membership({4095: (False, False)})
    with pytest.raises(AttributeError):
        Membership().x = 1


def test_membership_equality_and_combining():
    current = Membership({1: (True, True), 100: (False, False)})
    assert current == Membership({100: (False, False), 1: (True, True)}) and current != Membership.access(1)
    assert hash(current) == hash(Membership({100: (False, False), 1: (True, True)}))
    merged = current.merged_with(Membership.access(200))
    assert merged.flags() == {1: (False, True), 100: (False, False), 200: (True, True)}
    assert current.merged_with(Membership.trunk([(300, 300)])).pvid == 1
    assert current.without([1, 5]).flags() == {100: (False, False)}


def test_membership_from_port_vlans_record():
    record = netlink.PortVlans(index=4, name='tap0', master_index=3,
                               vlans=(PortVlan(1, 1, True, True), PortVlan(10, 12)))
    assert Membership.from_port_vlans(record).flags() == {1: (True, True), 10: (False, False), 11: (False, False),
                                                          12: (False, False)}
    assert len(Membership.from_port_vlans(None)) == 0


# --------------------------------------------------------------------------- parameters

def parse(**kwargs):
    validator = Validator()
    membership = parse_membership(validator, 'ports[0]', **kwargs)
    return membership, validator.messages


def test_parse_access_port():
    membership, errors = parse(pvid=100, untagged=[100])
    assert errors == [] and membership == Membership.access(100)


def test_parse_mixed_items_and_strings():
    membership, errors = parse(vlans=['200-202', 7, {'vid': '300-301', 'untagged': True},
                                      {'vid': 5, 'pvid': True, 'untagged': True}], untagged=['7'])
    assert errors == []
    assert membership.flags() == {5: (True, True), 7: (False, True), 200: (False, False), 201: (False, False),
                                  202: (False, False), 300: (False, True), 301: (False, True)}


def test_parse_same_pvid_twice_is_one_pvid():
    membership, errors = parse(vlans=[{'vid': 9, 'pvid': True}], pvid=9)
    assert errors == [] and membership.pvid == 9


@pytest.mark.parametrize('kwargs, words', [
    ({'vlans': [0]}, ["parameter 'ports[0].vlans[0]' (value 0)", '0 is not a VLAN id from 1 to 4094']),
    ({'vlans': ['4090-4095']}, ["parameter 'ports[0].vlans[0]' (value '4090-4095')", '4095 is not a VLAN id']),
    ({'vlans': ['20-10']}, ['range is reversed (20 > 10)']),
    ({'vlans': ['100-200', 150]}, ["parameter 'ports[0].vlans'", '100-200 and 150 overlap']),
    ({'vlans': [5, '5']}, ['5 is listed more than once']),
    ({'vlans': ['x']}, ["parameter 'ports[0].vlans[0]' (value 'x')", 'not a VLAN id or a "START-END" range']),
    ({'vlans': [True]}, ["parameter 'ports[0].vlans[0]' (value True)"]),
    ({'untagged': [4095]}, ["parameter 'ports[0].untagged[0]' (value 4095)"]),
    ({'untagged': ['1-10', '10-20']}, ["parameter 'ports[0].untagged'", '1-10 and 10-20 overlap']),
    ({'pvid': 0}, ["parameter 'ports[0].pvid' (value 0): VLAN id must be an integer from 1 to 4094"]),
    ({'pvid': '4095'}, ["parameter 'ports[0].pvid' (value '4095')"]),
    ({'pvid': 1.5}, ["parameter 'ports[0].pvid' (value 1.5)", 'not an integer']),
    ({'vlans': [{'vid': 1, 'pvid': True}, {'vid': 2, 'pvid': True}]},
     ["parameter 'ports[0]'", 'two pvids: 1 (ports[0].vlans) and 2 (ports[0].vlans)', 'a port has at most one pvid']),
    ({'vlans': [{'vid': 1, 'pvid': True}], 'pvid': 2}, ['two pvids: 1 (ports[0].vlans) and 2 (ports[0].pvid)']),
    ({'vlans': [{'vid': '10-20', 'pvid': True}]},
     ["parameter 'ports[0].vlans[0]'", 'pvid on the range 10-20', 'a single id, not a range']),
    ({'vlans': [{'vid': 10, 'tagged': True}]}, ["parameter 'ports[0].vlans[0]'", 'unknown key tagged']),
    ({'vlans': [{'pvid': True}]}, ['no vid']),
    ({'vlans': [{'vid': 10, 'pvid': 'yes'}]}, ["parameter 'ports[0].vlans[0].pvid' (value 'yes')", 'true or false']),
])
def test_parse_rejects_with_param_value_and_allowed(kwargs, words):
    membership, errors = parse(**kwargs)
    assert membership is None and errors
    text = '; '.join(errors)
    for word in words:
        assert word in text


def test_duplicate_ports_are_refused():
    validator = Validator()
    requests = [PortVlanRequest('tap0', Membership.access(1), param='ports[0]'),
                PortVlanRequest('tap0', Membership.access(2), param='ports[1]')]
    check_unique_ports(validator, requests)
    assert validator.messages == ["parameter 'ports[1].port' (value 'tap0'): already listed as ports[0].port; "
                                  'each port may be listed once (merge its VLANs into one entry)']


def test_request_targets():
    current = Membership({1: (True, True), 100: (False, False)})
    exact = PortVlanRequest('p', Membership.access(200))
    assert exact.target(current) == Membership.access(200)
    additive = PortVlanRequest('p', Membership.trunk([(300, 300)]), mode='additive')
    assert additive.target(current).flags() == {1: (True, True), 100: (False, False), 300: (False, False)}
    absent = PortVlanRequest('p', Membership.trunk([(1, 1), (5, 5)]), state='absent')
    assert absent.target(current).flags() == {100: (False, False)}


# --------------------------------------------------------------------------- plan

def test_changes_group_runs_and_keep_previous_flags():
    current = Membership({1: (True, True), 10: (False, False), 11: (False, False), 12: (False, True)})
    target = Membership({10: (False, True), 11: (False, True), 12: (True, True), 20: (False, False),
                         21: (False, False), 30: (False, False)})
    changes = membership_changes('trunk0', current, target, bridge='br0', index=7)
    assert [change.description for change in changes] == [
        "remove VLAN 1 from port 'trunk0' of bridge 'br0'",
        "update VLANs 10-11 on port 'trunk0' of bridge 'br0' (tagged -> untagged)",
        "update VLAN 12 on port 'trunk0' of bridge 'br0' (untagged -> pvid, untagged)",
        "add VLANs 20-21 (tagged) to port 'trunk0' of bridge 'br0'",
        "add VLAN 30 (tagged) to port 'trunk0' of bridge 'br0'",
    ]
    remove = changes[0].to_dict()
    assert remove['action'] == 'remove' and remove['kind'] == 'port_vlan' and remove['phase'] == 'vlan'
    assert remove['details'] == {'port': 'trunk0', 'bridge': 'br0', 'self': False, 'index': 7, 'vlans': 1,
                                 'start': 1, 'end': 1, 'pvid': False, 'untagged': False,
                                 'before': {'pvid': True, 'untagged': True}}
    assert changes[3].to_dict()['details']['vlans'] == '20-21'
    assert order_changes(changes)[0] is changes[0]
    assert membership_changes('trunk0', target, target) == []


def test_changes_for_the_bridge_itself():
    changes = membership_changes('br0', Membership.access(1), Membership.access(100), bridge='br0', bridge_self=True)
    assert [change.description for change in changes] == ["remove VLAN 1 from bridge 'br0' itself",
                                                          "add VLAN 100 (pvid, untagged) to bridge 'br0' itself"]


def host(vlan_support=True):
    kernel = FakeVlanKernel(vlan_support=vlan_support)
    kernel.add('br0', kind='bridge')
    kernel.add('brplain', kind='bridge', vlan_filtering=False)
    kernel.add('tap0', kind='tun', tun_type='tap', master='br0')
    kernel.add('tap1', kind='tun', tun_type='tap', master='br0')
    kernel.add('plain0', kind='veth', master='brplain')
    kernel.add('loose0', kind='veth')
    kernel.add('bond0', kind='bond')
    kernel.add('slave0', kind='veth', master='bond0')
    return kernel


def read(kernel):
    with NetlinkSession(ipr=kernel) as session:
        return session.links(), session.port_vlans()


def test_resolve_ports_bridges_and_new_ports():
    kernel = host()
    links, vlans = read(kernel)
    requests = [PortVlanRequest('tap0', Membership.access(100), bridge='br0', param='ports[0]'),
                PortVlanRequest('br0', Membership.trunk([(5, 5)]), mode='additive', param='ports[1]'),
                PortVlanRequest('tap-new', Membership.access(200), param='ports[2]')]
    plans = resolve_port_requests(requests, links, vlans, new_ports={'tap-new': 'br0'})
    assert [(p.name, p.bridge, p.bridge_self, p.index) for p in plans] == [
        ('tap0', 'br0', False, kernel.index('tap0')), ('br0', 'br0', True, kernel.index('br0')), ('tap-new', 'br0', False, None)]
    assert plans[0].current == Membership.access(1) and plans[0].target == Membership.access(100)
    assert plans[1].target.flags() == {1: (True, True), 5: (False, False)}
    assert plans[2].current == Membership.access(1), 'a new port starts with the default pvid'
    assert plans[0].view(plans[0].target) == {'bridge': 'br0', 'self': False, 'pvid': 100, 'tagged': [], 'untagged': [100]}
    assert plans[1].result(plans[1].current)['port'] == 'br0'


def test_resolve_reports_every_host_problem():
    links, vlans = read(host())
    requests = [PortVlanRequest('nosuch0', Membership(), param='ports[0]'),
                PortVlanRequest('loose0', Membership(), param='ports[1]'),
                PortVlanRequest('slave0', Membership(), param='ports[2]'),
                PortVlanRequest('plain0', Membership(), param='ports[3]'),
                PortVlanRequest('tap0', Membership(), bridge='brplain', param='ports[4]'),
                PortVlanRequest('br0', Membership(), bridge='brplain', param='ports[5]'),
                PortVlanRequest('brplain', Membership(), param='ports[6]'),
                PortVlanRequest('tap1', Membership(), param='ports[7]'),
                PortVlanRequest('tap-new', Membership(), param='ports[8]')]
    with pytest.raises(ValidationErrors) as info:
        resolve_port_requests(requests, links, vlans, new_ports={'tap-new': 'loose0'})
    messages = info.value.messages
    assert messages == [
        "parameter 'ports[0].port' (value 'nosuch0'): no such link on this host; an existing link that is a port of a "
        'bridge, or a bridge (for its own VLANs, "bridge vlan ... self")',
        "parameter 'ports[1].port' (value 'loose0'): is a veth not attached to any bridge; an existing link that is a "
        'port of a bridge, or a bridge (for its own VLANs, "bridge vlan ... self")',
        "parameter 'ports[2].port' (value 'slave0'): is attached to 'bond0', which is a bond, not a bridge; an existing "
        'link that is a port of a bridge, or a bridge (for its own VLANs, "bridge vlan ... self")',
        "parameter 'ports[4].bridge' (value 'brplain'): port 'tap0' is on bridge 'br0'; the bridge port 'tap0' is "
        "attached to ('br0')",
        "parameter 'ports[5].bridge' (value 'brplain'): port 'br0' is itself a bridge, so its own VLANs are set "
        "(bridge vlan ... self); the port's own bridge, or nothing",
        "parameter 'ports[8].port' (value 'tap-new'): is to be attached to 'loose0', which is not a bridge on this host; "
        'an existing link that is a port of a bridge, or a bridge (for its own VLANs, "bridge vlan ... self")',
        "parameter 'ports[3].port' (value 'plain0'): its bridge 'brplain' has VLAN filtering off; a port of a bridge "
        'with VLAN filtering on (set vlan_filtering: true on the bridge, for instance with nqrust.microvm.fc_bridge)',
        "parameter 'ports[6].port' (value 'brplain'): this bridge has VLAN filtering off; a port of a bridge with VLAN "
        'filtering on (set vlan_filtering: true on the bridge, for instance with nqrust.microvm.fc_bridge)',
    ]


def test_resolve_on_a_kernel_without_vlan_filtering():
    links, vlans = read(host(vlan_support=False))
    with pytest.raises(KernelFeatureMissing) as info:
        resolve_port_requests([PortVlanRequest('tap0', Membership.access(100))], links, vlans)
    assert 'lacks bridge VLAN filtering, needed for the VLANs of port \'tap0\' of bridge \'br0\'' in str(info.value)
    assert 'CONFIG_BRIDGE_VLAN_FILTERING' in str(info.value)


# --------------------------------------------------------------------------- apply through the session

def converge(kernel, requests, check_mode=False):
    with NetlinkSession(ipr=kernel) as session:
        plans, changes = plan_port_vlans(requests, session.links(), session.port_vlans())
        handlers = PortVlanApplier(session).register(Handlers())
        apply_changes(changes, handlers.do, handlers.undo, check_mode=check_mode)
    return plans, changes


def test_apply_reaches_the_target_and_a_second_plan_is_empty():
    kernel = host()
    requests = [PortVlanRequest('tap0', Membership.build(tagged=[(100, 199)], untagged=[(7, 7)], pvid=7)),
                PortVlanRequest('br0', Membership.trunk([(1, 1), (100, 199)]), mode='additive')]
    before = kernel.snapshot()
    converge(kernel, requests, check_mode=True)
    assert kernel.snapshot() == before and writes(kernel) == []
    plans, dummy = converge(kernel, requests)
    assert kernel.membership('tap0') == plans[0].target.flags()
    assert kernel.membership('br0') == dict((vid, (False, False)) for vid in [1] + list(range(100, 200)))
    vlan_writes = [call for call in writes(kernel) if call[0] == 'vlan_filter']
    assert len(vlan_writes) == 5  # tap0: remove 1, add 100-199, add 7; br0: update 1, add 100-199
    range_call = [call for call in vlan_writes if len(call[3]['attrs']) == 3][0]
    assert range_call[3]['attrs'][0] == ['IFLA_BRIDGE_FLAGS', netlink.BRIDGE_FLAGS_MASTER]
    assert [attr[1]['flags'] for attr in range_call[3]['attrs'][1:]] == [netlink.BRIDGE_VLAN_INFO_RANGE_BEGIN,
                                                                         netlink.BRIDGE_VLAN_INFO_RANGE_END]
    self_call = [call for call in vlan_writes if call[2] == kernel.index('br0')][0]
    assert self_call[3]['attrs'][0] == ['IFLA_BRIDGE_FLAGS', netlink.BRIDGE_FLAGS_SELF]
    dummy, again = converge(kernel, requests)
    assert again == []


def test_a_failed_step_is_rolled_back_exactly():
    kernel = host()
    kernel.vlans[kernel.index('tap0')] = {1: (True, True), 50: (False, True)}
    before = kernel.snapshot()

    def fail(call):
        if call[0] == 'vlan_filter' and call[1] == 'add' and call[3]['attrs'][1][1]['vid'] == 300:
            return errno.ENOSPC
        return None

    kernel.fail = fail
    request = PortVlanRequest('tap0', Membership.build(tagged=[(50, 50), (300, 300)], pvid=200))
    with pytest.raises(PlanApplyError) as info:
        converge(kernel, [request])
    text = str(info.value)
    assert "add VLAN 300 (tagged) to port 'tap0' of bridge 'br0'" in text
    assert 'no space left' in text and 'rolled back the 3 steps applied before it' in text
    assert kernel.snapshot() == before


def test_a_new_port_is_found_by_name_when_applied():
    kernel = host()
    links, vlans = read(kernel)
    request = PortVlanRequest('tap-new', Membership.access(300))
    plans, changes = plan_port_vlans([request], links, vlans, new_ports={'tap-new': 'br0'})
    kernel.add('tap-new', kind='tun', tun_type='tap', master='br0')   # what fc_tap does before the VLAN phase
    with NetlinkSession(ipr=kernel) as session:
        handlers = PortVlanApplier(session).register(Handlers())
        apply_changes(changes, handlers.do, handlers.undo)
    assert kernel.membership('tap-new') == {300: (True, True)}
    assert plans[0].index is None
