# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bridged mode: move an uplink's IP addresses and routes onto its bridge (and back), with rollback.

A host is often reached over the very interface that becomes the bridge's
uplink.  Enslaving that interface takes its IP stack away (frames arriving on
a bridge port go to the bridge), so its addresses and routes have to move to
the bridge in the same run, in an order that keeps the outage to a few
milliseconds::

    1. add the addresses to the target     (the bridge; IPv6 without DAD: they are in use already)
    2. enslave the uplink to the bridge    (or, moving back, release it)
    3. bring the uplink up                 (when it was down)
    4. delete the routes from the source   (explicitly: IPv6 routes survive address removal)
    5. delete the addresses from the source
    6. add the routes on the target        (link-scope routes first: others may use them as next hop)

Every step that succeeded is journalled with its inverse.  If a step fails,
the journal is replayed backwards, so the source gets its addresses back
before its routes (whose gateways need them) and the uplink leaves the bridge
again; the error names the failed step and says whether that undo worked.

What moves: the addresses that are not link-local (the kernel gives every
link its own) and the unicast routes leaving by the source that the kernel
does not manage itself (connected and local-table routes come back with the
addresses; routes learnt from router advertisements or redirects are learnt
again).  Multipath routes and routes using nexthop objects are refused at
plan time: they cannot be moved one hop at a time.

``plan_move`` is pure (unit-tested without root); ``UplinkMove`` applies a plan
through a ``NetlinkSession``.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress

from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    RTN_UNICAST,
    NetlinkOperationError,
)

IFA_F_NODAD = 0x02

TO_BRIDGE = 'to_bridge'
TO_UPLINK = 'to_uplink'


class MoveRefused(Exception):
    """Something on the uplink cannot be moved (multipath or nexthop-object routes); nothing was changed."""


class MoveFailed(Exception):
    """A step of the move failed.  ``step`` names it, ``cause`` is the error, ``undone`` says whether the rollback worked."""

    def __init__(self, step, cause, undone, undo_errors, source, target, uplink, bridge, direction):
        self.step = step
        self.cause = cause
        self.undone = undone
        self.undo_errors = list(undo_errors)
        # a netlink error already names the operation; other errors get the step's name
        where = '' if isinstance(cause, NetlinkOperationError) else ' at %s' % step
        text = 'moving the addresses and routes of %s to %s failed%s: %s' % (
            _quote(source), _quote(target), where, cause)
        if undone:
            if direction == TO_BRIDGE:
                text += "; undone: %s has its addresses and routes back and is not a port of %s" % (_quote(uplink), _quote(bridge))
            else:
                text += "; undone: %s is a port of %s again and %s has its addresses and routes back" % (
                    _quote(uplink), _quote(bridge), _quote(bridge))
        else:
            text += '; UNDO FAILED, check %s and %s by hand (%s)' % (_quote(uplink), _quote(bridge), '; '.join(self.undo_errors))
        super(MoveFailed, self).__init__(text)


def _quote(name):
    return "'%s'" % name


def address_key(cidr):
    """Sort key of a CIDR string: IPv4 first, then by address and prefix."""
    iface = ipaddress.ip_interface(cidr)
    return (iface.version, int(iface.ip), iface.network.prefixlen)


def movable_addresses(addresses):
    """CIDR strings of the addresses that move: every one but link-local (sorted, IPv4 first)."""
    return sorted((addr.cidr for addr in addresses if not addr.is_link_local), key=address_key)


def route_key(route):
    """What identifies a route in its table, whatever link it leaves by."""
    return (route.family, route.table, route.destination, route.priority, route.tos, route.gateway)


def movable_routes(routes, index, name):
    """The routes leaving by link ``index`` that move with it, link-scope first.

    Raises ``MoveRefused`` for multipath routes with a hop through the link
    and for routes using nexthop objects.
    """
    moving = []
    for route in routes:
        if route.oif != index and index not in route.multipath_oifs:
            continue
        if route.multipath_oifs:
            raise MoveRefused("the multipath route %s has a hop through %s; move it by hand first" % (route.describe(), _quote(name)))
        if route.nexthop_id is not None:
            raise MoveRefused("the route %s uses nexthop object %s through %s; move it by hand first" % (
                route.describe(name), route.nexthop_id, _quote(name)))
        if route.type != RTN_UNICAST or route.kernel_managed:
            continue
        moving.append(route)
    # higher scope first (host, link, then universe): a link-scope route can be another's next hop
    moving.sort(key=lambda rec: (-rec.scope, rec.family, rec.table, rec.destination, rec.priority or 0))
    return moving


