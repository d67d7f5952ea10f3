# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fc_tap end to end against a fake kernel: check mode, diff, failures, result shape."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_socket import RtnlError
from ansible_collections.nqrust.microvm.plugins.modules import fc_tap
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.tap_fakes import (
    FakeDevices,
    FakeRtnl,
    bridge_message,
    link_message,
    tap_message,
)

VM = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'


class Kernel(object):
    """Hands out a fresh ``FakeRtnl`` over the same links per module run, and one ``FakeDevices``."""

    def __init__(self, links, fail=None, device_fail=None):
        self.sockets = []
        self.links = [link_message(1, 'lo')] + list(links)
        self.fail = fail
        self.names = {}
        self.devices = FakeDevices(fail=device_fail, names=self.names)

    def socket(self):
        sock = FakeRtnl(self.links, fail=self.fail, names=self.names)
        self.sockets.append(sock)
        return sock

    @property
    def calls(self):
        return [call for sock in self.sockets for call in sock.calls]


def run(monkeypatch, args, kernel, check_mode=False, diff=True):
    monkeypatch.setattr(fc_tap, 'RtnlSocket', kernel.socket)
    monkeypatch.setattr(fc_tap, 'TapDevices', lambda: contextlib.nullcontext(kernel.devices))
    monkeypatch.setattr(fc_tap, 'HostLock', contextlib.nullcontext)
    monkeypatch.setattr(fc_tap, 'lookup_user', {'firecracker': 10001}.get)
    return call_main(monkeypatch, fc_tap.main, dict(args, _check_mode=check_mode), diff=diff, collect_warnings=True)


def result_of(monkeypatch, args, kernel, **kwargs):
    outcome, result = run(monkeypatch, args, kernel, **kwargs)
    assert outcome == 'exit', result
    return result


def failure_of(monkeypatch, args, kernel, **kwargs):
    outcome, result = run(monkeypatch, args, kernel, **kwargs)
    assert outcome == 'fail', result
    return result


def test_check_mode_predicts_the_real_run(monkeypatch):
    args = {'bridge': 'fcbr0', 'owner': 'firecracker', 'taps': [{'vm_id': VM}, {'name': 'tap-b', 'isolated': True}]}
    kernel = Kernel([bridge_message(2, 'fcbr0', mtu=9000)])
    checked = result_of(monkeypatch, args, kernel, check_mode=True)
    assert kernel.calls == [] and kernel.devices.calls == []
    done = result_of(monkeypatch, args, kernel)
    assert checked['changed'] and done['changed']
    assert checked['changes'] == done['changes'] and checked['diff'] == done['diff']
    assert len(kernel.devices.calls) == 2 and kernel.calls
    assert kernel.sockets[0].dumps == {'links': 1, 'port_vlans': 0}
    name = vm_identity.tap_name(VM)
    assert done['network_interfaces'] == [
        {'iface_id': 'eth0', 'host_dev_name': name, 'guest_mac': vm_identity.guest_mac(VM), 'mtu': 9000},
        {'iface_id': 'eth0', 'host_dev_name': 'tap-b', 'mtu': 9000}]
    assert done['removed'] == [] and done['warnings'] == []
    assert 'fcbr0' in done['diff']['after'] and done['diff']['before'] == '{}\n'
    json.dumps(done)


def test_converged_host_changes_nothing(monkeypatch):
    kernel = Kernel([bridge_message(2, 'fcbr0'), tap_message(3, 'tap0', master=2)])
    result = result_of(monkeypatch, {'name': 'tap0', 'bridge': 'fcbr0'}, kernel, diff=False)
    assert result['changed'] is False and result['changes'] == [] and 'diff' not in result
    assert result['network_interfaces'] == [{'iface_id': 'eth0', 'host_dev_name': 'tap0'}] and kernel.calls == []


