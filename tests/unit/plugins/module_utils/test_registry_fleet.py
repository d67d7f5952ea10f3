# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import uuid

from ansible_collections.nqrust.microvm.plugins.module_utils import registry_fleet as fleet

H1 = uuid.UUID('11111111-1111-4111-8111-111111111111')
H2 = uuid.UUID('22222222-2222-4222-8222-222222222222')
H3 = uuid.UUID('2bbbbbbb-2222-4222-8222-222222222222')
N1 = uuid.UUID('a0000000-0000-4000-8000-000000000001')
N2 = uuid.UUID('a0000000-0000-4000-8000-000000000002')


def row(host_id, name, addr, network_id=None, net_name=None, vlan=None, bridge='fcbr0', mode='nat', dhcp=None):
    if network_id is None:
        return (host_id, name, addr) + (None,) * 13
    return (host_id, name, addr, network_id, net_name, None, 'vlan' if vlan else 'bridge', vlan, bridge, '10.0.0.0/24',
            '10.0.0.1', mode, None, None, dhcp, None)


def test_hosts_with_their_networks_in_query_order():
    built = fleet.build_fleet([
        row(H1, 'hv1', '10.0.0.11', N1, 'fcbr0 Network', dhcp={'enabled': True}),
        row(H1, 'hv1', '10.0.0.11', N2, 'Customer A', vlan=100, mode='routed'),
        row(H2, 'hv2', None),
    ])
    assert list(built['hosts']) == ['hv1', 'hv2'] and built['renamed'] == []
    hv1 = built['hosts']['hv1']
    assert hv1['id'] == str(H1) and hv1['addr'] == '10.0.0.11'
    assert [(n['name'], n['vlan_id'], n['mode'], n['registry_id']) for n in hv1['networks']] == [
        ('fcbr0 Network', None, 'nat', str(N1)), ('Customer A', 100, 'routed', str(N2))]
    assert hv1['networks'][0]['dhcp']['enabled'] is True
    assert built['hosts']['hv2'] == {'id': str(H2), 'addr': None, 'networks': []}
    json.dumps(built)


def test_hosts_sharing_a_name_are_told_apart():
    built = fleet.build_fleet([row(H2, 'hv2', 'a'), row(H3, 'hv2', 'b', N1, 'x')])
    assert list(built['hosts']) == ['hv2', 'hv2-2bbbbbbb']
    assert built['renamed'] == [('hv2', 'hv2-2bbbbbbb')]
    assert built['hosts']['hv2-2bbbbbbb']['networks'][0]['name'] == 'x'


def test_group_names():
    item = {'name': 'fcbr0 Network', 'bridge': 'fcbr0', 'vlan_id': 100, 'mode': 'nat'}
    assert fleet.group_names(item) == ['fc_network_fcbr0_network', 'fc_bridge_fcbr0', 'fc_vlan_100', 'fc_mode_nat']
    assert fleet.group_names(dict(item, vlan_id=None), prefix='x_', kinds=['vlan', 'mode']) == ['x_mode_nat']
    assert fleet.group_part("x'); DROP TABLE network; --") == 'x_drop_table_network'
    assert fleet.group_part('---') == '_'


def test_the_query_joins_once_and_orders_stably():
    query = ' '.join(fleet.FLEET_QUERY.split())
    assert query.count('SELECT') == 1 and 'LEFT JOIN network n ON n.host_id = h.id' in query
    assert query.endswith('ORDER BY h.name, h.id, n.bridge_name, COALESCE(n.vlan_id, 0), n.name, n.id')