@dataclasses.dataclass(frozen=True)
class MovePlan(object):
    """What a move does: pure data, shown in the module's ``changes`` and applied by ``UplinkMove``.

    ``source``/``target`` are the link names addresses and routes leave and
    reach; ``addresses`` the CIDRs that leave the source, ``add_addresses``
    those of them the target does not have yet; ``routes`` the ``Route``
    records that leave the source (as they are there), ``add_routes`` those
    of them the target does not have yet.
    """

    direction: str
    bridge: str
    uplink: str
    enslave: bool = False
    release: bool = False
    set_up: bool = False
    addresses: tuple = ()
    add_addresses: tuple = ()
    routes: tuple = ()
    add_routes: tuple = ()

    @property
    def source(self):
        return self.uplink if self.direction == TO_BRIDGE else self.bridge

    @property
    def target(self):
        return self.bridge if self.direction == TO_BRIDGE else self.uplink

    @property
    def empty(self):
        return not (self.enslave or self.release or self.set_up or self.addresses or self.routes)

    def details(self):
        """Plain data for a ``Change``'s details."""
        return {
            'direction': self.direction,
            'bridge': self.bridge,
            'uplink': self.uplink,
            'enslave': self.enslave,
            'release': self.release,
            'set_up': self.set_up,
            'addresses': list(self.addresses),
            'routes': [route.describe() for route in self.routes],
        }


def plan_move(direction, bridge, uplink, uplink_link, bridge_link, source_addresses, target_addresses,
              source_routes, target_routes):
    """A ``MovePlan``: everything from the source to the target, and the uplink into (or out of) the bridge.

    ``bridge_link`` may be ``None`` (the bridge is created in the same run).
    ``*_addresses`` are ``Address`` records, ``*_routes`` ``Route`` records of
    that link (``target_routes`` only serve to skip routes already there).
    """
    if direction not in (TO_BRIDGE, TO_UPLINK):
        raise ValueError('direction must be %s or %s' % (TO_BRIDGE, TO_UPLINK))
    source_index = uplink_link.index if direction == TO_BRIDGE else (bridge_link.index if bridge_link else None)
    moving = movable_addresses(source_addresses)
    present = set(movable_addresses(target_addresses))
    routes = []
    if source_index is not None:
        routes = movable_routes(source_routes, source_index, uplink if direction == TO_BRIDGE else bridge)
    have = set(route_key(route) for route in target_routes)
    enslaved = bridge_link is not None and uplink_link.master_index == bridge_link.index
    return MovePlan(
        direction=direction,
        bridge=bridge,
        uplink=uplink,
        enslave=direction == TO_BRIDGE and not enslaved,
        release=direction == TO_UPLINK and enslaved,
        set_up=direction == TO_BRIDGE and not uplink_link.up,
        addresses=tuple(moving),
        add_addresses=tuple(cidr for cidr in moving if cidr not in present),
        routes=tuple(routes),
        add_routes=tuple(route for route in routes if route_key(route) not in have),
    )


class _Journal(object):
    """Steps done so far, each with its inverse; ``rollback`` replays the inverses backwards."""

    def __init__(self):
        self.entries = []

    def record(self, description, undo):
        self.entries.append((description, undo))

    def rollback(self):
        errors = []
        for description, undo in reversed(self.entries):
            try:
                undo()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append('undoing %s: %s' % (description, exc))
        self.entries = []
        return errors


def _tolerate(codes, func, *args, **kwargs):
    """Run ``func``; a ``NetlinkOperationError`` with one of ``codes`` counts as done."""
    try:
        func(*args, **kwargs)
    except NetlinkOperationError as exc:
        if exc.code not in codes:
            raise


