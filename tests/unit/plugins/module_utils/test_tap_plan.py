# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Validation, host checks and planning of fc_tap (pure functions, no kernel)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink, port_vlan, tap_plan, vm_identity
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import order_changes, render_state
from ansible_collections.nqrust.microvm.plugins.module_utils.tap_plan import (
    check_host,
    needs_port_vlans,
    plan_taps,
    removed_names,
    network_interfaces,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.tap_fakes import (
    MARK,
    bridge,
    host,
    link,
    port_vlans,
    request,
    tap,
    vlan_bridge,
)

VM = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'


def steps(plan):
    return [change.description for change in plan.changes]


def valid(**given):
    built, validator = request(**given)
    assert validator.messages == []
    return built


def errors(**given):
    dummy, validator = request(**given)
    assert validator.errors
    return validator.messages


# --------------------------------------------------------------------------- building the request

def test_marker_is_the_collection_marker():
    assert tap_plan.OWNER_MARKER == netlink.OWNER_MARKER
    assert tap_plan.is_ours(netlink.owner_alias('vm=1')) and not tap_plan.is_ours('nqrust.microvmx')


def test_single_tap_from_top_level_options():
    built = valid(name='tap0', bridge='br0', mtu='9000', owner='firecracker', group=108, vlan='10', trunk_vlans=[20, '30-31'])
    (spec,) = built.specs
    assert (spec.name, spec.param, spec.bridge, spec.mtu, spec.owner, spec.group) == ('tap0', '', 'br0', 9000, 10001, 108)
    assert spec.vlan == 10 and spec.trunk_vlans == ((20, 20), (30, 31))
    assert spec.membership(port_vlan).flags() == {10: (True, True), 20: (False, False), 30: (False, False), 31: (False, False)}
    assert spec.alias() == MARK and spec.iface_id == 'eth0' and spec.guest_mac is None


def test_vm_id_derives_name_and_mac_and_entries_inherit_top_level_options():
    built = valid(bridge='br0', owner=10001, iface_id='eth1', taps=[{'vm_id': VM.upper()}, {'name': 'own0', 'bridge': 'br1', 'owner': 0}])
    first, second = built.specs
    assert first.name == vm_identity.tap_name(VM, 'eth1') and first.guest_mac == vm_identity.guest_mac(VM, 'eth1')
    assert first.vm_id == VM and first.bridge == 'br0' and first.owner == 10001 and first.param == 'taps[0]'
    assert first.alias() == 'nqrust.microvm:vm=%s,if=eth1' % VM
    assert (second.name, second.bridge, second.owner, second.iface_id) == ('own0', 'br1', 0, 'eth1')


def test_name_prefix_applies_to_derived_names():
    built = valid(vm_id=VM, name_prefix='fc')
    assert built.specs[0].name == vm_identity.tap_name(VM, prefix='fc')


@pytest.mark.parametrize('given, expected', [
    ({'name': 'bad/name'}, "parameter 'name' (value 'bad/name')"),
    ({'name': 'muchtoolongname1'}, 'is 16 bytes long'),
    ({'name': 'tap0', 'bridge': 'br0', 'vlan': 0}, "parameter 'vlan' (value 0): VLAN id must be an integer from 1 to 4094"),
    ({'name': 'tap0', 'bridge': 'br0', 'vlan': 4095}, "parameter 'vlan' (value 4095)"),
    ({'name': 'tap0', 'bridge': 'br0', 'trunk_vlans': ['100-4095']}, "parameter 'trunk_vlans[0]' (value '100-4095')"),
    ({'name': 'tap0', 'bridge': 'br0', 'vlan': 10, 'trunk_vlans': ['5-15']}, 'contains the access VLAN 10'),
    ({'name': 'tap0', 'vlan': 10}, "parameter 'vlan' (value 10): no bridge is given for this TAP; port options (vlan, "
                                   'trunk_vlans, isolated) need bridge to be set'),
    ({'name': 'tap0', 'mtu': 67}, "parameter 'mtu' (value 67): MTU must be an integer from 68 to 65521"),
    ({'name': 'tap0', 'mtu': 65522}, "parameter 'mtu' (value 65522): MTU must be an integer from 68 to 65521 (the largest a TAP takes)"),
    ({'name': 'tap0', 'owner': 'nosuchuser'}, "parameter 'owner' (value 'nosuchuser'): no such user on the host"),
    ({'name': 'tap0', 'group': 'nosuchgroup'}, 'no such group on the host'),
    ({'name': 'tap0', 'owner': 4294967295}, 'a user name that exists on the host or a uid from 0 to 4294967294'),
    ({'name': 'tap0', 'guest_mac': '01:00:5e:00:00:01'}, "parameter 'guest_mac' (value '01:00:5e:00:00:01')"),
    ({'vm_id': 'has space'}, "parameter 'vm_id' (value 'has space')"),
    ({'vm_id': VM, 'iface_id': 'eth 0'}, "parameter 'iface_id' (value 'eth 0')"),
    ({'vm_id': VM, 'name_prefix': 'toolong-'}, "parameter 'name_prefix' (value 'toolong-')"),
])
def test_rejected_input_names_parameter_value_and_what_is_allowed(given, expected):
    messages = errors(**given)
    assert any(expected in message for message in messages), messages


def test_rejected_entries_name_their_position():
    messages = errors(bridge='br0', taps=[{'name': 'ok0'}, {'name': 'tap1', 'vlan': 4095}, {}])
    assert any(message.startswith("parameter 'taps[1].vlan' (value 4095)") for message in messages)
    assert "parameter 'taps[2].name' (value None): neither name nor vm_id is given; either name, or vm_id (with iface_id) " \
        'from which the name is derived' in messages


def test_duplicate_names_are_rejected_with_both_places():
    messages = errors(taps=[{'name': 'tap0'}, {'name': 'tap1'}, {'name': 'tap0'}])
    assert messages == ["parameter 'taps[2].name' (value 'tap0'): TAP tap0 is also given by taps[0]; "
                        'every TAP name at most once per call']
    derived = errors(taps=[{'vm_id': VM}, {'vm_id': VM.upper()}])
    assert 'derived from vm_id and iface_id' in derived[0]
    # two NICs of one VM are two TAPs
    assert len(valid(taps=[{'vm_id': VM}, {'vm_id': VM, 'iface_id': 'eth1'}]).specs) == 2


def test_a_bad_top_level_option_is_reported_once_under_its_own_name():
    messages = errors(bridge='bad/bridge', mtu=20, taps=[{'name': 'tap%d' % number} for number in range(50)] + [{'name': 'x', 'mtu': 10}])
    assert [message.split(':')[0] for message in messages] == [
        "parameter 'bridge' (value 'bad/bridge')", "parameter 'mtu' (value 20)", "parameter 'taps[50].mtu' (value 10)"]


def test_every_problem_is_reported_at_once():
    messages = errors(taps=[{'name': 'a/b'}, {'name': 'tap1', 'mtu': 1}])
    assert len(messages) == 2


# --------------------------------------------------------------------------- host checks

def test_host_checks_bridge_exists_and_is_a_bridge():
    state = host(bridge(2, 'br0'), link(3, 'veth0', 'veth'))
    built = valid(taps=[{'name': 'tap0', 'bridge': 'nope0'}, {'name': 'tap1', 'bridge': 'veth0'}, {'name': 'tap2', 'bridge': 'br0'}])
    messages = [str(error) for error in check_host(built, state)]
    assert messages == [
        "parameter 'taps[0].bridge' (value 'nope0'): no such link on the host; the name of an existing Linux bridge "
        '(create it first, for instance with nqrust.microvm.fc_bridge)',
        "parameter 'taps[1].bridge' (value 'veth0'): 'veth0' is a veth, not a bridge; the name of an existing Linux bridge "
        '(create it first, for instance with nqrust.microvm.fc_bridge)',
    ]


@pytest.mark.parametrize('other', [bridge(5, 'taken0'), link(5, 'taken0', 'veth'), link(5, 'taken0'), link(5, 'taken0', 'tun')])
def test_host_checks_name_taken_by_another_kind(other):
    for state in ('present', 'absent'):
        built = valid(name='taken0', state=state)
        (error,) = check_host(built, host(other))
        assert str(error).startswith("parameter 'name' (value 'taken0'): a %s named 'taken0' exists on the host; "
                                     'a name that is free or belongs to a TAP' % other.kind_label)


def test_host_checks_vlans_need_filtering():
    built = valid(name='tap0', bridge='br0', vlan=10)
    (error,) = check_host(built, host(bridge(2, 'br0')))
    assert "parameter 'vlan' (value 10): this kernel has no bridge VLAN filtering" in str(error)
    (error,) = check_host(built, host(vlan_bridge(2, 'br0', filtering=False)))
    assert "bridge 'br0' has VLAN filtering off" in str(error)
    assert 'vlan_filtering: true' in str(error)
    assert check_host(built, host(vlan_bridge(2, 'br0'))) == []
    trunk = valid(name='tap0', bridge='br0', trunk_vlans=['100-102'])
    (error,) = check_host(trunk, host(bridge(2, 'br0')))
    assert "parameter 'trunk_vlans' (value ['100-102'])" in str(error)


def test_port_vlans_are_read_only_when_needed():
    state = host(bridge(2, 'br0'), vlan_bridge(3, 'vbr0'), tap(4, 'tap-on-vlan', master=3), tap(5, 'tap-plain', master=2))
    assert not needs_port_vlans(valid(name='tap-plain', bridge='br0'), state.by_name)
    assert needs_port_vlans(valid(name='tapx', bridge='vbr0', vlan=3), state.by_name)
    assert needs_port_vlans(valid(name='tap-on-vlan', state='absent'), state.by_name)
    assert needs_port_vlans(valid(taps=[], purge=True), state.by_name)
    assert not needs_port_vlans(valid(taps=[{'name': 'tap-on-vlan'}], purge=True), state.by_name)


# --------------------------------------------------------------------------- planning

def test_new_tap_is_created_attached_and_brought_up_in_one_step():
    state = host(bridge(2, 'br0', mtu=9000))
    built = valid(vm_id=VM, bridge='br0', owner=10001, group=108)
    plan = plan_taps(built, state)
    name = vm_identity.tap_name(VM)
    assert steps(plan) == ["create tap '%s'" % name]
    create = plan.changes[0].details
    assert dict(create) == {'bridge': 'br0', 'multi_queue': False, 'vnet_hdr': False, 'owner': 10001, 'group': 108, 'mtu': 9000,
                            'alias': 'nqrust.microvm:vm=%s,if=eth0' % VM}
    assert plan.before == {}
    assert plan.after == {name: {'bridge': 'br0', 'mtu': 9000, 'up': True, 'owner': 10001, 'group': 108, 'multi_queue': False,
                                 'vnet_hdr': False, 'managed': True, 'alias': create['alias']}}
    assert plan.warnings == []
    assert network_interfaces(built, plan) == [
        {'iface_id': 'eth0', 'host_dev_name': name, 'guest_mac': vm_identity.guest_mac(VM), 'mtu': 9000}]
    json.dumps([change.to_dict() for change in plan.changes])
    render_state(plan.after)


def test_converged_tap_needs_nothing():
    state = host(bridge(2, 'br0'), tap(3, 'tap0', master=2, owner=10001, isolated=True))
    plan = plan_taps(valid(name='tap0', bridge='br0', owner='firecracker', isolated=True, multi_queue=False), state)
    assert plan.changes == [] and plan.before == plan.after and plan.warnings == []
    assert network_interfaces(valid(name='tap0', bridge='br0'), plan) == [{'iface_id': 'eth0', 'host_dev_name': 'tap0'}]
    # without a diff the views hold only what the results need
    light = plan_taps(valid(name='tap0', bridge='br0', owner='firecracker', isolated=True), state, views=False)
    assert light.changes == [] and light.before == {} and light.after == {'tap0': {'bridge': 'br0', 'mtu': 1500, 'up': True, 'managed': True, 'isolated': True}}


def test_existing_tap_is_updated_in_place():
    state = host(bridge(2, 'br0', mtu=9000), bridge(4, 'br1'), tap(3, 'tap0', master=4, mtu=1500, up=False, owner=5))
    plan = plan_taps(valid(name='tap0', bridge='br0', owner=10001, group='kvm', vnet_hdr=True, isolated=True), state)
    assert steps(plan) == [
        "update tap 'tap0' (group: null -> 108, mtu: 1500 -> 9000, owner: 5 -> 10001, vnet_hdr: false -> true)",
        "attach tap 'tap0' (bridge: br1 -> br0, up: false -> true)",
        "update port 'tap0' (isolated: false -> true)",
    ]
    assert plan.before['tap0']['bridge'] == 'br1' and plan.after['tap0']['bridge'] == 'br0'
    assert plan.after['tap0']['isolated'] is True and plan.after['tap0']['up'] is True


def test_moving_a_port_resets_its_isolation_so_it_is_set_again():
    state = host(bridge(2, 'br0'), bridge(4, 'br1'), tap(3, 'tap0', master=4, isolated=True))
    plan = plan_taps(valid(name='tap0', bridge='br0', isolated=True), state)
    assert steps(plan) == ["attach tap 'tap0' (bridge: br1 -> br0)", "update port 'tap0' (isolated: false -> true)"]
    assert plan.before['tap0']['isolated'] is True and plan.after['tap0']['isolated'] is True


def test_alias_of_marked_taps_follows_the_vm_but_foreign_taps_are_not_marked():
    name = vm_identity.tap_name(VM)
    state = host(bridge(2, 'br0'), tap(3, name, master=2, alias=MARK), tap(4, 'foreign0', master=2, alias=None))
    plan = plan_taps(valid(taps=[{'vm_id': VM}, {'name': 'foreign0', 'vm_id': VM, 'iface_id': 'eth1'}], bridge='br0'), state)
    assert steps(plan) == ["update tap '%s' (alias: nqrust.microvm -> nqrust.microvm:vm=%s,if=eth0)" % (name, VM)]
    assert plan.after['foreign0']['managed'] is False


def test_tun_settings_of_a_tap_in_use_are_left_with_a_warning():
    state = host(bridge(2, 'br0'), tap(3, 'tap0', master=2, owner=5, carrier=True))
    plan = plan_taps(valid(name='tap0', bridge='br0', owner=10001, multi_queue=True, mtu=1400), state)
    assert steps(plan) == ["update tap 'tap0' (mtu: 1500 -> 1400)"]
    assert len(plan.warnings) == 3
    assert any('multi_queue stays false' in warning for warning in plan.warnings)
    assert any('owner stays 5' in warning for warning in plan.warnings)
    assert any('below the MTU 1500' in warning for warning in plan.warnings)


def test_multi_queue_change_re_creates_a_free_tap_keeping_its_settings():
    state = host(bridge(2, 'br0'), tap(3, 'tap0', master=2, owner=7, group=8, mtu=1400, vnet_hdr=True))
    plan = plan_taps(valid(name='tap0', bridge='br0', multi_queue=True, mtu=1400), state)
    assert steps(plan) == ["delete tap 'tap0'", "create tap 'tap0'"]
    assert plan.changes[0].details['reason'] == 'replace: multi_queue false -> true'
    assert dict(plan.changes[1].details) == {'bridge': 'br0', 'multi_queue': True, 'vnet_hdr': True, 'owner': 7, 'group': 8, 'mtu': 1400, 'alias': MARK}
    assert removed_names(plan) == []


def test_absent_removes_any_tap_and_purge_only_marked_ones():
    state = host(bridge(2, 'br0'), tap(3, 'tap-ours', master=2), tap(4, 'tap-foreign', master=2, alias=None),
                 tap(5, 'tap-kept', master=2), tap(6, 'tap-gone', alias=None, carrier=True),
                 link(7, 'veth0', 'veth'), link(8, 'tun0', 'tun'))
    built = valid(taps=[{'name': 'tap-kept'}, {'name': 'tap-gone', 'state': 'absent'}, {'name': 'tap-missing', 'state': 'absent'}],
                  purge=True)
    plan = plan_taps(built, state)
    assert steps(plan) == ["delete tap 'tap-gone'", "delete tap 'tap-ours'"]
    assert [change.details['reason'] for change in plan.changes] == ['state=absent', 'purge']
    assert removed_names(plan) == ['tap-gone', 'tap-ours']
    assert set(plan.before) == {'tap-kept', 'tap-gone', 'tap-ours'}
    assert set(plan.after) == {'tap-kept'}
    assert any('was in use' in warning for warning in plan.warnings)
    assert network_interfaces(built, plan) == [{'iface_id': 'eth0', 'host_dev_name': 'tap-kept'}]


def test_purge_with_an_empty_list_removes_every_marked_tap_only():
    state = host(tap(3, 'a'), tap(4, 'b', alias='nqrust.microvm:vm=x,if=eth0'), tap(5, 'c', alias='someone else'))
    plan = plan_taps(valid(taps=[], purge=True), state)
    assert steps(plan) == ["delete tap 'a'", "delete tap 'b'"]


def test_access_vlan_on_a_new_port_replaces_the_default_vlan_through_port_vlan_planning():
    state = host(vlan_bridge(2, 'br0'), port_vlans=[])
    plan = plan_taps(valid(name='tap0', bridge='br0', vlan=10, trunk_vlans=['20-22', 30]), state)
    assert steps(plan) == [
        "create tap 'tap0'",
        "remove VLAN 1 from port 'tap0' of bridge 'br0'",
        "add VLAN 10 (pvid, untagged) to port 'tap0' of bridge 'br0'",
        "add VLANs 20-22 (tagged) to port 'tap0' of bridge 'br0'",
        "add VLAN 30 (tagged) to port 'tap0' of bridge 'br0'",
    ]
    vlan_changes = plan.changes[1:]
    assert set(change.kind for change in vlan_changes) == {port_vlan.KIND}
    # run after the TAP exists: not ordered as teardowns, and found by name (no ifindex yet)
    assert [change.removal for change in vlan_changes] == [False] * 4
    assert order_changes(plan.changes) == plan.changes
    assert vlan_changes[0].details['index'] is None and vlan_changes[0].details['port'] == 'tap0'
    assert plan.after['tap0']['vlans'] == {'pvid': 10, 'tagged': ['20-22', 30], 'untagged': [10]}


def test_vlan_change_on_an_existing_port_touches_only_the_difference():
    state = host(vlan_bridge(2, 'br0'), tap(3, 'tap0', master=2),
                 port_vlans=[port_vlans(3, 'tap0', 2, (10, True, True), (20, False, False), (21, False, False))])
    plan = plan_taps(valid(name='tap0', bridge='br0', vlan=20, trunk_vlans=[21, 22]), state)
    assert steps(plan) == [
        "remove VLAN 10 from port 'tap0' of bridge 'br0'",
        "update VLAN 20 on port 'tap0' of bridge 'br0' (tagged -> pvid, untagged)",
        "add VLAN 22 (tagged) to port 'tap0' of bridge 'br0'",
    ]
    assert plan.changes[0].details['index'] == 3
    assert plan.changes[0].details['before'] == {'pvid': True, 'untagged': True}
    assert plan.before['tap0']['vlans'] == {'pvid': 10, 'tagged': ['20-21'], 'untagged': [10]}
    assert plan.after['tap0']['vlans'] == {'pvid': 20, 'tagged': ['21-22'], 'untagged': [20]}
    again = plan_taps(valid(name='tap0', bridge='br0', vlan=20, trunk_vlans=[21, 22]),
                      host(vlan_bridge(2, 'br0'), tap(3, 'tap0', master=2),
                           port_vlans=[port_vlans(3, 'tap0', 2, (20, True, True), (21, False, False), (22, False, False))]))
    assert again.changes == [] and again.before == again.after


def test_a_port_moved_to_a_filtering_bridge_starts_from_its_default_vlan():
    state = host(vlan_bridge(2, 'br0'), vlan_bridge(4, 'br1'), tap(3, 'tap0', master=4),
                 port_vlans=[port_vlans(3, 'tap0', 4, (7, True, True))])
    plan = plan_taps(valid(name='tap0', bridge='br0', vlan=7), state)
    assert steps(plan) == ["attach tap 'tap0' (bridge: br1 -> br0)",
                           "remove VLAN 1 from port 'tap0' of bridge 'br0'",
                           "add VLAN 7 (pvid, untagged) to port 'tap0' of bridge 'br0'"]
    assert plan.before['tap0']['vlans'] == {'pvid': 7, 'tagged': [], 'untagged': [7]}


def test_a_tap_made_again_for_multi_queue_keeps_its_port_settings():
    state = host(vlan_bridge(2, 'br0'), tap(3, 'tap0', master=2, isolated=True),
                 port_vlans=[port_vlans(3, 'tap0', 2, (10, True, True), (20, False, False))])
    assert needs_port_vlans(valid(name='tap0', bridge='br0', multi_queue=True), state.by_name)
    assert not needs_port_vlans(valid(name='tap0', bridge='br0', multi_queue=False), state.by_name)
    plan = plan_taps(valid(name='tap0', bridge='br0', multi_queue=True), state)
    assert steps(plan) == [
        "delete tap 'tap0'", "create tap 'tap0'", "update port 'tap0' (isolated: false -> true)",
        "remove VLAN 1 from port 'tap0' of bridge 'br0'", "add VLAN 10 (pvid, untagged) to port 'tap0' of bridge 'br0'",
        "add VLAN 20 (tagged) to port 'tap0' of bridge 'br0'"]
    # the task does not manage them: the diff does not show them
    assert 'vlans' not in plan.after['tap0'] and 'isolated' not in plan.after['tap0']


def test_many_taps_plan_in_phase_order():
    state = host(bridge(2, 'br0'))
    built = valid(bridge='br0', taps=[{'name': 'tap%d' % number} for number in range(3)])
    plan = plan_taps(built, state)
    assert [change.action for change in plan.changes] == ['create'] * 3
    assert [change.target for change in plan.changes] == ['tap0', 'tap1', 'tap2']
    moved = plan_taps(built, host(bridge(2, 'br0'), *[tap(10 + number, 'tap%d' % number, up=False) for number in range(3)]))
    assert [change.action for change in moved.changes] == ['attach'] * 3
    assert moved.changes[0].details['after'] == {'bridge': 'br0', 'up': True}
    down = plan_taps(valid(taps=[{'name': 'tap0'}]), host(tap(10, 'tap0', up=False)))
    assert [change.description for change in down.changes] == ["up tap 'tap0'"]
