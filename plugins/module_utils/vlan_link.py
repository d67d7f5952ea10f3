# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""802.1Q VLAN sub-interfaces (``eth0.100``): desired state, host checks, plan and apply.

* ``parse_subinterface(validator, param, item)`` -> ``SubinterfaceRequest``
  (name, parent ``link``, VLAN ``id``, ``mtu``, ``state``, ``up``).
* ``resolve_subinterfaces(requests, links, probe)`` checks them against the
  host (name free or already a VLAN link, parent present and not loopback,
  the id not used by another VLAN link of that parent, MTU within the
  parent's, 802.1Q in the kernel) and returns one ``SubinterfacePlan`` each.
* ``SubinterfacePlan.changes()``: ``plan.Change`` list of kind ``vlan_link``
  (``create``, ``delete``, ``update`` of the MTU, ``up``, ``down``); a VLAN
  link the collection made with another parent or id is replaced, one made
  by someone else is refused.
* ``SubinterfaceApplier(session).register(handlers)``: do/undo handlers.

Links the module creates carry the collection's ``ifalias`` marker.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.kernel_features import require_8021q
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import OWNER_MARKER
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationErrors,
    Validator,
    interface_name,
    vlan_id,
)

KIND = 'vlan_link'
PRESENT = 'present'
ABSENT = 'absent'
MTU_MIN = 68
MTU_MAX = 65535
IFF_LOOPBACK = 0x8

ALLOWED_MTU = 'MTU must be an integer from %d to %d, and not above the MTU of the parent link' % (MTU_MIN, MTU_MAX)
ALLOWED_NAME = 'a name that is free or already a VLAN link'
ALLOWED_PARENT = 'an existing link that is not loopback'


@dataclasses.dataclass(frozen=True)
class SubinterfaceRequest(object):
    """One 802.1Q sub-interface as asked for; ``param`` is the parameter path used in messages."""

    name: str
    link: Optional[str] = None
    vlan_id: Optional[int] = None
    mtu: Optional[int] = None
    state: str = PRESENT
    up: bool = True
    param: str = 'subinterface'


def parse_subinterface(validator, param, item):
    """A ``SubinterfaceRequest`` from one module dict, or ``None`` after recording its problems on ``validator``."""
    errors = len(validator.errors)
    state = item.get('state') or PRESENT
    name = validator.check(interface_name, '%s.name' % param, item.get('name'))
    parent = item.get('link')
    if parent is not None:
        parent = validator.check(interface_name, '%s.link' % param, parent)
    elif state == PRESENT:
        validator.add('%s.link' % param, None, 'the parent link (e.g. eth0) is required with state=present', 'missing')
    number = item.get('id')
    if number is not None:
        number = validator.check(vlan_id, '%s.id' % param, number)
    elif state == PRESENT:
        validator.add('%s.id' % param, None, 'a VLAN id from 1 to 4094 is required with state=present', 'missing')
    mtu = item.get('mtu')
    if mtu is not None:
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not MTU_MIN <= mtu <= MTU_MAX:
            validator.add('%s.mtu' % param, mtu, ALLOWED_MTU)
    up = item.get('up')
    if len(validator.errors) > errors:
        return None
    return SubinterfaceRequest(name=name, link=parent, vlan_id=number, mtu=mtu, state=state,
                               up=True if up is None else bool(up), param=param)


def check_unique_subinterfaces(validator, requests):
    """Record an error for a name listed twice, and for two present entries with the same parent and id."""
    names = {}
    pairs = {}
    for request in requests:
        if request.name in names:
            validator.add('%s.name' % request.param, request.name, 'each sub-interface may be listed once',
                          'already listed as %s.name' % names[request.name])
            continue
        names[request.name] = request.param
        if request.state != PRESENT:
            continue
        key = (request.link, request.vlan_id)
        if key in pairs:
            validator.add('%s.id' % request.param, request.vlan_id,
                          'one VLAN link per parent and VLAN id (the kernel allows no second one)',
                          "VLAN %d on '%s' is already %s" % (request.vlan_id, request.link, pairs[key]))
        else:
            pairs[key] = '%s (%s)' % (request.param, request.name)


def _view(parent, number, mtu, up):
    return {'link': parent, 'id': number, 'mtu': mtu, 'up': up}


