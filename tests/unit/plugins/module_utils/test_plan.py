# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.plan import (
    Change,
    Handlers,
    Phase,
    PlanApplyError,
    apply_changes,
    build_result,
    describe,
    order_changes,
    render_state,
)


def ch(action, kind, target, phase, **details):
    return Change(action, kind, target, phase, details)


# --------------------------------------------------------------------------- Change

def test_change_is_immutable_and_describes_itself():
    change = ch('create', 'bridge', 'fcbr0', Phase.CREATE, mtu=1500)
    assert change.description == "create bridge 'fcbr0'"
    assert str(change) == "create bridge 'fcbr0'"
    assert not change.removal
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.target = 'other'
    with pytest.raises(TypeError):
        change.details['mtu'] = 9000


def test_change_details_are_copied_and_frozen_deeply():
    details = {'ports': ['tap0'], 'opts': {'a': 1}}
    change = Change('create', 'bridge', 'br0', 'create', details)
    details['ports'].append('tap1')
    assert change.details['ports'] == ('tap0',)
    with pytest.raises(TypeError):
        change.details['opts']['a'] = 2
    assert change.to_dict()['details'] == {'ports': ['tap0'], 'opts': {'a': 1}}


def test_changes_compare_and_hash():
    one = ch('create', 'bridge', 'br0', Phase.CREATE, mtu=1500)
    same = ch('create', 'bridge', 'br0', 'create', mtu=1500)
    other = ch('create', 'bridge', 'br0', Phase.CREATE, mtu=9000)
    assert one == same and one != other
    assert len({one, same, other}) == 2


def test_change_phase_from_name_or_number():
    assert Change('up', 'link', 'br0', 'up').phase is Phase.UP
    assert Change('up', 'link', 'br0', 'UP').phase is Phase.UP
    assert Change('up', 'link', 'br0', 50).phase is Phase.UP
    with pytest.raises(ValueError):
        Change('up', 'link', 'br0', 'sideways')


@pytest.mark.parametrize('action, removal', [
    ('delete', True), ('remove', True), ('detach', True), ('down', True), ('purge', True),
    ('create', False), ('update', False), ('attach', False), ('add', False), ('up', False),
])
def test_removal_follows_action(action, removal):
    assert Change(action, 'x', 'y', Phase.CREATE).removal is removal


def test_removal_can_be_explicit():
    assert Change('replace', 'x', 'y', Phase.CREATE, removal=True).removal is True


def test_update_description_shows_what_changes():
    change = ch('update', 'bridge', 'fcbr0', Phase.CREATE, before={'mtu': 1500, 'up': True}, after={'mtu': 9000, 'up': True})
    assert change.description == "update bridge 'fcbr0' (mtu: 1500 -> 9000)"
    assert describe('attach', 'tap', 'tap0') == "attach tap 'tap0'"
    assert Change('x', 'y', 'z', 'up', description='custom').description == 'custom'


def test_to_dict_is_plain_json():
    change = ch('add', 'address', 'fcbr0 10.0.0.1/24', Phase.ADDRESS, address=ipaddress.ip_interface('10.0.0.1/24'))
    data = change.to_dict()
    assert data == {
        'action': 'add', 'kind': 'address', 'target': 'fcbr0 10.0.0.1/24', 'phase': 'address',
        'details': {'address': '10.0.0.1/24'}, 'description': "add address 'fcbr0 10.0.0.1/24'",
    }
    json.dumps(data)


# --------------------------------------------------------------------------- ordering

def test_order_additions_by_phase_and_removals_first_in_reverse():
    plan = [
        ch('up', 'link', 'fcbr0', Phase.UP),
        ch('add', 'address', 'fcbr0 10.0.0.1/24', Phase.ADDRESS),
        ch('create', 'bridge', 'fcbr0', Phase.CREATE),
        ch('delete', 'tap', 'old-tap', Phase.CREATE),
        ch('attach', 'tap', 'tap0', Phase.ATTACH),
        ch('remove', 'address', 'fcbr0 10.9.0.1/24', Phase.ADDRESS),
        ch('add', 'vlan', 'tap0 100', Phase.VLAN),
        ch('detach', 'tap', 'tap9', Phase.ATTACH),
        ch('create', 'tap', 'tap0', Phase.CREATE),
        ch('down', 'link', 'br-old', Phase.UP),
        ch('remove', 'vlan', 'tap0 200', Phase.VLAN),
    ]
    assert [c.description for c in order_changes(plan)] == [
        "down link 'br-old'",
        "remove address 'fcbr0 10.9.0.1/24'",
        "remove vlan 'tap0 200'",
        "detach tap 'tap9'",
        "delete tap 'old-tap'",
        "create bridge 'fcbr0'",
        "create tap 'tap0'",
        "attach tap 'tap0'",
        "add vlan 'tap0 100'",
        "add address 'fcbr0 10.0.0.1/24'",
        "up link 'fcbr0'",
    ]


