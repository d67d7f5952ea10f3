# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.kernel_features import KernelFeatureMissing
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkSession
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Handlers, PlanApplyError, apply_changes
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors, Validator
from ansible_collections.nqrust.microvm.plugins.module_utils.vlan_link import (
    SubinterfaceApplier,
    SubinterfaceRequest,
    check_unique_subinterfaces,
    link_result,
    parse_subinterface,
    resolve_subinterfaces,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.vlan_fakes import FakeVlanKernel, writes

YES = (True, 'module 8021q is loaded')
NO = (False, 'module 8021q is not loaded (no /sys/module/8021q) and no modules are installed for this kernel')


def parse(item):
    validator = Validator()
    request = parse_subinterface(validator, 'subinterfaces[0]', item)
    return request, validator.messages


def test_parse_defaults():
    request, errors = parse({'name': 'eth0.100', 'link': 'eth0', 'id': 100})
    assert errors == []
    assert request == SubinterfaceRequest(name='eth0.100', link='eth0', vlan_id=100, mtu=None, state='present', up=True,
                                          param='subinterfaces[0]')
    request, errors = parse({'name': 'eth0.100', 'state': 'absent'})
    assert errors == [] and request.link is None and request.vlan_id is None


@pytest.mark.parametrize('item, words', [
    ({'name': 'eth0.100/x', 'link': 'eth0', 'id': 1}, ["parameter 'subinterfaces[0].name' (value 'eth0.100/x')", "'/'"]),
    ({'name': 'a' * 16, 'link': 'eth0', 'id': 1}, ['is 16 bytes long', '1 to 15 bytes']),
    ({'name': '', 'link': 'eth0', 'id': 1}, ['empty']),
    ({'name': 'v', 'link': 'eth 0', 'id': 1}, ["parameter 'subinterfaces[0].link' (value 'eth 0')", 'whitespace']),
    ({'name': 'v', 'link': 'eth0', 'id': 0}, ["parameter 'subinterfaces[0].id' (value 0): VLAN id must be an integer from 1 to 4094"]),
    ({'name': 'v', 'link': 'eth0', 'id': 4095}, ["parameter 'subinterfaces[0].id' (value 4095)"]),
    ({'name': 'v', 'id': 5}, ["parameter 'subinterfaces[0].link' (value None): missing"]),
    ({'name': 'v', 'link': 'eth0'}, ["parameter 'subinterfaces[0].id' (value None): missing"]),
    ({'name': 'v', 'link': 'eth0', 'id': 5, 'mtu': 67}, ["parameter 'subinterfaces[0].mtu' (value 67): MTU must be"]),
    ({'name': 'v', 'link': 'eth0', 'id': 5, 'mtu': 65536}, ["(value 65536)"]),
])
def test_parse_rejects(item, words):
    request, errors = parse(item)
    assert request is None
    text = '; '.join(errors)
    for word in words:
        assert word in text


def test_names_and_parent_id_pairs_are_unique():
    validator = Validator()
    requests = [SubinterfaceRequest('a', 'eth0', 5, param='s[0]'), SubinterfaceRequest('a', 'eth0', 6, param='s[1]'),
                SubinterfaceRequest('b', 'eth0', 5, param='s[2]'), SubinterfaceRequest('c', 'eth0', 5, state='absent', param='s[3]')]
    check_unique_subinterfaces(validator, requests)
    assert validator.messages == [
        "parameter 's[1].name' (value 'a'): already listed as s[0].name; each sub-interface may be listed once",
        "parameter 's[2].id' (value 5): VLAN 5 on 'eth0' is already s[0] (a); one VLAN link per parent and VLAN id "
        '(the kernel allows no second one)',
    ]


def host():
    kernel = FakeVlanKernel()
    kernel.add('eth0', mtu=9000)
    kernel.add('br0', kind='bridge')
    kernel.add('eth0.7', kind='vlan', parent=kernel.index('eth0'), vlan_id=7, alias='nqrust.microvm')
    kernel.add('hand.8', kind='vlan', parent=kernel.index('eth0'), vlan_id=8, up=False)
    return kernel


def plan(kernel, requests, probe=YES):
    with NetlinkSession(ipr=kernel) as session:
        plans = resolve_subinterfaces(requests, session.links(), probe)
    return plans, [change for item in plans for change in item.changes()]


def apply(kernel, changes):
    with NetlinkSession(ipr=kernel) as session:
        handlers = SubinterfaceApplier(session).register(Handlers())
        apply_changes(changes, handlers.do, handlers.undo)


def test_create_takes_the_parent_mtu_and_is_marked():
    kernel = host()
    plans, changes = plan(kernel, [SubinterfaceRequest('eth0.100', 'eth0', 100)])
    assert [c.description for c in changes] == ["create VLAN link 'eth0.100' (VLAN 100 on 'eth0')",
                                                "bring VLAN link 'eth0.100' up"]
    assert plans[0].before is None and plans[0].after == {'link': 'eth0', 'id': 100, 'mtu': 9000, 'up': True}
    assert plans[0].predicted_result() == {'name': 'eth0.100', 'state': 'present', 'link': 'eth0', 'id': 100,
                                           'mtu': 9000, 'up': True, 'ifindex': None, 'managed': True}
    apply(kernel, changes)
    rec = kernel.links[kernel.index('eth0.100')]
    assert (rec['kind'], rec['vlan_id'], rec['mtu'], rec['up'], rec['alias']) == ('vlan', 100, 9000, True, 'nqrust.microvm')
    with NetlinkSession(ipr=kernel) as session:
        link = session.link('eth0.100')
        assert link_result('eth0.100', link, 'eth0') == dict(plans[0].predicted_result(), ifindex=link.index)
    assert plan(kernel, [SubinterfaceRequest('eth0.100', 'eth0', 100)])[1] == []


def test_update_mtu_and_state_of_an_existing_link():
    kernel = host()
    plans, changes = plan(kernel, [SubinterfaceRequest('eth0.7', 'eth0', 7, mtu=1500, up=False),
                                   SubinterfaceRequest('hand.8', 'eth0', 8)])
    assert [c.description for c in changes] == ["bring VLAN link 'eth0.7' down", "bring VLAN link 'hand.8' up"]
    assert plans[0].after == {'link': 'eth0', 'id': 7, 'mtu': 1500, 'up': False}
    plans, changes = plan(kernel, [SubinterfaceRequest('eth0.7', 'eth0', 7, mtu=1400)])
    assert [c.description for c in changes] == ["update VLAN link 'eth0.7' (mtu: 1500 -> 1400)"]
    apply(kernel, changes)
    assert kernel.links[kernel.index('eth0.7')]['mtu'] == 1400


def test_replace_ours_refuse_theirs_and_delete_with_safety_checks():
    kernel = host()
    plans, changes = plan(kernel, [SubinterfaceRequest('eth0.7', 'eth0', 70)])
    assert plans[0].replace
    assert [c.description for c in changes] == [
        "delete VLAN link 'eth0.7' (VLAN 7 on 'eth0') (to make it again with VLAN 70 on eth0)",
        "create VLAN link 'eth0.7' (VLAN 70 on 'eth0')", "bring VLAN link 'eth0.7' up"]
    assert plans[0].predicted_result()['ifindex'] is None
    apply(kernel, changes)
    assert kernel.links[kernel.index('eth0.7')]['vlan_id'] == 70

    with pytest.raises(ValidationErrors) as info:
        plan(kernel, [SubinterfaceRequest('hand.8', 'eth0', 9, param='s[0]'),
                      SubinterfaceRequest('hand.8', 'eth0', 9, state='absent', param='s[1]'),
                      SubinterfaceRequest('hand.8', 'br0', state='absent', param='s[2]')])
    assert info.value.messages == [
        "parameter 's[0].name' (value 'hand.8'): exists as VLAN 8 on 'eth0', made outside this collection; refusing to "
        'replace it (delete it with state=absent first); a VLAN link this collection made, or one with the same link and id',
        "parameter 's[1].id' (value 9): 'hand.8' is VLAN 8; refusing to delete it; the VLAN link's id (8) or nothing",
        "parameter 's[2].link' (value 'br0'): 'hand.8' is on 'eth0'; refusing to delete it; the VLAN link's parent "
        "('eth0') or nothing",
    ]
    plans, changes = plan(kernel, [SubinterfaceRequest('hand.8', 'eth0', 8, state='absent'),
                                   SubinterfaceRequest('gone.9', state='absent')])
    assert [c.description for c in changes] == ["delete VLAN link 'hand.8' (VLAN 8 on 'eth0')"]
    assert plans[0].predicted_result()['state'] == 'absent' and plans[1].before is None
    apply(kernel, changes)
    assert 'hand.8' not in [rec['name'] for rec in kernel.links.values()]


def test_host_problems():
    kernel = host()
    with pytest.raises(ValidationErrors) as info:
        plan(kernel, [SubinterfaceRequest('br0', 'eth0', 5, param='s[0]'),
                      SubinterfaceRequest('x', 'nosuch', 5, param='s[1]'),
                      SubinterfaceRequest('y', 'lo', 5, param='s[2]'),
                      SubinterfaceRequest('z', 'eth0', 5, mtu=9001, param='s[3]'),
                      SubinterfaceRequest('w', 'eth0', 8, param='s[4]'),
                      SubinterfaceRequest('br0', state='absent', param='s[5]')])
    assert info.value.messages == [
        "parameter 's[0].name' (value 'br0'): is a bridge, not a VLAN link; a name that is free or already a VLAN link",
        "parameter 's[1].link' (value 'nosuch'): no such link on this host; an existing link that is not loopback",
        "parameter 's[2].link' (value 'lo'): is the loopback device; an existing link that is not loopback",
        "parameter 's[3].mtu' (value 9001): above the MTU of 'eth0' (9000); MTU must be an integer from 68 to 65535, "
        'and not above the MTU of the parent link',
        "parameter 's[4].id' (value 8): VLAN 8 on 'eth0' already exists as 'hand.8'; one VLAN link per parent and VLAN "
        'id (the kernel allows no second one)',
        "parameter 's[5].name' (value 'br0'): is a bridge, not a VLAN link; a name that is free or already a VLAN link",
    ]
    # a VLAN link that goes in the same task frees its parent and id
    plans, changes = plan(kernel, [SubinterfaceRequest('hand.8', state='absent'), SubinterfaceRequest('w', 'eth0', 8)])
    assert [c.action for c in changes] == ['delete', 'create', 'up']


def test_without_8021q_nothing_new_can_be_made():
    kernel = host()
    with pytest.raises(KernelFeatureMissing) as info:
        plan(kernel, [SubinterfaceRequest('eth0.100', 'eth0', 100)], probe=NO)
    assert "lacks 802.1Q VLAN support (8021q), needed for VLAN link 'eth0.100' (VLAN 100 on 'eth0'): module 8021q" in str(info.value)
    # existing links can still be changed and deleted
    assert plan(kernel, [SubinterfaceRequest('eth0.7', state='absent')], probe=NO)[1][0].action == 'delete'


def test_a_failed_create_is_rolled_back():
    kernel = host()
    before = kernel.snapshot()
    kernel.fail = lambda call: errno.ERANGE if call[1] == 'set' and call[2].get('mtu') == 1234 else None
    plans, changes = plan(kernel, [SubinterfaceRequest('eth0.7', state='absent'),
                                   SubinterfaceRequest('eth0.100', 'eth0', 100),
                                   SubinterfaceRequest('eth0.101', 'eth0', 101, mtu=1234)])
    with pytest.raises(PlanApplyError) as info:
        apply(kernel, changes)
    assert "creating vlan 'eth0.101' (setting ifalias=nqrust.microvm, mtu=1234): value out of range" in str(info.value)
    assert 'rolled back the 2 steps applied before it' in str(info.value)
    after = kernel.snapshot()
    names = sorted(rec['name'] for rec in kernel.links.values())
    assert names == ['br0', 'eth0', 'eth0.7', 'hand.8', 'lo']
    restored = kernel.links[kernel.index('eth0.7')]
    assert (restored['vlan_id'], restored['mtu'], restored['up'], restored['alias']) == (7, 1500, True, 'nqrust.microvm')
    assert after != before  # the restored link has a new ifindex, as a re-created link does
    assert [call[1] for call in writes(kernel) if call[0] == 'link'][-2:] == ['add', 'set']
