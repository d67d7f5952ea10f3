# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bridge-port VLAN membership: desired state, host checks, plan and apply.

Used by ``fc_vlan`` and meant to be reused by any module that puts ports on a
VLAN-filtering bridge (``fc_tap`` for access and trunk TAPs).  The pieces:

* ``Membership``: an immutable set of VLAN ids with their flags (``pvid``,
  ``untagged``); ``Membership.access(100)``, ``Membership.trunk([(100, 100),
  (200, 299)], native=1)``, ``Membership.build(...)`` or
  ``Membership.from_port_vlans(record)`` make one.
* ``parse_membership(validator, param, vlans, untagged, pvid)`` turns module
  parameters into a ``Membership``, recording every problem (ids outside
  1-4094, overlapping ranges, two pvids) on a ``validation.Validator``.
* ``PortVlanRequest``: what one port should carry, with ``mode``
  (``exact``: the port gets exactly these VLANs; ``additive``: these are
  added or updated, others are kept) and ``state`` (``absent`` removes the
  listed VLANs).
* ``resolve_port_requests(requests, links, port_vlans, new_ports)`` checks
  the requests against the host (port exists and is on a bridge, the bridge
  filters VLANs, the kernel can) and returns one ``PortPlan`` per port with
  its current and target membership.  ``new_ports`` names ports the caller
  attaches in the same run (they start with the bridge's default VLAN).
* ``PortPlan.changes()``: the ``plan.Change`` list (kind ``port_vlan``,
  actions ``add``/``update``/``remove``, phase VLAN), one change per run of
  neighbouring ids with equal flags, so each is one netlink request and can
  be undone exactly.  ``PortPlan.view()``/``result()`` give the diff and
  result shapes.
* ``PortVlanApplier(session).register(handlers)`` adds the do/undo handlers
  of those changes to a ``plan.Handlers`` table.

Pure Python apart from the applier, which writes through
``netlink.NetlinkSession``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.kernel_features import require_bridge_vlan_filtering
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import PortVlan, merge_port_vlans
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    VLAN_MAX,
    VLAN_MIN,
    ValidationError,
    ValidationErrors,
    Validator,
    vlan_id,
    vlan_ranges,
)

KIND = 'port_vlan'
EXACT = 'exact'
ADDITIVE = 'additive'
MODES = (EXACT, ADDITIVE)
PRESENT = 'present'
ABSENT = 'absent'

ALLOWED_PVID = ('a port has at most one pvid (the VLAN that untagged frames arriving on the port join), '
                'given as pvid or as one entry {vid: ID, pvid: true} in vlans, a single id, not a range')
ALLOWED_VLAN_ITEM = ('each item of vlans is a VLAN id from %d to %d, a range "START-END", or a mapping '
                     '{vid: ID or "START-END", pvid: bool, untagged: bool}' % (VLAN_MIN, VLAN_MAX))
ALLOWED_PORT = 'an existing link that is a port of a bridge, or a bridge (for its own VLANs, "bridge vlan ... self")'
ALLOWED_FILTERING = ('a port of a bridge with VLAN filtering on (set vlan_filtering: true on the bridge, '
                     'for instance with nqrust.microvm.fc_bridge)')
_ITEM_KEYS = frozenset(['vid', 'pvid', 'untagged'])


# --------------------------------------------------------------------------- membership

def _runs(vids, key):
    """Runs ``(start, end, key)`` of neighbouring ids (sorted ``vids``) with equal ``key(vid)``."""
    runs = []
    for vid in vids:
        value = key(vid)
        if runs and runs[-1][1] == vid - 1 and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], vid, value)
        else:
            runs.append((vid, vid, value))
    return runs


def _id_list(ranges):
    """``[(100, 100), (200, 210)]`` -> ``[100, '200-210']``: the form the options take."""
    return [start if start == end else '%d-%d' % (start, end) for start, end in ranges]


