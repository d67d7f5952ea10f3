# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_vlan
short_description: Bridge-port VLAN membership and 802.1Q sub-interfaces of a Firecracker host
version_added: 1.0.0
description:
  - Sets which VLANs the ports of a VLAN-filtering Linux bridge carry (TAP devices, uplink trunks, veths),
    and which VLANs the bridge itself carries, with the port VLAN id (pvid) and untagged egress,
    like C(bridge vlan add/del) does.
  - Creates, changes and deletes 802.1Q VLAN sub-interfaces such as C(eth0.100) (parent link, VLAN id, MTU,
    administrative state).
  - Every value is checked before anything is changed; a task with any bad value, a port that is not on a
    VLAN-filtering bridge, or a kernel without the needed feature fails with a message naming the parameter,
    the value and what is allowed, and the host is left as it was.
  - State is read with one netlink dump per object kind; the changes are applied in a fixed order and undone
    again if one of them fails. Check mode reports exactly the changes and diff the real run then makes.
  - The host must have bridge VLAN filtering (C(CONFIG_BRIDGE_VLAN_FILTERING)) for O(ports) and the C(8021q)
    module for O(subinterfaces); Debian's and Ubuntu's kernels have both. The bridge itself must have
    C(vlan_filtering) on; this module does not switch it on (M(nqrust.microvm.fc_bridge) does).
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - pyroute2 (0.7 or later) on the managed host
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  ports:
    description:
      - VLAN membership of bridge ports, one entry per port.
      - Each VLAN a port carries is tagged on egress unless it is listed in O(ports[].untagged) or flagged
        C(untagged) in O(ports[].vlans).
    type: list
    elements: dict
    default: []
    suboptions:
      port:
        description:
          - Name of a link attached to a bridge (TAP, veth, physical uplink...).
          - The name of a bridge sets the VLANs of the bridge itself (C(bridge vlan ... self)), which decide
            what the host's own interface on the bridge sends and receives.
        type: str
        required: true
      bridge:
        description:
          - The bridge the port must be attached to; the task fails if it is attached to another one.
          - Leave it out to take the port's bridge as it is.
        type: str
      vlans:
        description:
          - 'VLANs the port carries, as ids (C(100)), ranges (C("200-299")), or mappings
            C({vid: 100, pvid: true, untagged: true}) whose C(vid) is an id or a range.'
          - Ids are 1 to 4094; ranges and ids must not overlap or repeat.
        type: list
        elements: raw
      untagged:
        description:
          - VLAN ids and ranges that leave the port untagged. They are members of the port too, so an access
            port needs only O(ports[].pvid) and O(ports[].untagged).
        type: list
        elements: raw
      pvid:
        description:
          - The port VLAN id, which untagged frames arriving on the port join. A member of the port too.
          - A port has at most one pvid; giving two (here and in O(ports[].vlans), or twice in
            O(ports[].vlans)) is an error.
        type: raw
      mode:
        description:
          - V(exact) makes the port carry exactly the VLANs given and removes all others, including the
            bridge's default VLAN 1.
          - V(additive) adds the VLANs given (or changes their flags) and keeps the port's other VLANs; a pvid
            given here takes over from the port's current pvid.
          - Ignored with O(ports[].state=absent).
        type: str
        choices: [exact, additive]
        default: exact
      state:
        description:
          - V(absent) removes the VLANs given (their flags do not matter) and keeps the others.
        type: str
        choices: [present, absent]
        default: present
  subinterfaces:
    description:
      - 802.1Q VLAN sub-interfaces (VLAN links such as C(eth0.100)), one entry per link.
      - A link this collection created with another parent or VLAN id is deleted and created again; one made
        otherwise is not replaced (the task fails and says so).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the VLAN link, 1 to 15 bytes, no C(/), C(:) or whitespace.
          - The name must be free or already a VLAN link.
        type: str
        required: true
      link:
        description:
          - The parent link that carries the tagged frames. Required with O(subinterfaces[].state=present).
          - With O(subinterfaces[].state=absent) it is a safety check; the link is not deleted if its parent differs.
        type: str
      id:
        description:
          - The VLAN id, 1 to 4094. Required with O(subinterfaces[].state=present).
          - With O(subinterfaces[].state=absent) it is a safety check; the link is not deleted if its id differs.
        type: int
      mtu:
        description:
          - MTU of the VLAN link, 68 up to the MTU of the parent link.
          - When left out, a new link gets the parent's MTU and an existing link keeps its own.
        type: int
      up:
        description:
          - Whether the link is administratively up.
        type: bool
        default: true
      state:
        description:
          - Whether the VLAN link exists.
        type: str
        choices: [present, absent]
        default: present
