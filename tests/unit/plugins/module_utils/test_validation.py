# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import validation as v
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError, Validator, ValidationErrors


def assert_names_all(exc, param, value_text, allowed_fragment):
    """The message names the parameter, the value and what is allowed."""
    message = str(exc)
    assert "parameter '%s'" % param in message
    assert '(value %s)' % value_text in message
    assert allowed_fragment in message
    assert exc.param == param


# --------------------------------------------------------------------------- error and collector

def test_error_message_format_matches_the_contract():
    exc = ValidationError('vlan', 4095, 'VLAN id must be an integer from 1 to 4094')
    assert str(exc) == "parameter 'vlan' (value 4095): VLAN id must be an integer from 1 to 4094"
    assert (exc.param, exc.value, exc.allowed, exc.problem) == ('vlan', 4095, 'VLAN id must be an integer from 1 to 4094', None)


def test_error_message_with_problem():
    exc = ValidationError('name', 'a/b', 'interface name must be ...', "contains '/'")
    assert str(exc) == "parameter 'name' (value 'a/b'): contains '/'; interface name must be ..."


def test_long_values_are_shortened():
    exc = ValidationError('x', 'y' * 500, 'short')
    assert len(str(exc)) < 200
    assert '...' in str(exc)


def test_validator_collects_every_error_and_returns_values():
    col = Validator()
    assert col.check(v.vlan_id, 'vlan', '10') == 10
    assert col.check(v.vlan_id, 'vlan2', 0) is None
    assert col.check(v.interface_name, 'name', 'bad name') is None
    assert col.check(v.mac_address, 'mac', 'AA:FC:00:00:00:01') == 'aa:fc:00:00:00:01'
    assert not col.ok
    assert len(col.messages) == 2
    assert "parameter 'vlan2' (value 0)" in col.messages[0]
    assert "parameter 'name' (value 'bad name')" in col.messages[1]
    with pytest.raises(ValidationErrors) as info:
        col.raise_if_any()
    assert str(info.value).startswith('2 invalid parameters: ')
    assert info.value.messages == col.messages


def test_validator_without_errors_does_not_raise():
    col = Validator()
    col.check(v.vlan_id, 'vlan', 1)
    col.raise_if_any()
    assert col.ok and col.messages == []


def test_validator_add_and_single_message():
    col = Validator()
    col.add('mode', 'nat', 'mode must be routed when uplink is set', 'uplink given')
    with pytest.raises(ValidationErrors) as info:
        col.raise_if_any()
    assert str(info.value) == "parameter 'mode' (value 'nat'): uplink given; mode must be routed when uplink is set"


class FakeModule(object):
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


def test_validator_fail_module_reports_all_messages():
    col = Validator()
    col.check(v.vlan_id, 'a', 5000)
    col.check(v.vlan_id, 'b', -1)
    module = FakeModule()
    with pytest.raises(SystemExit):
        col.fail_module(module)
    assert "parameter 'a' (value 5000)" in module.failed['msg']
    assert "parameter 'b' (value -1)" in module.failed['msg']
    assert len(module.failed['validation_errors']) == 2


def test_validator_fail_module_does_nothing_when_ok():
    module = FakeModule()
    Validator().fail_module(module)
    assert module.failed is None


# --------------------------------------------------------------------------- interface names

@pytest.mark.parametrize('name', ['eth0', 'fcbr0', 'tap-1a2b3c4d5e6', 'a', 'x' * 15, 'br.100', 'vm_nic-1', '\u00e9' * 7])
def test_interface_name_good(name):
    assert v.interface_name('name', name) == name


@pytest.mark.parametrize('name, shown, problem', [
    ('', "''", 'empty'),
    ('x' * 16, repr('x' * 16), 'is 16 bytes long'),
    ('\u00e9' * 8, repr('\u00e9' * 8), 'is 16 bytes long'),
    ('.', "'.'", 'reserved'),
    ('..', "'..'", 'reserved'),
    ('a/b', "'a/b'", "contains '/'"),
    ('eth0:1', "'eth0:1'", "contains ':'"),
    ('a b', "'a b'", 'whitespace'),
    ('a\tb', repr('a\tb'), 'whitespace'),
    ('a\nb', repr('a\nb'), 'whitespace'),
    ('a\0b', repr('a\0b'), 'contains'),
    (7, '7', 'not a string'),
    (None, 'None', 'not a string'),
])
def test_interface_name_bad(name, shown, problem):
    with pytest.raises(ValidationError) as info:
        v.interface_name('bridge', name)
    assert_names_all(info.value, 'bridge', shown, 'interface name must be 1 to 15 bytes')
    assert problem in str(info.value)


