# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Applying a TAP plan: what goes to the kernel, in which order, and how a failure is rolled back."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.plan import PlanApplyError
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_socket import RtnlError
from ansible_collections.nqrust.microvm.plugins.module_utils.tap_apply import TapApplier, apply_tap_changes, describe_settings
from ansible_collections.nqrust.microvm.plugins.module_utils.tap_plan import plan_taps
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.tap_fakes import (
    bridge,
    host,
    kernel,
    port_vlans,
    request,
    tap,
    vlan_bridge,
)

MARK = 'nqrust.microvm'


def planned(state, **given):
    built, validator = request(**given)
    assert validator.messages == []
    return plan_taps(built, state)


def apply(state, plan, **fakes):
    rtnl, devices = kernel(**fakes)
    return apply_tap_changes(plan.changes, rtnl, devices, state), rtnl, devices


def failure(state, plan, **fakes):
    rtnl, devices = kernel(**fakes)
    with pytest.raises(PlanApplyError) as info:
        apply_tap_changes(plan.changes, rtnl, devices, state)
    return info.value, rtnl, devices


def test_a_new_tap_is_made_then_set_up_attached_and_up_in_one_request():
    state = host(bridge(2, 'br0', mtu=9000))
    plan = planned(state, bridge='br0', owner=10001, taps=[{'name': 'tap0'}, {'name': 'tap1', 'multi_queue': True}])
    created, rtnl, devices = apply(state, plan)
    assert created == {'tap0': 100, 'tap1': 101}
    assert devices.calls == [('create', 'tap0', False, False, 10001, None), ('create', 'tap1', True, False, 10001, None)]
    # all ioctls first, then the reads and the settings as two pipelines
    assert rtnl.calls == [('read', 100), ('read', 101),
                          ('set_link', 100, {'alias': MARK, 'mtu': 9000, 'master': 2, 'up': True}),
                          ('set_link', 101, {'alias': MARK, 'mtu': 9000, 'master': 2, 'up': True})]


def test_new_ports_get_their_isolation_after_they_are_made():
    state = host(bridge(2, 'br0'))
    plan = planned(state, bridge='br0', taps=[{'name': 'tap0', 'isolated': True}, {'name': 'tap1'}])
    dummy, rtnl, dummy2 = apply(state, plan)
    assert [call[:2] for call in rtnl.calls] == [('read', 100), ('read', 101), ('set_link', 100), ('set_link', 101), ('set_port', 100)]
    assert rtnl.calls[-1] == ('set_port', 100, {'isolated': True})


def test_updates_use_existing_indexes_and_keep_the_current_vnet_hdr():
    state = host(bridge(2, 'br0'), tap(3, 'tap0', master=2, mtu=1400, up=False, owner=5, vnet_hdr=True))
    plan = planned(state, name='tap0', bridge='br0', owner=6, mtu=1500)
    created, rtnl, devices = apply(state, plan)
    assert created == {}
    assert devices.calls == [('reconfigure', 'tap0', False, True, 6, None)]
    assert rtnl.calls == [('set_link', 3, {'mtu': 1500}), ('set_link', 3, {'up': True})]


def test_vlans_of_new_and_existing_ports_go_through_port_vlans_applier():
    state = host(vlan_bridge(2, 'br0'), tap(3, 'tap0', master=2),
                 port_vlans=[port_vlans(3, 'tap0', 2, (1, True, True))])
    plan = planned(state, bridge='br0', taps=[{'name': 'tap0', 'vlan': 10, 'isolated': True}, {'name': 'new0', 'trunk_vlans': ['20-21']}])
    dummy, rtnl, dummy2 = apply(state, plan)
    assert rtnl.calls == [
        ('read', 100),
        ('set_link', 100, {'alias': MARK, 'mtu': 1500, 'master': 2, 'up': True}),
        ('set_port', 3, {'isolated': True}),
        ('delete_port_vlans', 3, ['1']),
        ('add_port_vlans', 3, [{'vlans': '10', 'pvid': True, 'untagged': True}]),
        # new0 is found by name: it had no ifindex when the plan was made
        ('delete_port_vlans', 100, ['1']),
        ('add_port_vlans', 100, [{'vlans': '20-21', 'pvid': False, 'untagged': False}]),
    ]


