# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Linux bridges: the desired bridge from module parameters, its plan, diff view, handlers and report.

The pieces follow the module contract (see ``converge``):

* ``spec_from_params`` validates the parameters into a ``BridgeSpec`` (pure).
* ``read_host`` reads links, addresses and (in bridged mode) routes once.
* ``check_host`` refuses what the host makes impossible (a name taken by a
  non-bridge device, a missing or busy uplink, ports left on a bridge to
  delete...) before anything changes; ``plan_bridge`` turns (spec, host) into
  ``Change`` objects and the uplink ``MovePlan`` (pure).
* ``predict``/``view_of`` give the diff's before/after, the same in check
  mode and for real; ``BridgeHandlers`` applies the changes with undo.

Settings are compared in the module's units (``forward_delay`` in seconds,
``stp`` as a bool) and only those the task sets are managed; the MAC is always
managed, so that ports coming and going never change it (a bridge without a
set MAC takes the lowest MAC of its ports).
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import ipaddress
import re
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    NetlinkOperationError,
    owner_alias,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Handlers, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.uplink_migration import (
    TO_BRIDGE,
    TO_UPLINK,
    MoveRefused,
    UplinkMove,
    address_key,
    movable_addresses,
    movable_routes,
    plan_move,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationError,
    Validator,
    cidr,
    interface_name,
    mac_address,
    show_value,
)

MTU_MIN = 68
MTU_MAX = 65535
IPV6_MIN_MTU = 1280
FORWARD_DELAY_MAX = 30          # seconds; the kernel's limit while STP runs, and ours always
STP_FORWARD_DELAY_MIN = 2       # seconds; the kernel refuses less while STP runs
PVID_MAX = 4094
TXQLEN_MAX = 2 ** 32 - 1
USER_HZ = 100                   # the kernel reports bridge timers in clock_t (1/100 s)
IFF_LOOPBACK = 0x8

MACHINE_ID_PATHS = ('/etc/machine-id', '/var/lib/dbus/machine-id')
_MACHINE_ID_RE = re.compile(r'^[0-9a-f]{32}$')

# module option -> how it is set; order matters for the view only
LINK_SETTINGS = ('mac', 'mtu', 'txqueuelen')
BRIDGE_SETTINGS = ('stp', 'forward_delay', 'multicast_snooping')
VLAN_SETTINGS = ('vlan_filtering', 'vlan_default_pvid')
SETTINGS = LINK_SETTINGS + BRIDGE_SETTINGS + VLAN_SETTINGS

ALLOWED_MTU = 'MTU must be an integer from %d to %d' % (MTU_MIN, MTU_MAX)
ALLOWED_FORWARD_DELAY = ('forward_delay must be a number of seconds from 0 to %d (from %d to %d while STP runs), '
                         'in steps of 0.01' % (FORWARD_DELAY_MAX, STP_FORWARD_DELAY_MIN, FORWARD_DELAY_MAX))
ALLOWED_PVID = 'vlan_default_pvid must be an integer from 0 (no default VLAN) to %d' % PVID_MAX
ALLOWED_TXQLEN = 'txqueuelen must be an integer from 0 to %d' % TXQLEN_MAX
ALLOWED_ADDRESSES = 'addresses must be a list of distinct IPv4/IPv6 addresses with prefix length, e.g. 10.0.0.1/24 or fd00::1/64'
ALLOWED_NAME_ON_HOST = 'name must be unused or belong to a Linux bridge; the module never touches other devices'
ALLOWED_UPLINK = ('uplink must name an existing Ethernet link other than the bridge itself: not a bridge, '
                  'not the loopback, not a TUN device, and not a port of another bridge')
ALLOWED_FORCE = 'force must be true to delete a bridge that still has ports (the ports are detached, not deleted)'
NO_VLAN_FILTERING = ('this kernel has no bridge VLAN filtering (built without CONFIG_BRIDGE_VLAN_FILTERING); '
                     'vlan_filtering and vlan_default_pvid cannot be set on it')


# --------------------------------------------------------------------------- desired state

@dataclasses.dataclass(frozen=True)
class BridgeSpec(object):
    """The validated parameters.  ``None`` means "not managed"; ``forward_delay`` is in centiseconds."""

    name: str
    state: str = 'present'
    addresses: Optional[tuple] = None
    mtu: Optional[int] = None
    mac: Optional[str] = None
    stp: Optional[bool] = None
    forward_delay: Optional[int] = None
    vlan_filtering: Optional[bool] = None
    vlan_default_pvid: Optional[int] = None
    multicast_snooping: Optional[bool] = None
    txqueuelen: Optional[int] = None
    uplink: Optional[str] = None
    force: bool = False

    @property
    def present(self):
        return self.state == 'present'


