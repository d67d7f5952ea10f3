# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_rules import (
    desired_table,
    forwarding_needed,
    is_firewall_table,
    table_name,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import Table

V4 = ipaddress.ip_network('192.168.18.0/24')
V6 = ipaddress.ip_network('fd00:18::/64')


def texts(content, chain='forward'):
    return [rule.text().split(' comment ')[0] for rule in content.rules_in(chain)]


def test_nat_rules():
    table = desired_table('nat', 'fcbr0', V4, None, ('eth0',))
    assert table.table.ref == 'inet nqrust_microvm_fw_fcbr0'
    assert [c.header_text() for c in table.chains] == ['type filter hook forward priority 0; policy accept',
                                                       'type nat hook postrouting priority 100; policy accept']
    assert texts(table) == [
        'iifname "fcbr0" oifname "fcbr0" accept',
        'iifname "fcbr0" oifname "eth0" ip saddr 192.168.18.0/24 accept',
        'iifname "eth0" oifname "fcbr0" ct state established,related accept',
        'iifname "fcbr0" counter reject with icmpx admin-prohibited',
        'oifname "fcbr0" counter drop',
    ]
    assert texts(table, 'postrouting') == ['ip saddr 192.168.18.0/24 oifname "eth0" masquerade']
    assert all(rule.comment.startswith('nqrust.microvm nat: ') for rule in table.rules)


def test_nat_with_ipv6_and_two_uplinks():
    table = desired_table('nat', 'fcbr0', V4, V6, ('eth1', 'eth0'))
    assert texts(table)[1:3] == ['iifname "fcbr0" oifname { "eth0", "eth1" } ip saddr 192.168.18.0/24 accept',
                                 'iifname "fcbr0" oifname { "eth0", "eth1" } ip6 saddr fd00:18::/64 accept']
    assert texts(table, 'postrouting') == ['ip saddr 192.168.18.0/24 oifname { "eth0", "eth1" } masquerade',
                                           'ip6 saddr fd00:18::/64 oifname { "eth0", "eth1" } masquerade']


def test_nat_ipv6_only():
    table = desired_table('nat', 'fcbr0', None, V6, ('eth0',))
    assert not any('ip saddr' in text for text in texts(table))
    assert texts(table, 'postrouting') == ['ip6 saddr fd00:18::/64 oifname "eth0" masquerade']


def test_routed_rules_forward_both_ways_without_nat():
    table = desired_table('routed', 'br1', V4, V6, ('eth0',))
    assert [c.name for c in table.chains] == ['forward']
    assert texts(table) == [
        'iifname "br1" oifname "br1" accept',
        'iifname "br1" oifname "eth0" ip saddr 192.168.18.0/24 accept',
        'iifname "br1" oifname "eth0" ip6 saddr fd00:18::/64 accept',
        'iifname "eth0" oifname "br1" ip daddr 192.168.18.0/24 accept',
        'iifname "eth0" oifname "br1" ip6 daddr fd00:18::/64 accept',
        'iifname "br1" counter reject with icmpx admin-prohibited',
        'oifname "br1" counter drop',
    ]


def test_isolated_rules_only_let_guests_reach_each_other():
    table = desired_table('isolated', 'br2', V4, None, ('eth0',))
    assert texts(table) == ['iifname "br2" oifname "br2" accept', 'iifname "br2" counter reject with icmpx admin-prohibited',
                            'oifname "br2" counter drop']


@pytest.mark.parametrize('mode', ['bridged', 'open'])
def test_bridged_and_open_have_no_table(mode):
    assert desired_table(mode, 'br3', V4, None, ('eth0',)) is None


def test_bad_calls():
    with pytest.raises(ValueError):
        desired_table('nat', 'br0', V4, None, ())
    with pytest.raises(ValueError):
        desired_table('bogus', 'br0', V4, None, ('eth0',))


def test_forwarding_needed_only_where_the_mode_routes():
    assert forwarding_needed('nat', V4, None) == {4: True, 6: False}
    assert forwarding_needed('routed', V4, V6) == {4: True, 6: True}
    assert forwarding_needed('routed', None, V6) == {4: False, 6: True}
    for mode in ('isolated', 'bridged', 'open'):
        assert forwarding_needed(mode, V4, V6) == {4: False, 6: False}


def test_table_names():
    assert table_name('fcbr0') == 'nqrust_microvm_fw_fcbr0'
    assert is_firewall_table(Table('inet', 'nqrust_microvm_fw_x'))
    assert not is_firewall_table(Table('ip', 'nqrust_microvm_fw_x'))
    assert not is_firewall_table(Table('inet', 'filter'))