def test_a_failed_attach_undoes_the_moves_and_creations_before_it_and_names_the_step():
    state = host(bridge(2, 'br0'), bridge(3, 'br1'), *[tap(10 + number, 'tap%d' % number, master=3) for number in range(4)])
    plan = planned(state, bridge='br0', taps=[{'name': 'tap%d' % number} for number in range(4)] + [{'name': 'new0'}, {'name': 'new1'}])
    error, rtnl, dummy = failure(state, plan, fail={('set_link', 12): errno.EINVAL})
    assert error.change.description == "attach tap 'tap2' (bridge: br1 -> br0)"
    assert str(error).startswith("step 5 of 6 (attach tap 'tap2' (bridge: br1 -> br0)) failed: attaching tap 'tap2' "
                                 "to bridge 'br0': invalid argument")
    assert '(kernel: fake kernel says no)' in str(error)
    assert error.rolled_back and error.rollback_errors == []
    assert [change.description for change in error.applied] == [
        "create tap 'new0'", "create tap 'new1'", "attach tap 'tap0' (bridge: br1 -> br0)", "attach tap 'tap1' (bridge: br1 -> br0)"]
    # the rollback, newest first: tap1 and tap0 back to br1, the two new TAPs deleted
    assert rtnl.calls[-4:] == [('set_link', 11, {'master': 3}), ('set_link', 10, {'master': 3}),
                               ('delete_link', 101), ('delete_link', 100)]


def test_a_new_tap_whose_settings_are_refused_is_removed_again():
    state = host(bridge(2, 'br0'))
    plan = planned(state, bridge='br0', taps=[{'name': 'tap0'}, {'name': 'tap1'}])
    error, rtnl, dummy = failure(state, plan, fail={('set_link', 101): errno.EINVAL})
    assert str(error).startswith("step 2 of 2 (create tap 'tap1') failed: setting alias nqrust.microvm, bridge br0, "
                                 "mtu 1500, up of new tap 'tap1': invalid argument")
    assert [change.description for change in error.applied] == ["create tap 'tap0'"]
    assert rtnl.calls[-2:] == [('delete_link', 101), ('delete_link', 100)]


def test_a_refused_new_tap_in_the_middle_fails_its_step_and_nothing_after_it_stays():
    state = host(bridge(2, 'br0'))
    plan = planned(state, bridge='br0', taps=[{'name': 'tap%d' % number} for number in range(5)])
    error, rtnl, devices = failure(state, plan, fail={('set_link', 102): errno.EXFULL})
    assert str(error).startswith("step 3 of 5 (create tap 'tap2') failed: setting alias nqrust.microvm, bridge br0, mtu 1500, up "
                                 "of new tap 'tap2': exchange full: the bridge has no free port number")
    assert [change.target for change in error.applied] == ['tap0', 'tap1'] and error.rolled_back
    # tap3 and tap4 were set up too (the kernel handles a whole chunk) but are removed with tap2, then the rollback
    assert [call for call in rtnl.calls if call[0] == 'delete_link'] == [
        ('delete_link', 102), ('delete_link', 103), ('delete_link', 104), ('delete_link', 101), ('delete_link', 100)]
    assert len(devices.calls) == 5


def test_lost_answers_take_every_new_tap_back():
    state = host(bridge(2, 'br0'))
    plan = planned(state, bridge='br0', taps=[{'name': 'tap%d' % number} for number in range(3)])
    rtnl, devices = kernel()

    def losing(requests, operation):
        raise RtnlError(errno.ENOBUFS, operation + ' (answers of the kernel were lost)')
    rtnl.pipeline = losing
    with pytest.raises(PlanApplyError) as info:
        apply_tap_changes(plan.changes, rtnl, devices, state)
    assert str(info.value).startswith("step 1 of 3 (create tap 'tap0') failed: reading 3 new TAPs (answers of the kernel were lost)")
    assert rtnl.calls == [('delete_link', 100), ('delete_link', 101), ('delete_link', 102)]


def test_taps_made_in_bulk_but_never_claimed_are_removed():
    state = host(bridge(2, 'br0'))
    plan = planned(state, bridge='br0', taps=[{'name': 'tap0'}, {'name': 'tap1'}])
    rtnl, devices = kernel()
    applier = TapApplier(rtnl, devices, state, plan.changes)
    assert applier.create(plan.changes[0]) == 100
    applier.release()
    assert rtnl.calls[-1] == ('delete_link', 101) and applier.created == {'tap0': 100}


