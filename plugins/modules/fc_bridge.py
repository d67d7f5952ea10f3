# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_bridge
short_description: Manage a Linux bridge for Firecracker microVMs
version_added: 1.0.0
description:
  - Creates, tunes and deletes a Linux bridge (such as C(fcbr0)) on a Firecracker host, with its IP addresses,
    its MAC, its MTU and queue length, and its STP, multicast snooping and VLAN settings.
  - In bridged mode (O(uplink)), the uplink becomes a port of the bridge and its IP addresses and routes
    (the default route included) move to the bridge in the same run, so a host reached over the uplink stays reachable.
    If the move fails half way, it is undone.
  - Validates every parameter before touching the host, reads the host once over netlink, and applies a plan
    in a fixed order; if a step fails, the steps before it are undone.
    Check mode reports exactly the changes and diff of the real run.
  - Never touches a device of that name that is not a bridge. Bridges it creates carry the
    C(nqrust.microvm) interface alias.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - pyroute2 (0.7 or later) on the managed host
  - root or the CAP_NET_ADMIN capability
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  name:
    description:
      - Name of the bridge, 1 to 15 bytes, without C(/), C(:) or whitespace.
    type: str
    required: true
  state:
    description:
      - V(present) creates the bridge or brings it to the given settings, and brings it up.
      - V(absent) deletes it. A bridge that still has ports is deleted only with O(force=true);
        with O(uplink), its addresses and routes first go back to the uplink.
    type: str
    choices: [present, absent]
    default: present
  addresses:
    description:
      - The IPv4 and IPv6 addresses of the bridge, with prefix length (V(10.0.0.1/24), V(fd00::1/64)).
      - The list is exact; addresses not listed are removed. Link-local IPv6 addresses, which the kernel
        manages, are left alone.
      - When omitted, the bridge's addresses are not managed.
      - With O(uplink), the list must include every address of the uplink (they move to the bridge);
        omit it to move the uplink's addresses as they are.
    type: list
    elements: str
  mtu:
    description:
      - MTU of the bridge, 68 to 65535 (at least 1280 when the bridge has IPv6 addresses).
      - When omitted, the kernel sets the bridge's MTU to the smallest of its ports.
    type: int
  mac:
    description:
      - MAC address of the bridge, unicast, such as V(02:fc:00:00:00:01).
      - When omitted, the bridge gets a stable MAC. In bridged mode that is the uplink's MAC; otherwise a locally
        administered MAC derived from the bridge name and the host's machine id, so that deleting and
        re-creating the bridge gives the same MAC. Either way the MAC does not change when ports come and go.
    type: str
  stp:
    description:
      - Whether the bridge runs the spanning tree protocol.
      - With STP, a new port forwards only after twice O(forward_delay); in bridged mode the host
        is unreachable for that long while the uplink joins.
    type: bool
  forward_delay:
    description:
      - Forward delay in seconds, 0 to 30 in steps of 0.01 (2 to 30 while STP runs).
    type: float
  vlan_filtering:
    description:
      - Whether the bridge filters by 802.1Q VLAN. Needs a kernel with bridge VLAN filtering; on other kernels
        V(true) fails with a message saying so.
    type: bool
  vlan_default_pvid:
    description:
      - The VLAN new ports get as untagged PVID, 1 to 4094, or 0 for none. Needs a kernel with bridge VLAN filtering.
    type: int
  multicast_snooping:
    description:
      - Whether the bridge snoops IGMP/MLD to forward multicast only to interested ports.
    type: bool
  txqueuelen:
    description:
      - Transmit queue length of the bridge, 0 to 4294967295.
    type: int
  uplink:
    description:
      - Bridged mode. The existing Ethernet link (for example V(eth0)) that becomes a port of the bridge,
        so that guests are on the uplink's network.
      - Its IP addresses (not link-local) and its routes (not the ones the kernel makes or learns itself)
        move to the bridge. Multipath routes and routes using nexthop objects through it are refused.
      - It must not be the bridge, another bridge, the loopback, or a port of another bridge.
      - With O(state=absent), the bridge's addresses and routes go back to the uplink before the bridge is deleted.
    type: str
  force:
    description:
      - With O(state=absent), delete the bridge even if it still has ports (they are detached, not deleted).
    type: bool
    default: false
notes:
  - Settings that are not given are left as they are (on a new bridge, as the kernel makes them); only the MAC
    is always set.
  - Routes keep their table, metric, gateway, protocol, scope, source and onlink flag when they move;
    route metrics such as a per-route MTU do not move.
  - A DHCP client that configured the uplink must be pointed at the bridge afterwards.
seealso:
  - module: nqrust.microvm.fc_network_info
  - name: Linux bridge
    description: The kernel's documentation of the bridge driver.
    link: https://docs.kernel.org/networking/bridge.html
"""

EXAMPLES = r"""
- name: The default NAT network's bridge
  nqrust.microvm.fc_bridge:
    name: fcbr0
    addresses:
      - 192.168.18.240/24
    stp: false
    forward_delay: 0
    multicast_snooping: false
    txqueuelen: 10000

