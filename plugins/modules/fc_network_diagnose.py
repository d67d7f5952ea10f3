# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_diagnose
short_description: Tell what is wrong with a hypervisor's networks, in plain sentences, with what to do
version_added: 1.0.0
description:
  - Compares the networks a host should have (its C(fc_networks), or the registry's rows for it) with what the host
    has, the way the troubleshooting section of the NQRust networking guide does by hand, and returns every
    problem as a sentence with what to do about it, such as C(fcbr0 - bridge is down) with the fix
    C(ip link set fcbr0 up), or running the network role again.
  - For each network - the bridge exists, is a bridge and is up; it carries its address (C(gateway/prefix)) and
    MTU; the uplink (bridged - a port of the bridge; nat and routed - the given uplink or the default route's
    interface); VLAN filtering on for a network with a VLAN; the network's dnsmasq (configuration file and a running
    daemon or systemd unit) where DHCP or DNS is on; the collection's nftables table with exactly the rules the
    mode needs (NAT and forward rules for nat); IPv4 forwarding for nat and routed.
  - For each VM interface row of the registry on those networks (O(interfaces), or the C(interfaces) of
    O(registry_networks)) - the TAP exists, is on the network's bridge, is up and carries the network's VLAN.
  - Drift the other way - bridges and TAPs the collection made (they carry its interface alias) that no network or
    VM interface accounts for, and left-over nftables tables and dnsmasq configurations of the collection.
  - Reads the host once (one netlink dump per object kind, one C(nft -j list ruleset)); never changes anything, so
    it runs the same in check mode. The task never fails because of what it finds - the playbook decides (see
    C(playbooks/diagnose.yml) and its C(diagnose_fail_on_problems)).
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - pyroute2 (0.7 or later) on the managed host
  - the nft command (nftables) on the managed host, to check firewall tables
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only reads, so it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  networks:
    description:
      - The host's C(fc_networks) (the shape of docs/network-model.md, as the P(nqrust.microvm.registry#inventory)
        inventory plugin gives it, or written by hand).
      - Not given (C(null)) means the seed's default network (bridge C(fcbr0), NAT), as for the network role; an
        empty list means no networks.
      - Mutually exclusive with O(registry_networks).
    type: list
    elements: raw
  registry_networks:
    description:
      - The registry's networks of this host, as M(nqrust.microvm.fc_network_registry_info) returns them
        (C(bridge_name), C(mode), C(cidr)...); with C(include_interfaces=true) each carries its VM interfaces,
        which are then checked too.
      - When given, the host is compared with the registry and messages speak of the registry.
    type: list
    elements: dict
  interfaces:
    description:
      - VM interface rows of the registry (C(vm_id), C(iface_id), C(network_id), C(host_dev_name)), such as the
        C(interfaces) of M(nqrust.microvm.fc_network_registry_info).
      - Rows of networks that are not this host's are left alone.
      - When the interfaces are known (this option, or the C(interfaces) of O(registry_networks)), TAPs the
        collection made that no row names are reported.
    type: list
    elements: dict
  supervisor:
    description:
      - How the networks' dnsmasq are run, as for M(nqrust.microvm.fc_dnsmasq) - V(auto) is systemd where systemd
        runs (C(/run/systemd/system)), the pid file elsewhere.
    type: str
    choices: [auto, systemd, pidfile]
    default: auto
  config_dir:
    description: Where the networks' dnsmasq configuration files are (as for M(nqrust.microvm.fc_dnsmasq)).
    type: path
    default: /etc/nqrust-microvm/dnsmasq
  state_dir:
    description: Where the networks' dnsmasq lease files are.
    type: path
    default: /var/lib/nqrust-microvm/dnsmasq
  run_dir:
    description: Where the networks' dnsmasq pid files are.
    type: path
    default: /run/nqrust-microvm/dnsmasq
  unit_dir:
    description: Where the networks' dnsmasq systemd units are.
    type: path
    default: /etc/systemd/system
notes:
  - Bridges, TAPs, tables and dnsmasq instances the collection did not make (no marker) are never reported as drift.
  - A missing bridge is one problem; the checks that need the bridge are not made for it.
seealso:
  - module: nqrust.microvm.fc_network_info
  - module: nqrust.microvm.fc_network_registry_info
"""

EXAMPLES = r"""
- name: What is wrong with this host's networks (fc_networks from the registry inventory)
  nqrust.microvm.fc_network_diagnose:
    networks: "{{ fc_networks | default(omit) }}"
  register: diagnosis

- name: Say it
  ansible.builtin.debug:
    msg: "{{ diagnosis.problems | map(attribute='message') | list }}"

- name: Compare the host with the registry, VM interfaces included
  nqrust.microvm.fc_network_registry_info:
    host: "{{ inventory_hostname }}"
    include_interfaces: true
  delegate_to: localhost
  register: registry

- name: Diagnose against the registry
  nqrust.microvm.fc_network_diagnose:
    registry_networks: "{{ registry.networks }}"
  register: diagnosis