# --------------------------------------------------------------------------- VLAN ids

@pytest.mark.parametrize('value, expected', [(1, 1), (4094, 4094), (100, 100), ('100', 100), (' 42 ', 42), ('4094', 4094)])
def test_vlan_id_good(value, expected):
    assert v.vlan_id('vlan', value) == expected


@pytest.mark.parametrize('value, shown', [
    (0, '0'), (4095, '4095'), (-1, '-1'), ('0', "'0'"), ('4095', "'4095'"), ('-5', "'-5'"),
    (True, 'True'), (False, 'False'), (10.0, '10.0'), (1.5, '1.5'), ('ten', "'ten'"), ('10.0', "'10.0'"),
    ('', "''"), (None, 'None'), ([10], '[10]'), ('0x10', "'0x10'"),
])
def test_vlan_id_bad(value, shown):
    with pytest.raises(ValidationError) as info:
        v.vlan_id('vlan', value)
    assert_names_all(info.value, 'vlan', shown, 'VLAN id must be an integer from 1 to 4094')


def test_vlan_id_message_exactly():
    with pytest.raises(ValidationError) as info:
        v.vlan_id('vlan', 4095)
    assert str(info.value) == "parameter 'vlan' (value 4095): VLAN id must be an integer from 1 to 4094"


# --------------------------------------------------------------------------- VLAN ranges

@pytest.mark.parametrize('value, expected', [
    ([10], [(10, 10)]),
    ([30, 10, 20], [(10, 10), (20, 20), (30, 30)]),
    (['100-200'], [(100, 200)]),
    (['300-400', 5, '100-200'], [(5, 5), (100, 200), (300, 400)]),
    (['1-4094'], [(1, 4094)]),
    (['7-7'], [(7, 7)]),
    ([' 10 - 20 '], [(10, 20)]),
    (['10', '12'], [(10, 10), (12, 12)]),
    ([10, 11, 12], [(10, 12)]),
    (['1-9', 10, '20-30', 11], [(1, 11), (20, 30)]),
    (10, [(10, 10)]),
    ('100-200', [(100, 200)]),
    ([], []),
])
def test_vlan_ranges_good(value, expected):
    assert v.vlan_ranges('trunk', value) == expected


def test_vlan_ranges_without_merging_keeps_adjacent_ranges():
    assert v.vlan_ranges('trunk', [10, 11, '12-20'], merge_adjacent=False) == [(10, 10), (11, 11), (12, 20)]


@pytest.mark.parametrize('value, param, shown, problem', [
    (['200-100'], 'trunk[0]', "'200-100'", 'range is reversed (200 > 100)'),
    ([10, '0-5'], 'trunk[1]', "'0-5'", '0 is not a VLAN id'),
    (['4000-4095'], 'trunk[0]', "'4000-4095'", '4095 is not a VLAN id'),
    ([4095], 'trunk[0]', '4095', '4095 is not a VLAN id'),
    ([True], 'trunk[0]', 'True', 'not a VLAN id or a "START-END" range'),
    ([1.0], 'trunk[0]', '1.0', 'not a VLAN id or a "START-END" range'),
    (['a-b'], 'trunk[0]', "'a-b'", 'not a VLAN id or a "START-END" range'),
    (['10-'], 'trunk[0]', "'10-'", 'not a VLAN id or a "START-END" range'),
    (['10-20-30'], 'trunk[0]', "'10-20-30'", 'not a VLAN id or a "START-END" range'),
    (None, 'trunk', 'None', 'not a list'),
    ({'a': 1}, 'trunk', "{'a': 1}", 'not a list'),
])
def test_vlan_ranges_bad_items(value, param, shown, problem):
    with pytest.raises(ValidationError) as info:
        v.vlan_ranges('trunk', value)
    assert_names_all(info.value, param, shown, 'VLANs must be a list of ids from 1 to 4094')
    assert problem in str(info.value)


