# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno
import json

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import address_from_msg, link_from_msg
from ansible_collections.nqrust.microvm.plugins.modules import fc_network_info
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import (
    FakeIPRoute,
    standard_addresses,
    standard_links,
)


def records():
    return [link_from_msg(msg) for msg in standard_links()], [address_from_msg(msg) for msg in standard_addresses()]


# --------------------------------------------------------------------------- pure shaping

def test_shape_info_bridges_and_taps():
    links, addresses = records()
    info = fc_network_info.shape_info(links, addresses)
    assert [b['name'] for b in info['bridges']] == ['br-other', 'fcbr0']
    fcbr0 = info['bridges'][1]
    assert fcbr0 == {
        'name': 'fcbr0', 'ifindex': 3, 'mac': '02:fc:00:00:00:01', 'mtu': 1500, 'up': True, 'operstate': 'UP',
        'addresses': ['10.0.0.1/24', '10.0.0.2/24', '10.0.0.10/24', 'fd00::1/64'],
        'ports': ['tap-vm1', 'veth-up'], 'vlan_filtering': False, 'alias': 'nqrust.microvm', 'managed': True,
    }
    assert info['bridges'][0]['ports'] == [] and info['bridges'][0]['managed'] is False and info['bridges'][0]['up'] is False
    assert [t['name'] for t in info['taps']] == ['tap-foreign', 'tap-vm1']  # the TUN is not a TAP
    assert info['taps'][1] == {
        'name': 'tap-vm1', 'ifindex': 4, 'master': 'fcbr0', 'mac': '02:00:00:00:00:01', 'mtu': 1500,
        'up': True, 'operstate': 'DOWN', 'alias': 'nqrust.microvm:vm=1', 'managed': True,
    }
    assert info['taps'][0]['master'] is None and info['taps'][0]['managed'] is False
    assert 'links' not in info
    assert info['missing_bridges'] == []
    json.dumps(info)


def test_shape_info_filters_bridges_and_their_taps():
    links, addresses = records()
    info = fc_network_info.shape_info(links, addresses, bridges=['fcbr0', 'nope0'])
    assert [b['name'] for b in info['bridges']] == ['fcbr0']
    assert [t['name'] for t in info['taps']] == ['tap-vm1']
    assert info['missing_bridges'] == ['nope0']


def test_shape_info_eth0_is_not_a_bridge():
    links, addresses = records()
    info = fc_network_info.shape_info(links, addresses, bridges=['eth0'])
    assert info['bridges'] == [] and info['taps'] == [] and info['missing_bridges'] == ['eth0']


def test_shape_info_managed_only():
    links, addresses = records()
    info = fc_network_info.shape_info(links, addresses, managed_only=True, include_all_links=True)
    assert [b['name'] for b in info['bridges']] == ['fcbr0']
    assert [t['name'] for t in info['taps']] == ['tap-vm1']
    assert [link['name'] for link in info['links']] == ['fcbr0', 'tap-vm1']


def test_shape_info_all_links():
    links, addresses = records()
    info = fc_network_info.shape_info(links, addresses, include_all_links=True)
    by_name = dict((link['name'], link) for link in info['links'])
    assert sorted(by_name) == [link['name'] for link in info['links']]
    assert len(by_name) == 9
    assert by_name['tap-vm1']['kind'] == 'tap' and by_name['tap-vm1']['master'] == 'fcbr0'
    assert by_name['tun0']['kind'] == 'tun'
    assert by_name['eth0']['kind'] is None and by_name['eth0']['addresses'] == ['192.0.2.2/24']
    assert by_name['lo']['addresses'] == ['127.0.0.1/8', '::1/128']
    assert by_name['veth-up']['master'] == 'fcbr0'


def test_link_local_addresses_are_left_out():
    links, addresses = records()
    grouped = fc_network_info.addresses_by_index(addresses)
    assert 'fe80::fc:ff:fe00:1/64' not in grouped[3]


def test_shape_info_of_an_empty_host():
    assert fc_network_info.shape_info([], []) == {'bridges': [], 'taps': [], 'missing_bridges': []}


# --------------------------------------------------------------------------- the module end to end, with a fake netlink

def run_module(monkeypatch, args, ipr=None):
    fake = ipr or FakeIPRoute()
    monkeypatch.setattr(netlink, 'IPRoute', lambda: fake)
    monkeypatch.setattr(netlink, 'HAS_PYROUTE2', True)
    # a session with its own socket reads links with the lean reader: make it read the fake
    monkeypatch.setattr(netlink, 'dump_links', fake.get_links)
    return call_main(monkeypatch, fc_network_info.main, args, diff=False)


def test_module_reads_once_and_changes_nothing(monkeypatch):
    ipr = FakeIPRoute()
    outcome, result = run_module(monkeypatch, {'include_all_links': True, '_check_mode': True}, ipr)
    assert outcome == 'exit', result
    assert result['changed'] is False
    assert [b['name'] for b in result['bridges']] == ['br-other', 'fcbr0']
    assert len(result['links']) == 9
    assert [call[0] for call in ipr.calls] == ['get_links', 'get_addr']  # one dump per kind, no writes
    assert ipr.closed


def test_module_validates_bridge_names(monkeypatch):
    outcome, failed = run_module(monkeypatch, {'bridges': ['ok0', 'no/slash']})
    assert outcome == 'fail', failed
    assert "parameter 'bridges[1]' (value 'no/slash')" in failed['msg']


def test_module_reports_netlink_errors(monkeypatch):
    outcome, result = run_module(monkeypatch, {}, FakeIPRoute(fail={('get_addr', None): errno.EPERM}))
    assert outcome == 'fail', result
    assert result['msg'].startswith('reading the IP addresses: operation not permitted')


def test_module_without_pyroute2(monkeypatch):
    monkeypatch.setattr(fc_network_info, 'HAS_PYROUTE2', False)
    outcome, result = run_module(monkeypatch, {})
    assert outcome == 'fail', result
    assert 'pyroute2' in result['msg']