def test_a_failed_create_undoes_the_earlier_ones_and_an_update():
    state = host(bridge(2, 'br0'), tap(3, 'old0', master=2, mtu=1400))
    plan = planned(state, bridge='br0', mtu=1500, taps=[{'name': 'old0'}, {'name': 'new0'}, {'name': 'new1'}])
    error, rtnl, dummy = failure(state, plan, device_fail={('create', 'new1'): errno.EBUSY})
    assert str(error).startswith("step 3 of 3 (create tap 'new1') failed: creating tap 'new1': a link with that name exists")
    assert error.rolled_back
    assert rtnl.calls[-2:] == [('delete_link', 100), ('set_link', 3, {'mtu': 1400})]


def test_rollback_restores_old_settings_of_existing_taps():
    state = host(bridge(2, 'br0'), bridge(4, 'br1'), tap(3, 'old0', master=4, mtu=1400, up=False, isolated=True))
    plan = planned(state, bridge='br0', mtu=1500, isolated=True, taps=[{'name': 'old0'}, {'name': 'new0'}])
    refused = []

    def once(call):
        if call[:2] == ('set_port', 3) and not refused:
            refused.append(call)
            return errno.ENOSPC
        return None
    error, rtnl, dummy = failure(state, plan, fail=once)
    assert error.rolled_back and error.change.description == "update port 'old0' (isolated: false -> true)"
    assert rtnl.calls[-6:-4] == [('set_link', 3, {'master': 2, 'up': True}),  # attached to br0 and up in one request
                                 ('set_port', 3, {'isolated': True})]       # refused
    assert rtnl.calls[-4:] == [
        ('set_link', 3, {'master': 4, 'up': False}),  # old0 back to br1, down again ...
        ('set_port', 3, {'isolated': True}),        # ... with its isolation
        ('delete_link', 100),                       # new0 gone
        ('set_link', 3, {'mtu': 1400}),             # old MTU
    ]


def test_a_failed_delete_brings_back_the_taps_deleted_before_it():
    state = host(vlan_bridge(2, 'br0'), tap(3, 'a', master=2, owner=7, mtu=1400, isolated=True), tap(4, 'b', master=2),
                 port_vlans=[port_vlans(3, 'a', 2, (10, True, True), (20, False, False)), port_vlans(4, 'b', 2)])
    plan = planned(state, taps=[], purge=True)
    error, rtnl, devices = failure(state, plan, fail={('delete_link', 4): errno.EBUSY})
    assert "deleting tap 'b'" in str(error) and error.rolled_back, str(error)
    assert devices.calls == [('create', 'a', False, False, 7, None)]
    assert rtnl.calls[-5:] == [
        ('set_link', 100, {'alias': MARK, 'mtu': 1400, 'master': 2, 'up': True}),
        ('set_port', 100, {'isolated': True}),
        ('delete_port_vlans', 100, ['1']),
        ('add_port_vlans', 100, [{'vlans': '10', 'pvid': True, 'untagged': True}]),
        ('add_port_vlans', 100, [{'vlans': '20', 'pvid': False, 'untagged': False}]),
    ]


def test_rollback_problems_are_reported():
    state = host(bridge(2, 'br0'), tap(3, 'old0', master=2))
    plan = planned(state, bridge='br0', owner=10001, taps=[{'name': 'old0'}, {'name': 'new0', 'mtu': 9000}])

    def failing(call):
        if call[0] == 'set_link' and call[1] == 100:
            return errno.EINVAL
        if call[0] == 'delete_link':
            return errno.EPERM
        return None
    error, dummy, devices = failure(state, plan, fail=failing)
    assert not error.rolled_back
    problems = ' | '.join(message for dummy, message in error.rollback_errors)
    assert "undo failed: the kernel cannot take a TAP's owner away once set: tap 'old0' keeps owner 10001" in problems
    assert 'rollback FAILED' in str(error)
    # the new TAP could not be deleted by netlink: it was removed through /dev/net/tun
    assert ('destroy', 'new0', False) in devices.calls


def test_errors_explain_the_errno_and_quote_the_kernel():
    text = str(RtnlError(errno.EINVAL, "setting mtu 70000 of tap 'x'", 'mtu greater than device maximum'))
    assert text.startswith("setting mtu 70000 of tap 'x': invalid argument")
    assert text.endswith('[EINVAL] (kernel: mtu greater than device maximum)')
    assert describe_settings({'alias': '', 'mtu': 1500, 'up': True}) == 'alias (none), mtu 1500, up'
