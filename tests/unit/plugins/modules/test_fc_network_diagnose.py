# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import socket

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import diagnose_checks, diagnose_host
from ansible_collections.nqrust.microvm.plugins.module_utils.diagnose_checks import DhcpState, HostView, diagnose
from ansible_collections.nqrust.microvm.plugins.module_utils.dnsmasq_config import Paths
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_rules import desired_table
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import Address, Link, PortVlan, PortVlans
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftCli, Ruleset
from ansible_collections.nqrust.microvm.plugins.modules import fc_network_diagnose
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main

NET_ID = 'a0000000-0000-4000-8000-000000000001'
NAT = {'name': 'Tenants', 'registry_id': NET_ID, 'bridge': 'fcbr0', 'mode': 'nat', 'cidr': '10.50.0.0/24',
       'gateway': '10.50.0.1'}
TAP_ROW = {'vm_id': 'vm-1', 'iface_id': 'eth0', 'network_id': NET_ID, 'host_dev_name': 'fctap1'}


def ours(**kw):
    return dict(kw, alias='nqrust.microvm')


def links(**override):
    """uplink eth0 (1), bridge fcbr0 (3, ours, up), TAP fctap1 (4, ours, on fcbr0)."""
    records = {
        'eth0': Link(index=1, name='eth0', up=True, mtu=1500),
        'fcbr0': Link(**ours(index=3, name='fcbr0', kind='bridge', up=True, mtu=1500, vlan_filtering=False)),
        'fctap1': Link(**dict(ours(index=4, name='fctap1', kind='tun', tun_type='tap', master_index=3, up=True))),
    }
    for name, fields in override.items():
        if fields is None:
            records.pop(name, None)
        else:
            base = records[name].to_dict() if name in records else {}
            base.update(fields)
            records[name] = Link(**base)
    return tuple(records.values())


def ruleset(*contents):
    tables, chains, rules = [], [], []
    for content in contents:
        tables.append(content.table)
        chains.extend(content.chains)
        rules.extend(content.rules)
    return Ruleset(tables, chains, rules)


def nat_table(bridge='fcbr0', cidr='10.50.0.0/24', uplinks=('eth0',)):
    return desired_table('nat', bridge, ipaddress.ip_network(cidr), None, uplinks)


def dhcp(bridge='fcbr0', running=True, present=True, supervisor='pidfile', pid=4242, stale=None):
    return DhcpState(config_path='/etc/nqrust-microvm/dnsmasq/%s.conf' % bridge, config_present=present,
                     running=running, supervisor=supervisor, unit_name='nqrust-dnsmasq-%s.service' % bridge,
                     pid=pid if running else None, stale_pid=stale)


def healthy(**kw):
    values = dict(
        links=links(),
        addresses=(Address(index=3, family=socket.AF_INET, address='10.50.0.1', prefixlen=24),),
        ruleset=ruleset(nat_table()),
        forwarding={4: True, 6: False},
        default_uplinks={4: ('eth0',), 6: ()},
        dhcp={'fcbr0': dhcp()},
    )
    values.update(kw)
    return HostView(**values)


def problems(checks):
    return [(item['check'], item['message']) for item in checks if not item['ok']]


# --------------------------------------------------------------------------- pure checks

def test_a_healthy_host_has_no_problems_and_every_check_is_listed():
    checks = diagnose([NAT], [TAP_ROW], healthy())
    assert problems(checks) == []
    assert [item['check'] for item in checks] == ['bridge', 'bridge_up', 'bridge_address', 'uplink', 'dhcp', 'firewall',
                                                  'forwarding', 'tap']
    assert all(item['fix'] is None for item in checks)
    assert checks[0] == {'network': 'Tenants', 'bridge': 'fcbr0', 'check': 'bridge', 'ok': True,
                         'message': 'fcbr0: bridge exists', 'fix': None}
    json.dumps(checks)


def test_bridge_down():
    checks = diagnose([NAT], None, healthy(links=links(fcbr0={'up': False})))
    (problem,) = diagnose_checks.problems_of(checks)
    assert problem == {'network': 'Tenants', 'bridge': 'fcbr0', 'check': 'bridge_up', 'message': 'fcbr0: bridge is down',
                       'fix': 'run playbooks/site.yml (the network role) or `ip link set fcbr0 up`'}


