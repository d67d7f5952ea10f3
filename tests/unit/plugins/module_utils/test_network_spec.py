"""network_spec: fc_networks checked as a whole, defaults resolved."""

from __future__ import annotations

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.network_spec import resolve


def test_no_networks_given_means_the_seeds_default_nat_network():
    networks, validator = resolve(None)
    assert validator.ok
    (net,) = networks
    assert (net['bridge'], net['mode'], net['cidr'], net['address']) == (
        'fcbr0', 'nat', '192.168.18.0/24', '192.168.18.240/24')
    assert net['dhcp']['enabled'] and net['dhcp']['router'] and net['dns']['enabled']
    assert net['dhcp']['lease_time'] == '1h' and net['firewall'] is True


def test_an_empty_list_means_no_networks():
    networks, validator = resolve([])
    assert networks == [] and validator.ok


@pytest.mark.parametrize('mode, dhcp, router, upstream, firewall', [
    ('nat', True, True, None, True),
    ('routed', True, True, None, True),
    ('isolated', True, False, [], True),
    ('bridged', False, True, None, True),
    ('open', False, True, None, False),
])
def test_mode_defaults(mode, dhcp, router, upstream, firewall):
    item = {'bridge': 'fcbr1', 'mode': mode, 'cidr': '10.1.0.0/24'}
    if mode == 'bridged':
        item['uplink'] = 'eth0'
    (net,), validator = resolve([item])
    assert validator.ok, validator.messages
    assert net['gateway'] == '10.1.0.1' and net['address'] == '10.1.0.1/24'
    assert (net['dhcp']['enabled'], net['dhcp']['router'], net['dns']['upstream'], net['firewall']) == (
        dhcp, router, upstream, firewall)


def test_registry_shape_with_every_key_null_is_accepted():
    item = {'name': 'x', 'description': None, 'registry_id': 'b1ed8ab4-cf82-4401-8393-6638cf978dd5', 'type': 'bridge',
            'bridge': 'fcbr0', 'mode': 'nat', 'cidr': '192.168.18.0/24', 'gateway': '192.168.18.240', 'uplink': None,
            'mtu': None, 'vlan_id': None, 'state': 'present',
            'dhcp': {'enabled': None, 'range_start': None, 'range_end': None, 'lease_time': None, 'static_leases': []},
            'dns': {'enabled': None, 'upstream': None, 'domain': None}}
    (net,), validator = resolve([item])
    assert validator.ok, validator.messages
    assert net['registry_id'] == item['registry_id'] and net['dhcp']['enabled'] is True


def test_every_problem_is_reported_at_once_with_its_position():
    networks, validator = resolve([
        {'bridge': 'fcbr1', 'cidr': '10.9.0.0/24'},
        {'bridge': 'fcbr2', 'mode': 'bogus', 'vlan_id': 4095, 'extra': 1},
        {'bridge': 'fcbr3', 'mode': 'bridged'},
        {'bridge': 'fcbr4', 'cidr': '10.9.0.0/16'},
        {'bridge': 'fcbr4', 'cidr': '10.10.0.0/24'},
        {'bridge': 'a-bridge-name-too-long'},
        'not a dict',
        {'bridge': 'fcbr7', 'cidr': '10.20.0.0/24', 'dhcp': {'range_start': '10.20.0.1', 'range_end': '10.20.0.50'}},
    ])
    text = '\n'.join(validator.messages)
    for expected in ("fc_networks[7].dhcp.range_start/range_end' (value '10.20.0.1-10.20.0.50'): contains the gateway",
                     "fc_networks[1].extra' (value 1): unknown key",
                     "fc_networks[1].vlan_id' (value 4095)",
                     "fc_networks[1].mode' (value 'bogus')",
                     "fc_networks[2].uplink'",
                     "fc_networks[3].cidr' (value '10.9.0.0/16'): overlaps fc_networks[0].cidr",
                     "fc_networks[4].bridge' (value 'fcbr4'): fc_networks[3] uses it too",
                     "fc_networks[5].bridge' (value 'a-bridge-name-too-long')",
                     "fc_networks[6]' (value 'not a dict')"):
        assert expected in text, (expected, text)


def test_absent_networks_do_not_count_for_overlaps():
    _networks, validator = resolve([{'bridge': 'fcbr1', 'cidr': '10.9.0.0/24'},
                                    {'bridge': 'fcbr2', 'cidr': '10.9.0.0/24', 'state': 'absent'}])
    assert validator.ok, validator.messages


@pytest.mark.parametrize('mode', ['nat', 'routed'])
def test_routing_modes_need_a_cidr(mode):
    _networks, validator = resolve([{'bridge': 'fcbr1', 'mode': mode}])
    assert validator.messages == [
        "parameter 'fc_networks[0].cidr' (value None): missing; a %s network needs its cidr "
        "(the addresses its guests route from)" % mode]


def test_a_vlan_network_keeps_its_vlan_and_a_bridged_one_may_not_have_one():
    networks, validator = resolve([{'bridge': 'fcbr0', 'cidr': '10.80.0.0/24', 'vlan_id': 10},
                                   {'bridge': 'fcbr1', 'mode': 'isolated', 'vlan_id': 20}])
    assert validator.ok, validator.messages
    assert [net['vlan_id'] for net in networks] == [10, 20]
    _networks, validator = resolve([{'bridge': 'fcbr2', 'mode': 'bridged', 'uplink': 'eth1', 'vlan_id': 30}])
    assert len(validator.messages) == 1
    assert validator.messages[0].startswith(
        "parameter 'fc_networks[0].vlan_id' (value 30): mode bridged; no VLAN on a bridged network")
    # a bridged network being removed may still carry the VLAN it was made with
    _networks, validator = resolve([{'bridge': 'fcbr2', 'mode': 'bridged', 'uplink': 'eth1', 'vlan_id': 30,
                                     'state': 'absent'}])
    assert validator.ok, validator.messages
