# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_registry
short_description: Manage networks and VM interfaces in the NQRust network registry
version_added: 1.0.0
description:
  - Creates, updates and deletes the networks of the NQRust network registry (the PostgreSQL tables
    C(network) and C(vm_network_interface) that the NQRust manager reads too), with the manager API's field names.
  - Reading them (list, get, VM count) is M(nqrust.microvm.fc_network_registry_info)'s work.
  - Auto-registration (O(state=registered)) makes sure the network of a (host, bridge, VLAN) exists, like the
    manager's C(ensure_network_registered), and is safe under concurrency, any number of runs at the same time
    leave one row and none fails.
  - Attaches and detaches VM network interfaces (O(state=attached), O(state=detached)) with unique guest MACs.
  - Deleting a network that still has VM interfaces is refused with their count, atomically (a concurrent
    attach cannot slip in between the count and the delete).
  - A network is identified by O(id), or by its key O(host), O(bridge_name) and O(vlan_id) (no VLAN is a key too).
  - Validates every option before touching the registry, then runs in one transaction. In check mode the
    transaction is rolled back, so check mode reports exactly what the real run does.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - psycopg (3.1 or later) where the task runs
  - the registry schema (nqrust.microvm.fc_registry_migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.registry_connection
  - nqrust.microvm.attributes.registry_changes
options:
  state:
    description:
      - V(present) creates the network or brings the options given to the values given; options not given are left
        as they are.
      - V(absent) deletes the network; refused while VM interfaces are attached to it.
      - V(registered) makes sure the network of O(host), O(bridge_name) and O(vlan_id) exists; an existing network
        is left as it is, a new one gets the options given (name default C(<bridge> Network)).
      - V(attached) makes sure VM O(vm_id) has interface O(iface_id) on the network, with O(guest_mac) and
        O(host_dev_name); a network given by its key is auto-registered first (see O(auto_register)).
      - V(detached) removes the interface O(iface_id) of VM O(vm_id).
    type: str
    choices: [present, absent, registered, attached, detached]
    default: present
  id:
    description:
      - The network's UUID. With O(state=present) and no such network, the new network gets this id.
    type: str
  name:
    description:
      - The network's name, 1 to 255 characters. Names need not be unique.
      - For a new network, default C(<bridge_name> Network) (C(<bridge_name> VLAN <vlan_id> Network) with a VLAN).
    type: str
  description:
    description:
      - Free text. V('') clears it.
    type: str
  type:
    description:
      - The seed's network type. For a new network, default V(vlan) with a O(vlan_id), else V(bridge).
    type: str
    choices: [bridge, vlan, overlay]
    aliases: [network_type]
  vlan_id:
    description:
      - The 802.1Q VLAN id, 1 to 4094, of the network's ports on the bridge. Part of the network's key.
    type: int
  bridge_name:
    description:
      - The Linux bridge of the network (1 to 15 bytes, such as V(fcbr0)). Part of the network's key.
    type: str
    aliases: [bridge]
  host:
    description:
      - The hypervisor the network is on, by name or id (a row of the registry's C(host) table). Part of the
        network's key. An unknown host fails with its name and the hosts the registry has.
    type: str
    aliases: [host_id]
  cidr:
    description:
      - The network's address range, V(192.168.18.0/24), stored that way as the manager does.
      - The bridge's address with prefix (V(192.168.18.240/24)) is accepted too and means that network with that
        gateway.
      - When given without O(gateway) for a network that has none, the gateway defaults to the first address
        (V(192.168.18.1)). V('') clears it.
    type: str
  gateway:
    description:
      - The gateway, the bridge's own address in O(cidr) (V(192.168.18.240)); inside the CIDR, not its network or
        broadcast address. V('') clears it.
    type: str
  mode:
    description:
      - How the network reaches the outside (see the network role), V(nat) for a new network.
    type: str
    choices: [nat, routed, isolated, bridged, open]
  uplink:
    description:
      - The host's NIC towards the outside; in V(bridged) mode (which needs it) the NIC that joins the bridge.
        V('') clears it.
    type: str
  mtu:
    description:
      - MTU of the bridge, 68 to 65535; V(0) clears it (the kernel's default).
    type: int
  dhcp:
    description:
      - DHCP settings of the network, stored as a whole (keys not given are unset, which means the network role's
        defaults).
    type: dict
    suboptions:
      enabled:
        description: Whether the network runs a DHCP server.
        type: bool
      range_start:
        description: First address of the dynamic pool, inside O(cidr) and clear of the gateway.
        type: str
      range_end:
        description: Last address of the dynamic pool.
        type: str
      lease_time:
        description: Lease time, seconds or a number with a unit (V(12h)), or V(infinite).
        type: str
      static_leases:
        description: Fixed addresses, each inside O(cidr), not the gateway; MACs, addresses and host names unique.
        type: list
        elements: dict
        suboptions:
          mac:
            description: The guest's MAC address.
            type: str
            required: true
          ip:
            description: The address it gets.
            type: str
            required: true
          hostname:
            description: A host name it gets (and that the network's DNS answers for).
            type: str
  dns:
    description:
      - DNS settings of the network, stored as a whole.
    type: dict
    suboptions:
      enabled:
        description: Whether the network's dnsmasq answers DNS.
        type: bool
      upstream:
        description:
          - The servers it forwards to; an empty list forwards nowhere (local names only); unset means the host's
            resolvers.
        type: list
        elements: str
      domain:
        description: The domain of the network's host names.
        type: str
  vm_id:
    description:
      - With O(state=attached) or O(state=detached), the VM's UUID. A VM missing from the registry's C(vm) table is
        added with O(vm_name) when attaching.
    type: str
  vm_name:
    description:
      - The name of a VM row this module creates; default the VM id.
    type: str
  iface_id:
    description:
      - The Firecracker interface id of the VM's NIC. Default V(eth0).
    type: str
  guest_mac:
    description:
      - The guest's MAC address, unique in the registry.
      - Default, for a new interface, the collection's stable MAC for (O(vm_id), O(iface_id)), as the
        P(nqrust.microvm.guest_mac#filter) filter makes it; an existing interface keeps its MAC.
    type: str
  host_dev_name:
    description:
      - The TAP device of the NIC on the host.
      - Default, for a new interface, the collection's stable TAP name for (O(vm_id), O(iface_id)), as the
        P(nqrust.microvm.tap_name#filter) filter makes it; an existing interface keeps its TAP name.
    type: str
  auto_register:
    description:
      - With O(state=attached) and a network given by its key, register the network when it does not exist.
        When V(false), a missing network fails the task.
    type: bool
    default: true
notes:
  - Run the module where the registry can be reached, usually the controller (C(delegate_to=localhost)).
  - Changing a network's CIDR, gateway or DHCP settings does not change the host; the network role does that
    on its next run from the inventory plugin's C(fc_networks).
seealso:
  - module: nqrust.microvm.fc_network_registry_info
  - module: nqrust.microvm.fc_registry_migrate
  - module: nqrust.microvm.fc_registry_host
  - plugin: nqrust.microvm.registry
    plugin_type: inventory
  - name: The network registry
    description: Tables, columns and what each state does (docs/registry.md in the collection).
    link: https://github.com/nqrust/nqrust.microvm/blob/main/docs/registry.md
"""

EXAMPLES = r"""
- name: The default NAT network of hv1
  nqrust.microvm.fc_network_registry:
    host: hv1
    bridge_name: fcbr0
    mode: nat
    cidr: 192.168.18.0/24
    gateway: 192.168.18.240
    dhcp:
      enabled: true
      range_start: 192.168.18.128
      range_end: 192.168.18.200
      lease_time: 12h
  delegate_to: localhost

- name: A tenant VLAN on the same bridge
  nqrust.microvm.fc_network_registry:
    host: hv1
    bridge_name: fcbr0
    vlan_id: 100
    name: Customer A
    cidr: 10.100.0.1/24
  delegate_to: localhost

- name: Auto-register the network of a new VM's bridge and attach the VM
  nqrust.microvm.fc_network_registry:
    state: attached
    host: hv1
    bridge_name: fcbr0
    vm_id: 6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01
    iface_id: eth0
  register: nic
  delegate_to: localhost

- name: Delete a network (refused while VMs are attached)
  nqrust.microvm.fc_network_registry:
    state: absent
    id: b1ed8ab4-cf82-4401-8393-6638cf978dd5
  delegate_to: localhost
"""

RETURN = r"""
network:
  description:
    - The network after the run (before it for O(state=absent)), with the manager API's field names;
      null when there is none.
    - In check mode a new network's C(id) and timestamps are placeholders the real run does not keep.
  returned: when state is not detached
  type: dict
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
    host_name:
      description: Name of the host.
      type: str
      sample: hv1
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
      description: DHCP settings (C(enabled), C(range_start), C(range_end), C(lease_time), C(static_leases)) or null.
      type: dict
      sample: {"enabled": true, "range_start": "192.168.18.128", "range_end": "192.168.18.200",
               "lease_time": "12h", "static_leases": []}
    dns:
      description: DNS settings (C(enabled), C(upstream), C(domain)) or null.
      type: dict
      sample: {"enabled": true, "upstream": null, "domain": "fc.internal"}
    vm_count:
      description: Number of VMs with an interface on the network.
      type: int
      sample: 5
created:
  description: With O(state=registered) or O(state=attached), whether this run created the network.
  returned: when state is registered or attached
  type: bool
  sample: true
interface:
  description: With O(state=attached), the interface after the run; with O(state=detached), the one removed (or null).
  returned: when state is attached or detached
  type: dict
  contains:
    id:
      description: UUID of the row.
      type: str
    vm_id:
      description: UUID of the VM.
      type: str
    network_id:
      description: UUID of the network.
      type: str
    iface_id:
      description: Firecracker interface id.
      type: str
      sample: eth0
    guest_mac:
      description: Guest MAC.
      type: str
      sample: aa:fc:3f:9c:0a:1b
    host_dev_name:
      description: TAP device.
      type: str
      sample: tap-3f9c0a1b2c4
    created_at:
      description: Creation time, UTC.
      type: str
changes:
  description: What the run changed (or would change in check mode), in order, each with a C(description).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, build_result
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import RegistryError, transaction
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_hosts import as_uuid, resolve_host
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_interfaces import (
    ensure_vm,
    get_interface,
    get_interface_by_id,
    insert_interface,
    interface_view,
    mac_in_use,
    mac_user,
    delete_interface,
    update_interface,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_module import (
    fail_validation,
    registry_argument_spec,
    run_registry_module,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_networks import (
    NetworkConflictError,
    NetworkInUseError,
    NetworkNotFoundError,
    auto_register,
    default_name,
    default_type,
    delete_network,
    find_network,
    get_network,
    insert_network,
    network_view,
    update_network,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import (
    check_merged,
    first_host,
    network_options,
    normalise_settings,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import require_current
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationErrors,
    interface_name,
    mac_address,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.vm_identity import (
    DEFAULT_IFACE_ID,
    guest_mac as derived_mac,
    iface_id as check_iface_id,
    tap_name,
)

ALLOWED_UUID = 'must be a UUID such as b1ed8ab4-cf82-4401-8393-6638cf978dd5'
NETWORK_STATES = ('present', 'absent')


# --------------------------------------------------------------------------- validation (before any I/O)

class Request(object):
    """The validated options: ``values`` (network columns), ids and the interface settings."""

    def __init__(self):
        self.values = {}
        self.given = ()
        self.network_id = None
        self.vm_id = None
        self.iface_id = None
        self.guest_mac = None
        self.host_dev_name = None
        self.guest_mac_given = False
        self.host_dev_name_given = False


def validate(params):
    state = params['state']
    request = Request()
    values, v = network_options(params)
    request.values = values
    request.given = tuple(values)
    if params['id'] is not None:
        request.network_id = as_uuid(params['id'])
        if request.network_id is None:
            v.add('id', params['id'], 'a network id ' + ALLOWED_UUID)
    by_key = params['host'] is not None and params['bridge_name'] is not None
    if state in NETWORK_STATES or state == 'attached':
        if params['id'] is None and not by_key:
            v.add('id', None, 'give the network id, or host and bridge_name (and vlan_id, if any) to name the network',
                  'missing')
    if state == 'registered':
        for key in ('host', 'bridge_name'):
            if params[key] is None:
                v.add(key, None, 'auto-registration needs host and bridge_name (and vlan_id, if any)', 'missing')
    if state in ('attached', 'detached'):
        if params['vm_id'] is None:
            v.add('vm_id', None, 'attaching and detaching need the VM id (a UUID)', 'missing')
        else:
            request.vm_id = as_uuid(params['vm_id'])
            if request.vm_id is None:
                v.add('vm_id', params['vm_id'], 'a VM id ' + ALLOWED_UUID)
        request.iface_id = v.check(check_iface_id, 'iface_id', params['iface_id'] if params['iface_id'] is not None
                                   else DEFAULT_IFACE_ID)
        if state == 'attached':
            request.guest_mac_given = params['guest_mac'] is not None
            request.host_dev_name_given = params['host_dev_name'] is not None
            if params['guest_mac'] is not None:
                request.guest_mac = v.check(mac_address, 'guest_mac', params['guest_mac'])
            elif request.vm_id and request.iface_id:
                request.guest_mac = derived_mac(request.vm_id, request.iface_id)
            if params['host_dev_name'] is not None:
                request.host_dev_name = v.check(interface_name, 'host_dev_name', params['host_dev_name'])
            elif request.vm_id and request.iface_id:
                request.host_dev_name = tap_name(request.vm_id, request.iface_id)
    v.raise_if_any()
    return request


# --------------------------------------------------------------------------- work in the transaction

def _host_id(cur, params):
    if params['host'] is None:
        return None
    return resolve_host(cur, params['host'])['id']


def _locate(cur, params, request, host_id, lock=None):
    if request.network_id is not None:
        return get_network(cur, request.network_id, lock=lock)
    return find_network(cur, host_id, request.values['bridge_name'], request.values.get('vlan_id'), lock=lock)


def _describe_key(params, request):
    if request.network_id is not None:
        return 'id %s' % request.network_id
    return 'host %s, bridge %s, VLAN %s' % (params['host'], request.values.get('bridge_name'),
                                            request.values.get('vlan_id') or 'none')


def _not_found(params, request):
    return NetworkNotFoundError('no network with %s in the registry' % _describe_key(params, request))


def _creation_values(request, host_id):
    values = dict(request.values)
    if host_id is not None:
        values['host_id'] = host_id
    vlan = values.get('vlan_id')
    values.setdefault('name', default_name(values['bridge_name'], vlan))
    values.setdefault('type', default_type(vlan))
    if values.get('cidr') and 'gateway' not in values:
        values['gateway'] = first_host(values['cidr'])
    return normalise_settings(values)


def _check(merged, given):
    v = check_merged(merged, given=given)
    v.raise_if_any()


def _conflict(exc, values):
    if getattr(exc, 'sqlstate', None) == '23505':
        return NetworkConflictError('another network already has host %s, bridge %s and VLAN %s: a network is unique '
                                    'per host, bridge and VLAN' % (values.get('host_id'), values.get('bridge_name'),
                                                                   values.get('vlan_id') or 'none'))
    return None


def do_present(cur, params, request):
    host_id = _host_id(cur, params)
    if request.network_id is None and host_id is None:
        raise _not_found(params, request)
    current = _locate(cur, params, request, host_id, lock='update')
    changes = []
    if current is None:
        values = _creation_values(request, host_id)
        if 'bridge_name' not in values:
            raise RegistryError("a new network needs bridge_name (and host): no network with id %s exists" % request.network_id)
        merged = dict(values)
        merged.setdefault('mode', 'nat')
        _check(merged, given=tuple(values))
        try:
            new_id = insert_network(cur, values, network_id=request.network_id)
        except Exception as exc:  # pylint: disable=broad-except
            raise _conflict(exc, values) or exc
        if new_id is not None:
            after = get_network(cur, new_id)
            changes.append(Change('create', 'network', after['name'], 'create', details={'after': network_view(after)}))
            return build_result(changes, {}, network_view(after), network=after)
        # a network with this key exists (another run may have created it just now)
        current = find_network(cur, values.get('host_id'), values['bridge_name'], values.get('vlan_id'), lock='update')
        if current is None:
            raise NetworkConflictError('cannot create network %s: the id is in use by another network' % request.network_id)
        if request.network_id is not None and current['id'] != request.network_id:
            raise NetworkConflictError('cannot create network %s: network %s already has host %s, bridge %s and VLAN %s '
                                       '(a network is unique per host, bridge and VLAN)'
                                       % (request.network_id, current['id'], current['host_name'], current['bridge_name'],
                                          current['vlan_id'] or 'none'))
    values = dict(request.values)
    if host_id is not None:
        values['host_id'] = host_id
    if values.get('cidr') and 'gateway' not in values and not current.get('gateway'):
        values['gateway'] = first_host(values['cidr'])
    normalise_settings(values)
    merged = dict(current)
    merged.update(values)
    _check(merged, given=tuple(values))
    update = dict((key, value) for key, value in values.items() if current.get(key) != value)
    after = current
    if update:
        try:
            update_network(cur, current['id'], update)
        except Exception as exc:  # pylint: disable=broad-except
            raise _conflict(exc, merged) or exc
        after = get_network(cur, current['id'])
        changes.append(Change('update', 'network', after['name'], 'create',
                              details={'before': network_view(current), 'after': network_view(after)}))
    return build_result(changes, network_view(current), network_view(after), network=after)


def do_absent(cur, params, request):
    host_id = _host_id(cur, params) if request.network_id is None else None
    current = _locate(cur, params, request, host_id)
    if current is None:
        return build_result([], {}, {}, network=None)
    try:
        deleted = delete_network(cur, current['id'])
    except NetworkInUseError as exc:
        exc.result = {'network': exc.network, 'interfaces': exc.interfaces, 'vm_count': exc.vms}
        raise
    if deleted is None:
        return build_result([], {}, {}, network=None)
    changes = [Change('delete', 'network', deleted['name'], 'create', details={'before': network_view(deleted)})]
    return build_result(changes, network_view(deleted), {}, network=deleted)


def do_registered(cur, params, request):
    host_id = _host_id(cur, params)
    values = _creation_values(request, host_id)
    merged = dict(values)
    merged.setdefault('mode', 'nat')
    _check(merged, given=tuple(values))
    settings = dict((key, value) for key, value in values.items()
                    if key not in ('name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id'))
    record, created = auto_register(cur, host_id, values['bridge_name'], values.get('vlan_id'), name=values['name'],
                                    description=values.get('description', 'Auto-registered from VM creation'),
                                    network_type=values['type'], settings=settings)
    changes = []
    before = network_view(record)
    if created:
        before = {}
        changes.append(Change('create', 'network', record['name'], 'create', details={'after': network_view(record)}))
    return build_result(changes, before, network_view(record), network=record, created=created)


def do_attached(cur, params, request):
    changes = []
    created = False
    if request.network_id is not None:
        network = get_network(cur, request.network_id, lock='key share')
        if network is None:
            raise _not_found(params, request)
    else:
        host_id = _host_id(cur, params)
        network = find_network(cur, host_id, request.values['bridge_name'], request.values.get('vlan_id'), lock='key share')
        if network is None:
            if not params['auto_register']:
                raise NetworkNotFoundError('no network with %s in the registry, and auto_register is false'
                                           % _describe_key(params, request))
            values = _creation_values(request, host_id)
            merged = dict(values)
            merged.setdefault('mode', 'nat')
            _check(merged, given=tuple(values))
            settings = dict((key, value) for key, value in values.items()
                            if key not in ('name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id'))
            network, created = auto_register(cur, host_id, values['bridge_name'], values.get('vlan_id'),
                                             name=values['name'], network_type=values['type'], settings=settings,
                                             lock='key share',
                                             **({'description': values['description']} if 'description' in values else {}))
            if created:
                changes.append(Change('create', 'network', network['name'], 'create',
                                      details={'after': network_view(network)}))
    if ensure_vm(cur, request.vm_id, params['vm_name']):
        changes.append(Change('create', 'vm', request.vm_id, 'create', details={'name': params['vm_name'] or request.vm_id}))
    current = get_interface(cur, request.vm_id, request.iface_id, lock=True)
    # the derived MAC and TAP name are defaults for a new interface; an existing one keeps its own
    guest_mac, host_dev_name = request.guest_mac, request.host_dev_name
    if current is not None and current['guest_mac'] and not request.guest_mac_given:
        guest_mac = current['guest_mac'].lower()
    if current is not None and current['host_dev_name'] and not request.host_dev_name_given:
        host_dev_name = current['host_dev_name']
    user = mac_user(cur, guest_mac, exclude_id=current['id'] if current else None)
    if user is not None:
        raise mac_in_use(guest_mac, user)
    before_network = None
    if current is None:
        new_id = insert_interface(cur, request.vm_id, network['id'], request.iface_id, guest_mac, host_dev_name)
        after = get_interface_by_id(cur, new_id)
        changes.append(Change('attach', 'interface', '%s/%s' % (request.vm_id, request.iface_id), 'attach',
                              details={'network': network['name'], 'after': interface_view(after)}))
    else:
        before_network = get_network(cur, current['network_id']) if current['network_id'] else None
        update = {}
        if current['network_id'] != network['id']:
            update['network_id'] = network['id']
        if (current['guest_mac'] or '').lower() != guest_mac:
            update['guest_mac'] = guest_mac
        if current['host_dev_name'] != host_dev_name:
            update['host_dev_name'] = host_dev_name
        after = current
        if update:
            update_interface(cur, current['id'], update)
            after = get_interface_by_id(cur, current['id'])
            changes.append(Change('update', 'interface', '%s/%s' % (request.vm_id, request.iface_id), 'attach',
                                  details={'before': interface_view(current), 'after': interface_view(after)}))
    if current is None:
        before = {'network': network_view(network) if not created else {}, 'interface': {}}
    else:
        before = {'network': network_view(before_network), 'interface': interface_view(current)}
    network = get_network(cur, network['id'])
    after_view = {'network': network_view(network), 'interface': interface_view(after)}
    return build_result(changes, before, after_view, interface=after, network=network, created=created)


def do_detached(cur, params, request):
    current = get_interface(cur, request.vm_id, request.iface_id, lock=True)
    if current is None:
        return build_result([], {}, {}, interface=None)
    delete_interface(cur, current['id'])
    changes = [Change('detach', 'interface', '%s/%s' % (request.vm_id, request.iface_id), 'attach',
                      details={'before': interface_view(current)})]
    return build_result(changes, interface_view(current), {}, interface=current)


HANDLERS = {
    'present': do_present,
    'absent': do_absent,
    'registered': do_registered,
    'attached': do_attached,
    'detached': do_detached,
}


def work(module, conn, request):
    params = module.params
    with transaction(conn, check_mode=module.check_mode) as cur:
        require_current(cur)
        return HANDLERS[params['state']](cur, params, request)


DHCP_SPEC = dict(
    enabled=dict(type='bool'),
    range_start=dict(type='str'),
    range_end=dict(type='str'),
    lease_time=dict(type='str'),
    static_leases=dict(type='list', elements='dict', options=dict(
        mac=dict(type='str', required=True),
        ip=dict(type='str', required=True),
        hostname=dict(type='str'),
    )),
)

DNS_SPEC = dict(
    enabled=dict(type='bool'),
    upstream=dict(type='list', elements='str'),
    domain=dict(type='str'),
)


def argument_spec():
    return registry_argument_spec(
        state=dict(type='str', default='present', choices=list(HANDLERS)),
        id=dict(type='str'),
        name=dict(type='str'),
        description=dict(type='str'),
        type=dict(type='str', choices=['bridge', 'vlan', 'overlay'], aliases=['network_type']),
        vlan_id=dict(type='int'),
        bridge_name=dict(type='str', aliases=['bridge']),
        host=dict(type='str', aliases=['host_id']),
        cidr=dict(type='str'),
        gateway=dict(type='str'),
        mode=dict(type='str', choices=['nat', 'routed', 'isolated', 'bridged', 'open']),
        uplink=dict(type='str'),
        mtu=dict(type='int'),
        dhcp=dict(type='dict', options=DHCP_SPEC),
        dns=dict(type='dict', options=DNS_SPEC),
        vm_id=dict(type='str'),
        vm_name=dict(type='str'),
        iface_id=dict(type='str'),
        guest_mac=dict(type='str'),
        host_dev_name=dict(type='str'),
        auto_register=dict(type='bool', default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        request = validate(module.params)
    except ValidationErrors as exc:
        fail_validation(module, exc)
    run_registry_module(module, lambda conn: work(module, conn, request))


if __name__ == '__main__':
    main()