@pytest.mark.parametrize('args, expected', [
    ({'name': 'tap0', 'bridge': 'fcbr0', 'vlan': 4095}, "parameter 'vlan' (value 4095): VLAN id must be an integer from 1 to 4094"),
    ({'taps': [{'name': 'a'}, {'name': 'a'}]}, "parameter 'taps[1].name' (value 'a'): TAP a is also given by taps[0]"),
    ({'name': 'tap0', 'bridge': 'nope0'}, "parameter 'bridge' (value 'nope0'): no such link on the host"),
    ({'name': 'fcbr0'}, "parameter 'name' (value 'fcbr0'): a bridge named 'fcbr0' exists on the host"),
    ({'name': 'tap0', 'bridge': 'fcbr0', 'vlan': 10}, 'this kernel has no bridge VLAN filtering'),
])
def test_rejected_input_changes_nothing(monkeypatch, args, expected):
    kernel = Kernel([bridge_message(2, 'fcbr0')])
    failed = failure_of(monkeypatch, args, kernel)
    assert expected in failed['msg']
    assert failed['validation_errors']
    assert kernel.calls == [] and kernel.devices.calls == []


def test_options_that_exclude_each_other(monkeypatch):
    failed = failure_of(monkeypatch, {'name': 'a', 'taps': []}, Kernel([]))
    assert 'mutually exclusive' in failed['msg']
    failed = failure_of(monkeypatch, {'bridge': 'fcbr0'}, Kernel([]))
    assert 'one of the following is required' in failed['msg']


def test_purge_alone_with_an_empty_list(monkeypatch):
    kernel = Kernel([tap_message(3, 'old0'), tap_message(4, 'theirs0', alias=None)])
    result = result_of(monkeypatch, {'taps': [], 'purge': True}, kernel)
    assert result['removed'] == ['old0'] and result['network_interfaces'] == []
    assert kernel.calls == [('delete_link', 3)]


def test_a_failed_step_fails_the_module_with_the_rollback_outcome(monkeypatch):
    kernel = Kernel([bridge_message(2, 'fcbr0')], fail={('set_link', 100): errno.EXFULL})
    failed = failure_of(monkeypatch, {'name': 'tap0', 'bridge': 'fcbr0', 'mtu': 9000}, kernel)
    assert failed['msg'].startswith("step 1 of 1 (create tap 'tap0') failed: setting alias nqrust.microvm, bridge fcbr0, mtu 9000, up "
                                    "of new tap 'tap0': ")
    assert failed['msg'].endswith('[EXFULL] (kernel: fake kernel says no); nothing had been changed before it')
    assert failed['rolled_back'] is True and failed['changed'] is False
    assert failed['failed_change']['target'] == 'tap0'
    assert kernel.calls[-1] == ('delete_link', 100)


def test_warnings_reach_the_user(monkeypatch):
    kernel = Kernel([bridge_message(2, 'fcbr0'), tap_message(3, 'tap0', master=2, carrier=True)])
    result = result_of(monkeypatch, {'name': 'tap0', 'bridge': 'fcbr0', 'multi_queue': True}, kernel)
    assert result['changed'] is False
    assert result['warnings'] == ["tap 'tap0' is in use (a VMM has it open): multi_queue stays false until the VM stops and "
                                  'the task runs again']


def test_netlink_read_errors_are_explained(monkeypatch):
    class Broken(FakeRtnl):
        def dump_links(self):
            raise RtnlError(errno.EPERM, 'reading the links')
    kernel = Kernel([])
    kernel.socket = lambda: Broken([])
    failed = failure_of(monkeypatch, {'name': 'tap0'}, kernel)
    assert failed['msg'].startswith('reading the links: operation not permitted')


def test_taps_without_vlans_do_not_import_pyroute2():
    """pyroute2 costs 0.25-0.3 s at every module start: fc_tap loads it (through port_vlan) only for VLAN work."""
    code = (
        'import sys\n'
        'from ansible_collections.nqrust.microvm.plugins.modules import fc_tap\n'
        'from ansible_collections.nqrust.microvm.plugins.module_utils import tap_plan, validation\n'
        'validator = validation.Validator()\n'
        'params = dict((key, None) for key in fc_tap.ARGUMENT_SPEC)\n'
        'params.update(name="tap0", bridge="br0", state="present", purge=False, name_prefix="tap-")\n'
        'request = tap_plan.build_request(validator, params, None, None)\n'
        'from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.tap_fakes import bridge\n'
        'tap_plan.plan_taps(request, tap_plan.HostState([bridge(2, "br0")]))\n'
        'assert validator.ok\n'
        'print(sorted(name for name in sys.modules if name.split(".")[0] == "pyroute2" or name.endswith(".netlink")))\n'
    )
    output = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    assert output.strip() == '[]'
