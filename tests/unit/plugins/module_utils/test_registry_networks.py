# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import network_settings as ns
from ansible_collections.nqrust.microvm.plugins.module_utils import registry_networks as rn
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors


def options(**given):
    values, v = ns.network_options(given)
    return values, v.messages


# --------------------------------------------------------------------------- static checks

def test_good_options_are_normalised():
    values, errors = options(name='Customer A', vlan_id='100', bridge_name='fcbr0', cidr='10.100.0.0/24', gateway='10.100.0.1',
                             mode='routed', uplink='eth0', mtu=9000, type='vlan',
                             dhcp={'enabled': True, 'range_start': '10.100.0.100', 'range_end': '10.100.0.200',
                                   'lease_time': '12H', 'static_leases': [{'mac': '02:FC:00:00:00:01', 'ip': '10.100.0.5',
                                                                           'hostname': 'DB1.example'}]},
                             dns={'enabled': True, 'upstream': '192.0.2.53', 'domain': 'FC.Internal'})
    assert errors == []
    assert values['vlan_id'] == 100 and values['cidr'] == '10.100.0.0/24' and values['gateway'] == '10.100.0.1'
    assert values['dhcp'] == {'enabled': True, 'range_start': '10.100.0.100', 'range_end': '10.100.0.200', 'lease_time': '12h',
                              'static_leases': [{'mac': '02:fc:00:00:00:01', 'ip': '10.100.0.5', 'hostname': 'db1.example'}]}
    assert values['dns'] == {'enabled': True, 'upstream': ['192.0.2.53'], 'domain': 'fc.internal'}


def test_the_gateway_address_with_prefix_is_a_network_and_its_gateway():
    values, errors = options(cidr='192.168.18.240/24')
    assert errors == [] and (values['cidr'], values['gateway']) == ('192.168.18.0/24', '192.168.18.240')
    values, errors = options(cidr='192.168.18.240/24', gateway='192.168.18.1')
    assert errors and "parameter 'cidr'" in errors[0] and 'names the address 192.168.18.240 but gateway is 192.168.18.1' in errors[0]
    values, errors = options(cidr='192.168.18.255/24')
    assert errors and 'is the broadcast address' in errors[0]
    values, errors = options(cidr='10.0.0.7/32')
    assert errors == [] and (values['cidr'], values['gateway']) == ('10.0.0.7/32', '10.0.0.7')


def test_empty_strings_and_zero_clear():
    values, errors = options(description='', cidr='', gateway='', uplink='', mtu=0)
    assert errors == [] and values == {'description': None, 'cidr': None, 'gateway': None, 'uplink': None, 'mtu': None}


