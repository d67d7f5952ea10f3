# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import dhcp_ranges
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError, Validator


def net(text):
    return ipaddress.ip_network(text)


def ip(text):
    return ipaddress.ip_address(text)


def texts(pools):
    return ['%s-%s' % pool for pool in pools]


@pytest.mark.parametrize('network, gateway, expected', [
    # the seed's libvirt example: .1 gateway, .2-.127 static, the high half dynamic
    ('172.16.99.0/24', '172.16.99.1', ['172.16.99.128-172.16.99.254']),
    # the seed's default network: the gateway .240 splits the high half
    ('192.168.18.0/24', '192.168.18.240', ['192.168.18.128-192.168.18.239', '192.168.18.241-192.168.18.254']),
    ('192.168.18.0/24', '192.168.18.128', ['192.168.18.129-192.168.18.254']),
    ('192.168.18.0/24', '192.168.18.254', ['192.168.18.128-192.168.18.253']),
    ('10.0.0.0/16', '10.0.0.1', ['10.0.128.0-10.0.255.254']),
    ('10.0.0.0/29', '10.0.0.1', ['10.0.0.4-10.0.0.6']),
    ('10.0.0.0/30', '10.0.0.1', ['10.0.0.2-10.0.0.2']),
    ('10.0.0.0/30', '10.0.0.2', []),
    ('10.0.0.0/31', '10.0.0.0', ['10.0.0.1-10.0.0.1']),
    ('10.0.0.5/32', '10.0.0.5', []),
])
def test_default_ranges_follow_the_seed_convention(network, gateway, expected):
    assert texts(dhcp_ranges.default_ranges(net(network), ip(gateway))) == expected


def test_default_ranges_never_contain_the_gateway_network_or_broadcast():
    for prefix in range(20, 31):
        network = net('10.1.0.0/%d' % prefix)
        for gateway in (network.network_address + 1, network.broadcast_address - 1,
                        network.network_address + network.num_addresses // 2):
            for first, last in dhcp_ranges.default_ranges(network, gateway):
                assert network.network_address < first <= last < network.broadcast_address
                assert not first <= gateway <= last


def test_static_part_is_the_low_half_without_a_gateway_at_its_edge():
    assert dhcp_ranges.static_part(net('172.16.99.0/24'), ip('172.16.99.1')) == (ip('172.16.99.2'), ip('172.16.99.127'))
    assert dhcp_ranges.static_part(net('192.168.18.0/24'), ip('192.168.18.240')) == (ip('192.168.18.1'), ip('192.168.18.127'))
    assert dhcp_ranges.static_part(net('10.0.0.0/30'), ip('10.0.0.1')) is None


def test_check_ranges_sorts_and_accepts_disjoint_pools():
    v = Validator()
    pools = dhcp_ranges.check_ranges(v, 'dhcp.ranges', [('a', '10.0.0.200', '10.0.0.250'), ('b', '10.0.0.100', '10.0.0.150')],
                                     net('10.0.0.0/24'), ip('10.0.0.1'))
    assert v.ok and texts(pools) == ['10.0.0.100-10.0.0.150', '10.0.0.200-10.0.0.250']
    assert dhcp_ranges.size(pools) == 51 + 51
    assert dhcp_ranges.pool_of(ip('10.0.0.120'), pools) == pools[0] and dhcp_ranges.pool_of(ip('10.0.0.160'), pools) is None


@pytest.mark.parametrize('start, end, problem', [
    ('10.0.1.10', '10.0.1.20', 'start is outside 10.0.0.0/24'),
    ('10.0.0.250', '10.0.0.255', 'end is the broadcast address'),
    ('10.0.0.0', '10.0.0.20', 'start is the network address'),
    ('10.0.0.20', '10.0.0.10', 'start is after end'),
    ('10.0.0.1', '10.0.0.20', 'contains the gateway 10.0.0.1'),
])
def test_check_ranges_names_the_parameter_value_and_what_is_allowed(start, end, problem):
    v = Validator()
    assert dhcp_ranges.check_ranges(v, 'dhcp.ranges', [('dhcp.range_start/range_end', start, end)],
                                    net('10.0.0.0/24'), ip('10.0.0.1')) is None
    message = v.messages[0]
    assert message.startswith("parameter 'dhcp.range_start/range_end' (value '%s-%s')" % (start, end))
    assert problem in message and 'DHCP range must be START-END inside cidr (10.0.0.0/24)' in message


def test_check_ranges_refuses_overlapping_pools():
    v = Validator()
    assert dhcp_ranges.check_ranges(v, 'dhcp.ranges', [('a', '10.0.0.100', '10.0.0.150'), ('b', '10.0.0.150', '10.0.0.160')],
                                    net('10.0.0.0/24'), ip('10.0.0.1')) is None
    assert "parameter 'dhcp.ranges'" in v.messages[0]
    assert '10.0.0.100-10.0.0.150 and 10.0.0.150-10.0.0.160 overlap' in v.messages[0]


@pytest.mark.parametrize('value, problem', [
    ('10.0.1.5', 'is outside 10.0.0.0/24'),
    ('10.0.0.0', 'is the network address'),
    ('10.0.0.255', 'is the broadcast address'),
    ('10.0.0.1', 'is the gateway'),
    ('10.0.0.130', 'is inside the dynamic range 10.0.0.128-10.0.0.254'),
    ('banana', 'does not appear to be an IPv4 or IPv6 address'),
])
def test_a_static_address_stays_out_of_the_gateway_and_the_pools(value, problem):
    pools = dhcp_ranges.default_ranges(net('10.0.0.0/24'), ip('10.0.0.1'))
    with pytest.raises(ValidationError) as caught:
        dhcp_ranges.check_static_address('dhcp.static_leases[0].ip', value, net('10.0.0.0/24'), ip('10.0.0.1'), pools)
    assert str(caught.value).startswith("parameter 'dhcp.static_leases[0].ip' (value %r)" % value)
    assert problem in str(caught.value) and 'outside the dynamic DHCP ranges' in str(caught.value)


def test_a_static_address_in_the_static_half_is_fine():
    pools = dhcp_ranges.default_ranges(net('10.0.0.0/24'), ip('10.0.0.1'))
    assert dhcp_ranges.check_static_address('p', '10.0.0.5', net('10.0.0.0/24'), ip('10.0.0.1'), pools) == ip('10.0.0.5')


@pytest.mark.parametrize('text, seconds', [('120', 120), ('45m', 2700), ('12h', 43200), ('2d', 172800), ('1w', 604800),
                                           ('90s', 90), ('infinite', None)])
def test_lease_seconds(text, seconds):
    assert dhcp_ranges.lease_seconds(text) == seconds
