# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_config
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator

BASE = {'bridge': 'fcbr0', 'cidr': '192.168.18.0/24', 'gateway': '192.168.18.240'}
LEASE = {'mac': 'AA:FC:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}


def spec_of(**params):
    v = Validator()
    merged = dict(BASE)
    merged.update(params)
    spec = dnsmasq_config.spec_from_params(v, merged)
    return spec, v.messages


def good(**params):
    spec, errors = spec_of(**params)
    assert errors == []
    return spec


def lines(text):
    return [line for line in text.splitlines() if not line.startswith('#')]


# --------------------------------------------------------------------------- defaults

def test_the_default_network_follows_the_seed():
    spec = good(dhcp={'static_leases': [LEASE]}, dns={'domain': 'fc.internal'})
    assert spec.active and spec.dhcp_enabled and spec.dns_enabled and spec.router
    settings = spec.settings()
    assert settings['dhcp']['ranges'] == [{'start': '192.168.18.128', 'end': '192.168.18.239'},
                                          {'start': '192.168.18.241', 'end': '192.168.18.254'}]
    assert settings['dhcp']['static_range'] == {'start': '192.168.18.1', 'end': '192.168.18.127'}
    assert settings['dhcp']['lease_time'] == '1h' and settings['dhcp']['lease_seconds'] == 3600
    assert settings['dhcp']['static_leases'] == [{'mac': 'aa:fc:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}]
    assert settings['dhcp']['router'] == '192.168.18.240'
    assert settings['dns'] == {'enabled': True, 'upstream': None, 'domain': 'fc.internal'}
    assert spec.paths.config == '/etc/nqrust-microvm/dnsmasq/fcbr0.conf'
    assert spec.paths.leases == '/var/lib/nqrust-microvm/dnsmasq/fcbr0.leases'
    assert spec.paths.pidfile == '/run/nqrust-microvm/dnsmasq/fcbr0.pid'
    assert spec.paths.unit == '/etc/systemd/system/nqrust-dnsmasq-fcbr0.service'


def test_cidr_given_as_the_gateway_with_its_prefix():
    spec = good(cidr='10.99.0.1/24', gateway=None)
    assert str(spec.network) == '10.99.0.0/24' and str(spec.gateway) == '10.99.0.1'
    assert good(cidr='10.99.0.1/24', gateway='10.99.0.1').gateway == spec.gateway


def test_isolated_mode_gives_no_router_and_no_upstream():
    spec = good(mode='isolated')
    assert spec.router is False and spec.upstream == ()
    config = lines(dnsmasq_config.render_config(spec))
    assert 'dhcp-option=option:router' in config and 'no-resolv' in config
    assert not any(line.startswith('server=') for line in config)
    # and the user may still ask for either
    spec = good(mode='isolated', dhcp={'router': True}, dns={'upstream': ['192.0.2.53']})
    assert spec.router is True and spec.upstream == ('192.0.2.53',)


@pytest.mark.parametrize('mode', ['bridged', 'open'])
def test_bridged_and_open_modes_run_no_dnsmasq_by_default(mode):
    spec, errors = spec_of(mode=mode, cidr=None, gateway=None)
    assert errors == [] and not spec.active
    assert spec.settings()['state'] == 'absent'
    assert good(mode=mode, dhcp={'enabled': True}).active


def test_absent_needs_only_the_bridge():
    spec, errors = spec_of(state='absent', cidr='nonsense', gateway='nonsense', bridge='fcbr1')
    assert errors == [] and not spec.active and spec.paths.config.endswith('/fcbr1.conf')


def test_explicit_range_and_several_ranges_and_static_only():
    spec = good(dhcp={'range_start': '192.168.18.100', 'range_end': '192.168.18.199'})
    assert spec.settings()['dhcp']['ranges'] == [{'start': '192.168.18.100', 'end': '192.168.18.199'}]
    assert spec.settings()['dhcp']['static_range'] is None
    spec = good(dhcp={'ranges': [{'start': '192.168.18.200', 'end': '192.168.18.210'},
                                 {'start': '192.168.18.100', 'end': '192.168.18.110'}]})
    assert [pool['start'] for pool in spec.settings()['dhcp']['ranges']] == ['192.168.18.100', '192.168.18.200']
    spec = good(dhcp={'ranges': [], 'static_leases': [dict(LEASE, ip='192.168.18.200')]})
    assert 'dhcp-range=192.168.18.0,static,255.255.255.0,3600' in lines(dnsmasq_config.render_config(spec))


def test_a_domain_qualified_static_hostname_is_reduced_to_its_label():
    spec = good(dhcp={'static_leases': [dict(LEASE, hostname='DB1.fc.internal')]}, dns={'domain': 'fc.internal'})
    assert spec.static_leases[0].hostname == 'db1'


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize('params, param, problem', [
    ({'bridge': 'a/b'}, 'bridge', "contains '/'"),
    ({'bridge': 'a-very-long-bridge-name'}, 'bridge', 'is 23 bytes long'),
    ({'cidr': None}, 'cidr', 'missing'),
    ({'cidr': '192.168.18.0/33'}, 'cidr', 'CIDR must be'),
    ({'cidr': 'fd00::/64', 'gateway': None}, 'cidr', 'is an IPv6 network'),
    ({'gateway': None}, 'gateway', 'missing'),
    ({'gateway': '10.0.0.1'}, 'gateway', 'is outside 192.168.18.0/24'),
    ({'cidr': '192.168.18.1/24', 'gateway': '192.168.18.2'}, 'gateway', 'cidr says 192.168.18.1'),
    ({'dhcp': {'range_start': '192.168.19.1', 'range_end': '192.168.19.9'}}, 'dhcp.range_start/range_end', 'start is outside'),
    ({'dhcp': {'range_start': '192.168.18.230', 'range_end': '192.168.18.250'}}, 'dhcp.range_start/range_end',
     'contains the gateway 192.168.18.240'),
    ({'dhcp': {'range_start': '192.168.18.230'}}, 'dhcp.range_end', 'missing'),
    ({'dhcp': {'range_start': '192.168.18.2', 'range_end': '192.168.18.9', 'ranges': []}}, 'dhcp.ranges', 'not both'),
    ({'dhcp': {'ranges': [{'start': '192.168.18.10', 'end': '192.168.18.20'}, {'start': '192.168.18.15', 'end': '192.168.18.30'}]}},
     'dhcp.ranges', 'overlap'),
    ({'dhcp': {'lease_time': '30s'}}, 'dhcp.lease_time', "shorter than 2 minutes"),
    ({'dhcp': {'lease_time': 'soon'}}, 'dhcp.lease_time', 'lease time must be'),
    ({'dhcp': {'static_leases': [dict(LEASE, ip='10.1.1.1')]}}, 'dhcp.static_leases[0].ip', 'is outside 192.168.18.0/24'),
    ({'dhcp': {'static_leases': [dict(LEASE, ip='192.168.18.130')]}}, 'dhcp.static_leases[0].ip',
     'is inside the dynamic range 192.168.18.128-192.168.18.239'),
    ({'dhcp': {'static_leases': [dict(LEASE, ip='192.168.18.240')]}}, 'dhcp.static_leases[0].ip', 'is the gateway'),
    ({'dhcp': {'static_leases': [dict(LEASE, mac='01:00:5e:00:00:01')]}}, 'dhcp.static_leases[0].mac', 'multicast bit set'),
    ({'dhcp': {'static_leases': [dict(LEASE, mac='aa:fc:00')]}}, 'dhcp.static_leases[0].mac', 'not 6 colon-separated'),
    ({'dhcp': {'static_leases': [LEASE, dict(LEASE, ip='192.168.18.6', hostname='db2')]}}, 'dhcp.static_leases[1].mac',
     'already used by dhcp.static_leases[0]'),
    ({'dhcp': {'static_leases': [LEASE, dict(LEASE, mac='aa:fc:00:00:00:06', hostname='db2')]}}, 'dhcp.static_leases[1].ip',
     'already used by dhcp.static_leases[0]'),
    ({'dhcp': {'static_leases': [LEASE, dict(LEASE, mac='aa:fc:00:00:00:06', ip='192.168.18.6')]}},
     'dhcp.static_leases[1].hostname', 'already used by dhcp.static_leases[0]'),
    ({'dhcp': {'static_leases': [dict(LEASE, hostname='db_1')]}}, 'dhcp.static_leases[0].hostname', "label 'db_1'"),
    ({'dhcp': {'static_leases': [dict(LEASE, hostname='db1.other.example')]}}, 'dhcp.static_leases[0].hostname', 'has dots'),
    ({'dhcp': {'dns_servers': ['fd00::53']}}, 'dhcp.dns_servers[0]', 'is an IPv6 address'),
    ({'dns': {'upstream': ['8.8.8.8/32']}}, 'dns.upstream[0]', 'has a prefix length'),
    ({'dns': {'domain': 'bad domain'}}, 'dns.domain', "label 'bad domain'"),
    ({'config_dir': 'relative/dir'}, 'config_dir', 'absolute path'),
])
def test_bad_input_names_parameter_value_and_what_is_allowed(params, param, problem):
    spec, errors = spec_of(**params)
    assert errors, 'accepted %r' % (params,)
    matching = [message for message in errors if message.startswith("parameter '%s' (value " % param)]
    assert matching, errors
    assert problem in matching[0], matching[0]
    assert ':' in matching[0]  # value, then what is allowed


def test_all_problems_are_reported_at_once():
    spec, errors = spec_of(gateway='10.0.0.1', dhcp={'lease_time': '1s', 'static_leases': [dict(LEASE, mac='ff:ff:ff:ff:ff:ff')]})
    assert len(errors) == 3


# --------------------------------------------------------------------------- rendering

def test_config_binds_the_bridge_only_and_reads_only_its_own_files():
    spec = good(name='fcbr0 Network', dhcp={'static_leases': [LEASE], 'lease_time': '12h', 'ping_check': False},
                dns={'domain': 'fc.internal', 'upstream': ['192.0.2.53', '2001:db8::53']})
    config = dnsmasq_config.render_config(spec)
    assert config.startswith('# Managed by nqrust.microvm (fc_dnsmasq): DHCP and DNS of network fcbr0 Network on bridge fcbr0.\n')
    assert lines(config) == [
        'interface=fcbr0',
        'except-interface=lo',
        'bind-dynamic',
        'pid-file=/run/nqrust-microvm/dnsmasq/fcbr0.pid',
        'no-hosts',
        'addn-hosts=/etc/nqrust-microvm/dnsmasq/fcbr0.hosts',
        'domain-needed',
        'bogus-priv',
        'no-resolv',
        'strict-order',
        'server=192.0.2.53',
        'server=2001:db8::53',
        'local=/fc.internal/',
        'domain=fc.internal',
        'dhcp-range=192.168.18.128,192.168.18.239,255.255.255.0,43200',
        'dhcp-range=192.168.18.241,192.168.18.254,255.255.255.0,43200',
        'dhcp-lease-max=254',
        'dhcp-leasefile=/var/lib/nqrust-microvm/dnsmasq/fcbr0.leases',
        'dhcp-hostsfile=/etc/nqrust-microvm/dnsmasq/fcbr0.dhcp-hosts',
        'dhcp-authoritative',
        'no-ping',
        'dhcp-option=option:router,192.168.18.240',
    ]


def test_static_leases_and_names_live_in_the_files_dnsmasq_rereads_on_sighup():
    spec = good(dhcp={'static_leases': [dict(LEASE, ip='192.168.18.9', mac='aa:fc:00:00:00:09', hostname='web'), LEASE,
                                        {'mac': 'aa:fc:00:00:00:07', 'ip': '192.168.18.7'}]},
                dns={'domain': 'fc.internal'})
    assert lines(dnsmasq_config.render_dhcp_hosts(spec)) == [
        'aa:fc:00:00:00:05,192.168.18.5,db1', 'aa:fc:00:00:00:07,192.168.18.7', 'aa:fc:00:00:00:09,192.168.18.9,web']
    assert lines(dnsmasq_config.render_addn_hosts(spec)) == [
        '192.168.18.5 db1.fc.internal db1', '192.168.18.9 web.fc.internal web']
    # adding or removing a lease changes only those two files, never the main configuration (no restart)
    more = good(dhcp={'static_leases': [LEASE, {'mac': 'aa:fc:00:00:00:07', 'ip': '192.168.18.7', 'hostname': 'x'}]},
                dns={'domain': 'fc.internal'})
    base = good(dhcp={'static_leases': [LEASE]}, dns={'domain': 'fc.internal'})
    none = good(dns={'domain': 'fc.internal'})
    assert dnsmasq_config.render_config(more) == dnsmasq_config.render_config(base) == dnsmasq_config.render_config(none)
    assert dnsmasq_config.render_dhcp_hosts(more) != dnsmasq_config.render_dhcp_hosts(base)
    assert dnsmasq_config.render_addn_hosts(more) != dnsmasq_config.render_addn_hosts(base)


def test_dns_off_and_dhcp_off():
    config = lines(dnsmasq_config.render_config(good(dns={'enabled': False})))
    assert 'port=0' in config and not any(line.startswith('addn-hosts') for line in config)
    assert any(line.startswith('dhcp-range=') for line in config)
    config = lines(dnsmasq_config.render_config(good(dhcp={'enabled': False}, dns={'enabled': True})))
    assert not any(line.startswith('dhcp-') for line in config) and 'port=0' not in config


def test_dns_servers_option():
    config = lines(dnsmasq_config.render_config(good(dhcp={'dns_servers': ['192.0.2.53', '192.0.2.54']})))
    assert 'dhcp-option=option:dns-server,192.0.2.53,192.0.2.54' in config
    config = lines(dnsmasq_config.render_config(good(dhcp={'dns_servers': []})))
    assert 'dhcp-option=option:dns-server' in config


def test_unit_names_escape_what_systemd_does_not_allow():
    assert dnsmasq_config.unit_name_of('fcbr0') == 'nqrust-dnsmasq-fcbr0.service'
    assert dnsmasq_config.unit_name_of('br@x') == 'nqrust-dnsmasq-br\\x40x.service'


def test_parse_leases():
    text = ('1795305552 02:8d:48:38:4d:09 10.5.0.149 vm1 01:02:8d:48:38:4d:09\n'
            '0 AA:FC:00:00:00:05 10.5.0.5 * *\n'
            'duid 00:01:00:01\n')
    assert dnsmasq_config.parse_leases(text) == [
        {'expires': 1795305552, 'mac': '02:8d:48:38:4d:09', 'ip': '10.5.0.149', 'hostname': 'vm1', 'client_id': '01:02:8d:48:38:4d:09'},
        {'expires': 0, 'mac': 'aa:fc:00:00:00:05', 'ip': '10.5.0.5', 'hostname': None, 'client_id': None},
    ]
    assert dnsmasq_config.parse_leases(None) == []


# --------------------------------------------------------------------------- the rendered files, checked by their programs

def _dnsmasq():
    return shutil.which('dnsmasq') or next((p for p in ('/usr/sbin/dnsmasq', '/sbin/dnsmasq') if os.path.exists(p)), None)


@pytest.mark.skipif(_dnsmasq() is None, reason='dnsmasq is not installed')
def test_dnsmasq_accepts_the_rendered_configuration(tmp_path):
    spec = good(config_dir=str(tmp_path), state_dir=str(tmp_path), run_dir=str(tmp_path),
                dhcp={'static_leases': [LEASE], 'ping_check': False, 'dns_servers': []},
                dns={'domain': 'fc.internal', 'upstream': ['192.0.2.53']})
    for path, content in dnsmasq_config.desired_files(spec).items():
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(content)
    done = subprocess.run([_dnsmasq(), '--test', '--conf-file=%s' % spec.paths.config], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed')
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    spec = good(name='50% of fcbr0', unit_dir=str(tmp_path))
    dnsmasq = _dnsmasq() or '/usr/sbin/dnsmasq'
    kill = shutil.which('kill') or '/bin/kill'
    files = dnsmasq_config.desired_files(spec, dnsmasq, kill, with_unit=True)
    unit = files[spec.paths.unit]
    assert 'ExecStart=%s --conf-file=/etc/nqrust-microvm/dnsmasq/fcbr0.conf' % dnsmasq in unit
    assert 'Description=nqrust.microvm DHCP and DNS (dnsmasq) for 50%% of fcbr0 on fcbr0' in unit
    with open(spec.paths.unit, 'w', encoding='utf-8') as handle:
        handle.write(unit)
    done = subprocess.run(['systemd-analyze', 'verify', '--man=no', spec.paths.unit], capture_output=True, text=True, check=False)
    # verify exits 0 on mere warnings: any output is a problem with the unit
    assert done.returncode == 0 and done.stderr.strip() == '' and done.stdout.strip() == '', done.stderr + done.stdout