def test_a_missing_bridge_is_one_problem():
    host = healthy(links=links(fcbr0=None, fctap1=None), addresses=(), ruleset=ruleset(),
                   dhcp={'fcbr0': dhcp(running=False, present=False)})
    checks = diagnose([NAT], [TAP_ROW], host)
    assert problems(checks) == [('bridge', 'fcbr0: bridge is missing')]


def test_a_link_of_another_kind_is_not_the_bridge():
    checks = diagnose([NAT], None, healthy(links=links(fcbr0={'kind': 'veth'}, fctap1=None)))
    assert problems(checks) == [('bridge', 'fcbr0: is a veth, not a bridge')]


def test_address_mtu_and_forwarding():
    net = dict(NAT, mtu=9000)
    host = healthy(addresses=(Address(index=3, family=socket.AF_INET, address='10.50.0.9', prefixlen=24),),
                   forwarding={4: False, 6: False})
    found = problems(diagnose([net], None, host))
    assert found == [
        ('bridge_address', 'fcbr0: bridge does not have its address 10.50.0.1/24 (it has 10.50.0.9/24): guests get no '
                           'gateway and no DHCP'),
        ('bridge_mtu', 'fcbr0: MTU is 1500, the network wants 9000'),
        ('forwarding', 'fcbr0: IPv4 forwarding is off (net.ipv4.ip_forward=0), so nat guests cannot reach the outside'),
    ]


@pytest.mark.parametrize('state, message, fix_part', [
    (dhcp(running=False), 'fcbr0: the DHCP server (dnsmasq) is not running, so VMs get no IP address',
     '`dnsmasq --conf-file=/etc/nqrust-microvm/dnsmasq/fcbr0.conf`'),
    (dhcp(running=False, supervisor='systemd'), 'fcbr0: the DHCP server (dnsmasq) is not running, so VMs get no IP address',
     '`systemctl start nqrust-dnsmasq-fcbr0.service`'),
    (dhcp(running=False, stale=77), 'fcbr0: the DHCP server (dnsmasq) is not running (pid 77 of its pid file has '
     'exited), so VMs get no IP address', 'playbooks/site.yml'),
    (dataclasses.replace(dhcp(running=False, stale=77), stale_alive=True), 'fcbr0: the DHCP server (dnsmasq) is not '
     'running (its pid file names pid 77, which is another process), so VMs get no IP address', 'playbooks/site.yml'),
    (dhcp(running=False, present=False), 'fcbr0: the DHCP server (dnsmasq) is not set up '
     '(/etc/nqrust-microvm/dnsmasq/fcbr0.conf is missing), so VMs get no IP address', 'writes the configuration'),
])
def test_dhcp_server(state, message, fix_part):
    (problem,) = diagnose_checks.problems_of(diagnose([NAT], None, healthy(dhcp={'fcbr0': state})))
    assert (problem['check'], problem['message']) == ('dhcp', message)
    assert fix_part in problem['fix']


def test_a_dnsmasq_that_should_not_run():
    net = dict(NAT, dhcp={'enabled': False}, dns={'enabled': False})
    assert problems(diagnose([net], None, healthy())) == [
        ('dhcp', 'fcbr0: a dnsmasq (pid 4242) runs although the network has DHCP and DNS off')]
    assert problems(diagnose([net], None, healthy(dhcp={'fcbr0': dhcp(running=False)}))) == []


def test_firewall_table_missing_different_or_unreadable():
    assert problems(diagnose([NAT], None, healthy(ruleset=ruleset()))) == [
        ('firewall', 'fcbr0: the NAT and forward rules (nft table inet nqrust_microvm_fw_fcbr0) are missing: guests '
                     'cannot reach the outside')]
    other_uplink = healthy(ruleset=ruleset(nat_table(uplinks=('eth9',))))
    assert problems(diagnose([NAT], None, other_uplink)) == [
        ('firewall', 'fcbr0: the rules of nft table inet nqrust_microvm_fw_fcbr0 are not what mode nat needs (uplink eth0)')]
    unreadable = healthy(ruleset=None, nft_error='the nft command is not installed')
    assert problems(diagnose([NAT], None, unreadable)) == [
        ('firewall', 'fcbr0: cannot read the nftables ruleset: the nft command is not installed')]


