# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import errno
import socket

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import bridge
from ansible_collections.nqrust.microvm.plugins.module_utils.bridge import (
    BridgeHandlers,
    BridgeSpec,
    BridgeTask,
    HostState,
    check_host,
    derive_mac,
    plan_bridge,
    predict,
    read_machine_id,
    spec_from_params,
    view_of,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    Address,
    Link,
    NetlinkError,
    NetlinkOperationError,
    NetlinkSession,
    Route,
    link_from_msg,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import order_changes
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors, Validator
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import FakeIPRoute, link_msg

MACHINE_ID = '0123456789abcdef0123456789abcdef'

LO = Link(index=1, name='lo', flags=0x49, up=True, mac='00:00:00:00:00:00')
ETH0 = Link(index=2, name='eth0', kind='veth', mac='52:54:00:00:00:10', up=True)
ETH1 = Link(index=3, name='eth1', kind='veth', mac='52:54:00:00:00:11', up=True, master_index=4)
OTHER = Link(index=4, name='brother', kind='bridge', up=True, stp_state=0, forward_delay=1500, mcast_snooping=True,
             vlan_filtering=False, vlan_default_pvid=1)


def bridge_link(index=5, name='br0', **fields):
    values = dict(kind='bridge', mac=derive_mac(name, MACHINE_ID), mtu=1500, txqlen=1000, up=True, alias='nqrust.microvm',
                  stp_state=0, forward_delay=1500, mcast_snooping=True, vlan_filtering=False, vlan_default_pvid=1)
    values.update(fields)
    return Link(index=index, name=name, **values)


def addr(index, text, scope=0):
    ip, prefix = text.split('/')
    return Address(index=index, family=socket.AF_INET6 if ':' in ip else socket.AF_INET, address=ip, prefixlen=int(prefix),
                   scope=scope)


def host(*extra_links, addresses=(), routes=()):
    return HostState(links=(LO, ETH0, ETH1, OTHER) + tuple(extra_links), addresses=tuple(addresses), routes=tuple(routes),
                     machine_id=MACHINE_ID)


def spec(**params):
    params.setdefault('name', 'br0')
    validator = Validator()
    result = spec_from_params(validator, params)
    validator.raise_if_any()
    return result


def problems(**params):
    validator = Validator()
    spec_from_params(validator, params)
    return validator.messages


# --------------------------------------------------------------------------- parameters

def test_spec_normalises_values():
    result = spec(addresses=['fd00::0001/64', '10.0.0.1/24'], forward_delay=2.5, mac='02:AA:bb:cc:dd:ee', stp=True)
    assert result.addresses == ('10.0.0.1/24', 'fd00::1/64')
    assert result.forward_delay == 250 and result.mac == '02:aa:bb:cc:dd:ee' and result.present
    assert spec(addresses=[]).addresses == () and spec().addresses is None


@pytest.mark.parametrize('params, words', [
    (dict(name='a' * 16), "parameter 'name' (value 'aaaaaaaaaaaaaaaa'): is 16 bytes long; interface name must be 1 to 15 bytes"),
    (dict(name='br0', addresses=['10.0.0.0/24']), "parameter 'addresses[0]' (value '10.0.0.0/24'): is the network address"),
    (dict(name='br0', addresses='10.0.0.1/24'), "parameter 'addresses' (value '10.0.0.1/24'): not a list"),
    (dict(name='br0', addresses=['10.0.0.1/24', '10.0.0.1/24']), '10.0.0.1/24 is listed more than once'),
    (dict(name='br0', mtu=0), "parameter 'mtu' (value 0): MTU must be an integer from 68 to 65535"),
    (dict(name='br0', mtu=1200, addresses=['fd00::1/64']), "parameter 'mtu' (value 1200): IPv6 needs an MTU of 1280 or more"),
    (dict(name='br0', mac='ff:ff:ff:ff:ff:ff'), "parameter 'mac' (value 'ff:ff:ff:ff:ff:ff'): broadcast address"),
    (dict(name='br0', forward_delay=-1.0), "parameter 'forward_delay' (value -1.0): forward_delay must be a number of seconds"),
    (dict(name='br0', forward_delay=1.005), 'finer than 0.01 s'),
    (dict(name='br0', forward_delay=1.0, stp=True), 'below 2 s while stp is true'),
    (dict(name='br0', vlan_default_pvid=4095), "parameter 'vlan_default_pvid' (value 4095): vlan_default_pvid must be an integer from 0"),
    (dict(name='br0', txqueuelen=2 ** 32), "parameter 'txqueuelen' (value 4294967296)"),
    (dict(name='br0', uplink='br0'), "parameter 'uplink' (value 'br0'): is the bridge itself; uplink must name an existing Ethernet link"),
    (dict(name='br0', uplink='bad:name'), "parameter 'uplink' (value 'bad:name'): contains ':'"),
])
def test_spec_refuses_bad_values_naming_parameter_value_and_what_is_allowed(params, words):
    found = problems(**params)
    assert len(found) == 1 and words in found[0], found


def test_spec_collects_every_problem():
    assert len(problems(name='', mtu=1, forward_delay=99.0, addresses=['x'])) == 4


# --------------------------------------------------------------------------- stable MAC

def test_derived_mac_is_stable_local_and_unicast():
    mac = derive_mac('fcbr0', MACHINE_ID)
    assert mac == derive_mac('fcbr0', MACHINE_ID)
    assert mac != derive_mac('fcbr1', MACHINE_ID) and mac != derive_mac('fcbr0', 'f' * 32) and mac != derive_mac('fcbr0')
    for name in ('fcbr0', 'fcbr1', 'a', 'b' * 15):
        first = int(derive_mac(name, MACHINE_ID)[:2], 16)
        assert first & 0x01 == 0 and first & 0x02 == 0x02


def test_read_machine_id(tmp_path):
    good = tmp_path / 'machine-id'
    good.write_text(MACHINE_ID.upper() + '\n')
    bad = tmp_path / 'bad'
    bad.write_text('uninitialized\n')
    assert read_machine_id([str(tmp_path / 'missing'), str(bad), str(good)]) == MACHINE_ID
    assert read_machine_id([str(bad)]) is None


def test_bridged_mode_defaults_to_the_uplink_mac_and_an_explicit_mac_wins():
    assert bridge.desired_mac(spec(uplink='eth0'), host()) == ETH0.mac
    assert bridge.desired_mac(spec(), host()) == derive_mac('br0', MACHINE_ID)
    assert bridge.desired_mac(spec(uplink='eth0', mac='02:00:00:00:00:99'), host()) == '02:00:00:00:00:99'


# --------------------------------------------------------------------------- reading bridge settings

def test_link_from_msg_reads_bridge_settings():
    info_data = [('IFLA_BR_STP_STATE', 1), ('IFLA_BR_FORWARD_DELAY', 250), ('IFLA_BR_MCAST_SNOOPING', 0),
                 ('IFLA_BR_VLAN_FILTERING', 1), ('IFLA_BR_VLAN_DEFAULT_PVID', 10)]
    msg = link_msg(7, 'br7', kind='bridge', info_data=info_data)
    rec = link_from_msg(msg)
    assert (rec.stp_state, rec.forward_delay, rec.mcast_snooping, rec.vlan_filtering, rec.vlan_default_pvid) == (1, 250, False, True, 10)
    settings = bridge.current_settings(rec)
    assert settings['stp'] is True and settings['forward_delay'] == 2.5 and settings['multicast_snooping'] is False
    plain = link_from_msg(link_msg(8, 'eth8'))
    assert plain.stp_state is None and plain.vlan_default_pvid is None


# --------------------------------------------------------------------------- host checks

@pytest.mark.parametrize('params, param, words', [
    (dict(name='eth0'), 'name', "'eth0' is a veth link (ifindex 2), not a bridge"),
    (dict(name='eth0', state='absent'), 'name', 'the module never touches other devices'),
    (dict(name='br0', uplink='eth9'), 'uplink', 'no link of that name exists'),
    (dict(name='br0', uplink='eth1'), 'uplink', "is already a port of 'brother'"),
    (dict(name='br0', uplink='brother'), 'uplink', 'is a bridge'),
    (dict(name='br0', uplink='lo'), 'uplink', 'is the loopback device'),
    (dict(name='br0', uplink='eth0', addresses=['192.0.2.99/24']), 'addresses', "leaves out 192.0.2.10/24 of uplink 'eth0'"),
])
def test_check_host_refusals(params, param, words):
    state = host(addresses=[addr(2, '192.0.2.10/24')])
    with pytest.raises(ValidationErrors) as info:
        check_host(spec(**params), state)
    assert "parameter '%s'" % param in str(info.value) and words in str(info.value)


def test_check_host_refuses_a_tun_uplink_and_unmovable_routes():
    tun = Link(index=9, name='tun0', kind='tun', tun_type='tun')
    with pytest.raises(ValidationErrors, match='is a TUN device'):
        check_host(spec(uplink='tun0'), host(tun))
    multipath = Route(family=socket.AF_INET, dst='10.7.0.0', dst_len=24, multipath_oifs=(2, 9), proto=3)
    with pytest.raises(ValidationErrors, match="parameter 'uplink' .*multipath route 10.7.0.0/24"):
        check_host(spec(uplink='eth0'), host(routes=[multipath]))


def test_check_host_refuses_deleting_a_bridge_with_ports_unless_forced():
    port = Link(index=6, name='tap0', kind='tun', tun_type='tap', master_index=5)
    with pytest.raises(ValidationErrors, match="parameter 'force' .*bridge 'br0' still has ports tap0"):
        check_host(spec(state='absent'), host(bridge_link(), port))
    check_host(spec(state='absent', force=True), host(bridge_link(), port))
    # the uplink handed back is not a port that blocks deletion
    eth0 = dataclasses.replace(ETH0, master_index=5)
    check_host(spec(state='absent', uplink='eth0'), HostState(links=(LO, eth0, bridge_link()), addresses=()))


def test_check_host_forward_delay_while_stp_runs_and_ipv6_mtu():
    running = bridge_link(stp_state=1)
    with pytest.raises(ValidationErrors, match="parameter 'forward_delay' \\(value 1\\).*while STP runs on 'br0'"):
        check_host(spec(forward_delay=1.0), host(running))
    check_host(spec(forward_delay=1.0, stp=False), host(running))
    with pytest.raises(ValidationErrors, match="parameter 'mtu' \\(value 1000\\)"):
        check_host(spec(mtu=1000), host(bridge_link(), addresses=[addr(5, 'fd00::1/64')]))
    check_host(spec(mtu=1000, addresses=['10.0.0.1/24']), host(bridge_link(), addresses=[addr(5, 'fd00::1/64')]))


def test_check_host_knows_a_kernel_without_vlan_filtering():
    lacking = bridge_link(vlan_default_pvid=None)
    with pytest.raises(ValidationErrors, match="parameter 'vlan_default_pvid' \\(value 10\\).*no bridge VLAN filtering"):
        check_host(spec(vlan_default_pvid=10), host(lacking))
    with pytest.raises(ValidationErrors, match="parameter 'vlan_filtering' \\(value True\\)"):
        check_host(spec(name='br1', vlan_filtering=True), host(lacking))
    check_host(spec(vlan_filtering=False), host(lacking))
    check_host(spec(vlan_default_pvid=10), host(bridge_link()))  # a kernel that has it


# --------------------------------------------------------------------------- plans

def summary(changes):
    return [(change.action, change.kind, change.target) for change in order_changes(changes)]


def test_plan_create():
    plan = plan_bridge(spec(addresses=['10.0.0.1/24'], mtu=9000, stp=False), host())
    assert summary(plan.changes) == [('create', 'bridge', 'br0'), ('add', 'address', '10.0.0.1/24'), ('up', 'bridge', 'br0')]
    assert dict(plan.changes[0].details['settings']) == {'mac': derive_mac('br0', MACHINE_ID), 'mtu': 9000, 'stp': False}
    assert plan.move is None


def test_plan_nothing_to_do():
    state = host(bridge_link(), addresses=[addr(5, '10.0.0.1/24'), addr(5, 'fe80::1/64', scope=253)])
    assert plan_bridge(spec(addresses=['10.0.0.1/24'], stp=False, forward_delay=15), state).changes == ()
    assert plan_bridge(spec(name='nope0', state='absent'), state).changes == ()


def test_plan_update_and_exact_addresses():
    state = host(bridge_link(up=False, stp_state=1, mac='52:54:00:aa:aa:aa'),
                 addresses=[addr(5, '10.0.0.1/24'), addr(5, '10.0.0.9/24'), addr(5, 'fe80::1/64', scope=253)])
    plan = plan_bridge(spec(addresses=['10.0.0.1/24', 'fd00::1/64'], stp=False, forward_delay=0), state)
    assert summary(plan.changes) == [('remove', 'address', '10.0.0.9/24'), ('update', 'bridge', 'br0'),
                                     ('add', 'address', 'fd00::1/64'), ('up', 'bridge', 'br0')]
    update = [change for change in plan.changes if change.action == 'update'][0]
    assert dict(update.details['before']) == {'mac': '52:54:00:aa:aa:aa', 'stp': True, 'forward_delay': 15}
    assert dict(update.details['after']) == {'mac': derive_mac('br0', MACHINE_ID), 'stp': False, 'forward_delay': 0}
    assert update.description == ("update bridge 'br0' (forward_delay: 15 -> 0, mac: 52:54:00:aa:aa:aa -> %s, stp: true -> false)"
                                  % derive_mac('br0', MACHINE_ID))


def test_plan_bridged_mode():
    state = host(addresses=[addr(2, '192.0.2.10/24')],
                 routes=[Route(family=socket.AF_INET, dst=None, dst_len=0, oif=2, gateway='192.0.2.1', proto=3)])
    plan = plan_bridge(spec(uplink='eth0'), state)
    assert summary(plan.changes) == [('create', 'bridge', 'br0'), ('up', 'bridge', 'br0'), ('migrate', 'uplink', 'eth0')]
    assert plan.changes[0].details['settings']['mac'] == ETH0.mac
    assert plan.changes[-1].description == ("move uplink 'eth0' into bridge 'br0' (addresses 192.0.2.10/24, "
                                            "routes default via 192.0.2.1)")
    # the uplink's address listed: the move adds it, not the address phase
    listed = plan_bridge(spec(uplink='eth0', addresses=['192.0.2.10/24', '10.1.0.1/24']), state)
    assert [target for action, kind, target in summary(listed.changes) if kind == 'address'] == ['10.1.0.1/24']


def test_plan_absent_with_uplink_hands_back_then_deletes():
    eth0 = dataclasses.replace(ETH0, master_index=5)
    state = HostState(links=(LO, eth0, bridge_link()), addresses=(addr(5, '192.0.2.10/24'),),
                      routes=(Route(family=socket.AF_INET, dst=None, dst_len=0, oif=5, gateway='192.0.2.1', proto=3),))
    plan = plan_bridge(spec(state='absent', uplink='eth0'), state)
    assert summary(plan.changes) == [('release', 'uplink', 'eth0'), ('delete', 'bridge', 'br0')]
    assert plan.changes[0].removal and plan.move.release


# --------------------------------------------------------------------------- the diff's after is the state after the changes

def after_state(before, spec_, changes):
    """What the kernel would hold after the changes (a hand-written model, independent of predict())."""
    links = dict((link.name, link) for link in before.links)
    addresses = list(before.addresses)
    routes = list(before.routes)
    index = links[spec_.name].index if spec_.name in links else 50
    for change in changes:
        if change.kind == 'bridge' and change.action == 'create':
            settings = dict(change.details['settings'])
            links[spec_.name] = bridge_link(index=index, name=spec_.name, mac=settings['mac'], up=False,
                                            stp_state=1 if settings.get('stp') else 0,
                                            forward_delay=int(settings.get('forward_delay', 15) * 100))
        elif change.kind == 'bridge' and change.action == 'update':
            after = dict(change.details['after'])
            values = {'mac': after.get('mac', links[spec_.name].mac)}
            if 'stp' in after:
                values['stp_state'] = 1 if after['stp'] else 0
            if 'forward_delay' in after:
                values['forward_delay'] = int(after['forward_delay'] * 100)
            links[spec_.name] = dataclasses.replace(links[spec_.name], **values)
        elif change.kind == 'bridge' and change.action == 'up':
            links[spec_.name] = dataclasses.replace(links[spec_.name], up=True)
        elif change.kind == 'address' and change.action == 'add':
            addresses.append(addr(index, change.target))
        elif change.kind == 'address' and change.action == 'remove':
            addresses = [rec for rec in addresses if not (rec.index == index and rec.cidr == change.target)]
        elif change.kind == 'uplink':
            uplink = links[spec_.uplink]
            addresses = [dataclasses.replace(rec, index=index) if rec.index == uplink.index and not rec.is_link_local else rec
                         for rec in addresses]
            routes = [dataclasses.replace(rec, oif=index) if rec.oif == uplink.index else rec for rec in routes]
            links[spec_.uplink] = dataclasses.replace(uplink, master_index=index, up=True)
    return HostState(links=tuple(links.values()), addresses=tuple(addresses), routes=tuple(routes),
                     machine_id=before.machine_id)


@pytest.mark.parametrize('params', [
    dict(addresses=['10.0.0.1/24'], stp=False),
    dict(addresses=['10.0.0.1/24', 'fd00::1/64'], stp=True, forward_delay=4),
    dict(addresses=[]),
    dict(uplink='eth0'),
    dict(uplink='eth0', addresses=['192.0.2.10/24', '10.3.0.1/24']),
])
@pytest.mark.parametrize('existing', [False, True])
def test_predicted_view_is_the_view_of_the_host_after_the_changes(params, existing):
    extra = (bridge_link(up=False, stp_state=1, mac='52:54:00:aa:aa:aa'),) if existing else ()
    before = host(*extra, addresses=[addr(2, '192.0.2.10/24'), addr(5, '10.0.0.9/24')] if existing else [addr(2, '192.0.2.10/24')],
                  routes=[Route(family=socket.AF_INET, dst=None, dst_len=0, oif=2, gateway='192.0.2.1', proto=3)])
    wanted = spec(**params)
    plan = plan_bridge(wanted, before)
    changes = order_changes(plan.changes)
    predicted = predict(wanted, before, changes, plan.move)
    after = after_state(before, wanted, changes)
    assert predicted == view_of(wanted, after)
    assert plan_bridge(wanted, after).changes == (), 'a second run changes nothing'


# --------------------------------------------------------------------------- handlers, against a fake IPRoute

def handlers_for(params, state, ipr):
    wanted = spec(**params)
    plan = plan_bridge(wanted, state)
    return BridgeHandlers(NetlinkSession(ipr=ipr), wanted, state, plan.move), order_changes(plan.changes)


def writes(ipr):
    return [call for call in ipr.calls if call[0] in ('link', 'addr') and call[1] != 'get']


def test_create_sets_settings_in_separate_requests_and_the_alias():
    ipr = FakeIPRoute(links=[], addresses=[])
    handlers, changes = handlers_for(dict(mtu=9000, stp=True, forward_delay=4, multicast_snooping=False,
                                          vlan_filtering=False, txqueuelen=500), host(), ipr)
    index = handlers.do(changes[0])
    calls = writes(ipr)
    assert calls[0] == ('link', 'add', {'ifname': 'br0', 'kind': 'bridge'})
    assert calls[1][2] == {'index': index, 'ifalias': 'nqrust.microvm'}
    assert calls[2][2] == {'index': index, 'address': derive_mac('br0', MACHINE_ID), 'mtu': 9000, 'txqlen': 500}
    assert calls[3][2] == {'index': index, 'kind': 'bridge', 'br_stp_state': 1, 'br_forward_delay': 400, 'br_mcast_snooping': 0}
    assert len(calls) == 4, 'vlan_filtering=false is the default and is not sent on create'
    handlers.undo(changes[0], index)
    assert writes(ipr)[-1] == ('link', 'del', {'index': index})


def test_create_fails_clearly_without_vlan_filtering_and_deletes_the_bridge():
    class NoVlan(FakeIPRoute):
        def link(self, command, **kwargs):
            if command == 'set' and 'br_vlan_filtering' in kwargs:
                self.calls.append(('link', command, kwargs))
                raise NetlinkError(errno.EOPNOTSUPP, 'Operation not supported')
            return FakeIPRoute.link(self, command, **kwargs)

    ipr = NoVlan(links=[], addresses=[])
    handlers, changes = handlers_for(dict(vlan_filtering=True), host(), ipr)
    with pytest.raises(NetlinkOperationError) as info:
        handlers.do(changes[0])
    assert str(info.value).startswith("setting vlan_filtering=true on bridge 'br0': this kernel has no bridge VLAN filtering")
    assert 'EOPNOTSUPP' in str(info.value)
    assert writes(ipr)[-1][1] == 'del', 'the new bridge is deleted again'
    assert handlers.index is None


def test_update_turns_stp_off_before_a_short_forward_delay_and_restores_on_failure():
    state = host(bridge_link(stp_state=1, mtu=1500))
    ipr = FakeIPRoute(links=[], addresses=[])
    handlers, changes = handlers_for(dict(stp=False, forward_delay=0, mtu=9000), state, ipr)
    handlers.do(changes[0])
    sets = [call[2] for call in writes(ipr)]
    assert sets == [{'index': 5, 'kind': 'bridge', 'br_stp_state': 0}, {'index': 5, 'mtu': 9000},
                    {'index': 5, 'kind': 'bridge', 'br_forward_delay': 0}]

    failing = FakeIPRoute(links=[], addresses=[])
    calls = {'n': 0}
    original = failing.link

    def link(command, **kwargs):
        if command == 'set':
            calls['n'] += 1
            if calls['n'] == 3:
                failing.calls.append(('link', command, kwargs))
                raise NetlinkError(errno.ERANGE, 'out of range')
        return original(command, **kwargs)

    failing.link = link
    handlers, changes = handlers_for(dict(stp=False, forward_delay=0, mtu=9000), state, failing)
    with pytest.raises(NetlinkOperationError, match='forward_delay=0'):
        handlers.do(changes[0])
    restored = [call[2] for call in writes(failing)][3:]
    assert {'index': 5, 'mtu': 1500} in restored and {'index': 5, 'kind': 'bridge', 'br_stp_state': 1} in restored


def test_address_and_state_handlers():
    state = host(bridge_link(up=False), addresses=[addr(5, '10.0.0.9/24')])
    ipr = FakeIPRoute(links=[], addresses=[])
    handlers, changes = handlers_for(dict(addresses=['10.0.0.1/24']), state, ipr)
    for change in changes:
        handlers.do(change)
    calls = writes(ipr)
    assert calls[0] == ('addr', 'del', {'index': 5, 'address': '10.0.0.9', 'prefixlen': 24})
    assert calls[1] == ('addr', 'add', {'index': 5, 'address': '10.0.0.1', 'prefixlen': 24, 'broadcast': '10.0.0.255'})
    assert calls[2] == ('link', 'set', {'index': 5, 'state': 'up'})
    for change in reversed(changes):
        handlers.undo(change, None)
    assert [call[1] for call in writes(ipr)[3:]] == ['set', 'del', 'add']


# --------------------------------------------------------------------------- the task's report

def test_check_mode_report_predicts_the_bridge():
    task = BridgeTask(dict(name='br0', state='present', addresses=['10.0.0.1/24'], mtu=1400, stp=False, force=False))
    validator = Validator()
    wanted = task.validate(validator)
    task.host = host()
    changes = task.plan(wanted, task.host)
    report = task.report(None, changes, check_mode=True)['bridge']
    assert report['ifindex'] is None and report['addresses'] == ['10.0.0.1/24'] and report['mtu'] == 1400
    assert report['mac'] == derive_mac('br0', MACHINE_ID) and report['up'] is True and report['stp'] is False
    gone = BridgeTask(dict(name='br0', state='absent', force=True))
    gone.validate(Validator())
    gone.host = host(bridge_link())
    assert gone.report(None, gone.plan(gone.spec, gone.host), check_mode=True) == {'bridge': None}


def test_bridge_spec_defaults():
    assert BridgeSpec(name='br0').present and not BridgeSpec(name='br0', state='absent').present


def test_bridged_mode_mtu_above_the_uplink_is_refused_and_absent_without_bridge_needs_no_uplink():
    uplink = dataclasses.replace(ETH0, mtu=1500)
    state = HostState(links=(LO, uplink), addresses=())
    with pytest.raises(ValidationErrors, match="parameter 'mtu' \\(value 9000\\).*uplink 'eth0' has MTU 1500"):
        check_host(spec(uplink='eth0', mtu=9000), state)
    check_host(spec(uplink='eth0', mtu=1500), state)
    assert plan_bridge(spec(state='absent', uplink='gone0'), state).changes == ()