class Membership(object):
    """The VLANs of one port: ``{vid: (pvid, untagged)}``, immutable, at most one pvid.

    Two memberships are equal when they hold the same ids with the same
    flags.  ``entries()`` gives them as ``netlink.PortVlan`` runs.
    """

    __slots__ = ('_flags',)

    def __init__(self, flags=None):
        table = {}
        pvids = []
        for vid, (pvid, untagged) in dict(flags or {}).items():
            vid = int(vid)
            if not VLAN_MIN <= vid <= VLAN_MAX:
                raise ValueError('VLAN id %d is outside %d-%d' % (vid, VLAN_MIN, VLAN_MAX))
            table[vid] = (bool(pvid), bool(untagged))
            if pvid:
                pvids.append(vid)
        if len(pvids) > 1:
            raise ValueError('more than one pvid: %s' % ', '.join(str(vid) for vid in sorted(pvids)))
        object.__setattr__(self, '_flags', tuple(sorted(table.items())))

    def __setattr__(self, name, value):
        raise AttributeError('Membership is immutable')

    # ----------------------------------------------------------- constructors
    @classmethod
    def build(cls, tagged=(), untagged=(), pvid=None):
        """From ``(start, end)`` ranges: ``tagged`` members, ``untagged`` members, and the ``pvid`` (a member too).

        The pvid keeps the egress of its entry in ``tagged``/``untagged``;
        when it is in neither it is added tagged.
        """
        table = {}
        for start, end in tagged:
            for vid in range(start, end + 1):
                table[vid] = (False, False)
        for start, end in untagged:
            for vid in range(start, end + 1):
                table[vid] = (False, True)
        if pvid is not None:
            table[pvid] = (True, table.get(pvid, (False, False))[1])
        return cls(table)

    @classmethod
    def access(cls, vid):
        """An access port of VLAN ``vid``: member, pvid and untagged, nothing else."""
        return cls({vid: (True, True)})

    @classmethod
    def trunk(cls, ranges, native=None):
        """A trunk carrying ``ranges`` tagged; ``native`` (optional) is the untagged pvid VLAN."""
        table = {}
        for start, end in ranges:
            for vid in range(start, end + 1):
                table[vid] = (False, False)
        if native is not None:
            table[native] = (True, True)
        return cls(table)

    @classmethod
    def default(cls, default_pvid):
        """What a port gets when it joins a VLAN-filtering bridge: its ``default_pvid`` as pvid, untagged (0: nothing)."""
        if not default_pvid:
            return cls()
        return cls.access(int(default_pvid))

    @classmethod
    def from_port_vlans(cls, record):
        """From a ``netlink.PortVlans`` record (``None``: no VLANs)."""
        if record is None:
            return cls()
        return cls(record.flags_by_vid())

    # ----------------------------------------------------------- reading
    def flags(self):
        """``{vid: (pvid, untagged)}``."""
        return dict(self._flags)

    def vids(self):
        return [vid for vid, dummy in self._flags]

    @property
    def pvid(self):
        for vid, (pvid, dummy) in self._flags:
            if pvid:
                return vid
        return None

    def entries(self):
        """The membership as ``netlink.PortVlan`` runs (sorted, neighbours of equal flags merged)."""
        return merge_port_vlans((vid, pvid, untagged) for vid, (pvid, untagged) in self._flags)

    def view(self):
        """``{'pvid': 100, 'tagged': [200, '300-310'], 'untagged': [100]}``: every member is tagged or untagged."""
        table = self.flags()
        runs = _runs(self.vids(), lambda vid: table[vid][1])
        return {
            'pvid': self.pvid,
            'tagged': _id_list((start, end) for start, end, egress in runs if not egress),
            'untagged': _id_list((start, end) for start, end, egress in runs if egress),
        }

    # ----------------------------------------------------------- combining
    def without(self, vids):
        """This membership without the ids in ``vids``."""
        gone = set(vids)
        return Membership(dict((vid, flags) for vid, flags in self._flags if vid not in gone))

    def merged_with(self, other):
        """This membership with ``other``'s ids added or updated; a pvid in ``other`` takes over the pvid."""
        table = self.flags()
        if other.pvid is not None:
            for vid, (pvid, untagged) in list(table.items()):
                if pvid:
                    table[vid] = (False, untagged)
        table.update(other.flags())
        return Membership(table)

    def __eq__(self, other):
        return isinstance(other, Membership) and self._flags == other._flags

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._flags)

    def __len__(self):
        return len(self._flags)

    def __repr__(self):
        return 'Membership(%r)' % (self.view(),)


# --------------------------------------------------------------------------- parameters

def _vlan_item_parts(param, position, item):
    """``(range_value, pvid, untagged, item_param)`` of one item of ``vlans``; raises ``ValidationError``."""
    item_param = '%s[%d]' % (param, position)
    if isinstance(item, dict):
        unknown = sorted(str(key) for key in item if key not in _ITEM_KEYS)
        if unknown:
            raise ValidationError(item_param, item, ALLOWED_VLAN_ITEM, 'unknown key%s %s' % ('s' if len(unknown) > 1 else '', ', '.join(unknown)))
        if 'vid' not in item:
            raise ValidationError(item_param, item, ALLOWED_VLAN_ITEM, 'no vid')
        flags = []
        for key in ('pvid', 'untagged'):
            value = item.get(key, False)
            if value is None:
                value = False
            if not isinstance(value, bool):
                raise ValidationError('%s.%s' % (item_param, key), value, '%s must be true or false' % key, 'not a boolean')
            flags.append(value)
        return item['vid'], flags[0], flags[1], item_param
    return item, False, False, item_param