def test_isolated_network_gets_its_own_table_and_no_forwarding_check():
    net = {'bridge': 'fcbr1', 'mode': 'isolated', 'cidr': '10.60.0.0/24'}
    host = healthy(links=links(fcbr1=ours(index=5, name='fcbr1', kind='bridge', up=True, mtu=1500)),
                   addresses=(Address(index=5, family=socket.AF_INET, address='10.60.0.1', prefixlen=24),),
                   ruleset=ruleset(desired_table('isolated', 'fcbr1', ipaddress.ip_network('10.60.0.0/24'))),
                   dhcp={'fcbr1': dhcp('fcbr1')}, forwarding={4: False})
    checks = diagnose([net], None, host, 'inventory')
    assert [item['check'] for item in checks if item['bridge'] == 'fcbr1'] == [
        'bridge', 'bridge_up', 'bridge_address', 'dhcp', 'firewall']
    # fcbr0 is ours and no network names it: drift
    assert problems(checks) == [('unregistered_bridge', 'fcbr0: bridge exists on this host (made by the collection) but '
                                                        'fc_networks does not list it')]


def test_uplinks_default_route_and_given():
    no_route = healthy(default_uplinks={4: ()})
    assert problems(diagnose([NAT], None, no_route))[0] == (
        'uplink', 'fcbr0: the host has no IPv4 default route, so nat guests have no way out')
    assert problems(diagnose([dict(NAT, uplink='eth7')], None, healthy()))[0] == (
        'uplink', 'fcbr0: uplink eth7 does not exist on this host')
    bridged = {'bridge': 'fcbr0', 'mode': 'bridged', 'uplink': 'eth0', 'cidr': '10.50.0.0/24', 'gateway': '10.50.0.1'}
    found = problems(diagnose([bridged], None, healthy(ruleset=ruleset(), dhcp={})))
    assert found == [('uplink', 'fcbr0: uplink eth0 is not a port of the bridge (bridged mode: guests reach no LAN)')]
    enslaved = healthy(links=links(eth0={'master_index': 3}), ruleset=ruleset(), dhcp={})
    assert problems(diagnose([bridged], None, enslaved)) == []


def test_vlans_on_bridge_and_taps():
    net = dict(NAT, vlan_id=100)
    filtering = links(fcbr0={'vlan_filtering': True})
    bridge_in_vlan = {3: PortVlans(index=3, name='fcbr0', master_index=3, vlans=(PortVlan(100, 100, True, True),))}
    in_vlan = {**bridge_in_vlan,
               4: PortVlans(index=4, name='fctap1', master_index=3, vlans=(PortVlan(100, 100, True, True),))}
    assert problems(diagnose([net], [TAP_ROW], healthy(links=filtering, port_vlans=in_vlan))) == []
    wrong = {**bridge_in_vlan,
             4: PortVlans(index=4, name='fctap1', master_index=3, vlans=(PortVlan(1, 1, True, True),))}
    assert problems(diagnose([net], [TAP_ROW], healthy(links=filtering, port_vlans=wrong))) == [
        ('tap_vlan', 'fctap1 (VM vm-1 eth0): TAP is in VLAN 1, the network is VLAN 100')]
    # the bridge's own port left in VLAN 1: guests in VLAN 100 have no gateway, DHCP or DNS
    bridge_default = {**in_vlan,
                      3: PortVlans(index=3, name='fcbr0', master_index=3, vlans=(PortVlan(1, 1, True, True),))}
    found = diagnose([net], [TAP_ROW], healthy(links=filtering, port_vlans=bridge_default))
    assert problems(found) == [
        ('bridge_vlan', 'fcbr0: its own port is in VLAN 1, so guests in VLAN 100 cannot reach its address '
                        '10.50.0.1/24 (no gateway, DHCP or DNS)')]
    assert problems(diagnose([net], [TAP_ROW], healthy(port_vlans={}))) == [
        ('vlan_filtering', 'fcbr0: VLAN filtering is off, so VLAN 100 is not kept apart'),
        ('tap_vlan', 'fctap1 (VM vm-1 eth0): TAP is in no VLAN, the network is VLAN 100')]
    no_kernel = links(fcbr0={'vlan_filtering': None})
    assert problems(diagnose([net], None, healthy(links=no_kernel)))[0] == (
        'vlan_filtering', 'fcbr0: the kernel has no bridge VLAN filtering, so VLAN 100 cannot be kept apart')


