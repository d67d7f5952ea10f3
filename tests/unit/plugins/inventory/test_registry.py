# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.inventory.data import InventoryData

from ansible_collections.nqrust.microvm.plugins.inventory.registry import InventoryModule
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_networks import fc_network

FLEET = {
    'hosts': {
        'hv1': {'id': 'id-1', 'addr': '10.0.0.11', 'networks': [
            fc_network({'id': 'n1', 'name': 'fcbr0 Network', 'bridge_name': 'fcbr0', 'mode': 'nat', 'type': 'bridge'}),
            fc_network({'id': 'n2', 'name': 'Customer A', 'bridge_name': 'fcbr0', 'vlan_id': 100, 'mode': 'routed',
                        'type': 'vlan'}),
        ]},
        'hv2': {'id': 'id-2', 'addr': None, 'networks': []},
    },
    'renamed': [],
}


class Options(dict):
    pass


@pytest.fixture(name='plugin')
def plugin_fixture():
    plugin = InventoryModule()
    plugin.inventory = InventoryData()
    options = {'group_prefix': 'fc_', 'group_by': ['network', 'bridge', 'vlan', 'mode'], 'strict': False,
               'compose': {}, 'groups': {}, 'keyed_groups': [], 'host_group': 'hypervisors'}
    plugin.get_option = options.get
    return plugin


@pytest.mark.parametrize('name, accepted', [('fleet.registry.yml', True), ('fleet.registry.yaml', True),
                                            ('fleet.yml', False), ('registry.yml', False)])
def test_verify_file(tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text('plugin: nqrust.microvm.registry\n')
    assert InventoryModule().verify_file(str(path)) is accepted


def test_hosts_get_their_variables_and_groups(plugin):
    plugin._populate(FLEET)  # pylint: disable=protected-access
    hv1 = plugin.inventory.get_host('hv1').get_vars()
    assert hv1['ansible_host'] == '10.0.0.11' and hv1['fc_registry_host_id'] == 'id-1'
    assert [n['name'] for n in hv1['fc_networks']] == ['fcbr0 Network', 'Customer A']
    hv2 = plugin.inventory.get_host('hv2').get_vars()
    assert 'ansible_host' not in hv2 and hv2['fc_networks'] == []
    groups = dict((name, sorted(h.name for h in group.get_hosts())) for name, group in plugin.inventory.groups.items())
    assert groups['fc_network_fcbr0_network'] == ['hv1'] and groups['fc_network_customer_a'] == ['hv1']
    assert groups['fc_bridge_fcbr0'] == ['hv1'] and groups['fc_vlan_100'] == ['hv1']
    assert groups['fc_mode_nat'] == ['hv1'] and groups['fc_mode_routed'] == ['hv1']
    assert groups['hypervisors'] == ['hv1', 'hv2'], 'every host, with networks or not'


def test_group_by_and_prefix(plugin):
    options = {'group_prefix': 'x_', 'group_by': ['vlan'], 'strict': False, 'compose': {}, 'groups': {}, 'keyed_groups': [],
               'host_group': ''}
    plugin.get_option = options.get
    plugin._populate(FLEET)  # pylint: disable=protected-access
    made = sorted(name for name in plugin.inventory.groups if name not in ('all', 'ungrouped'))
    assert made == ['x_vlan_100']