def parse_membership(validator, param, vlans=None, untagged=None, pvid=None):
    """A ``Membership`` from module parameters, or ``None`` after recording problems on ``validator``.

    * ``vlans``: ids, ``"START-END"`` ranges and ``{vid, pvid, untagged}``
      mappings; members, tagged unless flagged otherwise.
    * ``untagged``: ids and ranges that leave the port untagged (members too).
    * ``pvid``: the port VLAN id (a member too).

    Errors are recorded as ``<param>.vlans``, ``<param>.untagged`` and
    ``<param>.pvid``: ids outside 1-4094, reversed, overlapping or repeated
    ranges within one list, a pvid on a range, and more than one pvid.
    """
    table = {}
    pvids = []
    ok = True
    if vlans is not None:
        vlans_param = '%s.vlans' % param
        items = vlans if isinstance(vlans, list) else [vlans]
        parts = []
        for position, item in enumerate(items):
            try:
                parts.append(_vlan_item_parts(vlans_param, position, item))
            except ValidationError as exc:
                validator.errors.append(exc)
                ok = False
        if ok:
            ranges = validator.check(vlan_ranges, vlans_param, [part[0] for part in parts], merge_adjacent=False)
            ok = ranges is not None
        if ok:
            for item, (range_value, item_pvid, item_untagged, item_param) in zip(items, parts):
                start, end = vlan_ranges(item_param, [range_value])[0]
                if item_pvid and start != end:
                    validator.add(item_param, item, ALLOWED_PVID, 'pvid on the range %d-%d' % (start, end))
                    ok = False
                    continue
                for vid in range(start, end + 1):
                    table[vid] = (item_pvid, item_untagged)
                if item_pvid:
                    pvids.append((start, vlans_param))
    if untagged is not None:
        ranges = validator.check(vlan_ranges, '%s.untagged' % param, untagged, merge_adjacent=False)
        if ranges is None:
            ok = False
        else:
            for start, end in ranges:
                for vid in range(start, end + 1):
                    table[vid] = (table.get(vid, (False, False))[0], True)
    if pvid is not None:
        number = validator.check(vlan_id, '%s.pvid' % param, pvid)
        if number is None:
            ok = False
        else:
            table[number] = (True, table.get(number, (False, False))[1])
            if not any(vid == number for vid, dummy in pvids):
                pvids.append((number, '%s.pvid' % param))
    if len(pvids) > 1:
        shown = ' and '.join('%d (%s)' % (vid, where) for vid, where in pvids)
        validator.add(param, {'vlans': vlans, 'pvid': pvid}, ALLOWED_PVID, 'two pvids: %s' % shown)
        ok = False
    if not ok:
        return None
    return Membership(table)


@dataclasses.dataclass(frozen=True)
class PortVlanRequest(object):
    """What one bridge port (or a bridge itself) should carry.

    ``membership``: the VLANs given; ``mode``: ``exact`` (the port gets
    exactly these) or ``additive`` (these are added or updated, the port's
    other VLANs stay); ``state``: ``present``, or ``absent`` to remove the
    given ids (flags ignored); ``bridge``: if set, the port must be on this
    bridge; ``param``: the parameter path used in messages (``ports[0]``).
    """

    port: str
    membership: Membership
    mode: str = EXACT
    state: str = PRESENT
    bridge: Optional[str] = None
    param: str = 'port'

    def target(self, current):
        """The membership the port ends with, given its ``current`` one."""
        if self.state == ABSENT:
            return current.without(self.membership.vids())
        if self.mode == EXACT:
            return self.membership
        return current.merged_with(self.membership)


def check_unique_ports(validator, requests):
    """Record an error for every port named by more than one request (anything with ``port`` and ``param``)."""
    seen = {}
    for request in requests:
        if request.port in seen:
            validator.add('%s.port' % request.param, request.port,
                          'each port may be listed once (merge its VLANs into one entry)',
                          'already listed as %s.port' % seen[request.port])
        else:
            seen[request.port] = request.param


# --------------------------------------------------------------------------- host checks and plan

def _where(name, bridge, bridge_self):
    if bridge_self:
        return "bridge '%s' itself" % name
    return "port '%s' of bridge '%s'" % (name, bridge)