class UplinkMove(object):
    """Applies a ``MovePlan`` through a ``NetlinkSession`` (``bridge_index``/``uplink_index`` are the ifindexes).

    ``run()`` either completes every step or undoes the ones it did and raises
    ``MoveFailed``; ``undo()`` reverses a completed run (used when a later
    step of the module's plan fails).
    """

    def __init__(self, session, plan, bridge_index, uplink_index):
        self.session = session
        self.plan = plan
        self.bridge_index = bridge_index
        self.uplink_index = uplink_index
        self.journal = _Journal()

    # ----------------------------------------------------------- steps
    def _indexes(self):
        if self.plan.direction == TO_BRIDGE:
            return self.uplink_index, self.bridge_index
        return self.bridge_index, self.uplink_index

    def _add_address(self, index, name, cidr, nodad):
        iface = ipaddress.ip_interface(cidr)
        attrs = {}
        if iface.version == 6 and nodad:
            attrs['flags'] = IFA_F_NODAD
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs['broadcast'] = str(iface.network.broadcast_address)
        try:
            self.session.add_address(index, str(iface.ip), iface.network.prefixlen, display=name, **attrs)
        except NetlinkOperationError as exc:
            raise _explain_ipv6(exc, iface.version, name) from exc

    def _delete_address(self, index, name, cidr):
        iface = ipaddress.ip_interface(cidr)
        self.session.delete_address(index, str(iface.ip), iface.network.prefixlen, display=name)

    def _add_route(self, route, index, name):
        try:
            self.session.add_route(route, index, display=name)
        except NetlinkOperationError as exc:
            raise _explain_ipv6(exc, route.version, name) from exc

    def _delete_route(self, route, index, name):
        self.session.delete_route(dataclasses.replace(route, oif=index), display=name)

    def _step(self, description, action, undo):
        try:
            action()
        except Exception as exc:
            errors = self.journal.rollback()
            raise MoveFailed(description, exc, not errors, errors, self.plan.source, self.plan.target,
                             self.plan.uplink, self.plan.bridge, self.plan.direction) from exc
        self.journal.record(description, undo)

    def run(self):
        plan = self.plan
        source_index, target_index = self._indexes()
        source, target = plan.source, plan.target
        session = self.session
        gone = (errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ENODEV)
        there = (errno.EEXIST,)

        for cidr in plan.add_addresses:
            self._step('adding %s to %s' % (cidr, _quote(target)),
                       lambda c=cidr: self._add_address(target_index, target, c, nodad=True),
                       lambda c=cidr: _tolerate(gone, self._delete_address, target_index, target, c))
        if plan.enslave:
            self._step('making %s a port of %s' % (_quote(plan.uplink), _quote(plan.bridge)),
                       lambda: session.set_link(self.uplink_index, display=plan.uplink, master=self.bridge_index),
                       lambda: session.set_link(self.uplink_index, display=plan.uplink, master=0))
        if plan.release:
            self._step('releasing %s from %s' % (_quote(plan.uplink), _quote(plan.bridge)),
                       lambda: session.set_link(self.uplink_index, display=plan.uplink, master=0),
                       lambda: session.set_link(self.uplink_index, display=plan.uplink, master=self.bridge_index))
        if plan.set_up:
            self._step('bringing %s up' % _quote(plan.uplink),
                       lambda: session.set_link(self.uplink_index, display=plan.uplink, state='up'),
                       lambda: session.set_link(self.uplink_index, display=plan.uplink, state='down'))
        for route in plan.routes:
            self._step('deleting route %s' % route.describe(source),
                       lambda r=route: _tolerate(gone, self._delete_route, r, source_index, source),
                       lambda r=route: _tolerate(there, self._add_route, r, source_index, source))
        for cidr in plan.addresses:
            self._step('removing %s from %s' % (cidr, _quote(source)),
                       lambda c=cidr: _tolerate(gone, self._delete_address, source_index, source, c),
                       lambda c=cidr: _tolerate(there, self._add_address, source_index, source, c, True))
        for route in plan.add_routes:
            self._step('adding route %s' % route.describe(target),
                       lambda r=route: self._add_route(r, target_index, target),
                       lambda r=route: _tolerate(gone, self._delete_route, r, target_index, target))
        return self

    def undo(self):
        """Reverse a completed ``run()``; raises ``RuntimeError`` listing the inverses that failed."""
        errors = self.journal.rollback()
        if errors:
            raise RuntimeError('; '.join(errors))


def _explain_ipv6(exc, version, name):
    """EACCES on an IPv6 address or route means IPv6 is disabled on the link, not missing privileges."""
    if version == 6 and exc.code == errno.EACCES:
        return NetlinkOperationError(
            exc.operation, detail='the kernel refused it with EACCES: IPv6 is disabled on %s '
            '(sysctl net.ipv6.conf.%s.disable_ipv6 = 1, or net.ipv6.conf.default.disable_ipv6 for new links)' % (_quote(name), name),
            cause=exc)
    return exc


__all__ = [
    'IFA_F_NODAD', 'TO_BRIDGE', 'TO_UPLINK', 'MoveFailed', 'MovePlan', 'MoveRefused', 'UplinkMove',
    'address_key', 'movable_addresses', 'movable_routes', 'plan_move', 'route_key',
]