@pytest.mark.parametrize('given, expected', [
    ({'vlan_id': 0}, "parameter 'vlan_id' (value 0): VLAN id must be an integer from 1 to 4094"),
    ({'vlan_id': 4095}, "parameter 'vlan_id' (value 4095): VLAN id must be an integer from 1 to 4094"),
    ({'vlan_id': True}, "parameter 'vlan_id' (value True): not an integer"),
    ({'cidr': '10.0.0.0/33'}, "parameter 'cidr' (value '10.0.0.0/33')"),
    ({'cidr': '10.0.0.0'}, "parameter 'cidr' (value '10.0.0.0'): no prefix length"),
    ({'cidr': '010.0.0.0/24'}, 'leading zeros are ambiguous'),
    ({'gateway': '10.0.0.1/24'}, "parameter 'gateway' (value '10.0.0.1/24'): has a prefix length"),
    ({'mtu': 67}, "parameter 'mtu' (value 67): MTU must be an integer from 68 to 65535"),
    ({'mtu': 65536}, "parameter 'mtu' (value 65536)"),
    ({'bridge_name': 'a-bridge-name-too-long'}, "parameter 'bridge_name' (value 'a-bridge-name-too-long'): is 22 bytes long"),
    ({'bridge_name': 'br/0'}, "contains '/'"),
    ({'uplink': 'eth 0'}, "parameter 'uplink' (value 'eth 0'): contains whitespace"),
    ({'name': ' '}, "parameter 'name' (value ' '): empty"),
    ({'name': 'n' * 256}, 'is 256 characters long'),
    ({'mode': 'bridge'}, "parameter 'mode' (value 'bridge'): mode must be one of nat, routed, isolated, bridged, open"),
    ({'type': 'vxlan'}, "parameter 'type' (value 'vxlan'): type must be one of bridge, vlan, overlay"),
    ({'dhcp': {'range_start': '10.0.0.10'}}, "parameter 'dhcp.range_end' (value None): missing"),
    ({'dhcp': {'lease_time': '30s'}}, "shorter than 2 minutes"),
    ({'dhcp': {'lease_time': 'soon'}}, "parameter 'dhcp.lease_time' (value 'soon')"),
    ({'dhcp': {'static_leases': [{'mac': '01:00:5e:00:00:01', 'ip': '10.0.0.5'}]}}, 'multicast bit set'),
    ({'dhcp': {'static_leases': [{'mac': '02:00:00:00:00:01', 'ip': '10.0.0.5', 'hostname': '-bad'}]}},
     "parameter 'dhcp.static_leases[0].hostname' (value '-bad')"),
    ({'dhcp': {'static_leases': [{'mac': '02:00:00:00:00:01', 'ip': '10.0.0.5'}, {'mac': '02:00:00:00:00:01', 'ip': '10.0.0.6'}]}},
     "parameter 'dhcp.static_leases[1].mac' (value '02:00:00:00:00:01'): already used by dhcp.static_leases[0]"),
    ({'dhcp': {'static_leases': [{'mac': '02:00:00:00:00:01', 'ip': '10.0.0.5'}, {'mac': '02:00:00:00:00:02', 'ip': '10.0.0.5'}]}},
     "parameter 'dhcp.static_leases[1].ip'"),
    ({'dns': {'upstream': ['not-an-ip']}}, "parameter 'dns.upstream[0]' (value 'not-an-ip')"),
    ({'dns': {'domain': 'a..b'}}, "parameter 'dns.domain'"),
])
def test_bad_options_name_parameter_value_and_what_is_allowed(given, expected):
    dummy, errors = options(**given)
    assert len(errors) == 1 and expected in errors[0], errors


def test_all_problems_are_reported_at_once():
    dummy, errors = options(vlan_id=0, mtu=1, cidr='x')
    assert len(errors) == 3


# --------------------------------------------------------------------------- checks on the stored network

def merged_errors(given, **merged):
    return ns.check_merged(merged, given=given).messages


@pytest.mark.parametrize('merged, given, expected', [
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.1.1'}, ('gateway',), 'is outside 10.0.0.0/24'),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.0.0'}, ('cidr',), 'is the network address'),
    ({'gateway': '10.0.0.1'}, ('gateway',), 'the network has no cidr'),
    ({'mode': 'bridged'}, ('mode',), "parameter 'uplink' (value None): missing; bridged mode needs an uplink"),
    ({'type': 'vlan'}, ('type',), "type 'vlan' needs a VLAN id"),
    ({'dhcp': {'enabled': True}}, ('dhcp',), 'DHCP needs the network to have a cidr'),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.0.1', 'dhcp': {'range_start': '10.0.0.200', 'range_end': '10.0.0.100'}},
     ('dhcp',), 'start is after end'),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.0.1', 'dhcp': {'range_start': '10.0.0.1', 'range_end': '10.0.0.100'}},
     ('dhcp',), 'contains the gateway 10.0.0.1'),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.0.1', 'dhcp': {'static_leases': [{'ip': '10.0.1.5', 'mac': 'x'}]}},
     ('dhcp',), "parameter 'dhcp.static_leases[0].ip' (value '10.0.1.5')"),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.0.1', 'dhcp': {'static_leases': [{'ip': '10.0.0.1', 'mac': 'x'}]}},
     ('dhcp',), 'is the gateway'),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.0.1', 'dhcp': {'static_leases': [{'ip': '10.0.0.255', 'mac': 'x'}]}},
     ('dhcp',), 'is the broadcast address'),
])
def test_checks_across_fields(merged, given, expected):
    errors = merged_errors(given, **merged)
    assert len(errors) == 1 and expected in errors[0], errors