def _flag_words(pvid, untagged):
    return ', '.join((['pvid'] if pvid else []) + ['untagged' if untagged else 'tagged'])


def _vlan_words(start, end):
    if start == end:
        return 'VLAN %d' % start
    return 'VLANs %d-%d' % (start, end)


@dataclasses.dataclass(frozen=True)
class PortPlan(object):
    """One port checked against the host: where it is, what it carries now and what it will carry."""

    request: PortVlanRequest
    bridge: str
    bridge_self: bool
    index: Optional[int]
    current: Membership
    target: Membership

    @property
    def name(self):
        return self.request.port

    def changes(self):
        """The ``Change`` list that turns ``current`` into ``target`` (removals, updates, then additions)."""
        return membership_changes(self.name, self.current, self.target, bridge=self.bridge,
                                  bridge_self=self.bridge_self, index=self.index)

    def view(self, membership):
        """What the diff shows of this port with ``membership``."""
        data = {'bridge': self.bridge, 'self': self.bridge_self}
        data.update(membership.view())
        return data

    def result(self, membership):
        """What the module returns for this port with ``membership``."""
        data = {'port': self.name}
        data.update(self.view(membership))
        return data


def membership_changes(port, current, target, bridge=None, bridge_self=False, index=None):
    """Changes (kind ``port_vlan``) turning ``current`` into ``target`` on ``port``; pure.

    One change per run of neighbouring ids that need the same request:
    ``remove`` (ids only in ``current``; ``before`` keeps their flags for
    undo), ``update`` (ids in both with other flags: an add with the new
    flags) and ``add``.  ``index`` is the port's ifindex when known (ports
    made in the same run are found by name when the change is applied).
    """
    now = current.flags()
    goal = target.flags()
    base = {'port': port, 'bridge': bridge, 'self': bool(bridge_self), 'index': index}
    where = _where(port, bridge, bridge_self)
    changes = []

    removed = sorted(vid for vid in now if vid not in goal)
    for start, end, (pvid, untagged) in _runs(removed, lambda vid: now[vid]):
        details = dict(base, vlans=_id_list([(start, end)])[0], start=start, end=end, pvid=False, untagged=False,
                       before={'pvid': pvid, 'untagged': untagged})
        changes.append(Change('remove', KIND, port, Phase.VLAN, details,
                              description='remove %s from %s' % (_vlan_words(start, end), where)))

    updated = sorted(vid for vid in now if vid in goal and now[vid] != goal[vid])
    for start, end, (old, new) in _runs(updated, lambda vid: (now[vid], goal[vid])):
        details = dict(base, vlans=_id_list([(start, end)])[0], start=start, end=end, pvid=new[0], untagged=new[1],
                       before={'pvid': old[0], 'untagged': old[1]})
        changes.append(Change('update', KIND, port, Phase.VLAN, details,
                              description='update %s on %s (%s -> %s)' % (
                                  _vlan_words(start, end), where, _flag_words(*old), _flag_words(*new))))

    added = sorted(vid for vid in goal if vid not in now)
    for start, end, (pvid, untagged) in _runs(added, lambda vid: goal[vid]):
        details = dict(base, vlans=_id_list([(start, end)])[0], start=start, end=end, pvid=pvid, untagged=untagged)
        changes.append(Change('add', KIND, port, Phase.VLAN, details,
                              description='add %s (%s) to %s' % (_vlan_words(start, end), _flag_words(pvid, untagged), where)))
    return changes