def _integer(param, value, low, high, allowed):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(param, value, allowed, 'not an integer')
    if value < low or value > high:
        raise ValidationError(param, value, allowed)
    return value


def _forward_delay(param, value, stp):
    """Seconds (int or float, 0.01 s steps) -> centiseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(param, value, ALLOWED_FORWARD_DELAY, 'not a number')
    centis = int(round(value * USER_HZ))
    if abs(centis - value * USER_HZ) > 1e-6:
        raise ValidationError(param, value, ALLOWED_FORWARD_DELAY, 'finer than 0.01 s')
    if centis < 0 or centis > FORWARD_DELAY_MAX * USER_HZ:
        raise ValidationError(param, value, ALLOWED_FORWARD_DELAY)
    if stp and centis < STP_FORWARD_DELAY_MIN * USER_HZ:
        raise ValidationError(param, value, ALLOWED_FORWARD_DELAY, 'below %d s while stp is true' % STP_FORWARD_DELAY_MIN)
    return centis


def _address_list(validator, param, value):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        validator.add(param, value, ALLOWED_ADDRESSES, 'not a list')
        return None
    seen = {}
    ok = True
    for position, item in enumerate(value):
        iface = validator.check(cidr, '%s[%d]' % (param, position), item, require_host=True)
        if iface is None:
            ok = False
            continue
        text = str(iface)
        if text in seen:
            validator.add(param, value, ALLOWED_ADDRESSES, '%s is listed more than once' % text)
            ok = False
        seen[text] = True
    if not ok:
        return None
    return tuple(sorted(seen, key=address_key))


def spec_from_params(validator, params):
    """A ``BridgeSpec`` from the module parameters; problems are recorded on ``validator`` (None where invalid)."""
    name = validator.check(interface_name, 'name', params.get('name'))
    state = params.get('state') or 'present'
    addresses = _address_list(validator, 'addresses', params.get('addresses'))
    mtu = params.get('mtu')
    if mtu is not None:
        mtu = validator.check(_integer, 'mtu', mtu, MTU_MIN, MTU_MAX, ALLOWED_MTU)
        if mtu is not None and mtu < IPV6_MIN_MTU and any(':' in item for item in (addresses or ())):
            validator.add('mtu', mtu, ALLOWED_MTU + ', and at least %d when addresses has IPv6 addresses' % IPV6_MIN_MTU,
                          'IPv6 needs an MTU of %d or more' % IPV6_MIN_MTU)
            mtu = None
    mac = params.get('mac')
    if mac is not None:
        mac = validator.check(mac_address, 'mac', mac)
    stp = params.get('stp')
    forward_delay = params.get('forward_delay')
    if forward_delay is not None:
        forward_delay = validator.check(_forward_delay, 'forward_delay', forward_delay, stp)
    pvid = params.get('vlan_default_pvid')
    if pvid is not None:
        pvid = validator.check(_integer, 'vlan_default_pvid', pvid, 0, PVID_MAX, ALLOWED_PVID)
    txqueuelen = params.get('txqueuelen')
    if txqueuelen is not None:
        txqueuelen = validator.check(_integer, 'txqueuelen', txqueuelen, 0, TXQLEN_MAX, ALLOWED_TXQLEN)
    uplink = params.get('uplink')
    if uplink is not None:
        uplink = validator.check(interface_name, 'uplink', uplink)
        if uplink is not None and uplink == name:
            validator.add('uplink', uplink, ALLOWED_UPLINK, 'is the bridge itself')
            uplink = None
    return BridgeSpec(
        name=name, state=state, addresses=addresses, mtu=mtu, mac=mac, stp=stp, forward_delay=forward_delay,
        vlan_filtering=params.get('vlan_filtering'), vlan_default_pvid=pvid,
        multicast_snooping=params.get('multicast_snooping'), txqueuelen=txqueuelen, uplink=uplink,
        force=bool(params.get('force')),
    )


# --------------------------------------------------------------------------- stable MAC

def read_machine_id(paths=MACHINE_ID_PATHS):
    """The host's machine id (32 hex digits), or ``None`` when there is none."""
    for path in paths:
        try:
            with open(path, encoding='ascii') as handle:
                value = handle.read().strip().lower()
        except (OSError, UnicodeDecodeError):
            continue
        if _MACHINE_ID_RE.match(value):
            return value
    return None