def test_order_is_stable_within_a_phase():
    plan = [ch('create', 'bridge', 'br%d' % n, Phase.CREATE) for n in range(20)]
    plan += [ch('delete', 'tap', 'tap%d' % n, Phase.CREATE) for n in range(20)]
    ordered = order_changes(plan)
    assert [c.target for c in ordered] == ['tap%d' % n for n in range(20)] + ['br%d' % n for n in range(20)]


def test_order_is_idempotent_and_independent_of_phase_interleaving():
    plan = [ch('create', 'bridge', 'br0', Phase.CREATE), ch('attach', 'tap', 'tap0', Phase.ATTACH),
            ch('up', 'link', 'br0', Phase.UP), ch('delete', 'tap', 'x', Phase.CREATE)]
    once = order_changes(plan)
    assert order_changes(once) == once
    shuffled = list(plan)
    random.Random(7).shuffle(shuffled)
    assert order_changes(shuffled) == once
    assert order_changes([]) == []


# --------------------------------------------------------------------------- apply

class Recorder(object):
    def __init__(self, fail_on=None, undo_fail_on=None):
        self.fail_on = fail_on
        self.undo_fail_on = undo_fail_on
        self.log = []

    def do(self, change):
        if change.target == self.fail_on:
            raise RuntimeError('boom on %s' % change.target)
        self.log.append(('do', change.target))
        return 'result-%s' % change.target

    def undo(self, change, result):
        if change.target == self.undo_fail_on:
            raise RuntimeError('undo boom on %s' % change.target)
        self.log.append(('undo', change.target, result))


PLAN = [
    ch('attach', 'tap', 'tap0', Phase.ATTACH),
    ch('create', 'bridge', 'br0', Phase.CREATE),
    ch('create', 'tap', 'tap0-create', Phase.CREATE),
    ch('up', 'link', 'br0-up', Phase.UP),
]


def test_apply_runs_in_order_and_returns_the_order():
    rec = Recorder()
    done = apply_changes(PLAN, rec.do, rec.undo)
    assert [c.target for c in done] == ['br0', 'tap0-create', 'tap0', 'br0-up']
    assert rec.log == [('do', 'br0'), ('do', 'tap0-create'), ('do', 'tap0'), ('do', 'br0-up')]


def test_check_mode_runs_nothing():
    rec = Recorder()
    done = apply_changes(PLAN, rec.do, rec.undo, check_mode=True)
    assert [c.target for c in done] == ['br0', 'tap0-create', 'tap0', 'br0-up']
    assert rec.log == []


def test_failure_rolls_back_applied_steps_in_reverse():
    rec = Recorder(fail_on='tap0')
    with pytest.raises(PlanApplyError) as info:
        apply_changes(PLAN, rec.do, rec.undo)
    exc = info.value
    assert rec.log == [('do', 'br0'), ('do', 'tap0-create'),
                       ('undo', 'tap0-create', 'result-tap0-create'), ('undo', 'br0', 'result-br0')]
    assert exc.change.target == 'tap0'
    assert (exc.position, exc.total) == (3, 4)
    assert exc.rolled_back and exc.rollback_errors == []
    assert [c.target for c in exc.applied] == ['br0', 'tap0-create']
    assert str(exc) == "step 3 of 4 (attach tap 'tap0') failed: boom on tap0; rolled back the 2 steps applied before it"
    assert isinstance(exc.__cause__, RuntimeError)
    result = exc.to_result()
    assert result['failed_change']['target'] == 'tap0'
    assert result['rolled_back'] is True
    assert [c['target'] for c in result['applied_changes']] == ['br0', 'tap0-create']


def test_failure_of_first_step_changes_nothing():
    rec = Recorder(fail_on='br0')
    with pytest.raises(PlanApplyError) as info:
        apply_changes(PLAN, rec.do, rec.undo)
    assert rec.log == []
    assert str(info.value) == "step 1 of 4 (create bridge 'br0') failed: boom on br0; nothing had been changed before it"


def test_failed_rollback_is_reported_and_continues():
    rec = Recorder(fail_on='br0-up', undo_fail_on='tap0-create')
    with pytest.raises(PlanApplyError) as info:
        apply_changes(PLAN, rec.do, rec.undo)
    exc = info.value
    # every undo is tried even after one fails
    assert [entry for entry in rec.log if entry[0] == 'undo'] == [('undo', 'tap0', 'result-tap0'), ('undo', 'br0', 'result-br0')]
    assert not exc.rolled_back
    assert exc.rollback_errors == [(exc.applied[1], 'undo failed: undo boom on tap0-create')]
    text = str(exc)
    assert text.startswith("step 4 of 4 (up link 'br0-up') failed: boom on br0-up; rollback FAILED")
    assert "create tap 'tap0-create': undo failed: undo boom on tap0-create" in text
    assert exc.to_result()['rollback_errors'] == ["create tap 'tap0-create': undo failed: undo boom on tap0-create"]


def test_missing_undo_means_no_rollback():
    rec = Recorder(fail_on='tap0')
    with pytest.raises(PlanApplyError) as info:
        apply_changes(PLAN, rec.do)
    assert not info.value.rolled_back
    assert 'no undo handler' in str(info.value)


