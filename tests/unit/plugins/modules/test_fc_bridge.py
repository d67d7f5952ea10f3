# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.nqrust.microvm.plugins.module_utils import bridge, host_lock, netlink
from ansible_collections.nqrust.microvm.plugins.modules import fc_bridge
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import FakeIPRoute

MACHINE_ID = '0123456789abcdef0123456789abcdef'


def run(monkeypatch, tmp_path, args, ipr=None):
    """Run fc_bridge.main() against a fake IPRoute; returns (outcome, result, ipr)."""
    fake = ipr or FakeIPRoute()
    monkeypatch.setattr(netlink, 'IPRoute', lambda: fake)
    monkeypatch.setattr(netlink, 'HAS_PYROUTE2', True)
    if hasattr(netlink, 'dump_links'):
        monkeypatch.setattr(netlink, 'dump_links', fake.get_links)
    monkeypatch.setattr(bridge, 'read_machine_id', lambda: MACHINE_ID)
    monkeypatch.setattr(host_lock, 'LOCK_DIRS', (str(tmp_path),))

    kind, result = call_main(monkeypatch, fc_bridge.main, args)
    return kind, result, fake


def writes(ipr):
    return [call for call in ipr.calls if call[0] in ('link', 'addr', 'route') and call[1] != 'get']


def test_check_mode_plans_and_writes_nothing(monkeypatch, tmp_path):
    outcome, result, ipr = run(monkeypatch, tmp_path, {'name': 'br0', 'addresses': ['10.9.0.1/24'], '_check_mode': True})
    assert outcome == 'exit' and result['changed'] is True
    assert [c['action'] for c in result['changes']] == ['create', 'add', 'up']
    assert result['diff']['before'] == 'name: br0\nstate: absent\n'
    assert 'mac: %s' % bridge.derive_mac('br0', MACHINE_ID) in result['diff']['after']
    assert result['bridge']['ifindex'] is None and result['bridge']['addresses'] == ['10.9.0.1/24']
    assert writes(ipr) == [] and ipr.closed


def test_an_existing_bridge_in_its_settings_is_unchanged(monkeypatch, tmp_path):
    outcome, result, ipr = run(monkeypatch, tmp_path, {
        'name': 'fcbr0', 'mac': '02:fc:00:00:00:01', 'addresses': ['10.0.0.1/24', '10.0.0.2/24', '10.0.0.10/24', 'fd00::1/64']})
    assert outcome == 'exit', result.get('msg')
    assert result['changed'] is False and result['changes'] == [] and writes(ipr) == []
    assert result['bridge']['ports'] == ['tap-vm1', 'veth-up'] and result['bridge']['managed'] is True


def test_bad_parameters_fail_before_netlink_is_touched(monkeypatch, tmp_path):
    outcome, result, ipr = run(monkeypatch, tmp_path, {'name': 'br0', 'mtu': 70000, 'addresses': ['10.0.0.1/33']})
    assert outcome == 'fail'
    assert result['msg'].startswith('2 invalid parameters: ')
    assert "parameter 'mtu' (value 70000)" in result['msg'] and "parameter 'addresses[0]' (value '10.0.0.1/33')" in result['msg']
    assert len(result['validation_errors']) == 2
    assert ipr.calls == []


def test_a_name_taken_by_another_device_is_refused(monkeypatch, tmp_path):
    outcome, result, ipr = run(monkeypatch, tmp_path, {'name': 'eth0', 'state': 'absent'})
    assert outcome == 'fail'
    assert "parameter 'name' (value 'eth0'): 'eth0' is a network device (ifindex 2), not a bridge" in result['msg']
    assert writes(ipr) == []


def test_deleting_a_bridge_with_ports_needs_force(monkeypatch, tmp_path):
    outcome, result, ipr = run(monkeypatch, tmp_path, {'name': 'fcbr0', 'state': 'absent'})
    assert outcome == 'fail' and "bridge 'fcbr0' still has ports tap-vm1, veth-up" in result['msg']
    assert writes(ipr) == []
    outcome, result, ipr = run(monkeypatch, tmp_path, {'name': 'fcbr0', 'state': 'absent', 'force': True})
    assert outcome == 'exit' and result['changed'] is True and result['bridge'] is None
    assert writes(ipr) == [('link', 'del', {'index': 3})]


def test_netlink_errors_fail_the_module_and_roll_back(monkeypatch, tmp_path):
    ipr = FakeIPRoute(fail={('addr', 'add'): 1})
    outcome, result, ipr = run(monkeypatch, tmp_path, {'name': 'br0', 'addresses': ['10.9.0.1/24']}, ipr)
    assert outcome == 'fail'
    assert result['msg'].startswith("step 2 of 3 (add address 10.9.0.1/24 to bridge 'br0') failed: adding address 10.9.0.1/24")
    assert 'rolled back the 1 step applied before it' in result['msg']
    assert result['rolled_back'] is True and result['changed'] is False
    assert writes(ipr)[-1][1] == 'del'


def test_without_pyroute2(monkeypatch, tmp_path):
    monkeypatch.setattr(fc_bridge, 'HAS_PYROUTE2', False)
    outcome, result, dummy = run(monkeypatch, tmp_path, {'name': 'br0'})
    assert outcome == 'fail' and 'pyroute2' in result['msg']


def test_argument_spec_matches_the_documentation():
    import yaml
    documented = yaml.safe_load(fc_bridge.DOCUMENTATION)['options']
    spec = fc_bridge.argument_spec()
    assert sorted(documented) == sorted(spec)
    for name, entry in spec.items():
        assert documented[name]['type'] == entry['type'], name
        assert documented[name].get('default') == entry.get('default'), name
