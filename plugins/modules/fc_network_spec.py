# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_spec
short_description: Check a host's fc_networks and fill in the network role's defaults
version_added: 1.0.0
description:
  - Validates a whole C(fc_networks) list (the shape in the collection's docs/network-model.md, as the
    registry inventory plugin produces it or as written by hand) before anything on the host changes,
    and returns each network with every default resolved.
  - Checks each network as the registry does (bridge name, mode, CIDR and gateway inside it, VLAN id
    1-4094, MTU, DHCP range inside the CIDR and clear of the gateway, static leases, DNS settings, an
    uplink and no VLAN for bridged mode), then across networks (one network per bridge, no overlapping CIDRs).
    Every problem is reported at once, each naming C(fc_networks[i].key), the value and what is allowed.
  - Defaults for C(null) values - mode C(nat); the gateway the first address of the CIDR; DHCP and DNS
    on for C(nat), C(routed) and C(isolated) networks with a CIDR; lease time C(1h); no default route
    and no upstream DNS servers for C(isolated).
  - O(networks) not given (C(null)) means the seed's default network, bridge C(fcbr0) in NAT mode on
    C(192.168.18.0/24) with gateway C(192.168.18.240); an empty list means no networks.
  - Reads nothing from the host and changes nothing; the network role runs it first.
author:
  - NQRust MicroVM developers (@nqrust)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.reads
options:
  networks:
    description:
      - The host's C(fc_networks) list; C(null) for the default network.
    type: list
    elements: raw
"""

EXAMPLES = r"""
- name: Check the networks and resolve the defaults
  nqrust.microvm.fc_network_spec:
    networks: "{{ fc_networks | default(omit) }}"
  register: spec

- name: Show each bridge with its mode
  ansible.builtin.debug:
    msg: "{{ spec.networks | items2dict(key_name='bridge', value_name='mode') }}"
"""

RETURN = r"""
networks:
  description: The networks, in the order given, with every default resolved.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Display name (default C(<bridge> Network)).
      type: str
      sample: fcbr0 Network
    registry_id:
      description: The registry's network id, or null.
      type: str
    bridge:
      description: The Linux bridge.
      type: str
      sample: fcbr0
    mode:
      description: V(nat), V(routed), V(isolated), V(bridged) or V(open).
      type: str
      sample: nat
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    cidr:
      description: The network, or null.
      type: str
      sample: 192.168.18.0/24
    gateway:
      description: The bridge's address inside the CIDR, or null.
      type: str
      sample: 192.168.18.240
    address:
      description: The bridge's address with prefix length, or null.
      type: str
      sample: 192.168.18.240/24
    uplink:
      description: The NIC towards the outside, or null.
      type: str
      sample: eth0
    mtu:
      description: The bridge's MTU, or null (the kernel's default).
      type: int
    vlan_id:
      description: The network's VLAN (the bridge's default VLAN and its TAPs' PVID), or null.
      type: int
    dhcp:
      description: enabled, range_start and range_end (null - the DHCP module's default range), lease_time,
        static_leases and router (whether DHCP hands out the gateway as default route).
      type: dict
      sample: {enabled: true, range_start: null, range_end: null, lease_time: 1h, static_leases: [], router: true}
    dns:
      description: enabled, upstream (null - the host's resolvers; [] - none) and domain.
      type: dict
      sample: {enabled: true, upstream: null, domain: null}
    firewall:
      description: Whether the collection filters this network (false for open mode).
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils import network_spec


def main():
    module = AnsibleModule(argument_spec=dict(networks=dict(type='list', elements='raw')), supports_check_mode=True)
    networks, validator = network_spec.resolve(module.params['networks'])
    validator.fail_module(module)
    module.exit_json(changed=False, networks=networks)


if __name__ == '__main__':
    main()