def test_rollback_can_be_disabled():
    rec = Recorder(fail_on='tap0')
    with pytest.raises(PlanApplyError) as info:
        apply_changes(PLAN, rec.do, rec.undo, rollback=False)
    assert [entry for entry in rec.log if entry[0] == 'undo'] == []
    assert 'rollback disabled, the 2 steps applied before it remain' in str(info.value)


def test_handlers_table_dispatches_by_action_and_kind():
    log = []
    table = Handlers()
    table.register('create', 'bridge', do=lambda c: log.append(('mk', c.target)) or 7,
                   undo=lambda c, r: log.append(('rm', c.target, r)))
    table.register('attach', 'tap', do=lambda c: 1 / 0)
    with pytest.raises(PlanApplyError) as info:
        apply_changes([ch('attach', 'tap', 'tap0', 'attach'), ch('create', 'bridge', 'br0', 'create')], table.do, table.undo)
    assert log == [('mk', 'br0'), ('rm', 'br0', 7)]
    assert 'division by zero' in str(info.value)
    with pytest.raises(PlanApplyError) as info:
        apply_changes([ch('frobnicate', 'tap', 'tap0', 'attach')], table.do, table.undo)
    assert 'no handler for frobnicate tap' in str(info.value)


# --------------------------------------------------------------------------- report

STATE = {
    'bridges': {
        'fcbr0': {'mtu': 1500, 'up': True, 'addresses': ['10.0.0.1/24'], 'ports': ['tap0', 'tap1'], 'alias': 'nqrust.microvm'},
        'br1': {'mtu': 9000, 'up': False, 'addresses': [], 'ports': [], 'alias': None},
    },
    'mode': 'nat',
}


def test_render_state_is_sorted_yaml_like_text():
    assert render_state(STATE) == '\n'.join([
        'bridges:',
        '  br1:',
        '    addresses: []',
        '    alias: null',
        '    mtu: 9000',
        '    ports: []',
        '    up: false',
        '  fcbr0:',
        '    addresses:',
        '      - 10.0.0.1/24',
        '    alias: nqrust.microvm',
        '    mtu: 1500',
        '    ports:',
        '      - tap0',
        '      - tap1',
        '    up: true',
        'mode: nat',
    ]) + '\n'


def test_render_state_is_stable_regardless_of_insertion_order():
    reordered = {'mode': 'nat', 'bridges': dict(reversed(list(STATE['bridges'].items())))}
    reordered['bridges']['fcbr0'] = dict(reversed(list(STATE['bridges']['fcbr0'].items())))
    assert render_state(reordered) == render_state(STATE)


def test_render_state_lists_of_mappings_and_odd_scalars():
    text = render_state({'taps': [{'name': 'tap0', 'vlans': [1, 2]}, {'name': 'tap1', 'vlans': []}],
                         'set': {'b', 'a'}, 'ip': ipaddress.ip_address('10.0.0.1'), 'phase': Phase.UP,
                         'tricky': ['yes', '10', 'a: b', '', ' x', '1.5', 'x #y', 'plain-text_1.2/3']})
    assert text == '\n'.join([
        'ip: 10.0.0.1',
        'phase: up',
        'set:',
        '  - a',
        '  - b',
        'taps:',
        '  - name: tap0',
        '    vlans:',
        '      - 1',
        '      - 2',
        '  - name: tap1',
        '    vlans: []',
        'tricky:',
        '  - "yes"',
        '  - "10"',
        '  - "a: b"',
        '  - ""',
        '  - " x"',
        '  - "1.5"',
        '  - "x #y"',
        '  - plain-text_1.2/3',
    ]) + '\n'


def test_render_state_of_records_and_empties():
    change = ch('create', 'bridge', 'br0', 'create')
    assert render_state([change]) == '\n'.join([
        '- action: create',
        '  description: "create bridge \'br0\'"',
        '  details: {}',
        '  kind: bridge',
        '  phase: create',
        '  target: br0',
    ]) + '\n'
    assert render_state({}) == '{}\n'
    assert render_state([]) == '[]\n'
    assert render_state(None) == 'null\n'


def test_build_result():
    plan = [ch('up', 'link', 'br0', 'up'), ch('create', 'bridge', 'br0', 'create')]
    result = build_result(plan, {'bridges': {}}, {'bridges': {'br0': {'up': True}}}, bridges=[{'name': 'br0'}])
    assert result['changed'] is True
    assert [c['description'] for c in result['changes']] == ["create bridge 'br0'", "up link 'br0'"]
    assert result['diff'] == {'before': 'bridges: {}\n', 'after': 'bridges:\n  br0:\n    up: true\n'}
    assert result['bridges'] == [{'name': 'br0'}]
    json.dumps(result)


def test_build_result_without_changes():
    result = build_result([], {'a': 1}, {'a': 1})
    assert result['changed'] is False and result['changes'] == []
    assert result['diff']['before'] == result['diff']['after']