- name: Bridged mode, moving eth0's addresses and default route to the bridge
  nqrust.microvm.fc_bridge:
    name: fcbr1
    uplink: eth0
  register: fcbr1

- name: Show the bridge as it now is
  ansible.builtin.debug:
    msg: "{{ fcbr1.bridge.addresses }} on {{ fcbr1.bridge.mac }}, ports {{ fcbr1.bridge.ports }}"

- name: A VLAN-aware bridge (needs a kernel with bridge VLAN filtering)
  nqrust.microvm.fc_bridge:
    name: fcbr2
    vlan_filtering: true
    vlan_default_pvid: 1
    mtu: 9000

- name: Leave bridged mode, handing the addresses and routes back to eth0
  nqrust.microvm.fc_bridge:
    name: fcbr1
    uplink: eth0
    state: absent

- name: Delete a bridge and detach the TAPs still on it
  nqrust.microvm.fc_bridge:
    name: fcbr2
    state: absent
    force: true
"""

RETURN = r"""
bridge:
  description:
    - The bridge as it now is (in check mode, as it would be), or null when it does not exist.
  returned: always
  type: dict
  contains:
    name:
      description: Interface name.
      type: str
      sample: fcbr0
    ifindex:
      description: Interface index (null in check mode for a bridge still to be created).
      type: int
      sample: 4
    mac:
      description: MAC address, lower case.
      type: str
      sample: 6a:0f:5d:21:9c:3e
    mtu:
      description: MTU in bytes.
      type: int
      sample: 1500
    txqueuelen:
      description: Transmit queue length.
      type: int
      sample: 1000
    up:
      description: Whether the bridge is administratively up.
      type: bool
      sample: true
    operstate:
      description: Operational state reported by the kernel (C(UP), C(DOWN) while it has no working port...).
      type: str
      sample: UP
    alias:
      description: The interface alias (ifalias), or null.
      type: str
      sample: nqrust.microvm
    managed:
      description: Whether the collection created this bridge.
      type: bool
      sample: true
    addresses:
      description: IP addresses in CIDR notation, IPv4 first, without link-local IPv6 addresses.
      type: list
      elements: str
      sample: ["192.168.18.240/24"]
    ports:
      description: Names of the links attached to the bridge, sorted.
      type: list
      elements: str
      sample: ["eth0", "tap-1a2b3c4d"]
    uplink:
      description: The uplink, when O(uplink) is a port of the bridge; otherwise null.
      type: str
      sample: eth0
    stp:
      description: Whether STP runs; null if the kernel does not report it.
      type: bool
      sample: false
    forward_delay:
      description: Forward delay in seconds.
      type: float
      sample: 0
    multicast_snooping:
      description: Whether multicast snooping is on.
      type: bool
      sample: false
    vlan_filtering:
      description: Whether VLAN filtering is on.
      type: bool
      sample: false
    vlan_default_pvid:
      description: Default PVID of new ports; null on kernels without bridge VLAN filtering.
      type: int
      sample: 1
    routes:
      description: The routes leaving by the bridge that are not the kernel's own, in C(ip route) words.
      returned: when O(uplink) is set
      type: list
      elements: str
      sample: ["default via 192.0.2.1"]
changes:
  description: The changes made (or, in check mode, that would be made), in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: What is done (C(create), C(update), C(add), C(remove), C(up), C(migrate), C(release), C(delete)).
      type: str
      sample: create
    kind:
      description: What it is done to (C(bridge), C(address), C(uplink)).
      type: str
      sample: bridge
    target:
      description: The object's name (the bridge, the address, the uplink).
      type: str
      sample: fcbr0
    phase:
      description: The plan phase (C(create), C(attach), C(address), C(up)).
      type: str
      sample: create
    details:
      description: What the step needs; for C(update), C(before) and C(after) of each changed setting.
      type: dict
      sample: {"before": {"mtu": 1500}, "after": {"mtu": 9000}}
    description:
      description: The change in words.
      type: str
      sample: "update bridge 'fcbr0' (mtu: 1500 -> 9000)"
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

from ansible_collections.nqrust.microvm.plugins.module_utils.bridge import BridgeTask
from ansible_collections.nqrust.microvm.plugins.module_utils.converge import converge
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
    NetlinkSession,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors


def argument_spec():
    return dict(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        addresses=dict(type='list', elements='str'),
        mtu=dict(type='int'),
        mac=dict(type='str'),
        stp=dict(type='bool'),
        forward_delay=dict(type='float'),
        vlan_filtering=dict(type='bool'),
        vlan_default_pvid=dict(type='int'),
        multicast_snooping=dict(type='bool'),
        txqueuelen=dict(type='int'),
        uplink=dict(type='str'),
        force=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)
    task = BridgeTask(module.params)
    result = converge(module, task.validate, task.read, task.plan, task.handlers,
                      after=task.after, view=task.view, report=task.report, session_factory=NetlinkSession,
                      operational_errors=(NetlinkOperationError, ValidationErrors))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