@pytest.mark.parametrize('value, clashes', [
    (['100-200', '150-160'], ['100-200 and 150-160 overlap']),
    (['100-200', '200-300'], ['100-200 and 200-300 overlap']),
    (['100-200', 150], ['100-200 and 150 overlap']),
    ([10, 10], ['10 is listed more than once']),
    (['10-20', '10-20'], ['10-20 is listed more than once']),
    (['1-100', '50-60', '70-80'], ['1-100 and 50-60 overlap', '1-100 and 70-80 overlap']),
    ([10, '5-12', '12-14', 10], ['5-12 and 10 overlap', '10 is listed more than once', '5-12 and 12-14 overlap']),
])
def test_vlan_ranges_overlaps_name_the_ranges(value, clashes):
    with pytest.raises(ValidationError) as info:
        v.vlan_ranges('trunk', value)
    assert_names_all(info.value, 'trunk', repr(value), 'none overlapping or repeated')
    for clash in clashes:
        assert clash in str(info.value)
    assert info.value.problem == '; '.join(clashes)


def test_vlan_range_helpers():
    ranges = [(1, 1), (10, 12)]
    assert v.format_vlan_ranges(ranges) == '1,10-12'
    assert v.expand_vlan_ranges(ranges) == [1, 10, 11, 12]
    assert v.format_vlan_ranges([]) == ''


# --------------------------------------------------------------------------- CIDR

@pytest.mark.parametrize('value, expected', [
    ('10.0.0.1/24', '10.0.0.1/24'),
    ('10.0.0.0/24', '10.0.0.0/24'),
    (' 192.168.1.1/32 ', '192.168.1.1/32'),
    ('10.0.0.1/255.255.255.0', '10.0.0.1/24'),
    ('fd00::1/64', 'fd00::1/64'),
    ('FD00:0:0:0::1/64', 'fd00::1/64'),
])
def test_cidr_good(value, expected):
    iface = v.cidr('cidr', value)
    assert str(iface) == expected
    assert isinstance(iface, (ipaddress.IPv4Interface, ipaddress.IPv6Interface))


def test_cidr_passes_interface_objects_through():
    iface = ipaddress.ip_interface('10.1.0.1/16')
    assert v.cidr('cidr', iface) is iface


@pytest.mark.parametrize('value, shown, problem', [
    ('10.0.0.1', "'10.0.0.1'", 'no prefix length'),
    ('10.0.0.1/33', "'10.0.0.1/33'", ''),
    ('10.0.0/24', "'10.0.0/24'", ''),
    ('300.0.0.1/24', "'300.0.0.1/24'", ''),
    ('010.0.0.1/24', "'010.0.0.1/24'", 'leading zeros'),
    ('fd00::1/129', "'fd00::1/129'", ''),
    ('hello/24', "'hello/24'", ''),
    ('', "''", 'no prefix length'),
    (None, 'None', 'not a string'),
    (24, '24', 'not a string'),
])
def test_cidr_bad(value, shown, problem):
    with pytest.raises(ValidationError) as info:
        v.cidr('cidr', value)
    assert_names_all(info.value, 'cidr', shown, 'CIDR must be an IPv4 or IPv6 address with prefix length')
    assert problem in str(info.value)


def test_cidr_family():
    assert v.cidr('cidr', '10.0.0.1/24', family='ipv4').version == 4
    assert v.cidr('cidr', 'fd00::1/64', family=6).version == 6
    with pytest.raises(ValidationError) as info:
        v.cidr('cidr', 'fd00::1/64', family='ipv4')
    assert_names_all(info.value, 'cidr', "'fd00::1/64'", 'CIDR must be an IPv4 address with prefix length')
    assert 'is an IPv6 address' in str(info.value)
    with pytest.raises(ValidationError) as info:
        v.cidr('cidr6', '10.0.0.1/24', family='ipv6')
    assert_names_all(info.value, 'cidr6', "'10.0.0.1/24'", 'CIDR must be an IPv6 address')


def test_cidr_unknown_family_is_a_programming_error():
    with pytest.raises(ValueError):
        v.cidr('cidr', '10.0.0.1/24', family='ipx')


def test_cidr_require_network():
    assert str(v.cidr('net', '10.0.0.0/24', require_network=True).network) == '10.0.0.0/24'
    assert str(v.cidr('net', 'fd00::/64', require_network=True)) == 'fd00::/64'
    with pytest.raises(ValidationError) as info:
        v.cidr('net', '10.0.0.1/24', require_network=True)
    assert_names_all(info.value, 'net', "'10.0.0.1/24'", 'with the host bits zero')
    assert 'host bits are set (the network is 10.0.0.0/24)' in str(info.value)


