# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible.module_utils import basic

from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_service, host_lock, netlink
from ansible_collections.nqrust.microvm.plugins.modules import fc_dnsmasq
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import FakeIPRoute


class Daemons(object):
    """Stands in for the pid file supervisor: records starts, stops and reloads."""

    def __init__(self):
        self.pid = None
        self.calls = []


@pytest.fixture(name='daemons')
def daemons_fixture(monkeypatch):
    daemons = Daemons()

    def start(self):
        daemons.calls.append('start')
        daemons.pid = 4000 + len(daemons.calls)
        return daemons.pid

    def stop(self, pid):
        daemons.calls.append(('stop', pid))
        daemons.pid = None

    def reload(self, pid):
        daemons.calls.append(('reload', pid))
        return pid

    monkeypatch.setattr(dnsmasq_service.PidfileSupervisor, 'start', start)
    monkeypatch.setattr(dnsmasq_service.PidfileSupervisor, 'stop', stop)
    monkeypatch.setattr(dnsmasq_service.PidfileSupervisor, 'reload', reload)
    monkeypatch.setattr(dnsmasq_service, 'find_daemon', lambda paths, proc=None: dnsmasq_service.Daemon(pid=daemons.pid, pidfile_pid=daemons.pid))
    monkeypatch.setattr(dnsmasq_service, 'systemd_running', lambda path=None: False)
    return daemons


def run(monkeypatch, tmp_path, args, ipr=None):
    fake = ipr or FakeIPRoute()
    monkeypatch.setattr(netlink, 'IPRoute', lambda: fake)
    monkeypatch.setattr(netlink, 'HAS_PYROUTE2', True)
    monkeypatch.setattr(netlink, 'dump_links', fake.get_links)
    monkeypatch.setattr(host_lock, 'LOCK_DIRS', (str(tmp_path),))
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: '/usr/sbin/%s' % name)

    module_args = {'config_dir': str(tmp_path / 'etc'), 'state_dir': str(tmp_path / 'lib'), 'run_dir': str(tmp_path / 'run')}
    module_args.update(args)
    return call_main(monkeypatch, fc_dnsmasq.main, module_args)


def files_in(tmp_path):
    return sorted(os.path.relpath(os.path.join(root, name), str(tmp_path))
                  for root, dummy, names in os.walk(str(tmp_path)) for name in names if not name.endswith('.lock'))


NETWORK = {'bridge': 'fcbr0', 'cidr': '10.0.0.1/24', 'dhcp': {'static_leases': [{'mac': 'aa:fc:00:00:00:05', 'ip': '10.0.0.5', 'hostname': 'db1'}]}}


def test_check_mode_predicts_the_real_run_which_a_second_run_confirms(monkeypatch, tmp_path, daemons):
    outcome, predicted = run(monkeypatch, tmp_path, dict(NETWORK, _check_mode=True))
    assert outcome == 'exit', predicted.get('msg')
    assert predicted['changed'] is True and predicted['action'] == 'started' and predicted['pid'] is None
    assert files_in(tmp_path) == [] and daemons.calls == []
    outcome, applied = run(monkeypatch, tmp_path, NETWORK)
    assert outcome == 'exit', applied.get('msg')
    for key in ('changed', 'changes', 'diff', 'action', 'network', 'files'):
        assert predicted[key] == applied[key], key
    assert applied['pid'] == 4001 and daemons.calls == ['start']
    assert files_in(tmp_path) == ['etc/fcbr0.conf', 'etc/fcbr0.dhcp-hosts', 'etc/fcbr0.hosts']
    outcome, again = run(monkeypatch, tmp_path, NETWORK)
    assert again['changed'] is False and again['changes'] == [] and again['action'] == 'none' and again['pid'] == 4001
    assert [item['after'] for item in again['diff']] == [item['after'] for item in applied['diff']]
    assert all(item['before'] == item['after'] for item in again['diff'])