- name: Fail (red in AWX) when something is wrong
  ansible.builtin.assert:
    that: diagnosis.ok
    fail_msg: "{{ diagnosis.problems | map(attribute='message') | join('; ') }}"
"""

RETURN = r"""
ok:
  description: Whether no problem was found.
  returned: always
  type: bool
  sample: false
problems:
  description: The checks that failed, in a stable order (networks as given, then VM interfaces, then drift).
  returned: always
  type: list
  elements: dict
  contains:
    network:
      description: The network's display name (C(fc_networks[i]) for an invalid one), or null for drift.
      type: str
      sample: fcbr0 Network
    bridge:
      description: The bridge the problem is about, or null.
      type: str
      sample: fcbr0
    check:
      description:
        - Which check - V(network_spec), V(bridge), V(bridge_up), V(bridge_address), V(bridge_mtu), V(uplink),
          V(vlan_filtering), V(bridge_vlan), V(dhcp), V(firewall), V(forwarding), V(absent), V(tap), V(tap_vlan),
          V(unregistered_bridge), V(unregistered_tap), V(stray_firewall), V(stray_dhcp).
      type: str
      sample: bridge_up
    message:
      description: What is wrong, one sentence starting with the object.
      type: str
      sample: "fcbr0: bridge is down"
    fix:
      description: What to do about it.
      type: str
      sample: "run playbooks/site.yml (the network role) or `ip link set fcbr0 up`"
checks:
  description: Every check made, passed or not, with the keys of RV(problems) and C(ok); C(fix) is null when it passed.
  returned: always
  type: list
  elements: dict
  sample:
    - {network: fcbr0 Network, bridge: fcbr0, check: bridge_up, ok: true, message: "fcbr0: bridge is up", fix: null}
summary:
  description: One line - how many checks, how many problems.
  returned: always
  type: str
  sample: "12 checks, 1 problem"
source:
  description: Where the expected networks came from - V(registry) (O(registry_networks), or networks with a registry id) or V(inventory).
  returned: always
  type: str
  sample: registry
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils import diagnose_checks, diagnose_host, dnsmasq_service
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
    NetlinkSession,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftCli
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_networks import fc_network

DIR_OPTIONS = ('config_dir', 'state_dir', 'run_dir', 'unit_dir')


def expected(params):
    """``(items, interfaces, source)`` from the module's options."""
    rows = params['registry_networks']
    if rows is not None:
        items = [fc_network(row) for row in rows]
        interfaces = params['interfaces']
        if interfaces is None and any('interfaces' in row for row in rows):
            interfaces = [iface for row in rows for iface in (row.get('interfaces') or [])]
        return items, interfaces, 'registry'
    items = params['networks']
    from_registry = isinstance(items, list) and any(isinstance(item, dict) and item.get('registry_id') for item in items)
    return items, params['interfaces'], 'registry' if from_registry or params['interfaces'] is not None else 'inventory'


def summary(checks, problems):
    return '%d check%s, %d problem%s' % (len(checks), '' if len(checks) == 1 else 's',
                                         len(problems), '' if len(problems) == 1 else 's')


def needs_routes(items):
    nets, dummy = diagnose_checks.resolve(items)
    return any(net['mode'] in ('nat', 'routed') and not net['uplink'] for net in nets)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            networks=dict(type='list', elements='raw'),
            registry_networks=dict(type='list', elements='dict'),
            interfaces=dict(type='list', elements='dict'),
            supervisor=dict(type='str', choices=['auto', 'systemd', 'pidfile'], default='auto'),
            config_dir=dict(type='path', default='/etc/nqrust-microvm/dnsmasq'),
            state_dir=dict(type='path', default='/var/lib/nqrust-microvm/dnsmasq'),
            run_dir=dict(type='path', default='/run/nqrust-microvm/dnsmasq'),
            unit_dir=dict(type='path', default='/etc/systemd/system'),
        ),
        mutually_exclusive=[('networks', 'registry_networks')],
        supports_check_mode=True,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)

    items, interfaces, source = expected(module.params)
    nft_path = module.get_bin_path('nft')
    supervisor = dnsmasq_service.resolve_supervisor(module.params['supervisor'])
    dirs = dict((key, module.params[key]) for key in DIR_OPTIONS)

    def run_command(argv):
        return module.run_command(argv, environ_update={'LC_ALL': 'C'})

    try:
        with NetlinkSession() as session:
            host = diagnose_host.read_host(
                session, NftCli(nft_path) if nft_path else None, diagnose_checks.bridges_to_read(items), dirs, supervisor,
                need_routes=needs_routes(items), need_vlans=diagnose_checks.vlans_needed(items),
                run_command=run_command if supervisor == 'systemd' else None)
    except NetlinkOperationError as exc:
        module.fail_json(msg=str(exc))

    checks = diagnose_checks.diagnose(items, interfaces, host, source)
    problems = diagnose_checks.problems_of(checks)
    module.exit_json(changed=False, ok=not problems, problems=problems, checks=checks, source=source,
                     summary=summary(checks, problems))


if __name__ == '__main__':
    main()
