# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_tap
short_description: Manage the TAP devices of Firecracker microVMs, one or a thousand per call
version_added: 1.0.0
description:
  - Creates, changes and removes persistent TAP devices, the host side of a Firecracker VM's network
    interfaces, and attaches them to Linux bridges.
  - Manages one TAP (O(name) or O(vm_id)) or many in one call (O(taps)); one call with a list is much faster than
    a loop, because the host is read once and new TAPs are set up in batches (a thousand in about the time
    C(ip -batch) takes).
  - Per TAP it sets the bridge, the access VLAN and trunk VLANs of the bridge port, the MTU (by default the
    bridge's), the user and group that may open it (the Firecracker jailer's), multi-queue, C(vnet_hdr) and
    bridge-port isolation, and brings it up.
  - A TAP can be named after its VM; O(taps[].vm_id) and O(taps[].iface_id) give a stable 15-byte name and a
    stable guest MAC (the same as the P(nqrust.microvm.tap_name#filter) and P(nqrust.microvm.guest_mac#filter) filters).
  - TAPs the module creates carry the collection's marker in their interface alias; O(purge) removes only
    marked TAPs, never anything else.
  - Access and trunk VLANs are planned and applied as M(nqrust.microvm.fc_vlan) does it for any bridge port,
    so the changes it reports are the same (C(remove VLAN 1 from port ...), C(add VLAN 100 (pvid, untagged) ...)).
  - Everything is checked before the host is touched, including what depends on the host (the bridge exists
    and is a bridge, no other kind of link has the name, VLAN filtering is available); if a step fails midway,
    what this run did is undone (TAPs it removed are made again) and the error names the TAP and the step.
  - Check mode reports exactly the changes and diff that the real run then makes.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - Linux with TUN/TAP (C(/dev/net/tun)); root or C(CAP_NET_ADMIN) to make changes.
  - Talks to the kernel directly over rtnetlink and the TUN/TAP ioctls; needs no Python library beyond the standard
    one (not pyroute2, unlike the collection's other network modules).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  name:
    description:
      - Name of a single TAP to manage (1 to 15 bytes).
      - Mutually exclusive with O(taps). Instead of a name, O(vm_id) derives one.
    type: str
  vm_id:
    description:
      - VM id (normally its UUID) of a single TAP; the TAP name is derived from it and O(iface_id)
        unless O(name) is given, and so is the guest MAC unless O(guest_mac) is given.
      - Mutually exclusive with O(taps).
    type: str
  iface_id:
    description:
      - Firecracker network interface id of the TAP's VM NIC.
      - Part of the derived name and guest MAC, and returned in the Firecracker object.
      - The default for O(taps[].iface_id). When neither is set, V(eth0).
    type: str
  guest_mac:
    description:
      - MAC address of the VM's NIC, returned in the Firecracker object. Derived from O(vm_id) when not given.
      - Mutually exclusive with O(taps).
    type: str
  taps:
    description:
      - Many TAPs in one call. Each entry takes the per-TAP options below; an option an entry does not set
        takes the value of the module's top-level option of the same name (for example one O(bridge) for all).
      - Mutually exclusive with O(name), O(vm_id) and O(guest_mac).
      - With O(purge=true) an empty list removes every TAP the collection made.
    type: list
    elements: dict
    suboptions:
      name:
        description: TAP name; derived from O(taps[].vm_id) and O(taps[].iface_id) when not given.
        type: str
      vm_id:
        description: VM id (normally its UUID); gives the name and guest MAC when those are not set.
        type: str
      iface_id:
        description: Firecracker network interface id (default from O(iface_id), else V(eth0)).
        type: str
      guest_mac:
        description: Guest MAC for the Firecracker object; derived from O(taps[].vm_id) when not given.
        type: str
      state:
        description: V(present) or V(absent) (default from O(state)).
        type: str
        choices: [present, absent]
      bridge:
        description: Bridge to attach the TAP to (default from O(bridge)).
        type: str
      mtu:
        description: MTU (default from O(mtu), else the bridge's MTU).
        type: int
      vlan:
        description: Access VLAN (untagged, PVID) of the bridge port (default from O(vlan)).
        type: int
      trunk_vlans:
        description: Tagged VLANs of the bridge port (default from O(trunk_vlans)).
        type: list
        elements: raw
      owner:
        description: User allowed to open the TAP (default from O(owner)).
        type: raw
      group:
        description: Group allowed to open the TAP (default from O(group)).
        type: raw
      multi_queue:
        description: Multi-queue TAP (default from O(multi_queue)).
        type: bool
      vnet_hdr:
        description: C(IFF_VNET_HDR) flag (default from O(vnet_hdr)).
        type: bool
      isolated:
        description: Bridge-port isolation (default from O(isolated)).
        type: bool
  state:
    description:
      - V(present) creates or updates the TAP, V(absent) removes it if it exists (whether or not the collection
        made it, as long as it is a TAP).
    type: str
    choices: [present, absent]
    default: present
  bridge:
    description:
      - Bridge the TAP is attached to (moved to, if it is on another one), and brought up with. The bridge must exist.
      - When not set, the TAP's bridge is left as it is.
    type: str
  mtu:
    description:
      - MTU of the TAP, 68 to 65521 (the largest MTU a TAP takes).
      - When not set, the MTU of O(bridge); with no bridge either, the MTU is left as it is (1500 for new TAPs).
    type: int
  vlan:
    description:
      - Access VLAN 1 to 4094 of the bridge port, untagged and the port's PVID.
      - Needs O(bridge) with VLAN filtering on, and a kernel that has it; the module fails with a clear message
        otherwise, before changing anything.
      - With O(vlan) or O(trunk_vlans) set, the port is in exactly these VLANs (others, such as the default VLAN 1,
        are removed). When neither is set, the port's VLANs are left as they are.
    type: int
  trunk_vlans:
    description:
      - Tagged VLANs of the bridge port, as ids and V(START-END) ranges (for example V([100, "200-210"])).
      - Must not contain O(vlan). Same requirements as O(vlan).
    type: list
    elements: raw
  owner:
    description:
      - User (name or uid) that may open the TAP without C(CAP_NET_ADMIN), normally the uid the Firecracker
        jailer runs the VMM as.
      - The kernel cannot remove an owner once set, only change it. Left as it is when not set.
    type: raw
  group:
    description:
      - Group (name or gid) whose members may open the TAP, normally the jailer's gid. Left as it is when not set.
    type: raw
  multi_queue:
    description:
      - Make a multi-queue TAP (C(IFF_MULTI_QUEUE)). A VMM must open it with the same setting.
      - Changing it on an existing TAP re-creates the TAP (only when no VMM has it open; otherwise it is left
        and a warning says so). Left as it is when not set (new TAPs are single-queue).
    type: bool
  vnet_hdr:
    description:
      - Set the TAP's C(IFF_VNET_HDR) flag. A VMM that opens the TAP sets the flags it needs itself
        (Firecracker turns this on), so normally leave it unset.
    type: bool
  isolated:
    description:
      - Bridge-port isolation; isolated ports cannot talk to each other, only to non-isolated ports
        (for example the uplink or the bridge itself). Left as it is when not set.
    type: bool
  purge:
    description:
      - Remove every TAP the collection made (its interface alias carries the C(nqrust.microvm) marker) that is not
        listed in this call. TAPs made by anything else are never removed.
      - Give the complete list of the host's TAPs when you use it.
    type: bool
    default: false
  name_prefix:
    description:
      - Prefix of names derived from O(vm_id) (0 to 7 bytes); the rest of the 15 bytes are hex digits of the hash.
    type: str
    default: tap-
notes:
  - The host is read with one netlink dump (and one bridge VLAN dump when VLANs are involved). TAPs are created with
    the C(/dev/net/tun) ioctls; new TAPs are then set up with pipelined netlink requests, everything else one
    request at a time.
  - A Linux bridge takes at most 1023 ports; a TAP that would be one more fails the task (and the run is undone).
  - Unless the bridge's MTU was set explicitly, the kernel lowers it to its smallest port's; a TAP given a smaller
    O(mtu) than its bridge's therefore lowers the bridge's MTU (a warning says so), and TAPs that take the bridge's
    MTU follow on the next run.
  - The owner, group, C(vnet_hdr) and multi-queue setting of a TAP that a VMM has open cannot be changed; they are
    left and a warning says so.
  - A host-wide lock keeps two runs of the collection's modules from changing the same host at once.
seealso:
  - module: nqrust.microvm.fc_bridge
  - module: nqrust.microvm.fc_vlan
  - plugin: nqrust.microvm.tap_name
    plugin_type: filter
  - plugin: nqrust.microvm.guest_mac
    plugin_type: filter
  - name: Firecracker network setup
    description: How Firecracker uses TAP devices.
    link: https://github.com/firecracker-microvm/firecracker/blob/main/docs/network-setup.md
"""

EXAMPLES = r"""
- name: One TAP for a VM on the default bridge, owned by the jailer's user
  nqrust.microvm.fc_tap:
    vm_id: 6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01
    bridge: fcbr0
    owner: 10001
    group: 10001
  register: tap

- name: Pass the result to Firecracker's network-interfaces
  ansible.builtin.debug:
    msg: "{{ tap.network_interfaces[0] }}"

- name: Every NIC of every VM on this host in one call, removing TAPs of VMs that are gone
  nqrust.microvm.fc_tap:
    bridge: fcbr0
    owner: 10001
    taps: "{{ vm_nics }}"
    purge: true
  vars:
    vm_nics:
      - vm_id: 6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01
      - vm_id: 6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01
        iface_id: eth1
        bridge: fcbr1
      - vm_id: 0b9d6a4e-2f3c-4d5e-8a7b-1c2d3e4f5a6b

- name: Tenant VMs on VLAN 10 of a VLAN-filtering bridge, isolated from each other
  nqrust.microvm.fc_tap:
    bridge: fcbr0
    vlan: 10
    isolated: true
    taps:
      - name: tap-tenant-a
      - name: tap-tenant-b

- name: A router VM with a trunk port
  nqrust.microvm.fc_tap:
    name: tap-router
    bridge: fcbr0
    trunk_vlans: [10, 20, "100-110"]

- name: Remove one TAP
  nqrust.microvm.fc_tap:
    name: tap-old
    state: absent
"""

RETURN = r"""
network_interfaces:
  description:
    - The Firecracker network-interface object of every present TAP, in the order of the request, ready for
      Firecracker's C(network-interfaces) (and the registry's C(vm_network_interface) rows).
  returned: always
  type: list
  elements: dict
  contains:
    iface_id:
      description: The interface id in the VM.
      type: str
      sample: eth0
    host_dev_name:
      description: The TAP's name (given, or derived from the VM id).
      type: str
      sample: tap-a29c028a4ef
    guest_mac:
      description: The guest MAC, when known (given, or derived from the VM id).
      type: str
      returned: when known
      sample: aa:fc:a2:9c:02:8a
    mtu:
      description: The TAP's MTU, when it is not 1500.
      type: int
      returned: when not 1500
      sample: 9000
  sample:
    - iface_id: eth0
      host_dev_name: tap-a29c028a4ef
      guest_mac: aa:fc:a2:9c:02:8a
removed:
  description: Names of the TAPs removed (O(state=absent) and O(purge)), or that check mode would remove.
  returned: always
  type: list
  elements: str
  sample: [tap-0b9d6a4e2f3]
changes:
  description: The steps taken (or, in check mode, that would be taken), in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(create), V(update), V(attach), V(up) or V(delete) for TAPs, V(update) for ports,
        V(add), V(update) or V(remove) for port VLANs.
      type: str
    kind:
      description: V(tap), V(port) (bridge-port isolation) or V(port_vlan) (the VLANs of the bridge port, as
        M(nqrust.microvm.fc_vlan) reports them).
      type: str
    target:
      description: TAP name.
      type: str
    phase:
      description: When the step runs (V(create), V(attach), V(vlan), V(up)).
      type: str
    details:
      description: What the step sets; updates have C(before) and C(after).
      type: dict
    description:
      description: The step in words.
      type: str
      sample: "attach tap 'tap-a29c028a4ef' (bridge: br1 -> fcbr0)"
diff:
  description: The TAPs concerned before and after, as readable text (with C(--diff)).
  returned: when diff mode is on
  type: dict
"""

import grp
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils.host_lock import HostLock, HostLockError, HostLockTimeout
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import PlanApplyError, build_result
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_socket import RtnlError, RtnlSocket
from ansible_collections.nqrust.microvm.plugins.module_utils.tap import TapDevices
from ansible_collections.nqrust.microvm.plugins.module_utils.tap_apply import apply_tap_changes
from ansible_collections.nqrust.microvm.plugins.module_utils.tap_plan import (
    build_request,
    check_host,
    network_interfaces,
    plan_taps,
    read_host,
    removed_names,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator, ValidationErrors

# the options of one TAP: top-level (one TAP, or the defaults of the entries of taps) and in taps
TAP_OPTIONS = dict(
    name=dict(type='str'),
    vm_id=dict(type='str'),
    iface_id=dict(type='str'),
    guest_mac=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent']),
    bridge=dict(type='str'),
    mtu=dict(type='int'),
    vlan=dict(type='int'),
    trunk_vlans=dict(type='list', elements='raw'),
    owner=dict(type='raw'),
    group=dict(type='raw'),
    multi_queue=dict(type='bool'),
    vnet_hdr=dict(type='bool'),
    isolated=dict(type='bool'),
)

ARGUMENT_SPEC = dict(
    TAP_OPTIONS,
    taps=dict(type='list', elements='dict', options=TAP_OPTIONS),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    purge=dict(type='bool', default=False),
    name_prefix=dict(type='str', default='tap-'),
)


def lookup_user(name):
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def lookup_group(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def converge_taps(module, request):
    """Steps 2 to 5 of the module contract under the host lock: read, check, plan, apply (unless check mode), report.

    The steps of ``converge.converge``, run here because that one imports ``netlink`` and so
    pyroute2 (0.25-0.3 s per run), which fc_tap does not use.
    """
    with HostLock():
        with RtnlSocket() as rtnl:
            host = read_host(rtnl, request)
            problems = check_host(request, host)
            if problems:
                raise ValidationErrors(problems)
            want_diff = bool(getattr(module, '_diff', False))
            plan = plan_taps(request, host, views=want_diff)
            for warning in plan.warnings:
                module.warn(warning)
            if plan.changes and not module.check_mode:
                with TapDevices() as devices:
                    apply_tap_changes(plan.changes, rtnl, devices, host)
    # the diff of a thousand TAPs is made only when it is shown
    result = build_result(plan.changes, plan.before if want_diff else {}, plan.after if want_diff else {},
                          network_interfaces=network_interfaces(request, plan), removed=removed_names(plan))
    if not want_diff:
        del result['diff']
    return result


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[('taps', 'name'), ('taps', 'vm_id'), ('taps', 'guest_mac')],
        required_one_of=[('name', 'vm_id', 'taps')],
        supports_check_mode=True,
    )
    validator = Validator()
    request = build_request(validator, module.params, lookup_user, lookup_group)
    validator.fail_module(module)
    try:
        result = converge_taps(module, request)
    except ValidationErrors as exc:
        module.fail_json(msg=exc.message, validation_errors=exc.messages)
    except PlanApplyError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.applied) and not exc.rolled_back, **exc.to_result())
    except (HostLockTimeout, HostLockError, RtnlError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