@pytest.mark.parametrize('value, ok', [
    ('10.0.0.1/24', True), ('10.0.0.254/24', True), ('10.0.0.0/24', False), ('10.0.0.255/24', False),
    ('10.0.0.0/31', True), ('10.0.0.1/31', True), ('10.0.0.7/32', True), ('fd00::/64', True),
])
def test_cidr_require_host(value, ok):
    if ok:
        assert str(v.cidr('address', value, require_host=True)) == value
    else:
        with pytest.raises(ValidationError) as info:
            v.cidr('address', value, require_host=True)
        assert_names_all(info.value, 'address', repr(value), 'not the network or broadcast address')


@pytest.mark.parametrize('value, family, ok', [
    ('10.0.0.1', None, True), ('fd00::1', None, True), ('10.0.0.1', 'ipv6', False), ('10.0.0.1/24', None, False),
    ('01.0.0.1', None, False), ('nonsense', None, False), (None, None, False),
])
def test_ip_address(value, family, ok):
    if ok:
        assert str(v.ip_address('addr', value, family=family)) == value
    else:
        with pytest.raises(ValidationError) as info:
            v.ip_address('addr', value, family=family)
        assert_names_all(info.value, 'addr', repr(value), 'address without prefix length')


# --------------------------------------------------------------------------- gateway

@pytest.mark.parametrize('value, network', [
    ('10.0.0.1', '10.0.0.0/24'),
    ('10.0.0.254', '10.0.0.0/24'),
    ('10.0.0.1', '10.0.0.1/24'),
    ('10.0.0.0', '10.0.0.0/31'),
    ('10.0.0.1', '10.0.0.0/31'),
    ('10.0.0.5', '10.0.0.5/32'),
    ('fd00::1', 'fd00::/64'),
    ('fd00::ffff:ffff:ffff:ffff', 'fd00::/64'),
    ('fd00::', 'fd00::/127'),
])
def test_gateway_good(value, network):
    assert str(v.gateway('gateway', value, network)) == value


def test_gateway_accepts_ipaddress_objects():
    net = ipaddress.ip_interface('10.0.0.1/24')
    assert v.gateway('gateway', ipaddress.ip_address('10.0.0.1'), net) == ipaddress.ip_address('10.0.0.1')
    assert v.gateway('gateway', '10.0.0.1', net.network) == ipaddress.ip_address('10.0.0.1')


@pytest.mark.parametrize('value, network, problem', [
    ('10.0.1.1', '10.0.0.0/24', 'is outside 10.0.0.0/24'),
    ('10.0.0.0', '10.0.0.0/24', 'is the network address'),
    ('10.0.0.255', '10.0.0.0/24', 'is the broadcast address'),
    ('10.0.0.3', '10.0.0.0/30', 'is the broadcast address'),
    ('10.0.0.6', '10.0.0.5/32', 'is outside 10.0.0.5/32'),
    ('fd00::1', '10.0.0.0/24', 'is an IPv6 address'),
    ('10.0.0.1/24', '10.0.0.0/24', 'has a prefix length'),
    ('fd00::', 'fd00::/64', 'subnet-router anycast'),
    ('fd01::1', 'fd00::/64', 'is outside fd00::/64'),
    ('bogus', '10.0.0.0/24', 'does not appear to be'),
    (5, '10.0.0.0/24', 'not a string'),
])
def test_gateway_bad(value, network, problem):
    with pytest.raises(ValidationError) as info:
        v.gateway('gateway', value, network, cidr_param='networks[0].cidr')
    assert_names_all(info.value, 'gateway', repr(value), 'gateway must be an address inside networks[0].cidr')
    assert problem in str(info.value)


# --------------------------------------------------------------------------- DHCP range

def test_dhcp_range_good():
    start, end = v.dhcp_range('dhcp', '10.0.0.100', '10.0.0.200', '10.0.0.0/24', gateway_address='10.0.0.1')
    assert (str(start), str(end)) == ('10.0.0.100', '10.0.0.200')
    assert v.dhcp_range('dhcp', '10.0.0.2', '10.0.0.2', '10.0.0.0/24')[0] == ipaddress.ip_address('10.0.0.2')
    assert v.dhcp_range('dhcp', '10.0.0.10', '10.0.0.99', '10.0.0.0/24', '10.0.0.1', static_range=('10.0.0.100', '10.0.0.200'))
    assert v.dhcp_range('dhcp', 'fd00::100', 'fd00::1ff', 'fd00::/64', gateway_address='fd00::1')
    assert v.dhcp_range('dhcp', '10.0.0.0', '10.0.0.1', '10.0.0.0/31')