def test_registry_taps_missing_elsewhere_or_down():
    assert problems(diagnose([NAT], [TAP_ROW], healthy(links=links(fctap1=None)))) == [
        ('tap', 'fctap1 (VM vm-1 eth0): TAP is missing, but the registry attaches it to fcbr0')]
    assert problems(diagnose([NAT], [TAP_ROW], healthy(links=links(fctap1={'master_index': None})))) == [
        ('tap', 'fctap1 (VM vm-1 eth0): TAP is on no bridge, not on bridge fcbr0')]
    assert problems(diagnose([NAT], [TAP_ROW], healthy(links=links(fctap1={'up': False})))) == [
        ('tap', 'fctap1 (VM vm-1 eth0): TAP is down')]
    other_network = dict(TAP_ROW, network_id='b0000000-0000-4000-8000-000000000009', host_dev_name='fctap9')
    assert problems(diagnose([NAT], [TAP_ROW, other_network], healthy())) == []


def test_drift_the_other_way():
    host = healthy(links=links(fcbr9=ours(index=9, name='fcbr9', kind='bridge', up=True),
                               fctap2=ours(index=10, name='fctap2', kind='tun', tun_type='tap', master_index=3),
                               docker0={'index': 11, 'name': 'docker0', 'kind': 'bridge', 'up': True},
                               tapx={'index': 12, 'name': 'tapx', 'kind': 'tun', 'tun_type': 'tap'}),
                   ruleset=ruleset(nat_table(), nat_table('fcbr8', '10.80.0.0/24')),
                   dhcp={'fcbr0': dhcp(), 'fcbr7': dhcp('fcbr7', pid=99)})
    found = diagnose_checks.problems_of(diagnose([NAT], [TAP_ROW], host, 'registry'))
    assert [(item['check'], item['message']) for item in found] == [
        ('unregistered_bridge', 'fcbr9: bridge exists on this host (made by the collection) but the registry has no '
                                'network for it'),
        ('unregistered_tap', 'fctap2: TAP exists on this host on bridge fcbr0 but no VM interface of the registry uses it'),
        ('stray_firewall', 'fcbr8: nft table inet nqrust_microvm_fw_fcbr8 is left over: the registry has no network for it'),
        ('stray_dhcp', 'fcbr7: a dnsmasq configuration of the collection (/etc/nqrust-microvm/dnsmasq/fcbr7.conf, running '
                       'as pid 99) is left over: the registry has no network for it'),
    ]
    assert 'playbooks/network_create.yml' in found[0]['fix'] and 'playbooks/network_delete.yml' in found[0]['fix']
    # without interface rows, unknown TAPs are not judged
    assert 'unregistered_tap' not in [item['check'] for item in diagnose([NAT], None, host)]


def test_absent_networks_and_invalid_items():
    gone = dict(NAT, state='absent')
    assert problems(diagnose([gone], None, healthy())) == [
        ('absent', 'fcbr0: should be gone (state absent) but still exists'),
        ('stray_firewall', 'fcbr0: nft table inet nqrust_microvm_fw_fcbr0 is left over: the registry has no network for it')]
    found = problems(diagnose([dict(NAT, vlan_id=5000)], None, healthy()))
    assert found[0][0] == 'network_spec' and "fc_networks[0].vlan_id" in found[0][1]


def test_the_default_network_when_nothing_is_given():
    host = healthy(links=links(fctap1=None), addresses=(Address(3, socket.AF_INET, '192.168.18.240', 24),),
                   ruleset=ruleset(nat_table(cidr='192.168.18.0/24')))
    assert problems(diagnose(None, None, host)) == []
    assert problems(diagnose([], None, host))[0][0] == 'unregistered_bridge'