notes:
  - Links the module creates carry the C(nqrust.microvm) marker in their interface alias.
  - Setting a VLAN that a port already has changes its flags in place; traffic of the VLANs that stay is not
    interrupted. With O(ports[].mode=exact) VLANs are removed before others are added.
seealso:
  - module: nqrust.microvm.fc_network_info
  - name: Linux bridge VLAN filtering
    description: The kernel's documentation of the bridge driver.
    link: https://docs.kernel.org/networking/bridge.html
"""

EXAMPLES = r"""
- name: Put two VM TAPs on VLAN 100 as access ports, and the uplink trunk on VLANs 100 and 200-210
  nqrust.microvm.fc_vlan:
    ports:
      - port: tap-1a2b3c4d
        bridge: fcbr0
        pvid: 100
        untagged: [100]
      - port: tap-5e6f7a8b
        bridge: fcbr0
        pvid: 100
        untagged: [100]
      - port: eth1
        bridge: fcbr0
        vlans: [100, "200-210"]

- name: Give the bridge itself VLAN 100 untagged, so the host's address on fcbr0 is in VLAN 100
  nqrust.microvm.fc_vlan:
    ports:
      - port: fcbr0
        vlans:
          - {vid: 100, pvid: true, untagged: true}

- name: Add VLAN 300 to a trunk and keep whatever else it carries
  nqrust.microvm.fc_vlan:
    ports:
      - port: eth1
        vlans: [300]
        mode: additive

- name: Remove VLANs 200-210 from the trunk
  nqrust.microvm.fc_vlan:
    ports:
      - port: eth1
        vlans: ["200-210"]
        state: absent

- name: Make 802.1Q sub-interfaces for VLANs 100 and 200 on eth0
  nqrust.microvm.fc_vlan:
    subinterfaces:
      - name: eth0.100
        link: eth0
        id: 100
      - name: eth0.200
        link: eth0
        id: 200
        mtu: 1400

- name: Delete a sub-interface (only if it is VLAN 200 on eth0)
  nqrust.microvm.fc_vlan:
    subinterfaces:
      - name: eth0.200
        link: eth0
        id: 200
        state: absent
"""

RETURN = r"""
changes:
  description: The changes made (or, in check mode, that would be made), in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: C(add), C(update) or C(remove) for port VLANs; C(create), C(delete), C(update), C(up), C(down) for sub-interfaces.
      type: str
      sample: add
    kind:
      description: C(port_vlan) or C(vlan_link).
      type: str
      sample: port_vlan
    target:
      description: The port or sub-interface name.
      type: str
      sample: tap-1a2b3c4d
    phase:
      description: The phase the change runs in (C(create), C(vlan), C(up)...).
      type: str
      sample: vlan
    details:
      description: What the change does, for instance the VLAN range and flags.
      type: dict
      sample: {"port": "tap-1a2b3c4d", "bridge": "fcbr0", "vlans": "100", "pvid": true, "untagged": true}
    description:
      description: The change in words.
      type: str
      sample: add VLAN 100 (pvid, untagged) to port 'tap-1a2b3c4d' of bridge 'fcbr0'
ports:
  description: The VLAN membership of each port in O(ports) after the task (in check mode, as predicted).
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: Port name.
      type: str
      sample: tap-1a2b3c4d
    bridge:
      description: The bridge the port is attached to (for a bridge, itself).
      type: str
      sample: fcbr0
    self:
      description: Whether the entry is the bridge's own VLANs.
      type: bool
      sample: false
    pvid:
      description: The port VLAN id, or null.
      type: int
      sample: 100
    tagged:
      description: VLANs that leave the port tagged, as ids and C("START-END") ranges.
      type: list
      elements: raw
      sample: []
    untagged:
      description: VLANs that leave the port untagged, as ids and C("START-END") ranges.
      type: list
      elements: raw
      sample: [100]