def test_a_new_static_lease_is_a_reload(monkeypatch, tmp_path, daemons):
    run(monkeypatch, tmp_path, NETWORK)
    leases = NETWORK['dhcp']['static_leases'] + [{'mac': 'aa:fc:00:00:00:06', 'ip': '10.0.0.6'}]
    outcome, result = run(monkeypatch, tmp_path, dict(NETWORK, dhcp={'static_leases': leases}))
    assert outcome == 'exit' and result['action'] == 'reloaded' and result['pid'] == 4001
    assert [change['details'].get('file') for change in result['changes']] == ['dhcp_hosts', None]
    assert daemons.calls == ['start', ('reload', 4001)]


def test_bad_input_fails_before_anything_is_read_or_written(monkeypatch, tmp_path, daemons):
    ipr = FakeIPRoute()
    outcome, result = run(monkeypatch, tmp_path, {'bridge': 'fcbr0', 'cidr': '10.0.0.1/24', 'dhcp': {
        'range_start': '10.0.1.10', 'range_end': '10.0.1.20',
        'static_leases': [{'mac': '01:00:5e:00:00:01', 'ip': '10.0.0.5'}]}}, ipr)
    assert outcome == 'fail' and result['msg'].startswith('2 invalid parameters: ')
    assert "parameter 'dhcp.range_start/range_end' (value '10.0.1.10-10.0.1.20'): start is outside 10.0.0.0/24" in result['msg']
    assert "parameter 'dhcp.static_leases[0].mac' (value '01:00:5e:00:00:01'): multicast bit set" in result['msg']
    assert ipr.calls == [] and files_in(tmp_path) == [] and daemons.calls == []


@pytest.mark.parametrize('bridge, problem', [
    ('fcbr9', 'no such link'),
    ('eth0', 'is a link, not a bridge'),
    ('br-other', 'it has no IPv4 address'),
])
def test_the_bridge_must_exist_and_carry_an_address_of_the_network(monkeypatch, tmp_path, daemons, bridge, problem):
    outcome, result = run(monkeypatch, tmp_path, dict(NETWORK, bridge=bridge))
    assert outcome == 'fail'
    assert result['msg'].startswith("parameter 'bridge' (value %r): %s; bridge must be an existing Linux bridge" % (bridge, problem))
    assert files_in(tmp_path) == [] and daemons.calls == []


def test_systemd_asked_for_where_it_does_not_run(monkeypatch, tmp_path, daemons):
    outcome, result = run(monkeypatch, tmp_path, dict(NETWORK, supervisor='systemd'))
    assert outcome == 'fail' and "parameter 'supervisor' (value 'systemd'): systemd is not running on this host" in result['msg']
    assert files_in(tmp_path) == []


def test_absent_stops_and_removes_the_files(monkeypatch, tmp_path, daemons):
    run(monkeypatch, tmp_path, NETWORK)
    outcome, result = run(monkeypatch, tmp_path, {'bridge': 'fcbr0', 'state': 'absent'})
    assert outcome == 'exit' and result['action'] == 'stopped' and result['pid'] is None and result['files'] == {}
    assert daemons.calls == ['start', ('stop', 4001)] and files_in(tmp_path) == []
    outcome, result = run(monkeypatch, tmp_path, {'bridge': 'fcbr0', 'state': 'absent'})
    assert result['changed'] is False


def test_without_pyroute2(monkeypatch, tmp_path):
    monkeypatch.setattr(fc_dnsmasq, 'HAS_PYROUTE2', False)
    outcome, result = run(monkeypatch, tmp_path, NETWORK)
    assert outcome == 'fail' and 'pyroute2' in result['msg']


def test_argument_spec_matches_the_documentation():
    import yaml
    documented = yaml.safe_load(fc_dnsmasq.DOCUMENTATION)['options']
    spec = fc_dnsmasq.argument_spec()

    def compare(docs, spec_options, where):
        assert sorted(docs) == sorted(spec_options), where
        for name, entry in spec_options.items():
            assert docs[name]['type'] == entry['type'], where + name
            assert docs[name].get('default') == entry.get('default'), where + name
            assert bool(docs[name].get('required')) == bool(entry.get('required')), where + name
            if 'options' in entry:
                compare(docs[name]['suboptions'], entry['options'], where + name + '.')

    compare(documented, spec, '')
