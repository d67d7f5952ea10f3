# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Desired TAPs, the host's current links, and the plan between them (pure: no I/O).

* ``build_request()`` turns module parameters into ``TapSpec`` records (step 1
  of the module contract; every problem is collected on a ``Validator``).
* ``read_host()`` reads the links (one ``rtnl_dump`` link dump, as ``HostLink``s);
  ``HostState`` holds them (and the bridge-port VLANs when they were read);
  ``check_host()`` finds the requests this host cannot take (missing bridge,
  a name held by another kind of link, VLANs without bridge VLAN filtering)
  before anything is changed.
* ``plan_taps()`` makes the ``plan.Change`` list and, from the same
  decisions, the state the host will be in afterwards, so the diff of a check
  run is the diff of the real run.
* ``network_interfaces()`` are the Firecracker network-interface objects of the TAPs.

One change per TAP and step:

==============  ======  ========================================================
action kind     phase   what
==============  ======  ========================================================
delete tap      create  remove a TAP (``state: absent``, ``purge``, or to re-create it with another multi-queue setting)
create tap      create  new persistent TAP with its flags, owner, group, MTU and the collection's marker, attached
                        to its bridge and up (a TAP carries no frame before a VMM opens it, so its port settings
                        can follow)
update tap      create  owner, group, vnet_hdr, MTU or alias of an existing TAP
attach tap      attach  move an existing TAP to its bridge (and bring it up if it is down)
update port     vlan    bridge-port isolation
add/update/     vlan    access and trunk VLANs of the bridge port: planned by ``port_vlan`` (fc_vlan's planning),
remove port_vlan        one change per run of VLAN ids
up tap          up      bring an existing TAP up
==============  ======  ========================================================

VLAN work goes through ``port_vlan``, imported only when a TAP has any
(``vlan_planning()``): it imports ``netlink`` and so pyroute2, which costs
0.25-0.3 s at every module start, and TAPs without VLANs need none of it.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationError,
    format_vlan_range,
    interface_name,
    mac_address,
    vlan_id,
    vlan_ranges,
)

# Must stay equal to netlink.OWNER_MARKER (a unit test checks); repeated here
# so that TAP work does not import pyroute2 (see vlan_planning()).
OWNER_MARKER = 'nqrust.microvm'

TAP_DEFAULT_MTU = 1500
MTU_MIN = 68
MTU_MAX = 65521     # a TAP's largest MTU: 65535 less its 14-byte Ethernet header
NO_ID = 0xFFFFFFFF  # the owner or group of a TAP that has none
ID_MAX = 0xFFFFFFFE  # uid/gid; 0xFFFFFFFF is "none" to the kernel

ALLOWED_TAP_NAME = 'a name that is free or belongs to a TAP (TUN/TAP device in tap mode)'
ALLOWED_BRIDGE = 'the name of an existing Linux bridge (create it first, for instance with nqrust.microvm.fc_bridge)'
ALLOWED_MTU = 'MTU must be an integer from %d to %d (the largest a TAP takes)' % (MTU_MIN, MTU_MAX)
ALLOWED_OWNER = 'a user name that exists on the host or a uid from 0 to %d' % ID_MAX
ALLOWED_GROUP = 'a group name that exists on the host or a gid from 0 to %d' % ID_MAX
ALLOWED_VLANS_NEED_FILTERING = ('access and trunk VLANs need a bridge with VLAN filtering on '
                                '(nqrust.microvm.fc_bridge vlan_filtering: true) on a kernel that has it')
ALLOWED_UNIQUE = 'every TAP name at most once per call'
ALLOWED_IDENTITY = 'either name, or vm_id (with iface_id) from which the name is derived'

SPEC_FIELDS = ('name', 'vm_id', 'iface_id', 'guest_mac', 'state', 'bridge', 'mtu', 'vlan', 'trunk_vlans', 'owner',
               'group', 'multi_queue', 'vnet_hdr', 'isolated')