def resolve_port_requests(requests, links, port_vlans, new_ports=None):
    """One ``PortPlan`` per request, after checking each against the host; pure.

    ``links``: the host's ``netlink.Link`` records; ``port_vlans``: its
    ``netlink.PortVlans`` records; ``new_ports``: ``{port: bridge}`` for
    ports the caller creates or (re)attaches in the same run, before the VLAN
    phase (they start with the bridge's default membership).

    Raises ``kernel_features.KernelFeatureMissing`` when a bridge involved
    cannot filter VLANs in this kernel, else ``validation.ValidationErrors``
    naming every request whose port is missing, not on a bridge, on another
    bridge than ``bridge`` says, or on a bridge with VLAN filtering off.
    """
    new_ports = dict(new_ports or {})
    by_name = dict((link.name, link) for link in links)
    by_index = dict((link.index, link) for link in links)
    vlans_by_index = dict((rec.index, rec) for rec in port_vlans)
    validator = Validator()
    plans = []
    bridges_needed = []
    for request in requests:
        param = '%s.port' % request.param
        link = by_name.get(request.port)
        if request.port in new_ports:
            bridge = by_name.get(new_ports[request.port])
            if bridge is None or not bridge.is_bridge:
                validator.add(param, request.port, ALLOWED_PORT,
                              "is to be attached to '%s', which is not a bridge on this host" % new_ports[request.port])
                continue
            bridge_self = False
            current = None
        elif link is None:
            validator.add(param, request.port, ALLOWED_PORT, 'no such link on this host')
            continue
        elif link.is_bridge:
            bridge, bridge_self = link, True
            if request.bridge is not None and request.bridge != link.name:
                validator.add('%s.bridge' % request.param, request.bridge,
                              "the port's own bridge, or nothing",
                              "port '%s' is itself a bridge, so its own VLANs are set (bridge vlan ... self)" % link.name)
                continue
            current = Membership.from_port_vlans(vlans_by_index.get(link.index))
        else:
            bridge = by_index.get(link.master_index) if link.master_index else None
            bridge_self = False
            if bridge is None:
                validator.add(param, request.port, ALLOWED_PORT, 'is a %s not attached to any bridge' % link.kind_label)
                continue
            if not bridge.is_bridge:
                validator.add(param, request.port, ALLOWED_PORT,
                              "is attached to '%s', which is a %s, not a bridge" % (bridge.name, bridge.kind_label))
                continue
            current = Membership.from_port_vlans(vlans_by_index.get(link.index))
        if request.bridge is not None and not bridge_self and request.bridge != bridge.name:
            validator.add('%s.bridge' % request.param, request.bridge,
                          "the bridge port '%s' is attached to ('%s')" % (request.port, bridge.name),
                          "port '%s' is on bridge '%s'" % (request.port, bridge.name))
            continue
        bridges_needed.append((bridge, request))
        if current is None:
            current = Membership.default(bridge.vlan_default_pvid)
        plans.append(PortPlan(request=request, bridge=bridge.name, bridge_self=bridge_self,
                              index=None if request.port in new_ports else link.index,
                              current=current, target=request.target(current)))
    for bridge, request in bridges_needed:
        require_bridge_vlan_filtering(bridge, "the VLANs of %s" % _where(request.port, bridge.name, bridge.name == request.port))
    for bridge, request in bridges_needed:
        if not bridge.vlan_filtering:
            validator.add('%s.port' % request.param, request.port, ALLOWED_FILTERING,
                          "its bridge '%s' has VLAN filtering off" % bridge.name
                          if bridge.name != request.port else 'this bridge has VLAN filtering off')
    if not validator.ok:
        raise ValidationErrors(validator.errors)
    return plans


def plan_port_vlans(requests, links, port_vlans, new_ports=None):
    """``(plans, changes)``: ``resolve_port_requests`` and every plan's changes, in request order."""
    plans = resolve_port_requests(requests, links, port_vlans, new_ports=new_ports)
    changes = []
    for item in plans:
        changes.extend(item.changes())
    return plans, changes


# --------------------------------------------------------------------------- apply

class PortVlanApplier(object):
    """Do/undo handlers of ``port_vlan`` changes, writing through a ``netlink.NetlinkSession``.

    ::

        handlers = Handlers()
        PortVlanApplier(session).register(handlers)
        apply_changes(changes, handlers.do, handlers.undo)

    Each change is one netlink request for one run of ids, so a failed step
    leaves nothing half done and every applied step can be undone exactly
    (``remove`` and ``update`` keep the previous flags in ``before``).
    """

    def __init__(self, session):
        self.session = session

    def register(self, handlers):
        for action in ('add', 'update', 'remove'):
            handlers.register(action, KIND, do=self.do, undo=self.undo)
        return handlers

    def _index(self, details):
        index = details.get('index')
        if index is not None:
            return index
        link = self.session.fetch_link(details['port'])
        if link is None:
            raise LookupError("port '%s' does not exist" % details['port'])
        return link.index

    def _write(self, command, index, details, pvid, untagged):
        vlan = PortVlan(details['start'], details['end'], bool(pvid), bool(untagged))
        method = self.session.add_port_vlans if command == 'add' else self.session.delete_port_vlans
        method(index, [vlan], bridge_self=details['self'], display=details['port'])

    def do(self, change):
        details = change.details
        index = self._index(details)
        if change.action == 'remove':
            self._write('del', index, details, False, False)
        else:
            self._write('add', index, details, details['pvid'], details['untagged'])
        return index

    def undo(self, change, index):
        details = change.details
        if change.action == 'add':
            self._write('del', index, details, False, False)
        else:
            before = details['before']
            self._write('add', index, details, before['pvid'], before['untagged'])
