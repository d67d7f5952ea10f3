# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_firewall
short_description: Firewall (nftables) and IP forwarding of one Firecracker network
version_added: 1.0.0
description:
  - Applies the firewall rules of one network (one Linux bridge) so that its mode keeps its promise, with nftables only.
  - V(nat) - guests reach the outside through the uplinks, masqueraded; nothing outside can open a connection to a guest
    (only replies come back in).
  - V(routed) - no NAT; forwarding between the network and the uplinks both ways, for the network's addresses.
  - V(isolated) - guests reach each other and the host (DHCP, DNS to the gateway); nothing is forwarded in or out.
  - V(bridged) - the uplink is a port of the bridge and guests are on its LAN; nothing is routed, so the network
    needs no rules of its own (only the check for other firewalls in the way).
  - V(open) - the collection adds no filtering; the module makes sure it has no rules for the network.
  - Traffic between two networks of the collection is refused (each network refuses what its mode does not
    promise, and a drop in any table is final).
  - Each network with rules has its own table C(inet nqrust_microvm_fw_<bridge>); a run replaces only that table, in one
    atomic C(nft -j -f) transaction, and never flushes or edits another table (the one exception is
    O(coexistence=allow)).
  - IP forwarding (C(net.ipv4.ip_forward), and C(net.ipv6.conf.all.forwarding) with O(ipv6_cidr)) is turned on where the
    mode routes (V(nat), V(routed)), after the rules are in place. It is never turned off, also not with O(state=absent),
    because other networks, containers or the host's own routing may need it.
  - Another firewall that would silently drop the network's forwarded traffic (a base chain on the forward hook with policy
    drop or an unconditional drop, such as Docker's C(ip filter FORWARD) or firewalld's C(filter_FORWARD)) makes the module
    fail before it changes anything, saying what is in the way and how to resolve it; see O(coexistence).
  - Validates every parameter before touching the host, reads the host once, and reports exactly in check mode what the
    real run does (check mode runs the transaction through C(nft --check)).
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - nftables (the C(nft) command, 0.9.3 or later, with JSON support) and a kernel with nf_tables, inet NAT and masquerade
  - pyroute2 (0.7 or later) on the managed host
  - root or the CAP_NET_ADMIN capability
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  bridge:
    description:
      - The network's Linux bridge, 1 to 15 bytes. It names the network's table (C(inet nqrust_microvm_fw_<bridge>)).
      - With O(state=present) it must exist and be a bridge.
    type: str
    required: true
  name:
    description:
      - The network's display name (the registry's C(network.name)), used in messages and the result.
      - Defaults to O(bridge).
    type: str
  mode:
    description:
      - The network's mode (see the description).
    type: str
    choices: [nat, routed, isolated, bridged, open]
    default: nat
  cidr:
    description:
      - The network's IPv4 network with the host bits zero, for example V(192.168.18.0/24).
      - V(nat) and V(routed) need O(cidr) or O(ipv6_cidr) (or both); only the network's addresses are forwarded and
        masqueraded. Traffic of a family without a CIDR is refused.
    type: str
  ipv6_cidr:
    description:
      - The network's IPv6 network with the host bits zero, for example V(fd00:18::/64).
      - In V(nat) mode it is masqueraded too; IPv6 forwarding is turned on for it.
    type: str
  uplinks:
    description:
      - V(nat) and V(routed) - the interfaces towards the outside. When omitted, the interfaces of the host's default routes
        (of the families of O(cidr) and O(ipv6_cidr)), read over netlink; the module fails when there is none.
      - V(bridged) - optional; each must be a port of the bridge (checked, not changed).
      - Ignored in V(isolated) and V(open) mode.
    type: list
    elements: str
    aliases: [uplink]
  state:
    description:
      - V(present) makes the network's rules match O(mode).
      - V(absent) removes the network's table and the accept rules O(coexistence=allow) added, and nothing else;
        IP forwarding stays as it is.
    type: str
    choices: [present, absent]
    default: present
  coexistence:
    description:
      - What to do when another firewall would silently drop the network's forwarded traffic.
      - V(fail) - fail before changing anything, naming the family, table, chain and policy or rule in the way and how to
        resolve it. Accept rules that an earlier run with V(allow) added are removed when nothing is in the way any more.
      - V(allow) - add two accept rules for the bridge (C(iifname "<bridge>" accept), C(oifname "<bridge>" accept)), with the
        comment C(nqrust.microvm pass <bridge>), at the top of each blocking chain, or of its C(DOCKER-USER) chain when the
        chain jumps there first. Only the collection's own table still decides what the mode lets through. They are
        removed again with O(state=absent), O(mode=open), or when the blocking chain is gone. This is the one case in
        which the module edits a table that is not the collection's. Bridge-family chains cannot be handled this way.
    type: str
    choices: [fail, allow]
    default: fail
  bridge_pending:
    description:
      - Only has an effect in check mode. Says that an earlier task of the same run creates the bridge
        (or gives it its address), as the C(nqrust.microvm.network) role does, so the checks that need the
        bridge as it will be are skipped and the plan is made as the real run will make it.
      - Ignored in a real run, where a missing bridge always fails the task.
    type: bool
    default: false
notes:
  - Frames between guests of one bridge are not routed, but with br_netfilter loaded (C(net.bridge.bridge-nf-call-iptables=1),
    as Docker does) they pass the IP forward hook with the bridge as input and output interface; every table accepts them.
  - The check for other firewalls looks at base chains on the forward hook of the families the network uses. Rules that match
    on more than the bridge are not judged. The input hook (DHCP and DNS to the host) is not checked.
  - Turning on IPv6 forwarding stops the kernel from accepting router advertisements on interfaces with C(accept_ra=1);
    a host that learns its IPv6 default route by SLAAC needs C(accept_ra=2) on its uplink.