@pytest.mark.parametrize('start, end, gw, static, problem', [
    ('10.0.1.1', '10.0.0.200', None, None, 'start is outside 10.0.0.0/24'),
    ('10.0.0.100', '10.0.1.200', None, None, 'end is outside 10.0.0.0/24'),
    ('10.0.0.200', '10.0.0.100', None, None, 'start is after end'),
    ('10.0.0.0', '10.0.0.100', None, None, 'start is the network address'),
    ('10.0.0.100', '10.0.0.255', None, None, 'end is the broadcast address'),
    ('10.0.0.1', '10.0.0.100', '10.0.0.1', None, 'contains the gateway 10.0.0.1'),
    ('10.0.0.2', '10.0.0.100', '10.0.0.50', None, 'contains the gateway 10.0.0.50'),
    ('10.0.0.150', '10.0.0.250', '10.0.0.1', ('10.0.0.100', '10.0.0.200'), 'overlaps the static range 10.0.0.100-10.0.0.200'),
    ('10.0.0.2', '10.0.0.100', '10.0.0.1', ('10.0.0.100', '10.0.0.200'), 'overlaps the static range'),
    ('fd00::1', '10.0.0.100', None, None, 'start is an IPv6 address'),
    ('10.0.0.2', 'x', None, None, "end 'x' does not appear to be"),
])
def test_dhcp_range_bad(start, end, gw, static, problem):
    with pytest.raises(ValidationError) as info:
        v.dhcp_range('dhcp_range', start, end, '10.0.0.0/24', gateway_address=gw, static_range=static)
    assert_names_all(info.value, 'dhcp_range', repr('%s-%s' % (start, end)), 'DHCP range must be START-END inside cidr (10.0.0.0/24)')
    assert problem in str(info.value)


# --------------------------------------------------------------------------- MAC addresses

@pytest.mark.parametrize('value, expected', [
    ('02:fc:00:00:00:01', '02:fc:00:00:00:01'),
    ('AA:FC:00:12:34:56', 'aa:fc:00:12:34:56'),
    ('52:54:00:12:34:56', '52:54:00:12:34:56'),
    ('00:00:00:00:00:01', '00:00:00:00:00:01'),
])
def test_mac_good(value, expected):
    assert v.mac_address('mac', value) == expected


@pytest.mark.parametrize('value, problem', [
    ('01:00:5e:00:00:01', 'multicast bit set'),
    ('33:33:00:00:00:01', 'multicast bit set'),
    ('ff:ff:ff:ff:ff:ff', 'broadcast address'),
    ('00:00:00:00:00:00', 'all zero'),
    ('02:fc:00:00:00', 'not 6 colon-separated hex octets'),
    ('02:fc:00:00:00:01:02', 'not 6 colon-separated hex octets'),
    ('02-fc-00-00-00-01', 'not 6 colon-separated hex octets'),
    ('02fc.0000.0001', 'not 6 colon-separated hex octets'),
    ('2:fc:0:0:0:1', 'not 6 colon-separated hex octets'),
    ('g2:fc:00:00:00:01', 'not 6 colon-separated hex octets'),
    ('', 'not 6 colon-separated hex octets'),
    (None, 'not a string'),
])
def test_mac_bad(value, problem):
    with pytest.raises(ValidationError) as info:
        v.mac_address('mac', value)
    assert_names_all(info.value, 'mac', repr(value), 'MAC address must be 6 colon-separated hex octets')
    assert problem in str(info.value)


def test_mac_require_local():
    assert v.mac_address('guest_mac', 'AA:FC:00:00:00:01', require_local=True) == 'aa:fc:00:00:00:01'
    with pytest.raises(ValidationError) as info:
        v.mac_address('guest_mac', '00:16:3e:12:34:56', require_local=True)
    assert_names_all(info.value, 'guest_mac', "'00:16:3e:12:34:56'", 'locally administered')
    assert 'not locally administered' in str(info.value)


@pytest.mark.parametrize('mac, local, unicast', [
    ('02:00:00:00:00:01', True, True),
    ('aa:fc:00:00:00:01', True, True),
    ('52:54:00:12:34:56', True, True),
    ('00:16:3e:00:00:01', False, True),
    ('01:00:5e:00:00:01', False, False),
    ('03:00:00:00:00:01', True, False),
])
def test_mac_helpers(mac, local, unicast):
    assert v.is_locally_administered(mac) is local
    assert v.is_unicast(mac) is unicast