subinterfaces:
  description: Each sub-interface in O(subinterfaces) after the task (in check mode, as predicted).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the VLAN link.
      type: str
      sample: eth0.100
    state:
      description: C(present) or C(absent).
      type: str
      sample: present
    link:
      description: The parent link, or null when absent.
      type: str
      sample: eth0
    id:
      description: The VLAN id, or null when absent.
      type: int
      sample: 100
    mtu:
      description: The MTU, or null when absent.
      type: int
      sample: 1500
    up:
      description: Whether the link is administratively up, or null when absent.
      type: bool
      sample: true
    ifindex:
      description: The interface index; null when absent, and in check mode for a link still to be made.
      type: int
      sample: 12
    managed:
      description: Whether the collection created the link (its alias carries the marker).
      type: bool
      sample: true
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils.converge import converge
from ansible_collections.nqrust.microvm.plugins.module_utils.kernel_features import (
    KernelFeatureMissing,
    probe_8021q,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
    NetlinkSession,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Handlers
from ansible_collections.nqrust.microvm.plugins.module_utils.port_vlan import (
    ABSENT,
    Membership,
    PortVlanApplier,
    PortVlanRequest,
    check_unique_ports,
    parse_membership,
    resolve_port_requests,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationErrors,
    interface_name,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.vlan_link import (
    SubinterfaceApplier,
    check_unique_subinterfaces,
    link_result,
    parse_subinterface,
    resolve_subinterfaces,
)

PORT_OPTIONS = dict(
    port=dict(type='str', required=True),
    bridge=dict(type='str'),
    vlans=dict(type='list', elements='raw'),
    untagged=dict(type='list', elements='raw'),
    pvid=dict(type='raw'),
    mode=dict(type='str', choices=['exact', 'additive'], default='exact'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
)

SUBINTERFACE_OPTIONS = dict(
    name=dict(type='str', required=True),
    link=dict(type='str'),
    id=dict(type='int'),
    mtu=dict(type='int'),
    up=dict(type='bool', default=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
)

ARGUMENT_SPEC = dict(
    ports=dict(type='list', elements='dict', options=PORT_OPTIONS, default=[]),
    subinterfaces=dict(type='list', elements='dict', options=SUBINTERFACE_OPTIONS, default=[]),
)


class Desired(object):
    """The validated task: port requests and sub-interface requests."""

    def __init__(self, ports, subinterfaces):
        self.ports = list(ports)
        self.subinterfaces = list(subinterfaces)


class Current(object):
    """What was read from the host: links, bridge-port VLANs (when ports are asked for), the 802.1Q probe."""

    def __init__(self, links, port_vlans, probe):
        self.links = tuple(links)
        self.port_vlans = tuple(port_vlans)
        self.probe = probe


def parse_port(validator, param, item):
    """A ``PortVlanRequest`` from one entry of ``ports``, or ``None`` after recording its problems."""
    errors = len(validator.errors)
    port = validator.check(interface_name, '%s.port' % param, item.get('port'))
    bridge = item.get('bridge')
    if bridge is not None:
        validator.check(interface_name, '%s.bridge' % param, bridge)
    membership = parse_membership(validator, param, vlans=item.get('vlans'), untagged=item.get('untagged'),
                                  pvid=item.get('pvid'))
    state = item.get('state') or 'present'
    if state == ABSENT and membership is not None and not len(membership):
        validator.add(param, dict((key, item.get(key)) for key in ('vlans', 'untagged', 'pvid')),
                      'state=absent needs the VLANs to remove in vlans, untagged or pvid '
                      '(to remove every VLAN use state=present with mode=exact and no VLANs)', 'no VLANs given')
    if len(validator.errors) > errors:
        return None
    return PortVlanRequest(port=port, membership=membership, mode=item.get('mode') or 'exact', state=state,
                           bridge=bridge, param=param)


def validate_params(validator, params):
    """Step 1: every check that needs no host state; problems go to ``validator``."""
    ports = []
    named = []
    for position, item in enumerate(params.get('ports') or []):
        request = parse_port(validator, 'ports[%d]' % position, item)
        if request is not None:
            ports.append(request)
        if isinstance(item.get('port'), str):
            named.append(PortVlanRequest(port=item['port'], membership=Membership(), param='ports[%d]' % position))
    check_unique_ports(validator, named)
    subinterfaces = []
    for position, item in enumerate(params.get('subinterfaces') or []):
        request = parse_subinterface(validator, 'subinterfaces[%d]' % position, item)
        if request is not None:
            subinterfaces.append(request)
    check_unique_subinterfaces(validator, subinterfaces)
    return Desired(ports, subinterfaces)


def read_host(session, desired):
    """Step 2: one dump per object kind (links; bridge-port VLANs only when ports are asked for)."""
    links = session.links()
    port_vlans = session.port_vlans() if desired.ports else ()
    probe = probe_8021q(links) if desired.subinterfaces else (True, 'not needed')
    return Current(links, port_vlans, probe)


class Resolved(object):
    """``desired`` checked against ``current``: one plan per port and per sub-interface (pure)."""

    def __init__(self, desired, current):
        self.desired = desired
        self.ports = []
        self.subinterfaces = []
        errors = []
        # both kinds are checked before failing, so one run names every problem
        try:
            if desired.ports:
                self.ports = resolve_port_requests(desired.ports, current.links, current.port_vlans)
        except ValidationErrors as exc:
            errors.extend(exc.errors)
        try:
            if desired.subinterfaces:
                self.subinterfaces = resolve_subinterfaces(desired.subinterfaces, current.links, current.probe)
        except ValidationErrors as exc:
            errors.extend(exc.errors)
        if errors:
            raise ValidationErrors(errors)

    def changes(self):
        changes = []
        for item in self.ports:
            changes.extend(item.changes())
        for item in self.subinterfaces:
            changes.extend(item.changes())
        return changes

    def view(self, after):
        """The diff's ``before`` (``after=False``) or ``after`` state of every object the task names."""
        state = {}
        if self.desired.ports:
            state['ports'] = dict((item.name, item.view(item.target if after else item.current)) for item in self.ports)
        if self.desired.subinterfaces:
            shown = {}
            for item in self.subinterfaces:
                value = item.after if after else item.before
                if value is not None:
                    shown[item.name] = value
            state['subinterfaces'] = shown
        return state

    def predicted_result(self):
        return {
            'ports': [item.result(item.target) for item in self.ports],
            'subinterfaces': [item.predicted_result() for item in self.subinterfaces],
        }

    def reread_result(self, session):
        """The result objects read back from the host after the changes."""
        session.refresh()
        links = session.links()
        by_name = dict((link.name, link) for link in links)
        by_index = dict((link.index, link) for link in links)
        ports = []
        if self.ports:
            session.port_vlans()
            for item in self.ports:
                link = by_name.get(item.name)
                record = session.port_vlans(link.index) if link is not None else None
                ports.append(item.result(Membership.from_port_vlans(record)))
        subinterfaces = []
        for item in self.subinterfaces:
            link = by_name.get(item.name)
            parent = by_index.get(link.link_index) if link is not None and link.link_index else None
            subinterfaces.append(link_result(item.name, link if link is not None and link.is_vlan else None,
                                             parent.name if parent is not None else None))
        return {'ports': ports, 'subinterfaces': subinterfaces}


class VlanTask(object):
    """The five steps of the module contract for one fc_vlan task (see ``converge``)."""

    def __init__(self, params):
        self.params = params
        self.desired = None
        self.resolved = None

    def validate(self, validator):
        self.desired = validate_params(validator, self.params)
        return self.desired

    def read(self, session):
        return read_host(session, self.desired)

    def plan(self, desired, current):
        self.resolved = Resolved(desired, current)
        return self.resolved.changes()

    def after(self, desired, current, changes):  # pylint: disable=unused-argument
        return self.resolved.view(after=True)

    def view(self, state):
        if isinstance(state, Current):
            return self.resolved.view(after=False)
        return state

    def handlers(self, session):
        handlers = Handlers()
        PortVlanApplier(session).register(handlers)
        SubinterfaceApplier(session).register(handlers)
        return handlers

    def report(self, session, changes, check_mode):
        if check_mode or not changes:
            return self.resolved.predicted_result()
        return self.resolved.reread_result(session)


def run(module, params, check_mode=None, session_factory=NetlinkSession, lock=True):
    """Run one task; returns the result dict (or fails ``module``)."""
    task = VlanTask(params)
    return converge(module, task.validate, task.read, task.plan, task.handlers, after=task.after, view=task.view,
                    report=task.report, session_factory=session_factory, lock=lock, check_mode=check_mode,
                    operational_errors=(NetlinkOperationError, ValidationErrors, KernelFeatureMissing))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)
    result = run(module, module.params)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