def test_stored_values_the_user_did_not_give_are_not_blamed():
    assert merged_errors(('name',), mode='bridged') == []
    assert merged_errors(('mtu',), cidr='10.0.0.0/24', gateway='10.0.1.1') == []


def test_empty_dhcp_and_dns_are_stored_as_null():
    values = ns.normalise_settings({'dhcp': {'enabled': None, 'range_start': None, 'range_end': None, 'lease_time': None,
                                             'static_leases': []},
                                    'dns': {'enabled': False, 'upstream': None, 'domain': None}})
    assert values == {'dhcp': None, 'dns': {'enabled': False, 'upstream': None, 'domain': None}}


@pytest.mark.parametrize('value, expected', [(120, '120'), ('2m', '2m'), ('12h', '12h'), ('1W', '1w'), ('infinite', 'infinite')])
def test_lease_times(value, expected):
    assert ns.lease_time('p', value) == expected


def test_defaults_follow_the_seed():
    assert rn.default_name('fcbr0') == 'fcbr0 Network'
    assert rn.default_name('fcbr0', 10) == 'fcbr0 VLAN 10 Network'
    assert (rn.default_type(None), rn.default_type(10)) == ('bridge', 'vlan')
    assert ns.first_host('10.100.0.0/24') == '10.100.0.1'
    assert ns.first_host('10.0.0.4/31') == '10.0.0.4' and ns.first_host('10.0.0.9/32') == '10.0.0.9'


# --------------------------------------------------------------------------- records and the fc_networks shape

NETWORK_ID = uuid.UUID('b1ed8ab4-cf82-4401-8393-6638cf978dd5')
HOST_ID = uuid.UUID('bbab8c75-f516-47ec-987a-828422b2ee5a')
WHEN = datetime.datetime(2025, 11, 3, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))


def test_records_use_the_manager_api_names_and_formats():
    row = (NETWORK_ID, 'fcbr0 Network', 'Auto-registered from VM creation', 'bridge', None, 'fcbr0', HOST_ID,
           '192.168.18.0/24', '192.168.18.240', WHEN, WHEN, 'nat', None, None, '{"enabled": true}', None, 'hv1', 5)
    record = rn.network_record(row)
    assert list(record)[:11] == list(rn.API_FIELDS)
    assert record['id'] == 'b1ed8ab4-cf82-4401-8393-6638cf978dd5' and record['host_id'] == 'bbab8c75-f516-47ec-987a-828422b2ee5a'
    assert record['created_at'] == '2025-11-03T08:00:00Z'
    assert record['dhcp'] == {'enabled': True} and record['vm_count'] == 5
    view = rn.network_view(record)
    assert 'id' not in view and 'created_at' not in view and 'vm_count' not in view and view['host_name'] == 'hv1'


def test_fc_network_item_has_every_key():
    item = rn.fc_network({'id': NETWORK_ID, 'name': 'n', 'bridge_name': 'fcbr0', 'cidr': '192.168.18.240/24', 'gateway': None,
                          'type': 'bridge', 'mode': None, 'dhcp': {'enabled': True, 'static_leases': [{'mac': 'm', 'ip': 'i'}]},
                          'dns': '{"upstream": []}'})
    assert item == {
        'name': 'n', 'description': None, 'registry_id': str(NETWORK_ID), 'type': 'bridge', 'bridge': 'fcbr0', 'mode': 'nat',
        'cidr': '192.168.18.0/24', 'gateway': '192.168.18.240', 'uplink': None, 'mtu': None, 'vlan_id': None,
        'dhcp': {'enabled': True, 'range_start': None, 'range_end': None, 'lease_time': None,
                 'static_leases': [{'mac': 'm', 'ip': 'i', 'hostname': None}]},
        'dns': {'enabled': None, 'upstream': [], 'domain': None},
        'state': 'present',
    }
    json.dumps(item)