# --------------------------------------------------------------------------- reading the host

def fake_proc(root, processes):
    root.mkdir()
    for pid, argv in processes.items():
        directory = root / str(pid)
        directory.mkdir()
        (directory / 'cmdline').write_bytes(b'\0'.join(part.encode() for part in argv) + b'\0')
        (directory / 'stat').write_text('%d (dnsmasq) S 1 1 1' % pid)
    return str(root)


def test_read_dhcp_finds_the_daemon_by_pid_file_and_a_stale_one(tmp_path):
    dirs = dict((key, str(tmp_path / key)) for key in ('config_dir', 'state_dir', 'run_dir', 'unit_dir'))
    for key in ('config_dir', 'run_dir'):
        os.makedirs(dirs[key])
    paths = Paths.of('fcbr0', **dirs)
    (tmp_path / 'config_dir' / 'fcbr0.conf').write_text('interface=fcbr0\n')
    (tmp_path / 'config_dir' / 'fcbr7.conf').write_text('interface=fcbr7\n')
    (tmp_path / 'run_dir' / 'fcbr0.pid').write_text('300\n')
    proc = fake_proc(tmp_path / 'proc', {300: ['/usr/sbin/dnsmasq', '--conf-file=%s' % paths.config]})
    state = diagnose_host.read_dhcp('fcbr0', dirs, 'pidfile', proc=proc)
    assert (state.config_present, state.running, state.pid, state.stale_pid) == (True, True, 300, None)
    assert diagnose_host.config_bridges(dirs['config_dir']) == ['fcbr0', 'fcbr7']
    (tmp_path / 'run_dir' / 'fcbr0.pid').write_text('301\n')
    state = diagnose_host.read_dhcp('fcbr0', dirs, 'pidfile', proc=proc)   # found by its command line
    assert (state.running, state.pid, state.stale_pid, state.stale_alive) == (True, 300, 301, False)
    empty = fake_proc(tmp_path / 'proc2', {})
    state = diagnose_host.read_dhcp('fcbr7', dirs, 'pidfile', proc=empty)
    assert (state.config_present, state.running, state.pid) == (True, False, None)


def test_read_dhcp_asks_systemd(tmp_path):
    dirs = dict((key, str(tmp_path / key)) for key in ('config_dir', 'state_dir', 'run_dir', 'unit_dir'))
    calls = []

    def run_command(argv):
        calls.append(argv)
        return 0, 'LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=812\nUnitFileState=enabled\n', ''

    empty = fake_proc(tmp_path / 'proc', {})
    state = diagnose_host.read_dhcp('fcbr0', dirs, 'systemd', run_command=run_command, proc=empty)
    assert (state.running, state.pid, state.supervisor) == (True, 812, 'systemd')
    assert calls[0][:3] == ['systemctl', 'show', 'nqrust-dnsmasq-fcbr0.service']

    def broken(argv):  # pylint: disable=unused-argument
        return 1, '', 'Failed to connect to bus'

    state = diagnose_host.read_dhcp('fcbr0', dirs, 'systemd', run_command=broken, proc=empty)
    assert 'Failed to connect to bus' in state.error
    (problem,) = diagnose_checks.problems_of(diagnose([NAT], None, healthy(dhcp={'fcbr0': state})))
    assert problem['message'].startswith('fcbr0: cannot tell whether the DHCP server (dnsmasq) runs: systemctl show')


# --------------------------------------------------------------------------- the module

class FakeSession(object):
    """The NetlinkSession surface read_host uses; counts the dumps."""

    def __init__(self, host):
        self.host = host
        self.dumps = {'links': 0, 'addresses': 0, 'routes': 0, 'port_vlans': 0}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def links(self):
        self.dumps['links'] += 1
        return self.host.links

    def addresses(self):
        self.dumps['addresses'] += 1
        return self.host.addresses

    def routes(self):
        self.dumps['routes'] += 1
        return ()

    def port_vlans(self):
        self.dumps['port_vlans'] += 1
        return ()


