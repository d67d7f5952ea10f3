# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_info
short_description: Read the bridges and TAP devices of a Firecracker host
version_added: 1.0.0
description:
  - Reads the Linux bridges and TAP devices of the host (or of the network namespace the task runs in)
    over netlink and returns them as plain data.
  - State is read with one netlink dump per object kind (links, then addresses); no command output is parsed.
  - Never changes anything, so it runs the same in check mode.
  - Each object says whether the collection created it (its interface alias carries the C(nqrust.microvm) marker).
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - pyroute2 (0.7 or later) on the managed host
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_reads
options:
  bridges:
    description:
      - Only report the bridges with these names.
      - When set, only the TAP devices attached to these bridges are reported.
      - Names that do not exist on the host are listed in RV(missing_bridges).
    type: list
    elements: str
  include_all_links:
    description:
      - Also return every link of the host (loopback, physical, veth, VLAN...) in RV(links).
    type: bool
    default: false
  managed_only:
    description:
      - Only report bridges, TAPs and links that the collection created.
    type: bool
    default: false
notes:
  - Link-local IPv6 addresses, which the kernel assigns by itself, are left out of the address lists.
seealso:
  - name: Linux bridge
    description: The kernel's documentation of the bridge driver.
    link: https://docs.kernel.org/networking/bridge.html
"""

EXAMPLES = r"""
- name: Read every bridge and TAP of the hypervisor
  nqrust.microvm.fc_network_info:
  register: fc_net

- name: Show the ports of the default network's bridge
  ansible.builtin.debug:
    msg: "{{ (fc_net.bridges | selectattr('name', 'equalto', 'fcbr0') | first).ports }}"

- name: Read one bridge and the TAPs attached to it
  nqrust.microvm.fc_network_info:
    bridges:
      - fcbr0
  register: fcbr0_info

- name: Fail if a TAP the collection created is not attached to any bridge
  ansible.builtin.assert:
    that:
      - fc_net.taps | selectattr('managed') | selectattr('master', 'none') | list | length == 0

- name: Read every link, including those the collection does not manage
  nqrust.microvm.fc_network_info:
    include_all_links: true
  register: all_links
"""

RETURN = r"""
bridges:
  description: The bridges, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Interface name.
      type: str
      sample: fcbr0
    ifindex:
      description: Interface index.
      type: int
      sample: 3
    mac:
      description: MAC address, lower case.
      type: str
      sample: 02:fc:00:00:00:01
    mtu:
      description: MTU in bytes.
      type: int
      sample: 1500
    up:
      description: Whether the bridge is administratively up.
      type: bool
      sample: true
    operstate:
      description: Operational state reported by the kernel (C(UP), C(DOWN), C(UNKNOWN)...).
      type: str
      sample: UP
    addresses:
      description: IP addresses in CIDR notation, IPv4 first, without link-local IPv6 addresses.
      type: list
      elements: str
      sample: ["10.0.0.1/24"]
    ports:
      description: Names of the links attached to the bridge, sorted.
      type: list
      elements: str
      sample: ["eth1", "tap-1a2b3c4d"]
    vlan_filtering:
      description: Whether bridge VLAN filtering is on; null if the kernel does not report it.
      type: bool
      sample: false
    alias:
      description: The interface alias (ifalias), or null.
      type: str
      sample: nqrust.microvm
    managed:
      description: Whether the collection created this bridge.
      type: bool
      sample: true
taps:
  description: The TAP devices (not TUN devices), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Interface name.
      type: str
      sample: tap-1a2b3c4d
    ifindex:
      description: Interface index.
      type: int
      sample: 7
    master:
      description: Name of the bridge the TAP is attached to, or null.
      type: str
      sample: fcbr0
    mac:
      description: Host-side MAC address of the TAP, lower case.
      type: str
      sample: 8a:2f:11:09:4e:73
    mtu:
      description: MTU in bytes.
      type: int
      sample: 1500
    up:
      description: Whether the TAP is administratively up.
      type: bool
      sample: true
    operstate:
      description: Operational state; C(DOWN) until a VMM opens the TAP.
      type: str
      sample: UP
    alias:
      description: The interface alias (ifalias), or null.
      type: str
      sample: nqrust.microvm
    managed:
      description: Whether the collection created this TAP.
      type: bool
      sample: true