def test_fc_network_keeps_values_it_cannot_read():
    item = rn.fc_network({'id': None, 'name': 'n', 'bridge_name': 'b', 'cidr': 'not a cidr', 'gateway': 'g'})
    assert (item['cidr'], item['gateway'], item['registry_id']) == ('not a cidr', 'g', None)


# --------------------------------------------------------------------------- SQL

class FakeCursor(object):
    def __init__(self, rows=None):
        self.statements = []
        self.rows = list(rows or [])

    def execute(self, query, params=None):
        self.statements.append((query, params))

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchall(self):
        rows, self.rows = self.rows, []
        return rows


def test_insert_is_parameterized_with_jsonb_casts_and_the_auto_registration_key():
    cur = FakeCursor(rows=[(NETWORK_ID,)])
    name = "x'); DROP TABLE network; --"
    new_id = rn.insert_network(cur, {'name': name, 'bridge_name': 'fcbr0', 'dhcp': {'enabled': True}, 'host_id': str(HOST_ID)})
    query, params = cur.statements[0]
    assert new_id == str(NETWORK_ID)
    assert name not in query and 'DROP' not in query
    assert query == ('INSERT INTO network (name, bridge_name, host_id, dhcp) VALUES (%s, %s, %s, %s::jsonb) '
                     'ON CONFLICT (host_id, bridge_name, (COALESCE(vlan_id, 0))) DO NOTHING RETURNING id')
    assert params == [name, 'fcbr0', str(HOST_ID), '{"enabled": true}']


def test_update_sets_updated_at_and_ignores_unknown_columns():
    cur = FakeCursor()
    rn.update_network(cur, 'id-1', {'mtu': 9000, 'id; DROP': 'x', 'dns': None})
    query, params = cur.statements[0]
    assert query == 'UPDATE network SET mtu = %s, dns = %s::jsonb, updated_at = now() WHERE id = %s'
    assert params == [9000, None, 'id-1']


def test_delete_refuses_with_the_counts():
    record_row = (NETWORK_ID, 'fcbr0 Network', None, 'bridge', None, 'fcbr0', HOST_ID, None, None, WHEN, WHEN, 'nat',
                  None, None, None, None, 'hv1', 2)
    cur = FakeCursor(rows=[record_row, (3, 2)])
    with pytest.raises(rn.NetworkInUseError) as caught:
        rn.delete_network(cur, str(NETWORK_ID))
    assert str(caught.value) == ("cannot delete network 'fcbr0 Network' (id %s): 3 VM interfaces attached (2 VMs); "
                                 'detach or delete them first: a network can only be deleted when its VM count is 0' % NETWORK_ID)
    assert cur.statements[0][0].endswith('FOR UPDATE OF n'), 'the row is locked before counting'
    assert not [query for query, dummy in cur.statements if query.startswith('DELETE')]


def test_filters_are_parameters():
    cur = FakeCursor()
    rn.select_networks(cur, host_id='h', bridge_name="fcbr0' OR 1=1 --", vlan_id=10)
    query, params = cur.statements[0]
    assert 'WHERE n.host_id = %s AND n.bridge_name = %s AND n.vlan_id = %s' in query
    assert params == ['h', "fcbr0' OR 1=1 --", 10]


def test_unknown_row_locks_are_refused():
    with pytest.raises(ValueError):
        rn.get_network(FakeCursor(), 'x', lock='update; DROP TABLE network')


def test_validation_errors_collect_into_one_exception():
    dummy, v = ns.network_options({'vlan_id': 0, 'mtu': 1})
    with pytest.raises(ValidationErrors) as caught:
        v.raise_if_any()
    assert caught.value.message.startswith('2 invalid parameters: ')