class FakeProcSys(object):
    """IPv4 forwarding on, IPv6 off."""

    def enabled(self, name):
        return name == 'net.ipv4.ip_forward'


@pytest.fixture(name='patched')
def patched_fixture(monkeypatch, tmp_path):
    host = healthy()
    session = FakeSession(host)
    nft_calls = []

    def runner(argv, stdin_text):
        nft_calls.append(argv)
        assert stdin_text is None, 'the module only reads nftables'
        table = nat_table()
        data = {'nftables': [{'table': table.table.to_json()}] + [{'chain': chain.to_json()} for chain in table.chains]
                + [{'rule': rule.to_json()} for rule in table.rules]}
        return 0, json.dumps(data), ''

    monkeypatch.setattr(fc_network_diagnose, 'NetlinkSession', lambda: session)
    monkeypatch.setattr(fc_network_diagnose, 'NftCli', lambda path: NftCli(path, runner=runner))
    monkeypatch.setattr(fc_network_diagnose.AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: '/usr/sbin/nft')
    monkeypatch.setattr(diagnose_host, 'ProcSys', FakeProcSys)
    dirs = dict((key, str(tmp_path / key)) for key in ('config_dir', 'state_dir', 'run_dir', 'unit_dir'))
    return {'session': session, 'nft': nft_calls, 'dirs': dirs}


def test_module_reads_once_and_reports_against_the_registry(monkeypatch, patched):
    rows = [{'id': NET_ID, 'name': 'Tenants', 'bridge_name': 'fcbr0', 'mode': 'nat', 'cidr': '10.50.0.0/24',
             'gateway': '10.50.0.1', 'type': 'bridge', 'vlan_id': None, 'host_id': 'h', 'uplink': 'eth0', 'mtu': None,
             'dhcp': None, 'dns': None, 'interfaces': [dict(TAP_ROW, id='i1', guest_mac='aa:fc:00:00:00:01')]}]
    args = dict(patched['dirs'], registry_networks=rows, supervisor='pidfile', _check_mode=True)
    how, result = call_main(monkeypatch, fc_network_diagnose.main, args)
    assert how == 'exit', result
    assert result['changed'] is False and result['source'] == 'registry'
    # the dnsmasq config file is not in the temp dir: that is the one problem
    assert [(item['check'], item['bridge']) for item in result['problems']] == [('dhcp', 'fcbr0')]
    assert result['ok'] is False
    assert result['summary'] == '8 checks, 1 problem'
    assert [item['check'] for item in result['checks']][-1] == 'tap'
    assert patched['session'].dumps == {'links': 1, 'addresses': 1, 'routes': 0, 'port_vlans': 0}
    assert patched['nft'] == [['/usr/sbin/nft', '-j', 'list', 'ruleset']]


def test_module_with_fc_networks_and_no_problems(monkeypatch, patched):
    os.makedirs(patched['dirs']['config_dir'])
    with open(os.path.join(patched['dirs']['config_dir'], 'fcbr0.conf'), 'w', encoding='utf-8') as handle:
        handle.write('interface=fcbr0\n')
    monkeypatch.setattr(diagnose_host.dnsmasq_service, 'find_daemon',
                        lambda paths, proc: diagnose_host.dnsmasq_service.Daemon(pid=55, pidfile_pid=55))
    monkeypatch.setattr(diagnose_host, 'default_route_interfaces', lambda routes, by_index: {4: ('eth0',), 6: ()})
    args = dict(patched['dirs'], networks=[NAT], supervisor='pidfile')
    how, result = call_main(monkeypatch, fc_network_diagnose.main, args)
    assert how == 'exit', result
    assert result['ok'] is True and result['problems'] == [], result['problems']
    assert result['source'] == 'registry'   # the network carries a registry id
    assert patched['session'].dumps['routes'] == 1   # no uplink given: the default route's interface


def test_module_refuses_both_sources(monkeypatch, patched):
    how, result = call_main(monkeypatch, fc_network_diagnose.main, dict(networks=[NAT], registry_networks=[]))
    assert how == 'fail' and 'mutually exclusive' in result['msg']
    assert patched['session'].dumps['links'] == 0