# keys of a taps[] entry that fall back to the module's top-level value when not given
INHERITED_FIELDS = ('state', 'bridge', 'mtu', 'vlan', 'trunk_vlans', 'owner', 'group', 'multi_queue', 'vnet_hdr',
                    'isolated', 'iface_id')


# --------------------------------------------------------------------------- desired state

@dataclasses.dataclass(frozen=True)
class TapSpec(object):
    """One TAP as asked for.  ``None`` means "leave as it is" (new TAPs get the kernel's default)."""

    name: str
    param: str = ''                         # 'taps[3]' or '' (top-level options), for messages
    state: str = 'present'
    bridge: Optional[str] = None
    mtu: Optional[int] = None
    vlan: Optional[int] = None
    trunk_vlans: Optional[tuple] = None     # ((start, end), ...) or None
    owner: Optional[int] = None
    group: Optional[int] = None
    multi_queue: Optional[bool] = None
    vnet_hdr: Optional[bool] = None
    isolated: Optional[bool] = None
    vm_id: Optional[str] = None
    iface_id: str = vm_identity.DEFAULT_IFACE_ID
    guest_mac: Optional[str] = None

    def field(self, name):
        """The parameter path of one of this TAP's options, e.g. ``taps[3].vlan``."""
        return '%s.%s' % (self.param, name) if self.param else name

    @property
    def present(self):
        return self.state == 'present'

    @property
    def manages_vlans(self):
        return self.vlan is not None or self.trunk_vlans is not None

    def membership(self, port_vlan):
        """The ``port_vlan.Membership`` the port must have: the access VLAN untagged and pvid, trunk VLANs tagged."""
        return port_vlan.Membership.trunk(self.trunk_vlans or (), native=self.vlan)

    def alias(self):
        """The ifalias a TAP made for this spec carries: the marker, plus the VM NIC when known."""
        if self.vm_id:
            return '%s:vm=%s,if=%s' % (OWNER_MARKER, self.vm_id, self.iface_id)
        return OWNER_MARKER


@dataclasses.dataclass(frozen=True)
class TapRequest(object):
    """Everything one module call asks for."""

    specs: tuple
    purge: bool = False

    def names(self):
        return set(spec.name for spec in self.specs)


def is_ours(alias):
    """True if an ifalias carries the collection's marker (as ``netlink.is_ours``)."""
    return bool(alias) and (alias == OWNER_MARKER or alias.startswith(OWNER_MARKER + ':'))


def _int_in_range(param, value, low, high, allowed):
    if isinstance(value, bool):
        raise ValidationError(param, value, allowed, 'not an integer')
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValidationError(param, value, allowed, 'not an integer')
    if value < low or value > high:
        raise ValidationError(param, value, allowed)
    return value


def mtu_value(param, value):
    return _int_in_range(param, value, MTU_MIN, MTU_MAX, ALLOWED_MTU)