links:
  description: Every link of the host, sorted by name.
  returned: when O(include_all_links=true)
  type: list
  elements: dict
  contains:
    name:
      description: Interface name.
      type: str
      sample: eth0
    ifindex:
      description: Interface index.
      type: int
      sample: 2
    kind:
      description:
        - Link kind reported by the kernel (C(bridge), C(veth), C(vlan), C(vxlan)...), C(tap) or C(tun) for TUN/TAP devices,
          null for physical and loopback devices.
      type: str
      sample: veth
    master:
      description: Name of the link's master (its bridge), or null.
      type: str
      sample: fcbr0
    mac:
      description: MAC address, lower case, or null.
      type: str
      sample: 52:54:00:12:34:56
    mtu:
      description: MTU in bytes.
      type: int
      sample: 1500
    up:
      description: Whether the link is administratively up.
      type: bool
      sample: true
    operstate:
      description: Operational state reported by the kernel.
      type: str
      sample: UP
    alias:
      description: The interface alias (ifalias), or null.
      type: str
      sample: null
    managed:
      description: Whether the collection created this link.
      type: bool
      sample: false
    addresses:
      description: IP addresses in CIDR notation, without link-local IPv6 addresses.
      type: list
      elements: str
      sample: ["192.0.2.10/24"]
missing_bridges:
  description: Names given in O(bridges) that are not bridges on the host.
  returned: always
  type: list
  elements: str
  sample: []
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
    NetlinkSession,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    Validator,
    interface_name,
)


def _address_key(address):
    ip = ipaddress.ip_address(address.address)
    return (ip.version, int(ip), address.prefixlen)


def addresses_by_index(addresses):
    """``{ifindex: ['10.0.0.1/24', ...]}`` without link-local addresses, IPv4 first, then by address."""
    grouped = {}
    for address in sorted(addresses, key=_address_key):
        if address.is_link_local:
            continue
        grouped.setdefault(address.index, []).append(address.cidr)
    return grouped


def shape_bridge(link, ports, addresses):
    return {
        'name': link.name,
        'ifindex': link.index,
        'mac': link.mac,
        'mtu': link.mtu,
        'up': link.up,
        'operstate': link.operstate,
        'addresses': list(addresses),
        'ports': sorted(port.name for port in ports),
        'vlan_filtering': link.vlan_filtering,
        'alias': link.alias,
        'managed': link.managed,
    }


def shape_tap(link, names_by_index):
    return {
        'name': link.name,
        'ifindex': link.index,
        'master': names_by_index.get(link.master_index),
        'mac': link.mac,
        'mtu': link.mtu,
        'up': link.up,
        'operstate': link.operstate,
        'alias': link.alias,
        'managed': link.managed,
    }


def shape_link(link, names_by_index, addresses):
    kind = link.kind
    if kind == 'tun' and link.tun_type:
        kind = link.tun_type
    return {
        'name': link.name,
        'ifindex': link.index,
        'kind': kind,
        'master': names_by_index.get(link.master_index),
        'mac': link.mac,
        'mtu': link.mtu,
        'up': link.up,
        'operstate': link.operstate,
        'alias': link.alias,
        'managed': link.managed,
        'addresses': list(addresses),
    }


def shape_info(links, addresses, bridges=None, include_all_links=False, managed_only=False):
    """The module's result from ``Link`` and ``Address`` records (pure; no I/O)."""
    names_by_index = dict((link.index, link.name) for link in links)
    addrs = addresses_by_index(addresses)
    wanted = set(bridges) if bridges is not None else None

    all_bridges = [link for link in links if link.is_bridge]
    chosen = [link for link in all_bridges
              if (wanted is None or link.name in wanted) and (not managed_only or link.managed)]
    chosen.sort(key=lambda link: link.name)
    chosen_indexes = set(link.index for link in chosen)

    ports = {}
    for link in links:
        if link.master_index is not None:
            ports.setdefault(link.master_index, []).append(link)

    taps = [link for link in links if link.is_tap
            and (wanted is None or link.master_index in chosen_indexes)
            and (not managed_only or link.managed)]
    taps.sort(key=lambda link: link.name)

    bridge_names = set(link.name for link in all_bridges)
    result = {
        'bridges': [shape_bridge(link, ports.get(link.index, ()), addrs.get(link.index, ())) for link in chosen],
        'taps': [shape_tap(link, names_by_index) for link in taps],
        'missing_bridges': sorted(name for name in (wanted or ()) if name not in bridge_names),
    }
    if include_all_links:
        every = sorted((link for link in links if not managed_only or link.managed), key=lambda link: link.name)
        result['links'] = [shape_link(link, names_by_index, addrs.get(link.index, ())) for link in every]
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            bridges=dict(type='list', elements='str'),
            include_all_links=dict(type='bool', default=False),
            managed_only=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)

    validator = Validator()
    bridges = module.params['bridges']
    if bridges is not None:
        for position, name in enumerate(bridges):
            validator.check(interface_name, 'bridges[%d]' % position, name)
    validator.fail_module(module)

    try:
        with NetlinkSession() as session:
            links = session.links()
            addresses = session.addresses()
    except NetlinkOperationError as exc:
        module.fail_json(msg=str(exc))

    result = shape_info(links, addresses, bridges=bridges,
                        include_all_links=module.params['include_all_links'],
                        managed_only=module.params['managed_only'])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