@dataclasses.dataclass(frozen=True)
class SubinterfacePlan(object):
    """One sub-interface checked against the host.

    ``current`` is its ``netlink.Link`` (``None`` when absent), ``before`` and
    ``after`` what the diff shows (``None`` when absent), ``replace`` whether
    the existing link goes and a new one is made.
    """

    request: SubinterfaceRequest
    current: object = None
    current_parent: Optional[str] = None
    parent_index: Optional[int] = None
    before: Optional[dict] = None
    after: Optional[dict] = None
    replace: bool = False

    @property
    def name(self):
        return self.request.name

    def changes(self):
        request, link = self.request, self.current
        name = request.name
        changes = []
        if link is not None and (request.state == ABSENT or self.replace):
            details = {'index': link.index, 'link': self.current_parent, 'link_index': link.link_index,
                       'id': link.vlan_id, 'mtu': link.mtu, 'up': link.up, 'alias': link.alias}
            why = ' (to make it again with VLAN %d on %s)' % (request.vlan_id, request.link) if self.replace else ''
            changes.append(Change('delete', KIND, name, Phase.VLAN, details,
                                  description="delete VLAN link '%s' (VLAN %s on '%s')%s" % (
                                      name, link.vlan_id, self.current_parent, why)))
        if request.state == ABSENT:
            return changes
        after = self.after
        if link is None or self.replace:
            details = {'link': request.link, 'link_index': self.parent_index, 'id': request.vlan_id, 'mtu': request.mtu}
            changes.append(Change('create', KIND, name, Phase.VLAN, details,
                                  description="create VLAN link '%s' (VLAN %d on '%s'%s)" % (
                                      name, request.vlan_id, request.link,
                                      ', mtu %d' % request.mtu if request.mtu else '')))
            if after['up']:
                changes.append(Change('up', KIND, name, Phase.UP, {'index': None},
                                      description="bring VLAN link '%s' up" % name))
            return changes
        if after['mtu'] != link.mtu:
            changes.append(Change('update', KIND, name, Phase.CREATE,
                                  {'index': link.index, 'before': {'mtu': link.mtu}, 'after': {'mtu': after['mtu']}},
                                  description="update VLAN link '%s' (mtu: %s -> %s)" % (name, link.mtu, after['mtu'])))
        if after['up'] and not link.up:
            changes.append(Change('up', KIND, name, Phase.UP, {'index': link.index},
                                  description="bring VLAN link '%s' up" % name))
        elif not after['up'] and link.up:
            changes.append(Change('down', KIND, name, Phase.UP, {'index': link.index},
                                  description="bring VLAN link '%s' down" % name))
        return changes

    def predicted_result(self):
        """What the module returns for this sub-interface in check mode (``ifindex`` is null for a link still to make)."""
        if self.after is None:
            return absent_result(self.name)
        same = self.current is not None and not self.replace
        data = dict(self.after)
        data.update(name=self.name, state=PRESENT, ifindex=self.current.index if same else None,
                    managed=self.current.managed if same else True)
        return data


def link_result(name, link, parent_name):
    """What the module returns for a sub-interface read back from the host (``link`` ``None``: absent)."""
    if link is None:
        return absent_result(name)
    data = _view(parent_name, link.vlan_id, link.mtu, link.up)
    data.update(name=name, state=PRESENT, ifindex=link.index, managed=link.managed)
    return data


def absent_result(name):
    return {'name': name, 'state': ABSENT, 'link': None, 'id': None, 'mtu': None, 'up': None,
            'ifindex': None, 'managed': None}