def derive_mac(name, machine_id=None):
    """A stable, locally administered unicast MAC for bridge ``name`` on the host with ``machine_id``.

    The same name on the same host always gives the same MAC, so deleting and
    re-creating a bridge keeps the MAC its guests have cached; the machine id
    keeps equal bridge names on different hosts apart.
    """
    seed = 'nqrust.microvm/bridge/%s/%s' % (machine_id or '', name)
    digest = bytearray(hashlib.sha256(seed.encode('utf-8')).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ':'.join('%02x' % octet for octet in digest)


# --------------------------------------------------------------------------- current state

@dataclasses.dataclass(frozen=True)
class HostState(object):
    """What ``read_host`` read: every link and address, the routes (bridged mode only) and the machine id."""

    links: tuple
    addresses: tuple
    routes: tuple = ()
    machine_id: Optional[str] = None

    def link(self, name):
        for rec in self.links:
            if rec.name == name:
                return rec
        return None

    def name_of(self, index):
        for rec in self.links:
            if rec.index == index:
                return rec.name
        return None

    def ports(self, index):
        return tuple(sorted((rec for rec in self.links if index is not None and rec.master_index == index),
                            key=lambda rec: rec.name))

    def addresses_of(self, index):
        return tuple(rec for rec in self.addresses if rec.index == index)

    def routes_of(self, index):
        return tuple(rec for rec in self.routes if rec.oif == index or index in rec.multipath_oifs)

    @property
    def lacks_vlan_filtering(self):
        """True when a bridge here reports its settings but no default PVID: no VLAN filtering in this kernel."""
        return any(rec.is_bridge and rec.stp_state is not None and rec.vlan_default_pvid is None for rec in self.links)


def read_host(session, spec, machine_id=None):
    """One dump per kind: links, addresses, and routes when an uplink is involved."""
    routes = session.routes() if spec.uplink else ()
    return HostState(links=tuple(session.links()), addresses=tuple(session.addresses()), routes=tuple(routes),
                     machine_id=machine_id)


def seconds(centis):
    """Centiseconds -> seconds (an int when whole)."""
    if centis is None:
        return None
    if centis % USER_HZ == 0:
        return centis // USER_HZ
    return centis / float(USER_HZ)


def current_settings(link):
    """A bridge's settings in the module's units (``None`` for what the kernel does not report)."""
    return {
        'mac': link.mac,
        'mtu': link.mtu,
        'txqueuelen': link.txqlen,
        'stp': None if link.stp_state is None else link.stp_state != 0,
        'forward_delay': seconds(link.forward_delay),
        'multicast_snooping': link.mcast_snooping,
        'vlan_filtering': link.vlan_filtering,
        'vlan_default_pvid': link.vlan_default_pvid,
    }


def desired_mac(spec, host):
    """``mac`` if given; in bridged mode the uplink's MAC; otherwise the MAC derived from the name."""
    if spec.mac:
        return spec.mac
    if spec.uplink:
        uplink = host.link(spec.uplink)
        if uplink is not None and uplink.mac:
            return uplink.mac
    return derive_mac(spec.name, host.machine_id)


def desired_settings(spec, host):
    """The managed settings in the module's units: the MAC always, the rest when set."""
    wanted = {'mac': desired_mac(spec, host)}
    values = {
        'mtu': spec.mtu,
        'txqueuelen': spec.txqueuelen,
        'stp': spec.stp,
        'forward_delay': seconds(spec.forward_delay),
        'multicast_snooping': spec.multicast_snooping,
        'vlan_filtering': spec.vlan_filtering,
        'vlan_default_pvid': spec.vlan_default_pvid,
    }
    for key, value in values.items():
        if value is not None:
            wanted[key] = value
    return wanted


def _same(key, wanted, have):
    if key == 'vlan_filtering' and wanted is False and have is None:
        return True  # a kernel without VLAN filtering: the bridge does not filter
    return wanted == have


# --------------------------------------------------------------------------- host checks

def _uplink_problem(uplink, bridge, host):
    if uplink is None:
        return 'no link of that name exists'
    if uplink.is_bridge:
        return 'is a bridge (a bridge cannot be a port of another bridge)'
    if uplink.flags & IFF_LOOPBACK:
        return 'is the loopback device'
    if uplink.kind == 'tun' and uplink.tun_type == 'tun':
        return 'is a TUN device (it carries no Ethernet frames)'
    if uplink.master_index is not None and (bridge is None or uplink.master_index != bridge.index):
        return "is already a port of '%s'" % (host.name_of(uplink.master_index) or '#%d' % uplink.master_index)
    return None


def check_host(spec, host):
    """Refuse what the host makes impossible, all problems at once (``ValidationErrors``); changes nothing."""
    validator = Validator()
    link = host.link(spec.name)
    if link is not None and not link.is_bridge:
        what = 'a %s link' % link.kind_label if link.kind else 'a network device'
        validator.add('name', spec.name, ALLOWED_NAME_ON_HOST,
                      "'%s' is %s (ifindex %d), not a bridge" % (spec.name, what, link.index))
        validator.raise_if_any()
    if not spec.present and link is None:
        return  # nothing to delete, nothing to hand back
    uplink = None
    if spec.uplink:
        uplink = host.link(spec.uplink)
        problem = _uplink_problem(uplink, link, host)
        if problem:
            validator.add('uplink', spec.uplink, ALLOWED_UPLINK, problem)
            uplink = None
    if spec.present:
        _check_present(spec, host, link, uplink, validator)
    elif link is not None:
        ports = [rec.name for rec in host.ports(link.index) if rec.name != spec.uplink]
        if ports and not spec.force:
            validator.add('force', spec.force, ALLOWED_FORCE, "bridge '%s' still has ports %s" % (spec.name, ', '.join(ports)))
        if uplink is not None:
            try:
                movable_routes(host.routes, link.index, spec.name)
            except MoveRefused as exc:
                validator.add('uplink', spec.uplink, ALLOWED_UPLINK + "; the bridge's routes must be movable", str(exc))
    validator.raise_if_any()


def _check_present(spec, host, link, uplink, validator):
    if uplink is not None:
        moving = movable_addresses(host.addresses_of(uplink.index))
        if spec.addresses is not None:
            left_out = [item for item in moving if item not in spec.addresses]
            if left_out:
                validator.add('addresses', list(spec.addresses),
                              "in bridged mode addresses must include every address of the uplink (they move to the bridge), "
                              "or be left out to move them as they are",
                              "leaves out %s of uplink '%s'" % (', '.join(left_out), spec.uplink))
        try:
            movable_routes(host.routes, uplink.index, spec.uplink)
        except MoveRefused as exc:
            validator.add('uplink', spec.uplink, ALLOWED_UPLINK + "; the uplink's routes must be movable", str(exc))
        if spec.mtu is not None and uplink.mtu and spec.mtu > uplink.mtu:
            validator.add('mtu', spec.mtu, ALLOWED_MTU + ", and in bridged mode at most the uplink's MTU",
                          "uplink '%s' has MTU %d; the bridge would pass it frames it drops" % (spec.uplink, uplink.mtu))
    if spec.forward_delay is not None and spec.stp is None and link is not None and link.stp_state:
        if spec.forward_delay < STP_FORWARD_DELAY_MIN * USER_HZ:
            validator.add('forward_delay', seconds(spec.forward_delay), ALLOWED_FORWARD_DELAY,
                          "below %d s while STP runs on '%s'" % (STP_FORWARD_DELAY_MIN, spec.name))
    if spec.mtu is not None and spec.mtu < IPV6_MIN_MTU:
        final = set(spec.addresses) if spec.addresses is not None else set(
            movable_addresses(host.addresses_of(link.index)) if link is not None else ())
        if uplink is not None:
            final.update(movable_addresses(host.addresses_of(uplink.index)))
        if any(':' in item for item in final):
            validator.add('mtu', spec.mtu, ALLOWED_MTU + ', and at least %d while the bridge has IPv6 addresses' % IPV6_MIN_MTU,
                          'IPv6 needs an MTU of %d or more' % IPV6_MIN_MTU)
    if host.lacks_vlan_filtering:
        have = current_settings(link) if link is not None else {}
        for key, value in (('vlan_filtering', spec.vlan_filtering), ('vlan_default_pvid', spec.vlan_default_pvid)):
            if value is None or _same(key, value, have.get(key)):
                continue
            if key == 'vlan_filtering' and value is False:
                continue
            validator.add(key, value, '%s can be set only where the kernel has bridge VLAN filtering' % key, NO_VLAN_FILTERING)


# --------------------------------------------------------------------------- plan

@dataclasses.dataclass(frozen=True)
class BridgePlan(object):
    """The changes (for ``converge``) and the uplink move they include (for the handlers)."""

    changes: tuple
    move: Optional[object] = None


def _address_change(action, item, name):
    if action == 'add':
        text = "add address %s to bridge '%s'" % (item, name)
    else:
        text = "remove address %s from bridge '%s'" % (item, name)
    return Change(action, 'address', item, Phase.ADDRESS, details={'bridge': name, 'cidr': item}, description=text)


def _move_description(move):
    parts = []
    if move.direction == TO_BRIDGE:
        head = "move uplink '%s' into bridge '%s'" % (move.uplink, move.bridge)
    else:
        head = "hand the addresses and routes of bridge '%s' back to uplink '%s'" % (move.bridge, move.uplink)
    if move.addresses:
        parts.append('addresses %s' % ', '.join(move.addresses))
    if move.routes:
        parts.append('routes %s' % '; '.join(route.describe() for route in move.routes))
    if move.set_up:
        parts.append("bring '%s' up" % move.uplink)
    if move.release:
        parts.append("release '%s'" % move.uplink)
    return head + (' (%s)' % ', '.join(parts) if parts else '')


def plan_bridge(spec, host):
    """A ``BridgePlan`` from (spec, host), after ``check_host``; pure."""
    check_host(spec, host)
    link = host.link(spec.name)
    uplink = host.link(spec.uplink) if spec.uplink else None
    changes = []
    move = None
    if not spec.present:
        if link is None:
            return BridgePlan(changes=())
        if uplink is not None:
            move = plan_move(TO_UPLINK, spec.name, spec.uplink, uplink, link,
                             host.addresses_of(link.index), host.addresses_of(uplink.index),
                             host.routes_of(link.index), host.routes_of(uplink.index))
            if move.empty:
                move = None
            else:
                changes.append(Change('release', 'uplink', spec.uplink, Phase.ATTACH, details=move.details(),
                                      description=_move_description(move), removal=True))
        ports = [rec.name for rec in host.ports(link.index)]
        changes.append(Change('delete', 'bridge', spec.name, Phase.CREATE, details={'ports': ports}))
        return BridgePlan(changes=tuple(changes), move=move)

    wanted = desired_settings(spec, host)
    if link is None:
        changes.append(Change('create', 'bridge', spec.name, Phase.CREATE, details={'settings': wanted}))
        have_addresses = []
    else:
        have = current_settings(link)
        before = dict((key, have.get(key)) for key in wanted if not _same(key, wanted[key], have.get(key)))
        after = dict((key, wanted[key]) for key in before)
        if after:
            changes.append(Change('update', 'bridge', spec.name, Phase.CREATE, details={'before': before, 'after': after}))
        have_addresses = movable_addresses(host.addresses_of(link.index))

    if uplink is not None:
        move = plan_move(TO_BRIDGE, spec.name, spec.uplink, uplink, link,
                         host.addresses_of(uplink.index), host.addresses_of(link.index) if link is not None else (),
                         host.routes_of(uplink.index), host.routes_of(link.index) if link is not None else ())
        if move.empty:
            move = None
    moving = set(move.addresses) if move is not None else set()
    if spec.addresses is not None:
        for item in have_addresses:
            if item not in spec.addresses:
                changes.append(_address_change('remove', item, spec.name))
        for item in spec.addresses:
            if item not in have_addresses and item not in moving:
                changes.append(_address_change('add', item, spec.name))
    if link is None or not link.up:
        changes.append(Change('up', 'bridge', spec.name, Phase.UP, description="bring bridge '%s' up" % spec.name))
    if move is not None:
        changes.append(Change('migrate', 'uplink', spec.uplink, Phase.UP, details=move.details(),
                              description=_move_description(move)))
    return BridgePlan(changes=tuple(changes), move=move)


# --------------------------------------------------------------------------- diff view

def _route_texts(routes):
    return sorted(route.describe() for route in routes)


def view_of(spec, host):
    """The bridge (and, in bridged mode, its uplink) as the diff shows it: only what the task manages."""
    link = host.link(spec.name)
    view = {'name': spec.name}
    if link is None or not link.is_bridge:
        view['state'] = 'absent'
    else:
        view['state'] = 'present'
        if spec.present:
            have = current_settings(link)
            for key in desired_settings(spec, host):
                view[key] = have.get(key)
        view['up'] = link.up
        view['addresses'] = movable_addresses(host.addresses_of(link.index))
        view['ports'] = [rec.name for rec in host.ports(link.index)]
    if spec.uplink:
        if link is not None and link.is_bridge:
            view['routes'] = _route_texts(_safe_movable(host.routes, link.index, spec.name))
        uplink = host.link(spec.uplink)
        if uplink is not None:
            view['uplink'] = {
                'name': spec.uplink,
                'master': host.name_of(uplink.master_index) if uplink.master_index else None,
                'up': uplink.up,
                'addresses': movable_addresses(host.addresses_of(uplink.index)),
                'routes': _route_texts(_safe_movable(host.routes, uplink.index, spec.uplink)),
            }
    return view


def _safe_movable(routes, index, name):
    try:
        return movable_routes(routes, index, name)
    except MoveRefused:
        return []


def predict(spec, host, changes, move=None):
    """The view after ``changes`` (what the diff's "after" shows), computed from the changes themselves."""
    view = copy.deepcopy(view_of(spec, host))
    for change in changes:
        if change.kind == 'bridge' and change.action == 'create':
            keep = dict((key, view[key]) for key in ('uplink',) if key in view)
            view = {'name': spec.name, 'state': 'present', 'up': False, 'addresses': [], 'ports': []}
            view.update(dict(change.details['settings']))
            if spec.uplink:
                view['routes'] = []
            view.update(keep)
        elif change.kind == 'bridge' and change.action == 'update':
            view.update(dict(change.details['after']))
        elif change.kind == 'bridge' and change.action == 'up':
            view['up'] = True
        elif change.kind == 'bridge' and change.action == 'delete':
            keep = dict((key, view[key]) for key in ('uplink',) if key in view)
            view = {'name': spec.name, 'state': 'absent'}
            view.update(keep)
        elif change.kind == 'address':
            if change.action == 'add':
                view['addresses'] = sorted(view['addresses'] + [change.target], key=address_key)
            else:
                view['addresses'] = [item for item in view['addresses'] if item != change.target]
        elif change.kind == 'uplink' and move is not None:
            _predict_move(view, move)
    return view


def _predict_move(view, move):
    uplink = view['uplink']
    routes = [route.describe() for route in move.routes]
    if move.direction == TO_BRIDGE:
        view['addresses'] = sorted(set(view['addresses']) | set(move.addresses), key=address_key)
        if move.enslave:
            view['ports'] = sorted(view['ports'] + [move.uplink])
        view['routes'] = sorted(set(view.get('routes', [])) | set(routes))
        uplink['master'] = move.bridge
        uplink['up'] = True
        uplink['addresses'] = [item for item in uplink['addresses'] if item not in move.addresses]
        uplink['routes'] = [item for item in uplink['routes'] if item not in routes]
    else:
        view['addresses'] = [item for item in view['addresses'] if item not in move.addresses]
        if move.release:
            view['ports'] = [item for item in view['ports'] if item != move.uplink]
            uplink['master'] = None
        view['routes'] = [item for item in view.get('routes', []) if item not in routes]
        uplink['addresses'] = sorted(set(uplink['addresses']) | set(move.addresses), key=address_key)
        uplink['routes'] = sorted(set(uplink['routes']) | set(routes))


# --------------------------------------------------------------------------- apply

def _link_attrs(values):
    attrs = {}
    if 'mac' in values:
        attrs['address'] = values['mac']
    if 'mtu' in values:
        attrs['mtu'] = values['mtu']
    if 'txqueuelen' in values:
        attrs['txqlen'] = values['txqueuelen']
    return attrs


def _bridge_attrs(values):
    attrs = {}
    if 'stp' in values:
        attrs['br_stp_state'] = 1 if values['stp'] else 0
    if 'forward_delay' in values:
        attrs['br_forward_delay'] = int(round(values['forward_delay'] * USER_HZ))
    if 'multicast_snooping' in values:
        attrs['br_mcast_snooping'] = 1 if values['multicast_snooping'] else 0
    return attrs


def _vlan_attrs(values):
    attrs = {}
    if 'vlan_filtering' in values:
        attrs['br_vlan_filtering'] = 1 if values['vlan_filtering'] else 0
    if 'vlan_default_pvid' in values:
        attrs['br_vlan_default_pvid'] = values['vlan_default_pvid']
    return attrs


def _show_setting(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return show_value(value)
    return str(value)


def _show_settings(values):
    return ', '.join('%s=%s' % (key, _show_setting(values[key])) for key in sorted(values))


class BridgeHandlers(Handlers):
    """``do``/``undo`` for every change ``plan_bridge`` makes, through a ``NetlinkSession``."""

    def __init__(self, session, spec, host, move=None):
        super(BridgeHandlers, self).__init__()
        self.session = session
        self.spec = spec
        self.host = host
        self.move = move
        link = host.link(spec.name)
        self.index = link.index if link is not None else None
        self.register('create', 'bridge', self.create, self.delete_created)
        self.register('update', 'bridge', self.update, self.revert_update)
        self.register('add', 'address', self.add_address, self.remove_added)
        self.register('remove', 'address', self.remove_address, self.restore_address)
        self.register('up', 'bridge', self.set_up, self.set_down)
        self.register('migrate', 'uplink', self.run_move, self.undo_move)
        self.register('release', 'uplink', self.run_move, self.undo_move)
        self.register('delete', 'bridge', self.delete, None)

    # ----------------------------------------------------------- settings
    def _requests(self, values, what):
        """The netlink requests that set ``values`` (module units), in an order the kernel accepts.

        Turning STP off goes first (a forward delay below 2 s is refused while
        STP runs); within one request the kernel sets the forward delay before
        the STP state.  VLAN settings go alone, so that a kernel without VLAN
        filtering is named as the reason.
        """
        requests = []
        if values.get('stp') is False:
            requests.append(({'stp': False}, {'kind': 'bridge', 'br_stp_state': 0}))
        link_values = dict((key, values[key]) for key in LINK_SETTINGS if key in values)
        if link_values:
            requests.append((link_values, _link_attrs(link_values)))
        bridge_values = dict((key, values[key]) for key in BRIDGE_SETTINGS if key in values
                             and not (key == 'stp' and values[key] is False))
        if bridge_values:
            attrs = _bridge_attrs(bridge_values)
            attrs['kind'] = 'bridge'
            requests.append((bridge_values, attrs))
        vlan_values = dict((key, values[key]) for key in VLAN_SETTINGS if key in values)
        if what == 'create' and vlan_values.get('vlan_filtering') is False:
            del vlan_values['vlan_filtering']  # the kernel's default; one without VLAN filtering refuses even "0"
        if vlan_values:
            attrs = _vlan_attrs(vlan_values)
            attrs['kind'] = 'bridge'
            requests.append((vlan_values, attrs))
        return requests

    def _request(self, shown, attrs):
        operation = "setting %s on bridge '%s'" % (_show_settings(shown), self.spec.name)
        try:
            self.session.call(operation, self.session.ipr.link, 'set', index=self.index, **attrs)
        except NetlinkOperationError as exc:
            if exc.code == errno.EOPNOTSUPP and set(shown) & set(VLAN_SETTINGS):
                raise NetlinkOperationError(operation, detail=NO_VLAN_FILTERING + ' [EOPNOTSUPP]', cause=exc) from exc
            raise

    def _set(self, values, what, restore=None):
        """Set ``values``; if a request fails, put back ``restore`` values of the requests already done."""
        done = []
        for shown, attrs in self._requests(values, what):
            try:
                self._request(shown, attrs)
            except NetlinkOperationError:
                back = dict((key, restore[key]) for part in done for key in part
                            if restore is not None and restore.get(key) is not None)
                for again in self._requests(back, 'update'):
                    try:
                        self._request(*again)
                    except NetlinkOperationError:
                        pass
                raise
            done.append(shown)

    def create(self, change):
        settings = dict(change.details['settings'])
        self.index = self.session.create_link('bridge', self.spec.name, alias=owner_alias())
        try:
            self._set(settings, 'create')
        except Exception:
            self.session.delete_link(self.index, display=self.spec.name)
            self.index = None
            raise
        return self.index

    def delete_created(self, change, index):
        self.session.delete_link(index, display=self.spec.name)
        self.index = None

    def update(self, change):
        self._set(dict(change.details['after']), 'update', restore=dict(change.details['before']))

    def revert_update(self, change, result):
        before = dict((key, value) for key, value in dict(change.details['before']).items() if value is not None)
        if before:
            self._set(before, 'update')

    # ----------------------------------------------------------- addresses and state
    def _address(self, action, item):
        iface = ipaddress.ip_interface(item)
        if action == 'add':
            attrs = {}
            if iface.version == 4 and iface.network.prefixlen < 31:
                attrs['broadcast'] = str(iface.network.broadcast_address)
            self.session.add_address(self.index, str(iface.ip), iface.network.prefixlen, display=self.spec.name, **attrs)
        else:
            self.session.delete_address(self.index, str(iface.ip), iface.network.prefixlen, display=self.spec.name)

    def add_address(self, change):
        self._address('add', change.target)

    def remove_added(self, change, result):
        self._address('remove', change.target)

    def remove_address(self, change):
        self._address('remove', change.target)

    def restore_address(self, change, result):
        self._address('add', change.target)

    def set_up(self, change):
        self.session.set_link(self.index, display=self.spec.name, state='up')

    def set_down(self, change, result):
        self.session.set_link(self.index, display=self.spec.name, state='down')

    # ----------------------------------------------------------- uplink and deletion
    def run_move(self, change):
        uplink = self.host.link(self.spec.uplink)
        return UplinkMove(self.session, self.move, self.index, uplink.index).run()

    def undo_move(self, change, mover):
        mover.undo()

    def delete(self, change):
        self.session.delete_link(self.index, display=self.spec.name)


# --------------------------------------------------------------------------- report

def shape_bridge(link, host, uplink=None, with_routes=False):
    """The bridge as the module returns it."""
    settings = current_settings(link)
    ports = [rec.name for rec in host.ports(link.index)]
    result = {
        'name': link.name,
        'ifindex': link.index,
        'mac': link.mac,
        'mtu': link.mtu,
        'txqueuelen': link.txqlen,
        'up': link.up,
        'operstate': link.operstate,
        'alias': link.alias,
        'managed': link.managed,
        'addresses': movable_addresses(host.addresses_of(link.index)),
        'ports': ports,
        'uplink': uplink if uplink in ports else None,
        'stp': settings['stp'],
        'forward_delay': settings['forward_delay'],
        'multicast_snooping': settings['multicast_snooping'],
        'vlan_filtering': settings['vlan_filtering'],
        'vlan_default_pvid': settings['vlan_default_pvid'],
    }
    if with_routes:
        result['routes'] = _route_texts(_safe_movable(host.routes, link.index, link.name))
    return result


def predicted_bridge(spec, host, view):
    """What check mode returns as ``bridge``: the current bridge with the predicted view laid over it."""
    if view.get('state') != 'present':
        return None
    link = host.link(spec.name)
    if link is not None:
        result = shape_bridge(link, host, spec.uplink, with_routes=bool(spec.uplink))
    else:
        result = {
            'name': spec.name, 'ifindex': None, 'mac': None, 'mtu': None, 'txqueuelen': None, 'up': False,
            'operstate': None, 'alias': owner_alias(), 'managed': True, 'addresses': [], 'ports': [], 'uplink': None,
            'stp': None, 'forward_delay': None, 'multicast_snooping': None, 'vlan_filtering': None,
            'vlan_default_pvid': None,
        }
        if spec.uplink:
            result['routes'] = []
    for key in SETTINGS + ('up', 'addresses', 'ports', 'routes'):
        if key in view and key in result:
            result[key] = copy.deepcopy(view[key])
    result['uplink'] = spec.uplink if spec.uplink and spec.uplink in result['ports'] else None
    return result


class BridgeTask(object):
    """The module's five pieces for ``converge``, sharing what one run read and planned."""

    def __init__(self, params, machine_id_reader=None):
        self.params = params
        self.machine_id_reader = machine_id_reader
        self.spec = None
        self.host = None
        self.plan_result = None

    def validate(self, validator):
        self.spec = spec_from_params(validator, self.params)
        return self.spec

    def read(self, session):
        self.host = read_host(session, self.spec, (self.machine_id_reader or read_machine_id)())
        return self.host

    def plan(self, spec, host):
        self.plan_result = plan_bridge(spec, host)
        return list(self.plan_result.changes)

    def after(self, spec, host, changes):
        return predict(spec, host, changes, self.plan_result.move if self.plan_result else None)

    def view(self, state):
        if isinstance(state, HostState):
            return view_of(self.spec, state)
        return state

    def handlers(self, session):
        return BridgeHandlers(session, self.spec, self.host, self.plan_result.move if self.plan_result else None)

    def report(self, session, changes, check_mode):
        if check_mode:
            return {'bridge': predicted_bridge(self.spec, self.host, self.after(self.spec, self.host, changes))}
        if changes:
            session.refresh()
            host = read_host(session, self.spec, self.host.machine_id)
        else:
            host = self.host
        link = host.link(self.spec.name)
        if link is None or not link.is_bridge:
            return {'bridge': None}
        return {'bridge': shape_bridge(link, host, self.spec.uplink, with_routes=bool(self.spec.uplink))}


__all__ = [
    'BridgeHandlers', 'BridgePlan', 'BridgeSpec', 'BridgeTask', 'HostState',
    'check_host', 'current_settings', 'derive_mac', 'desired_settings', 'plan_bridge', 'predict',
    'predicted_bridge', 'read_host', 'read_machine_id', 'shape_bridge', 'spec_from_params', 'view_of',
]