seealso:
  - module: nqrust.microvm.fc_bridge
  - name: nftables wiki
    description: The nftables documentation, including its JSON format (libnftables-json).
    link: https://wiki.nftables.org/
"""

EXAMPLES = r"""
- name: The default NAT network, out through the interface of the default route
  nqrust.microvm.fc_firewall:
    name: fcbr0 Network
    bridge: fcbr0
    mode: nat
    cidr: 192.168.18.0/24

- name: A routed network with IPv4 and IPv6, forwarded to and from eth1
  nqrust.microvm.fc_firewall:
    bridge: fcbr1
    mode: routed
    cidr: 10.20.0.0/24
    ipv6_cidr: fd00:20::/64
    uplinks: [eth1]

- name: An isolated network
  nqrust.microvm.fc_firewall:
    bridge: fcbr2
    mode: isolated

- name: NAT on a Docker host, letting the network's traffic through Docker's FORWARD chain
  nqrust.microvm.fc_firewall:
    bridge: fcbr0
    cidr: 192.168.18.0/24
    coexistence: allow
  register: fw

- name: Show the rules
  ansible.builtin.debug:
    var: fw.firewall.rules

- name: Remove the network's rules
  nqrust.microvm.fc_firewall:
    bridge: fcbr1
    state: absent
"""

RETURN = r"""
firewall:
  description:
    - The network's firewall as it now is (in check mode, as it will be).
  returned: always
  type: dict
  contains:
    name:
      description: The network's name.
      type: str
      sample: fcbr0 Network
    bridge:
      description: The bridge.
      type: str
      sample: fcbr0
    mode:
      description: The mode asked for.
      type: str
      sample: nat
    state:
      description: The state asked for.
      type: str
      sample: present
    table:
      description: The network's nftables table (C(family name)), or null when it has none.
      type: str
      sample: inet nqrust_microvm_fw_fcbr0
    uplinks:
      description: The uplinks the rules use (given, or the interfaces of the default routes).
      type: list
      elements: str
      sample: [eth0]
    rules:
      description: The table's chains, each with its hook line and its rules in C(nft list) words, in order.
      type: dict
      sample:
        forward:
          hook: type filter hook forward priority 0; policy accept
          rules:
            - iifname "fcbr0" oifname "fcbr0" accept comment "nqrust.microvm nat: within the network"
    nftables:
      description:
        - The table, its chains and rules as C(nft -j list) objects (with handles, except in check mode).
      type: list
      elements: dict
    pass_rules:
      description: The accept rules that O(coexistence=allow) keeps in other firewalls' chains.
      type: list
      elements: dict
      sample: [{"chain": "ip filter DOCKER-USER", "rule": "iifname \"fcbr0\" accept comment \"nqrust.microvm pass fcbr0\""}]
    forwarding:
      description: Whether IPv4 and IPv6 forwarding are on, by sysctl name.
      type: dict
      sample: {"net.ipv4.ip_forward": true, "net.ipv6.conf.all.forwarding": false}
    blockers:
      description: Other firewalls' chains found in the way (with O(coexistence=allow), the ones the pass rules are for).
      type: list
      elements: dict
      sample: [{"family": "ip", "table": "filter", "chain": "FORWARD", "hook": "forward", "priority": 0,
                "policy": "drop", "reason": "policy drop", "pass_chain": "ip filter DOCKER-USER"}]
changes:
  description: The changes made (or, in check mode, that would be made), in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: What is done (C(create), C(replace), C(delete), C(add), C(remove), C(enable)).
      type: str
      sample: create
    kind:
      description: What it is done to (C(table), C(rule), C(sysctl)).
      type: str
      sample: table
    target:
      description: The object (the table, the chain and rule, the sysctl).
      type: str
      sample: inet nqrust_microvm_fw_fcbr0
    phase:
      description: The plan phase.
      type: str
      sample: create
    details:
      description: The rules of a table, before and after of a replaced table, the chain and rule of an added or removed rule.
      type: dict
    description:
      description: The change in words.
      type: str
      sample: "create table 'inet nqrust_microvm_fw_fcbr0' (mode nat, 7 rules)"
failed_change:
  description: The change that failed, when a step of the plan failed (the steps before it were undone).
  returned: failure of a plan step
  type: dict
rolled_back:
  description: Whether the steps applied before a failed step were undone.
  returned: failure of a plan step
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils.converge import converge
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall import (
    OPERATIONAL_ERRORS,
    FirewallSession,
    FirewallTask,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.sysctl import SysctlError
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftCli, NftError


def argument_spec():
    return dict(
        bridge=dict(type='str', required=True),
        name=dict(type='str'),
        mode=dict(type='str', choices=['nat', 'routed', 'isolated', 'bridged', 'open'], default='nat'),
        cidr=dict(type='str'),
        ipv6_cidr=dict(type='str'),
        uplinks=dict(type='list', elements='str', aliases=['uplink']),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        coexistence=dict(type='str', choices=['fail', 'allow'], default='fail'),
        bridge_pending=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)
    nft_path = module.get_bin_path('nft', required=True)
    task = FirewallTask(dict(module.params, bridge_pending=module.params['bridge_pending'] and module.check_mode))
    result = converge(module, task.validate, task.read, task.plan, task.handlers,
                      after=task.after, view=task.view, report=task.report,
                      session_factory=lambda: FirewallSession(NftCli(nft_path)),
                      operational_errors=(NetlinkOperationError, NftError, SysctlError) + OPERATIONAL_ERRORS)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
