# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy
import dataclasses
import errno
import socket

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    Address,
    Link,
    NetlinkOperationError,
    NetlinkSession,
    Route,
    route_from_msg,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.uplink_migration import (
    IFA_F_NODAD,
    TO_BRIDGE,
    TO_UPLINK,
    MoveFailed,
    MoveRefused,
    UplinkMove,
    movable_addresses,
    movable_routes,
    plan_move,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import FakeIPRoute, FakeMsg

AF4 = socket.AF_INET
AF6 = socket.AF_INET6

ETH0 = Link(index=2, name='eth0', kind='veth', mac='52:54:00:00:00:10', up=True)
BR0 = Link(index=5, name='br0', kind='bridge', mac='52:54:00:00:00:10', up=True)
DEFAULT = Route(family=AF4, dst=None, dst_len=0, oif=2, gateway='192.0.2.1', proto=3)
TABLE100 = Route(family=AF4, dst='203.0.113.0', dst_len=24, table=100, oif=2, gateway='192.0.2.1', priority=50, proto=4)
LINKSCOPE = Route(family=AF4, dst='10.9.0.0', dst_len=16, oif=2, scope=253, proto=3)
V6 = Route(family=AF6, dst='2001:db8:9::', dst_len=64, oif=2, gateway='fe80::1', priority=1024, proto=3)
CONNECTED = Route(family=AF4, dst='192.0.2.0', dst_len=24, oif=2, scope=253, proto=2, prefsrc='192.0.2.10')
LOCAL = Route(family=AF4, dst='192.0.2.10', dst_len=32, table=255, oif=2, type=2, scope=254, proto=2)
RA = Route(family=AF6, dst=None, dst_len=0, oif=2, gateway='fe80::9', proto=9, priority=1024)
OTHER_LINK = Route(family=AF4, dst='198.51.100.0', dst_len=24, oif=9, gateway='198.18.0.1', proto=3)


def addr(index, text, scope=0):
    ip, prefix = text.split('/')
    return Address(index=index, family=AF6 if ':' in ip else AF4, address=ip, prefixlen=int(prefix), scope=scope)


UPLINK_ADDRESSES = (addr(2, '192.0.2.10/24'), addr(2, '2001:db8::10/64'), addr(2, 'fe80::1/64', scope=253))
ROUTES = (DEFAULT, TABLE100, LINKSCOPE, V6, CONNECTED, LOCAL, RA, OTHER_LINK)


# --------------------------------------------------------------------------- what moves

def test_movable_addresses_skip_link_local_and_sort_ipv4_first():
    assert movable_addresses(UPLINK_ADDRESSES) == ['192.0.2.10/24', '2001:db8::10/64']


def test_movable_routes_are_the_unicast_routes_the_kernel_does_not_own_link_scope_first():
    moving = movable_routes(ROUTES, 2, 'eth0')
    assert moving[0] is LINKSCOPE
    assert set(moving) == set([DEFAULT, TABLE100, LINKSCOPE, V6])


def test_multipath_and_nexthop_routes_are_refused():
    multipath = Route(family=AF4, dst='10.7.0.0', dst_len=24, multipath_oifs=(2, 3), proto=3)
    with pytest.raises(MoveRefused, match="multipath route 10.7.0.0/24 has a hop through 'eth0'"):
        movable_routes([multipath], 2, 'eth0')
    nexthop = Route(family=AF4, dst='10.8.0.0', dst_len=24, oif=2, nexthop_id=7, proto=3)
    with pytest.raises(MoveRefused, match='nexthop object 7'):
        movable_routes([nexthop], 2, 'eth0')
    assert movable_routes([multipath], 4, 'eth2') == []


def test_route_descriptions_read_like_ip_route():
    assert DEFAULT.describe() == 'default via 192.0.2.1'
    assert TABLE100.describe('br0') == '203.0.113.0/24 via 192.0.2.1 dev br0 table 100 proto static metric 50'
    assert V6.describe() == '-6 2001:db8:9::/64 via fe80::1 metric 1024'
    assert LINKSCOPE.describe() == '10.9.0.0/16 scope link'
    onlink = dataclasses.replace(DEFAULT, flags=netlink.RTNH_F_ONLINK | 0x10)
    assert onlink.describe() == 'default via 192.0.2.1 onlink'
    assert DEFAULT.to_dict()['destination'] == 'default'


def test_plan_move_to_a_new_bridge():
    plan = plan_move(TO_BRIDGE, 'br0', 'eth0', ETH0, None, UPLINK_ADDRESSES, (), ROUTES, ())
    assert plan.source == 'eth0' and plan.target == 'br0'
    assert plan.enslave and not plan.release and not plan.set_up
    assert plan.addresses == ('192.0.2.10/24', '2001:db8::10/64') and plan.add_addresses == plan.addresses
    assert plan.routes[0] is LINKSCOPE and len(plan.routes) == 4 and plan.add_routes == plan.routes
    details = plan.details()
    assert details['routes'][0] == '10.9.0.0/16 scope link' and details['enslave'] is True


def test_plan_move_skips_what_the_bridge_already_has():
    bridge_addresses = (addr(5, '192.0.2.10/24'),)
    bridge_routes = (dataclasses.replace(DEFAULT, oif=5),)
    eth0 = dataclasses.replace(ETH0, master_index=5, up=False)
    plan = plan_move(TO_BRIDGE, 'br0', 'eth0', eth0, BR0, UPLINK_ADDRESSES, bridge_addresses, ROUTES, bridge_routes)
    assert not plan.enslave and plan.set_up
    assert plan.add_addresses == ('2001:db8::10/64',)
    assert DEFAULT in plan.routes and DEFAULT not in plan.add_routes, 'the duplicate leaves the uplink, is not added twice'


def test_plan_move_done_is_empty():
    eth0 = dataclasses.replace(ETH0, master_index=5)
    plan = plan_move(TO_BRIDGE, 'br0', 'eth0', eth0, BR0, (addr(2, 'fe80::1/64', scope=253),), (), (CONNECTED,), ())
    assert plan.empty


def test_plan_move_back_to_the_uplink():
    eth0 = dataclasses.replace(ETH0, master_index=5)
    bridge_routes = tuple(dataclasses.replace(route, oif=5) for route in (DEFAULT, V6))
    plan = plan_move(TO_UPLINK, 'br0', 'eth0', eth0, BR0, (addr(5, '192.0.2.10/24'),), (), bridge_routes, ())
    assert plan.source == 'br0' and plan.target == 'eth0'
    assert plan.release and not plan.enslave and not plan.set_up
    assert plan.addresses == ('192.0.2.10/24',) and len(plan.routes) == 2


def test_plan_move_direction_is_checked():
    with pytest.raises(ValueError):
        plan_move('sideways', 'br0', 'eth0', ETH0, None, (), (), (), ())


# --------------------------------------------------------------------------- applying, against a model of the kernel

class ModelSession(object):
    """Addresses, routes, masters and admin state of a pretend kernel; ``fail_at`` makes the n-th write fail."""

    def __init__(self, addresses, routes, fail_at=None, fail_code=errno.EPERM):
        self.addresses = set((rec.index, rec.cidr) for rec in addresses)
        self.routes = set(routes)
        self.master = {2: None}
        self.up = {2: True, 5: True}
        self.fail_at = fail_at
        self.fail_code = fail_code
        self.writes = []

    def state(self):
        return copy.deepcopy((self.addresses, self.routes, self.master, self.up))

    def _write(self, what):
        self.writes.append(what)
        if self.fail_at is not None and len(self.writes) == self.fail_at:
            raise NetlinkOperationError(what, self.fail_code)

    def add_address(self, index, address, prefixlen, display=None, **attrs):
        self._write('add %s/%s %s %s' % (address, prefixlen, display, sorted(attrs.items())))
        key = (index, '%s/%s' % (address, prefixlen))
        if key in self.addresses:
            raise NetlinkOperationError('add', errno.EEXIST)
        self.addresses.add(key)

    def delete_address(self, index, address, prefixlen, display=None):
        self._write('del %s/%s %s' % (address, prefixlen, display))
        key = (index, '%s/%s' % (address, prefixlen))
        if key not in self.addresses:
            raise NetlinkOperationError('del', errno.EADDRNOTAVAIL)
        self.addresses.discard(key)

    def set_link(self, index, display=None, **attrs):
        self._write('set %s %s' % (display, sorted(attrs.items())))
        if 'master' in attrs:
            self.master[index] = attrs['master'] or None
        if 'state' in attrs:
            self.up[index] = attrs['state'] == 'up'

    def add_route(self, route, link, display=None):
        self._write('add route %s' % route.describe(display))
        placed = dataclasses.replace(route, oif=link)
        if placed in self.routes:
            raise NetlinkOperationError('add route', errno.EEXIST)
        self.routes.add(placed)

    def delete_route(self, route, display=None):
        self._write('del route %s' % route.describe(display))
        if route not in self.routes:
            raise NetlinkOperationError('del route', errno.ESRCH)
        self.routes.discard(route)


def forward_plan():
    return plan_move(TO_BRIDGE, 'br0', 'eth0', ETH0, BR0, UPLINK_ADDRESSES, (), ROUTES, ())


def test_move_order_keeps_the_outage_short():
    session = ModelSession(UPLINK_ADDRESSES, ROUTES)
    UplinkMove(session, forward_plan(), 5, 2).run()
    kinds = [write.split(' ')[0] + ' ' + write.split(' ')[1] for write in session.writes]
    first_route_delete = kinds.index('del route')
    assert session.writes[0] == "add 192.0.2.10/24 br0 [('broadcast', '192.0.2.255')]"
    assert session.writes[1] == "add 2001:db8::10/64 br0 [('flags', %d)]" % IFA_F_NODAD
    assert len(session.writes) == 13
    assert session.writes[2] == "set eth0 [('master', 5)]"
    assert first_route_delete == 3 and kinds[7:9] == ['del 192.0.2.10/24', 'del 2001:db8::10/64']
    assert all(kind == 'add route' for kind in kinds[9:])
    assert session.master == {2: 5}
    assert set(cidr for index, cidr in session.addresses if index == 5) == set(['192.0.2.10/24', '2001:db8::10/64'])
    assert set(cidr for index, cidr in session.addresses if index == 2) == set(['fe80::1/64'])
    moved = set(route for route in session.routes if route.oif == 5)
    assert moved == set(dataclasses.replace(route, oif=5) for route in (DEFAULT, TABLE100, LINKSCOPE, V6))


def test_every_failing_step_is_undone_completely():
    done = ModelSession(UPLINK_ADDRESSES, ROUTES)
    UplinkMove(done, forward_plan(), 5, 2).run()
    total = len(done.writes)
    for fail_at in range(1, total + 1):
        session = ModelSession(UPLINK_ADDRESSES, ROUTES, fail_at=fail_at)
        before = session.state()
        with pytest.raises(MoveFailed) as info:
            UplinkMove(session, forward_plan(), 5, 2).run()
        assert info.value.undone, (fail_at, info.value)
        assert session.state() == before, fail_at
        assert "undone: 'eth0' has its addresses and routes back and is not a port of 'br0'" in str(info.value)


def test_a_failing_undo_is_reported():
    class Stubborn(ModelSession):
        def set_link(self, index, display=None, **attrs):
            if attrs.get('master') == 0:
                raise NetlinkOperationError("changing link 'eth0'", errno.EBUSY)
            ModelSession.set_link(self, index, display, **attrs)

    session = Stubborn(UPLINK_ADDRESSES, ROUTES, fail_at=12)
    with pytest.raises(MoveFailed) as info:
        UplinkMove(session, forward_plan(), 5, 2).run()
    assert not info.value.undone
    assert 'UNDO FAILED' in str(info.value) and "undoing making 'eth0' a port of 'br0'" in str(info.value)


def test_ipv6_eacces_is_explained_as_ipv6_disabled():
    session = ModelSession(UPLINK_ADDRESSES, ROUTES, fail_at=2, fail_code=errno.EACCES)
    with pytest.raises(MoveFailed) as info:
        UplinkMove(session, forward_plan(), 5, 2).run()
    assert "IPv6 is disabled on 'br0' (sysctl net.ipv6.conf.br0.disable_ipv6 = 1" in str(info.value)


def test_undo_after_success_restores_everything():
    session = ModelSession(UPLINK_ADDRESSES, ROUTES)
    before = session.state()
    mover = UplinkMove(session, forward_plan(), 5, 2).run()
    mover.undo()
    assert session.state() == before


def test_move_back_to_the_uplink():
    bridge_addresses = (addr(5, '192.0.2.10/24'),)
    bridge_routes = (dataclasses.replace(DEFAULT, oif=5),)
    session = ModelSession(bridge_addresses, bridge_routes)
    session.master = {2: 5}
    eth0 = dataclasses.replace(ETH0, master_index=5)
    plan = plan_move(TO_UPLINK, 'br0', 'eth0', eth0, BR0, bridge_addresses, (), bridge_routes, ())
    UplinkMove(session, plan, 5, 2).run()
    assert session.master == {2: None}
    assert session.addresses == set([(2, '192.0.2.10/24')])
    assert session.routes == set([DEFAULT])

    failing = ModelSession(bridge_addresses, bridge_routes, fail_at=5)
    failing.master = {2: 5}
    before = failing.state()
    with pytest.raises(MoveFailed) as info:
        UplinkMove(failing, plan, 5, 2).run()
    assert failing.state() == before
    assert "'eth0' is a port of 'br0' again" in str(info.value)


# --------------------------------------------------------------------------- the session's route dump and writes

def route_msg(family, dst, dst_len, attrs, table=254, proto=3, scope=0, rtype=1, flags=0, tos=0):
    pairs = [('RTA_TABLE', table)] + list(attrs)
    if dst is not None:
        pairs.append(('RTA_DST', dst))
    return FakeMsg({'family': family, 'dst_len': dst_len, 'table': table if table < 256 else 252, 'proto': proto,
                    'scope': scope, 'type': rtype, 'flags': flags, 'tos': tos}, pairs)


class RouteFakeIPRoute(FakeIPRoute):
    def __init__(self, routes, **kwargs):
        super(RouteFakeIPRoute, self).__init__(**kwargs)
        self.route_msgs = list(routes)

    def get_routes(self, family=0):
        self.calls.append(('get_routes', family))
        return tuple(self.route_msgs)

    def route(self, command, **kwargs):
        self.calls.append(('route', command, kwargs))
        self._maybe_fail(('route', command))
        return []


def test_route_from_msg_reads_tables_above_255_multipath_and_nexthops():
    msg = route_msg(AF4, '10.0.0.0', 8, [('RTA_OIF', 3), ('RTA_GATEWAY', '192.0.2.1'), ('RTA_PRIORITY', 7)], table=1000)
    rec = route_from_msg(msg)
    assert (rec.table, rec.oif, rec.gateway, rec.priority, rec.destination) == (1000, 3, '192.0.2.1', 7, '10.0.0.0/8')
    hops = route_from_msg(route_msg(AF4, '10.1.0.0', 16, [('RTA_MULTIPATH', [{'oif': 3}, {'oif': 4}])]))
    assert hops.multipath_oifs == (3, 4) and hops.oif is None
    default = route_from_msg(route_msg(AF6, None, 0, [('RTA_OIF', 3), ('RTA_NH_ID', 9)]))
    assert default.destination == 'default' and default.nexthop_id == 9 and default.version == 6


def test_session_dumps_routes_once_and_filters_by_link():
    ipr = RouteFakeIPRoute([
        route_msg(AF4, None, 0, [('RTA_OIF', 2), ('RTA_GATEWAY', '192.0.2.1')]),
        route_msg(AF6, '2001:db8::', 64, [('RTA_OIF', 3)]),
        route_msg(7, None, 0, []),  # another family (e.g. MPLS) is ignored
    ])
    session = NetlinkSession(ipr=ipr)
    assert len(session.routes()) == 2
    assert [route.oif for route in session.routes(2)] == [2]
    assert session.dumps['routes'] == 1 and ('get_routes', socket.AF_UNSPEC) in ipr.calls
    session.refresh()
    session.routes()
    assert session.dumps['routes'] == 2


def test_session_route_writes_keep_the_route_and_change_the_link():
    ipr = RouteFakeIPRoute([])
    session = NetlinkSession(ipr=ipr)
    onlink = dataclasses.replace(TABLE100, flags=netlink.RTNH_F_ONLINK | 0x10, prefsrc='192.0.2.10')
    session.add_route(onlink, 5, display='br0')
    session.delete_route(DEFAULT, display='eth0')
    added = ipr.calls[0][2]
    assert added == {'family': AF4, 'dst': '203.0.113.0', 'dst_len': 24, 'table': 100, 'proto': 4, 'scope': 0,
                     'type': 1, 'tos': 0, 'flags': netlink.RTNH_F_ONLINK, 'gateway': '192.0.2.1', 'priority': 50,
                     'prefsrc': '192.0.2.10', 'oif': 5}
    deleted = ipr.calls[1][2]
    assert 'dst' not in deleted and deleted['dst_len'] == 0 and deleted['oif'] == 2


def test_session_route_errors_name_the_route():
    ipr = RouteFakeIPRoute([], fail={('route', 'add'): errno.ENETUNREACH})
    with pytest.raises(NetlinkOperationError, match='adding route default via 192.0.2.1 dev br0'):
        NetlinkSession(ipr=ipr).add_route(DEFAULT, 5, display='br0')
