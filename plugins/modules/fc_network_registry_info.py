# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_registry_info
short_description: Read networks and their VM counts from the NQRust network registry
version_added: 1.0.0
description:
  - Lists the networks of the NQRust network registry with the manager API's field names, like
    C(GET /v1/networks), filtered by host, bridge, type, VLAN, name or id (C(GET /v1/networks/{id})).
  - Each network carries its VM count (C(GET /v1/networks/{id}/vms/count)) and, with O(include_interfaces), the VM
    interfaces attached to it.
  - Reads in one read-only transaction; never changes anything.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - psycopg (3.1 or later) where the task runs
  - the registry schema (nqrust.microvm.fc_registry_migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.registry_connection
  - nqrust.microvm.attributes.reads
options:
  id:
    description: Only the network with this UUID.
    type: str
  name:
    description: Only networks with this name.
    type: str
  type:
    description: Only networks of this type.
    type: str
    choices: [bridge, vlan, overlay]
    aliases: [network_type]
  vlan_id:
    description: Only networks with this VLAN id (1 to 4094).
    type: int
  bridge_name:
    description: Only networks on this bridge.
    type: str
    aliases: [bridge]
  host:
    description: Only networks of this host, by name or id; an unknown host fails with its name and the hosts there are.
    type: str
    aliases: [host_id]
  include_interfaces:
    description: Also return each network's VM interfaces in RV(networks[].interfaces).
    type: bool
    default: false
seealso:
  - module: nqrust.microvm.fc_network_registry
  - plugin: nqrust.microvm.registry
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Every network of the registry
  nqrust.microvm.fc_network_registry_info:
  register: registry
  delegate_to: localhost

- name: The VLAN 100 networks of hv1 with their VM interfaces
  nqrust.microvm.fc_network_registry_info:
    host: hv1
    vlan_id: 100
    include_interfaces: true
  register: vlan100
  delegate_to: localhost

- name: The VM count of one network (the manager's GET /v1/networks/{id}/vms/count)
  ansible.builtin.debug:
    msg: "{{ (registry.networks | selectattr('id', 'equalto', network_id) | first).vm_count }}"
  vars:
    network_id: b1ed8ab4-cf82-4401-8393-6638cf978dd5
"""

RETURN = r"""
networks:
  description: The matching networks by host name, bridge, VLAN and name, each with the manager API's field names.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: UUID.
      type: str
      sample: b1ed8ab4-cf82-4401-8393-6638cf978dd5
    name:
      description: Name.
      type: str
      sample: fcbr0 Network
    description:
      description: Description.
      type: str
      sample: Auto-registered from VM creation
    type:
      description: V(bridge), V(vlan) or V(overlay).
      type: str
      sample: bridge
    vlan_id:
      description: VLAN id or null.
      type: int
      sample: null
    bridge_name:
      description: Linux bridge.
      type: str
      sample: fcbr0
    host_id:
      description: UUID of the host.
      type: str
      sample: bbab8c75-f516-47ec-987a-828422b2ee5a
    cidr:
      description: Network address range.
      type: str
      sample: 192.168.18.0/24
    gateway:
      description: Gateway address.
      type: str
      sample: 192.168.18.240
    created_at:
      description: Creation time, UTC.
      type: str
      sample: "2025-11-03T08:00:00.123456Z"
    updated_at:
      description: Last update, UTC.
      type: str
      sample: "2025-11-03T08:00:00.123456Z"
    mode:
      description: V(nat), V(routed), V(isolated), V(bridged) or V(open).
      type: str
      sample: nat
    uplink:
      description: Uplink NIC or null.
      type: str
      sample: eth0
    mtu:
      description: MTU or null.
      type: int
      sample: 1500
    dhcp:
      description: DHCP settings or null.
      type: dict
    dns:
      description: DNS settings or null.
      type: dict
    host_name:
      description: Name of the host.
      type: str
      sample: hv1
    vm_count:
      description: Number of VMs with an interface on the network.
      type: int
      sample: 5
    interfaces:
      description:
        - With O(include_interfaces), the VM interfaces on the network (C(id), C(vm_id), C(network_id), C(iface_id),
          C(guest_mac), C(host_dev_name), C(created_at)).
      returned: when include_interfaces is true
      type: list
      elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import transaction
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_hosts import as_uuid, resolve_host
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_interfaces import list_interfaces
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_module import (
    fail_validation,
    registry_argument_spec,
    run_registry_module,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import network_options
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_networks import select_networks
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import require_current
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors


def validate(params):
    values, v = network_options(dict((key, params[key]) for key in ('name', 'type', 'vlan_id', 'bridge_name')))
    network_id = None
    if params['id'] is not None:
        network_id = as_uuid(params['id'])
        if network_id is None:
            v.add('id', params['id'], 'a network id must be a UUID such as b1ed8ab4-cf82-4401-8393-6638cf978dd5')
    v.raise_if_any()
    return values, network_id


def work(module, conn, values, network_id):
    params = module.params
    with transaction(conn, check_mode=True) as cur:
        require_current(cur)
        host_id = resolve_host(cur, params['host'])['id'] if params['host'] is not None else None
        networks = select_networks(cur, host_id=host_id, bridge_name=values.get('bridge_name'),
                                   network_type=values.get('type'), vlan_id=values.get('vlan_id'),
                                   network_id=network_id, name=values.get('name'))
        if params['include_interfaces']:
            for network in networks:
                network['interfaces'] = list_interfaces(cur, network_id=network['id'])
    return {'changed': False, 'networks': networks}


def main():
    module = AnsibleModule(
        argument_spec=registry_argument_spec(
            id=dict(type='str'),
            name=dict(type='str'),
            type=dict(type='str', choices=['bridge', 'vlan', 'overlay'], aliases=['network_type']),
            vlan_id=dict(type='int'),
            bridge_name=dict(type='str', aliases=['bridge']),
            host=dict(type='str', aliases=['host_id']),
            include_interfaces=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    try:
        values, network_id = validate(module.params)
    except ValidationErrors as exc:
        fail_validation(module, exc)
    run_registry_module(module, lambda conn: work(module, conn, values, network_id))


if __name__ == '__main__':
    main()