def account_id(param, value, lookup, allowed):
    """A uid/gid from an int, a numeric string, or a name resolved with ``lookup(name) -> id or None``."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(param, value, allowed, 'not a name or a number')
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        return _int_in_range(param, value, 0, ID_MAX, allowed)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(param, value, allowed, 'not a name or a number')
    found = lookup(value)
    if found is None:
        raise ValidationError(param, value, allowed, 'no such %s on the host' % ('user' if 'user' in allowed else 'group'))
    return found


def _option_checks(lookup_user, lookup_group):
    """``{option: check(param, value) -> normalised value}`` of the per-TAP options that have one."""
    return {
        'iface_id': vm_identity.iface_id,
        'bridge': interface_name,
        'mtu': mtu_value,
        'vlan': vlan_id,
        'trunk_vlans': lambda param, value: tuple(vlan_ranges(param, value)),
        'owner': lambda param, value: account_id(param, value, lookup_user, ALLOWED_OWNER),
        'group': lambda param, value: account_id(param, value, lookup_group, ALLOWED_GROUP),
    }


def _options(validator, entry, defaults, param, checks):
    """``{option: value}`` of a TAP: its own, checked and named ``<param>.<option>``, or the (checked) top-level one."""
    values = {}
    for key in INHERITED_FIELDS:
        value = entry.get(key)
        if value is None:
            values[key] = defaults.get(key)
        elif key in checks:
            values[key] = validator.check(checks[key], '%s.%s' % (param, key) if param else key, value)
        else:
            values[key] = value
    return values


def build_spec(validator, entry, defaults, param, checks):
    """One ``TapSpec`` from a ``taps`` entry (or the top-level options, ``param=''``); ``None`` if invalid.

    ``defaults`` are the top-level options, already checked (``checked_defaults``).
    """
    def field(name):
        return '%s.%s' % (param, name) if param else name

    ok_before = len(validator.errors)
    options = _options(validator, entry, defaults, param, checks)
    state = options['state'] or 'present'
    iface = options['iface_id'] or vm_identity.DEFAULT_IFACE_ID
    vm = None
    if entry.get('vm_id') is not None:
        vm = validator.check(vm_identity.vm_id, field('vm_id'), entry['vm_id'])
    name = entry.get('name')
    if name is not None:
        name = validator.check(interface_name, field('name'), name)
    elif vm is not None:
        name = vm_identity.tap_name(vm, iface, defaults.get('name_prefix', vm_identity.DEFAULT_PREFIX))
    elif entry.get('vm_id') is None:
        validator.add(field('name'), None, ALLOWED_IDENTITY, 'neither name nor vm_id is given')

    mac = entry.get('guest_mac')
    if mac is not None:
        mac = validator.check(mac_address, field('guest_mac'), mac)
    elif vm is not None:
        mac = vm_identity.guest_mac(vm, iface)

    vlan, trunk = options['vlan'], options['trunk_vlans']
    if vlan is not None and trunk is not None and any(start <= vlan <= end for start, end in trunk):
        validator.add(field('trunk_vlans'), [format_vlan_range(item) for item in trunk],
                      'trunk (tagged) VLANs must not include the access VLAN',
                      'contains the access VLAN %d given in %s' % (vlan, field('vlan')))
    if state == 'present' and options['bridge'] is None:
        for key in ('vlan', 'trunk_vlans', 'isolated'):
            if options[key] is not None:
                validator.add(field(key), entry.get(key, options[key]), 'port options (vlan, trunk_vlans, isolated) need bridge to be set',
                              'no bridge is given for this TAP')
    if len(validator.errors) != ok_before or name is None:
        return None
    return TapSpec(
        name=name, param=param, state=state, bridge=options['bridge'], mtu=options['mtu'], vlan=vlan, trunk_vlans=trunk,
        owner=options['owner'], group=options['group'], multi_queue=options['multi_queue'], vnet_hdr=options['vnet_hdr'],
        isolated=options['isolated'], vm_id=vm, iface_id=iface, guest_mac=mac)


def build_request(validator, params, lookup_user, lookup_group):
    """The ``TapRequest`` of the module's parameters: ``taps`` entries, or one TAP from the top-level options.

    The top-level options that ``taps`` entries inherit are checked once, under their own name.
    """
    checks = _option_checks(lookup_user, lookup_group)
    prefix = vm_identity.DEFAULT_PREFIX
    if params.get('name_prefix') is not None:
        # a bad prefix is reported; names are derived with the default meanwhile, to report the rest
        prefix = validator.check(vm_identity.name_prefix, 'name_prefix', params['name_prefix']) or prefix
    specs = []
    if params.get('taps') is not None:
        defaults = _options(validator, params, {}, '', checks)
        defaults['name_prefix'] = prefix
        for position, entry in enumerate(params['taps']):
            spec = build_spec(validator, entry or {}, defaults, 'taps[%d]' % position, checks)
            if spec is not None:
                specs.append(spec)
    elif params.get('name') is not None or params.get('vm_id') is not None:
        entry = dict((key, params.get(key)) for key in SPEC_FIELDS)
        spec = build_spec(validator, entry, {'name_prefix': prefix}, '', checks)
        if spec is not None:
            specs.append(spec)
    seen = {}
    for spec in specs:
        if spec.name in seen:
            first = seen[spec.name]
            where = first.param or 'the top-level options'
            validator.add(spec.field('name'), spec.name, ALLOWED_UNIQUE,
                          'TAP %s is also given by %s%s' % (spec.name, where,
                                                            ' (derived from vm_id and iface_id)' if spec.vm_id or first.vm_id else ''))
        else:
            seen[spec.name] = spec
    return TapRequest(specs=tuple(specs), purge=bool(params.get('purge')))


# --------------------------------------------------------------------------- current state

_TUN_TYPES = {1: 'tun', 2: 'tap'}        # IFLA_TUN_TYPE
_ARPHRD_TUN_TYPES = {1: 'tap', 0xFFFE: 'tun'}   # kernels that report no tun data: the ARP type tells


def _tun_id(value):
    return None if value is None or value == NO_ID else value


class HostLink(object):
    """One link of the host as a dump reported it, decoded only as far as it is looked at.

    Reading a thousand TAPs is the whole of a no-op run: a field is decoded from the message
    (an ``rtnl_dump.LinkMessage``, or anything with pyroute2's message interface) when it is
    first asked for. The fields ``netlink.Link`` also has carry its names (``port_vlan`` reads
    bridges and ports through them). ``kind`` is ``IFLA_INFO_KIND`` (``'tun'`` for TUN and
    TAP); ``carrier`` is true while a process (a VMM) has the TAP open; ``owner``/``group`` are
    ``None`` when the TAP has none; ``isolated`` is the bridge-port flag (``None`` when not a
    bridge port); ``vlan_default_pvid`` is ``None`` on a kernel without bridge VLAN filtering.
    """

    __slots__ = ('_msg', 'index', 'name')

    def __init__(self, msg):
        self._msg = msg
        self.index = msg['index']
        self.name = msg.get_attr('IFLA_IFNAME')

    def __repr__(self):
        return 'HostLink(%d, %r, kind=%r)' % (self.index, self.name, self.kind)

    def _info(self, name):
        info = self._msg.get_attr('IFLA_LINKINFO')
        return info.get_attr(name) if info is not None else None

    def _data(self, name, kind):
        if self.kind != kind:
            return None
        data = self._info('IFLA_INFO_DATA')
        return data.get_attr(name) if data is not None else None

    @property
    def kind(self):
        return self._info('IFLA_INFO_KIND')

    @property
    def tun_type(self):
        if self.kind != 'tun':
            return None
        code = self._data('IFLA_TUN_TYPE', 'tun')
        return _TUN_TYPES.get(code) if code is not None else _ARPHRD_TUN_TYPES.get(self._msg['ifi_type'])

    @property
    def master_index(self):
        return self._msg.get_attr('IFLA_MASTER') or None

    @property
    def mtu(self):
        return self._msg.get_attr('IFLA_MTU')

    @property
    def up(self):
        return bool(self._msg['flags'] & 1)

    @property
    def carrier(self):
        return bool(self._msg.get_attr('IFLA_CARRIER'))

    @property
    def alias(self):
        return self._msg.get_attr('IFLA_IFALIAS') or None

    @property
    def owner(self):
        return _tun_id(self._data('IFLA_TUN_OWNER', 'tun'))

    @property
    def group(self):
        return _tun_id(self._data('IFLA_TUN_GROUP', 'tun'))

    @property
    def multi_queue(self):
        return bool(self._data('IFLA_TUN_MULTI_QUEUE', 'tun'))

    @property
    def vnet_hdr(self):
        return bool(self._data('IFLA_TUN_VNET_HDR', 'tun'))

    @property
    def isolated(self):
        if self._info('IFLA_INFO_SLAVE_KIND') != 'bridge':
            return None
        port = self._info('IFLA_INFO_SLAVE_DATA')
        return bool(port.get_attr('IFLA_BRPORT_ISOLATED')) if port is not None else False

    @property
    def vlan_filtering(self):
        filtering = self._data('IFLA_BR_VLAN_FILTERING', 'bridge')
        return None if filtering is None else bool(filtering)

    @property
    def vlan_default_pvid(self):
        return self._data('IFLA_BR_VLAN_DEFAULT_PVID', 'bridge')

    @property
    def is_tap(self):
        return self.kind == 'tun' and self.tun_type == 'tap'

    @property
    def is_bridge(self):
        return self.kind == 'bridge'

    @property
    def managed(self):
        """True if the collection made this link (its ifalias carries the marker)."""
        return is_ours(self.alias)

    @property
    def kind_label(self):
        """A word for messages: ``'tap'``, ``'tun'``, ``'bridge'``, ``'veth'``... or ``'link'``."""
        if self.kind == 'tun':
            return self.tun_type or 'tun'
        return self.kind or 'link'


def port_vlan_records(messages):
    """``{ifindex: netlink.PortVlans}`` of the messages of an ``AF_BRIDGE`` dump (see ``vlan_planning()``)."""
    from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import port_vlans_from_msg
    found = {}
    for msg in messages:
        record = port_vlans_from_msg(msg)
        prior = found.get(record.index)
        # a port whose own driver answers too comes twice: keep the entry with VLANs
        if prior is None or (not prior.vlans and record.vlans):
            found[record.index] = record
    return found


def vlan_planning():
    """``port_vlan``: fc_vlan's bridge-port VLAN planning, which every TAP VLAN goes through.

    Imported on first use: it imports ``netlink`` and so pyroute2 (0.25-0.3 s at every module
    start), which TAPs without VLANs never need.
    """
    from ansible_collections.nqrust.microvm.plugins.module_utils import port_vlan
    return port_vlan


class HostState(object):
    """The links of one dump, by name and ifindex, and the bridge-port VLANs (``{ifindex: PortVlans}``; ``None``: not read)."""

    def __init__(self, links, port_vlans=None):
        self.links = tuple(links)
        self.by_name = dict((link.name, link) for link in self.links)
        self.by_index = dict((link.index, link) for link in self.links)
        self.port_vlans = port_vlans

    def link(self, name):
        return self.by_name.get(name)

    def name_of(self, index):
        link = self.by_index.get(index)
        return link.name if link is not None else None

    def membership(self, index):
        """The ``port_vlan.Membership`` of port ``index`` as read (``None``: VLANs were not read)."""
        if self.port_vlans is None:
            return None
        return vlan_planning().Membership.from_port_vlans(self.port_vlans.get(index))


def needs_port_vlans(request, links_by_name):
    """True when the plan has to know bridge-port VLANs: a TAP asks for VLANs, or a TAP on a filtering
    bridge goes away (``state: absent``, purge, or to be made again with another multi-queue setting)."""
    if any(spec.present and spec.manages_vlans for spec in request.specs):
        return True
    absent = set(spec.name for spec in request.specs if not spec.present)
    remade = dict((spec.name, spec.multi_queue) for spec in request.specs if spec.present and spec.multi_queue is not None)
    if not absent and not remade and not request.purge:
        return False
    listed = request.names()
    by_index = dict((link.index, link) for link in links_by_name.values())
    for link in links_by_name.values():
        going = (link.name in absent or (link.name in remade and link.is_tap and link.multi_queue != remade[link.name])
                 or (request.purge and link.name not in listed and link.managed))
        if not going or not link.is_tap or link.master_index is None:
            continue
        master = by_index.get(link.master_index)
        if master is not None and master.vlan_filtering:
            return True
    return False


def read_host(rtnl, request):
    """The ``HostState`` of the host ``rtnl`` (an ``rtnl_socket.RtnlSocket``) talks to: one link dump, and one
    ``AF_BRIDGE`` dump when the request needs bridge-port VLANs."""
    links = [HostLink(msg) for msg in rtnl.dump_links()]
    port_vlans = None
    if needs_port_vlans(request, dict((link.name, link) for link in links)):
        port_vlans = port_vlan_records(rtnl.dump_port_vlans())
    return HostState(links, port_vlans)


def check_host(request, host):
    """``ValidationError``s for requests this host cannot take; nothing has been changed when they are raised."""
    errors = []
    for spec in request.specs:
        link = host.link(spec.name)
        if link is not None and not link.is_tap:
            errors.append(ValidationError(spec.field('name'), spec.name, ALLOWED_TAP_NAME,
                                          "a %s named '%s' exists on the host" % (link.kind_label, spec.name)))
        if not spec.present or spec.bridge is None:
            continue
        bridge = host.link(spec.bridge)
        if bridge is None:
            errors.append(ValidationError(spec.field('bridge'), spec.bridge, ALLOWED_BRIDGE, 'no such link on the host'))
            continue
        if not bridge.is_bridge:
            errors.append(ValidationError(spec.field('bridge'), spec.bridge, ALLOWED_BRIDGE,
                                          "'%s' is a %s, not a bridge" % (spec.bridge, bridge.kind_label)))
            continue
        if spec.manages_vlans:
            param = spec.field('vlan') if spec.vlan is not None else spec.field('trunk_vlans')
            value = spec.vlan if spec.vlan is not None else [format_vlan_range(item) for item in spec.trunk_vlans]
            if bridge.vlan_filtering is None or bridge.vlan_default_pvid is None:
                errors.append(ValidationError(param, value, ALLOWED_VLANS_NEED_FILTERING,
                                              'this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), '
                                              "so bridge '%s' cannot carry VLANs on its ports" % spec.bridge))
            elif not bridge.vlan_filtering:
                errors.append(ValidationError(param, value, ALLOWED_VLANS_NEED_FILTERING,
                                              "bridge '%s' has VLAN filtering off" % spec.bridge))
    return errors


# --------------------------------------------------------------------------- views (diff)

def view_of_link(link, host, spec=None, full=True):
    """What the diff shows of an existing TAP (its port settings when ``spec`` manages them).

    ``full=False``: only what the results need (bridge, MTU, up, managed), for runs without a diff.
    """
    view = {
        'bridge': host.name_of(link.master_index) if link.master_index else None,
        'mtu': link.mtu,
        'up': link.up,
        'managed': link.managed,
    }
    if not full:
        return view
    view.update(owner=link.owner, group=link.group, multi_queue=link.multi_queue, vnet_hdr=link.vnet_hdr, alias=link.alias)
    if spec is not None and spec.present:
        if spec.isolated is not None:
            view['isolated'] = bool(link.isolated) if link.master_index else None
        if spec.manages_vlans:
            view['vlans'] = host.membership(link.index).view() if link.master_index else None
    return view


# --------------------------------------------------------------------------- the plan

@dataclasses.dataclass
class TapPlan(object):
    """The changes, the before/after views for the diff, and warnings."""

    changes: list
    before: dict
    after: dict
    warnings: list


def _show(value):
    if value is None:
        return 'unset'
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _delete(link, host, reason):
    details = {'reason': reason, 'bridge': host.name_of(link.master_index) if link.master_index else None}
    return Change('delete', 'tap', link.name, Phase.CREATE, details)


def _in_use_warning(name, key, value):
    return ("tap '%s' is in use (a VMM has it open): %s stays %s until the VM stops and the task runs again"
            % (name, key, _show(value)))


def _create(spec, kept, desired_mtu):
    """The ``create tap`` change and the view of the new TAP; ``kept`` is the TAP it replaces, if any."""
    def keep(wanted, key, default):
        if wanted is not None:
            return wanted
        return getattr(kept, key) if kept is not None else default
    created = {
        'bridge': spec.bridge,
        'multi_queue': bool(spec.multi_queue),
        'vnet_hdr': bool(keep(spec.vnet_hdr, 'vnet_hdr', False)),
        'owner': keep(spec.owner, 'owner', None),
        'group': keep(spec.group, 'group', None),
        'mtu': keep(desired_mtu, 'mtu', None),
        'alias': spec.alias(),
    }
    view = dict(created, mtu=created['mtu'] or TAP_DEFAULT_MTU, up=True, managed=True)
    return Change('create', 'tap', spec.name, Phase.CREATE, created), view


def _attach(name, bridge, view):
    """The ``attach tap`` change that moves an existing TAP to ``bridge``, bringing it up too when it is down."""
    before, after = {'bridge': view['bridge']}, {'bridge': bridge}
    if not view['up']:
        before['up'], after['up'] = False, True
    view.update(after)
    return Change('attach', 'tap', name, Phase.ATTACH, {'before': before, 'after': after})


def _update(spec, link, host, desired_mtu, warnings, full):
    """The ``update tap`` change of an existing TAP (``None`` if nothing differs) and its view after it."""
    view = view_of_link(link, host, full=full)
    old, new = {}, {}
    for key, wanted in (('owner', spec.owner), ('group', spec.group), ('vnet_hdr', spec.vnet_hdr)):
        if wanted is not None:
            have = getattr(link, key)
            if wanted == have:
                continue
            if link.carrier:
                warnings.append(_in_use_warning(spec.name, key, have))
                continue
            old[key], new[key] = have, wanted
    if desired_mtu is not None and desired_mtu != link.mtu:
        old['mtu'], new['mtu'] = link.mtu, desired_mtu
    if spec.vm_id and link.managed and link.alias != spec.alias():
        old['alias'], new['alias'] = link.alias, spec.alias()
    view.update(new)
    if not new:
        return None, view
    return Change('update', 'tap', spec.name, Phase.CREATE, {'before': old, 'after': new}), view


def plan_taps(request, host, views=True):
    """Changes that bring the host to ``request`` (``check_host`` found no problem), with the diff views.

    ``views=False`` (a run without a diff): ``before`` stays empty and ``after`` has only what
    the results need, so a TAP's settings are decoded only where the request asks about them.
    """
    deletes, updates, creates, attaches, ports, ups = [], [], [], [], [], []
    before, after, warnings = {}, {}, []
    vlan_specs, new_ports = [], {}

    for spec in request.specs:
        link = host.link(spec.name)
        if not spec.present:
            if link is not None:
                if views:
                    before[spec.name] = view_of_link(link, host)
                deletes.append(_delete(link, host, 'state=absent'))
                if link.carrier:
                    warnings.append("tap '%s' was in use (a VMM had it open) when it was removed" % spec.name)
            continue
        bridge = host.link(spec.bridge) if spec.bridge is not None else None
        desired_mtu = spec.mtu if spec.mtu is not None else (bridge.mtu if bridge is not None else None)
        if spec.mtu is not None and bridge is not None and bridge.mtu and spec.mtu < bridge.mtu:
            warnings.append("tap '%s' gets MTU %d, below the MTU %d of bridge '%s': the kernel lowers a bridge's MTU to "
                            'its smallest port unless the bridge MTU was set explicitly' % (spec.name, spec.mtu, bridge.mtu, spec.bridge))
        replace = False
        if link is not None and spec.multi_queue is not None and link.multi_queue != spec.multi_queue:
            if link.carrier:
                warnings.append(_in_use_warning(spec.name, 'multi_queue', link.multi_queue))
            else:
                replace = True
        if link is not None and views:
            before[spec.name] = view_of_link(link, host, spec)

        if link is None or replace:
            if replace:
                deletes.append(_delete(link, host, 'replace: multi_queue %s -> %s' % (
                    _show(link.multi_queue), _show(spec.multi_queue))))
            change, view = _create(spec, link if replace else None, desired_mtu)
            creates.append(change)
        else:
            change, view = _update(spec, link, host, desired_mtu, warnings, views)
            if change is not None:
                updates.append(change)
        # a port made or moved in this run starts with the kernel's defaults (not isolated, the default VLAN)
        fresh_port = bridge is not None and (link is None or replace or link.master_index != bridge.index)
        if fresh_port and not (link is None or replace):
            # moved (and brought up, if it is down) in one request, as ``ip link set ... master ... up``
            attaches.append(_attach(spec.name, spec.bridge, view))

        if bridge is not None:
            # a TAP re-created on the same bridge keeps its port settings that the task leaves alone
            kept = link if replace and link.master_index == bridge.index else None
            wanted = spec.isolated
            if wanted is None and kept is not None and kept.isolated:
                wanted = True
            if wanted is not None:
                # a new port starts with the kernel's default: not isolated
                isolated = False if fresh_port else bool(link.isolated)
                if wanted != isolated:
                    ports.append(Change('update', 'port', spec.name, Phase.VLAN,
                                        {'before': {'isolated': isolated}, 'after': {'isolated': wanted}}))
                if spec.isolated is not None:
                    view['isolated'] = wanted
            if spec.manages_vlans:
                vlan_specs.append((spec, None))
            elif kept is not None and host.port_vlans is not None and bridge.vlan_filtering:
                vlan_specs.append((spec, host.membership(kept.index)))
            if fresh_port:
                new_ports[spec.name] = spec.bridge
        if not view['up']:
            ups.append(Change('up', 'tap', spec.name, Phase.UP, {}))
            view['up'] = True
        after[spec.name] = view

    ports.extend(_plan_vlans(vlan_specs, new_ports, host, after))

    if request.purge:
        listed = request.names()
        for link in host.links:
            if link.is_tap and link.managed and link.name not in listed:
                if views:
                    before[link.name] = view_of_link(link, host)
                deletes.append(_delete(link, host, 'purge'))
                if link.carrier:
                    warnings.append("tap '%s' was in use (a VMM had it open) when purge removed it" % link.name)

    # the new TAPs after the updates: they are made together (tap_apply)
    return TapPlan(changes=deletes + updates + creates + attaches + ports + ups, before=before, after=after, warnings=warnings)


def _plan_vlans(specs, new_ports, host, after):
    """The ``port_vlan`` changes of ``specs``, planned by ``port_vlan`` as fc_vlan plans them.

    ``specs``: ``(TapSpec, membership)`` pairs, the membership ``None`` for the TAP's own VLAN
    options, else the one a re-created TAP keeps. Ports made or moved in this run
    (``new_ports``) start with the bridge's default VLAN. Their VLAN changes run in the VLAN
    phase after the TAPs are made and attached, removals included (``removal=False``: dropping a
    VLAN from a port is not a teardown that must run before everything else).
    """
    if not specs:
        return []
    port_vlan = vlan_planning()
    requests = [port_vlan.PortVlanRequest(port=spec.name, membership=membership or spec.membership(port_vlan),
                                          bridge=spec.bridge, param=spec.param or 'tap') for spec, membership in specs]
    records = list((host.port_vlans or {}).values())
    shown = set(spec.name for spec, membership in specs if membership is None)
    changes = []
    for item in port_vlan.resolve_port_requests(requests, host.links, records, new_ports=new_ports):
        if item.name in shown:
            after[item.name]['vlans'] = item.target.view()
        changes.extend(dataclasses.replace(change, removal=False) for change in item.changes())
    return changes


# --------------------------------------------------------------------------- results

def network_interface(spec):
    """The Firecracker network-interface object of a TAP (``guest_mac`` when known)."""
    nic = {'iface_id': spec.iface_id, 'host_dev_name': spec.name}
    if spec.guest_mac:
        nic['guest_mac'] = spec.guest_mac
    return nic


def network_interfaces(request, plan):
    """The Firecracker network-interface object of every present TAP of the request, in its order.

    An object carries ``mtu`` when the TAP's MTU is not the default 1500.
    """
    nics = []
    for spec in request.specs:
        if spec.present:
            nic = network_interface(spec)
            mtu = plan.after[spec.name]['mtu']
            if mtu and mtu != TAP_DEFAULT_MTU:
                nic['mtu'] = mtu
            nics.append(nic)
    return nics


def removed_names(plan):
    """Names of the TAPs the plan deletes for good (not those it re-creates)."""
    recreated = set(change.target for change in plan.changes if change.action == 'create')
    return [change.target for change in plan.changes if change.action == 'delete' and change.target not in recreated]