def resolve_subinterfaces(requests, links, probe):
    """One ``SubinterfacePlan`` per request after checking it against the host; pure.

    ``links``: the host's ``netlink.Link`` records; ``probe``: a
    ``kernel_features.probe_8021q`` result, checked when a link is to be
    made.  Raises ``ValidationErrors`` naming every problem, or
    ``KernelFeatureMissing``.
    """
    by_name = dict((link.name, link) for link in links)
    by_index = dict((link.index, link) for link in links)
    validator = Validator()
    plans = []
    leaving = set(request.name for request in requests if request.state == ABSENT)
    for request in requests:
        link = by_name.get(request.name)
        name_param = '%s.name' % request.param
        if link is not None and not link.is_vlan:
            validator.add(name_param, request.name, ALLOWED_NAME, 'is a %s, not a VLAN link' % link.kind_label)
            continue
        parent_now = by_index.get(link.link_index) if link is not None and link.link_index else None
        parent_now_name = parent_now.name if parent_now is not None else None
        before = _view(parent_now_name, link.vlan_id, link.mtu, link.up) if link is not None else None
        if request.state == ABSENT:
            if link is not None:
                if request.link is not None and request.link != parent_now_name:
                    validator.add('%s.link' % request.param, request.link, "the VLAN link's parent ('%s') or nothing" % parent_now_name,
                                  "'%s' is on '%s'; refusing to delete it" % (request.name, parent_now_name))
                    continue
                if request.vlan_id is not None and request.vlan_id != link.vlan_id:
                    validator.add('%s.id' % request.param, request.vlan_id, "the VLAN link's id (%s) or nothing" % link.vlan_id,
                                  "'%s' is VLAN %s; refusing to delete it" % (request.name, link.vlan_id))
                    continue
            plans.append(SubinterfacePlan(request=request, current=link, current_parent=parent_now_name, before=before))
            continue
        parent = by_name.get(request.link)
        if parent is None:
            validator.add('%s.link' % request.param, request.link, ALLOWED_PARENT, 'no such link on this host')
            continue
        if parent.flags & IFF_LOOPBACK:
            validator.add('%s.link' % request.param, request.link, ALLOWED_PARENT, 'is the loopback device')
            continue
        if request.mtu is not None and parent.mtu is not None and request.mtu > parent.mtu:
            validator.add('%s.mtu' % request.param, request.mtu, ALLOWED_MTU,
                          "above the MTU of '%s' (%d)" % (parent.name, parent.mtu))
            continue
        replace = link is not None and (link.link_index != parent.index or link.vlan_id != request.vlan_id)
        if replace and not link.managed:
            validator.add(name_param, request.name,
                          'a VLAN link this collection made, or one with the same link and id',
                          "exists as VLAN %s on '%s', made outside this collection; refusing to replace it "
                          "(delete it with state=absent first)" % (link.vlan_id, parent_now_name))
            continue
        clash = [other for other in links if other.is_vlan and other.link_index == parent.index
                 and other.vlan_id == request.vlan_id and other.name != request.name and other.name not in leaving]
        if clash:
            validator.add('%s.id' % request.param, request.vlan_id,
                          'one VLAN link per parent and VLAN id (the kernel allows no second one)',
                          "VLAN %d on '%s' already exists as '%s'" % (request.vlan_id, parent.name, clash[0].name))
            continue
        if link is None or replace:
            require_8021q("VLAN link '%s' (VLAN %d on '%s')" % (request.name, request.vlan_id, parent.name), probe=probe)
            mtu = request.mtu if request.mtu is not None else parent.mtu
        else:
            mtu = request.mtu if request.mtu is not None else link.mtu
        after = _view(parent.name, request.vlan_id, mtu, bool(request.up))
        plans.append(SubinterfacePlan(request=request, current=link, current_parent=parent_now_name,
                                      parent_index=parent.index, before=before, after=after, replace=replace))
    if not validator.ok:
        raise ValidationErrors(validator.errors)
    return plans


class SubinterfaceApplier(object):
    """Do/undo handlers of ``vlan_link`` changes, writing through a ``netlink.NetlinkSession``."""

    def __init__(self, session):
        self.session = session

    def register(self, handlers):
        for action in ('create', 'delete', 'update', 'up', 'down'):
            handlers.register(action, KIND, do=getattr(self, '_do_' + action), undo=getattr(self, '_undo_' + action))
        return handlers

    def _index(self, change):
        index = change.details.get('index')
        if index is not None:
            return index
        link = self.session.fetch_link(change.target)
        if link is None:
            raise LookupError("VLAN link '%s' does not exist" % change.target)
        return link.index

    def _do_create(self, change):
        details = change.details
        settings = {'mtu': details['mtu']} if details.get('mtu') else None
        return self.session.create_link('vlan', change.target, alias=OWNER_MARKER, settings=settings,
                                        link=details['link_index'], vlan_id=details['id'])

    def _undo_create(self, change, index):
        self.session.delete_link(index, display=change.target)

    def _do_delete(self, change):
        self.session.delete_link(change.details['index'], display=change.target)
        return None

    def _undo_delete(self, change, dummy):
        details = change.details
        settings = {'mtu': details['mtu']}
        if details.get('up'):
            settings['state'] = 'up'
        self.session.create_link('vlan', change.target, alias=details.get('alias'), settings=settings,
                                 link=details['link_index'], vlan_id=details['id'])

    def _do_update(self, change):
        index = self._index(change)
        self.session.set_link(index, display=change.target, **dict(change.details['after']))
        return index

    def _undo_update(self, change, index):
        self.session.set_link(index, display=change.target, **dict(change.details['before']))

    def _do_up(self, change):
        index = self._index(change)
        self.session.set_link(index, display=change.target, state='up')
        return index

    def _undo_up(self, change, index):
        self.session.set_link(index, display=change.target, state='down')

    def _do_down(self, change):
        index = self._index(change)
        self.session.set_link(index, display=change.target, state='down')
        return index

    def _undo_down(self, change, index):
        self.session.set_link(index, display=change.target, state='up')
