# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import socket

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.converge import ConvergeFailure, converge
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall import (
    OPERATIONAL_ERRORS,
    FirewallRefused,
    FirewallTask,
    plan_firewall,
    read_host,
    spec_from_params,
    undo_commands,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.sysctl import SysctlError
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import Route
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftError
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors, Validator
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.firewall_fakes import (
    FakeNetlink,
    read_sysctl,
    session,
    standard_links,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.nft_fakes import FakeNft

DOCKER = [
    {'add': {'table': {'family': 'ip', 'name': 'filter'}}},
    {'add': {'chain': {'family': 'ip', 'table': 'filter', 'name': 'FORWARD', 'type': 'filter', 'hook': 'forward', 'prio': 0, 'policy': 'drop'}}},
    {'add': {'chain': {'family': 'ip', 'table': 'filter', 'name': 'DOCKER-USER'}}},
    {'add': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'FORWARD', 'expr': [{'jump': {'target': 'DOCKER-USER'}}]}}},
    {'add': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'DOCKER-USER', 'expr': [{'return': None}]}}},
]


def spec(**params):
    params.setdefault('bridge', 'fcbr0')
    validator = Validator()
    result = spec_from_params(validator, params)
    validator.raise_if_any()
    return result


def errors(**params):
    params.setdefault('bridge', 'fcbr0')
    validator = Validator()
    spec_from_params(validator, params)
    return validator.messages


def run(tmp_path, params, nft=None, check_mode=False, netlink=None, **procsys):
    nft = nft or FakeNft()
    task = FirewallTask(dict({'bridge': 'fcbr0'}, **params))
    result = converge(None, task.validate, task.read, task.plan, task.handlers, after=task.after, view=task.view,
                      report=task.report, session_factory=lambda: session(tmp_path, nft=nft, netlink=netlink, **procsys),
                      lock=False, check_mode=check_mode, operational_errors=OPERATIONAL_ERRORS + (NftError,))
    return result, nft


# --------------------------------------------------------------------------- validation

def test_valid_parameters_are_normalised():
    s = spec(name='fcbr0 Network', cidr='192.168.18.0/24', ipv6_cidr='fd00:18::/64', uplinks=['eth0'])
    assert (s.name, s.mode, str(s.cidr), str(s.ipv6_cidr), s.uplinks, s.state, s.coexistence) == (
        'fcbr0 Network', 'nat', '192.168.18.0/24', 'fd00:18::/64', ('eth0',), 'present', 'fail')
    assert spec(mode='isolated').name == 'fcbr0'
    assert spec(cidr='10.0.0.0/8', uplinks=[]).uplinks is None


@pytest.mark.parametrize('params, parts', [
    ({'mode': 'bogus'}, ["parameter 'mode' (value 'bogus')", 'nat, routed, isolated, bridged, open']),
    ({'cidr': '192.168.18.1/24'}, ["parameter 'cidr' (value '192.168.18.1/24')", 'host bits are set']),
    ({'cidr': 'fd00::/64'}, ["parameter 'cidr'", 'is an IPv6 address']),
    ({'cidr': '10.0.0.0/8', 'ipv6_cidr': '10.0.0.0/8'}, ["parameter 'ipv6_cidr'", 'is an IPv4 address']),
    ({'bridge': 'x' * 16, 'mode': 'open'}, ["parameter 'bridge'", 'is 16 bytes long']),
    ({'cidr': '10.0.0.0/8', 'uplinks': ['eth0', 'eth0']}, ["parameter 'uplinks'", 'lists eth0 more than once']),
    ({'cidr': '10.0.0.0/8', 'uplinks': ['fcbr0']}, ["parameter 'uplinks[0]'", 'is the bridge itself']),
    ({'cidr': '10.0.0.0/8', 'uplinks': 'eth0'}, ["parameter 'uplinks'", 'not a list']),
    ({'cidr': '10.0.0.0/8', 'uplinks': ['a b']}, ["parameter 'uplinks[0]'", 'contains whitespace']),
    ({'mode': 'routed'}, ["parameter 'cidr' (value None)", 'mode routed needs']),
    ({'mode': 'open', 'state': 'gone'}, ["parameter 'state'", 'present, absent']),
    ({'mode': 'open', 'coexistence': 'maybe'}, ["parameter 'coexistence'", 'fail, allow']),
    ({'mode': 'open', 'name': ''}, ["parameter 'name'", '1 to 255 characters']),
])
def test_invalid_parameters(params, parts):
    messages = errors(**params)
    assert messages
    for part in parts:
        assert any(part in message for message in messages), (part, messages)


def test_absent_needs_no_cidr():
    assert errors(mode='nat', state='absent') == []


# --------------------------------------------------------------------------- read and plan

def test_read_host_reads_once(tmp_path):
    sess = session(tmp_path, br_nf='1')
    host = read_host(sess, spec(cidr='10.0.0.0/24'))
    assert sess.netlink.reads == {'links': 1, 'routes': 1}
    assert sess.nft.reads == 1
    assert host.default_uplinks == {4: ('eth0',), 6: ('eth1',)}
    assert host.forwarding == {4: False, 6: False} and host.br_netfilter == {'ip': True, 'ip6': True}
    assert host.ports('fcbr0') == ('tap0',)
    sess = session(tmp_path)
    read_host(sess, spec(cidr='10.0.0.0/24', uplinks=['eth1']))
    assert sess.netlink.reads == {'links': 1, 'routes': 0}
    sess = session(tmp_path)
    read_host(sess, spec(state='absent'))
    assert sess.netlink.reads == {'links': 0, 'routes': 0}


def test_nat_plan_creates_the_table_then_turns_on_forwarding(tmp_path):
    host = read_host(session(tmp_path), spec(cidr='10.0.0.0/24'))
    plan = plan_firewall(spec(cidr='10.0.0.0/24'), host)
    assert [(c.action, c.kind, c.target) for c in plan.changes] == [
        ('create', 'table', 'inet nqrust_microvm_fw_fcbr0'), ('enable', 'sysctl', 'net.ipv4.ip_forward')]
    assert plan.uplinks == ('eth0',)
    assert plan.commands[:2] == [{'add': {'table': {'family': 'inet', 'name': 'nqrust_microvm_fw_fcbr0'}}},
                                 {'delete': {'table': {'family': 'inet', 'name': 'nqrust_microvm_fw_fcbr0'}}}]
    assert plan.changes[0].description == "create table 'inet nqrust_microvm_fw_fcbr0' (mode nat, 6 rules)"


def test_ipv6_uses_the_ipv6_default_route_and_turns_on_ipv6_forwarding(tmp_path):
    s = spec(cidr='10.0.0.0/24', ipv6_cidr='fd00::/64', mode='routed')
    plan = plan_firewall(s, read_host(session(tmp_path, ip_forward='1'), s))
    assert plan.uplinks == ('eth0', 'eth1')
    assert [c.target for c in plan.changes if c.kind == 'sysctl'] == ['net.ipv6.conf.all.forwarding']


@pytest.mark.parametrize('params, netlink, parts', [
    ({'bridge': 'nosuch'}, None, ["parameter 'bridge' (value 'nosuch')", 'no link of that name exists']),
    ({'bridge': 'eth1'}, None, ["parameter 'bridge' (value 'eth1')", 'is a link, not a bridge']),
    ({'uplinks': ['nosuch0']}, None, ["parameter 'uplinks[0]' (value 'nosuch0')", 'no link of that name exists']),
    ({'uplinks': ['tap0']}, None, ["parameter 'uplinks[0]' (value 'tap0')", 'is a port of bridge fcbr0']),
    ({}, FakeNetlink(routes=()), ["parameter 'uplinks' (value None)", 'no IPv4 default route']),
    ({'ipv6_cidr': 'fd00::/64'}, FakeNetlink(routes=()), ['no IPv4 and no IPv6 default route']),
    ({'mode': 'bridged', 'bridge': 'brl', 'uplinks': ['eth0']}, None, ["parameter 'uplinks[0]' (value 'eth0')", 'not a port of bridge brl']),
])
def test_host_problems_fail_before_any_change(tmp_path, params, netlink, parts):
    params = dict({'cidr': '10.0.0.0/24'}, **params)
    with pytest.raises(ValidationErrors) as failure:
        s = spec(**params)
        plan_firewall(s, read_host(session(tmp_path, netlink=netlink), s))
    for part in parts:
        assert part in str(failure.value)


def test_default_route_through_the_bridge_is_refused(tmp_path):
    netlink = FakeNetlink(standard_links(), (Route(socket.AF_INET, None, 0, oif=4),))
    s = spec(cidr='10.0.0.0/24')
    with pytest.raises(ValidationErrors) as failure:
        plan_firewall(s, read_host(session(tmp_path, netlink=netlink), s))
    assert 'the default route leaves by fcbr0' in str(failure.value)


def test_bridged_mode_has_nothing_to_do_with_its_uplink_as_port(tmp_path):
    s = spec(mode='bridged', bridge='brl', uplinks=['eth2'])
    plan = plan_firewall(s, read_host(session(tmp_path), s))
    assert plan.changes == [] and plan.commands == [] and plan.desired is None


# --------------------------------------------------------------------------- converge: check, apply, idempotence, removal

def test_check_mode_predicts_the_real_run_and_the_second_run_changes_nothing(tmp_path):
    params = {'name': 'default', 'cidr': '192.168.18.0/24'}
    nft = FakeNft()
    predicted, nft = run(tmp_path, params, nft=nft, check_mode=True)
    assert nft.applies() == [] and len(nft.checks()) == 1
    assert read_sysctl(tmp_path, 'net/ipv4/ip_forward') == '0'
    applied, nft = run(tmp_path, params, nft=nft)
    assert len(nft.applies()) == 1
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == applied[key]
    assert read_sysctl(tmp_path, 'net/ipv4/ip_forward') == '1'
    again, nft = run(tmp_path, params, nft=nft)
    assert again['changed'] is False and again['changes'] == []
    assert again['diff']['before'] == applied['diff']['after']
    assert applied['firewall']['table'] == 'inet nqrust_microvm_fw_fcbr0'
    assert applied['firewall']['nftables'][0]['table']['handle'] is not None
    assert 'handle' not in predicted['firewall']['nftables'][0]['table']
    assert applied['diff']['before'] == ('bridge: fcbr0\nforwarding:\n  net.ipv4.ip_forward: false\n'
                                         '  net.ipv6.conf.all.forwarding: false\nnetwork: default\nnftables: {}\npass_rules: {}\n')


def test_mode_change_replaces_only_this_networks_table_and_absent_deletes_it(tmp_path):
    nft = FakeNft()
    run(tmp_path, {'bridge': 'brl', 'mode': 'isolated'}, nft=nft)
    other = [dict(item) for item in nft.listing()['nftables'] if 'rule' in item]
    run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft)
    replaced, nft = run(tmp_path, {'cidr': '10.0.0.0/24', 'mode': 'routed'}, nft=nft)
    assert [(c['action'], c['kind']) for c in replaced['changes']] == [('replace', 'table')]
    assert 'before 6' in replaced['changes'][0]['description']
    removed, nft = run(tmp_path, {'state': 'absent'}, nft=nft)
    assert [(c['action'], c['target']) for c in removed['changes']] == [('delete', 'inet nqrust_microvm_fw_fcbr0')]
    assert removed['firewall']['table'] is None
    assert [dict(item) for item in nft.listing()['nftables'] if 'rule' in item] == other
    assert read_sysctl(tmp_path, 'net/ipv4/ip_forward') == '1'   # never turned off
    again, nft = run(tmp_path, {'state': 'absent'}, nft=nft)
    assert again['changed'] is False


def test_open_mode_removes_the_table(tmp_path):
    nft = FakeNft()
    run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft)
    result, nft = run(tmp_path, {'mode': 'open'}, nft=nft)
    assert [c['action'] for c in result['changes']] == ['delete']
    assert nft.tables == []


def test_docker_forward_drop_fails_with_nothing_changed(tmp_path):
    nft = FakeNft(DOCKER)
    with pytest.raises(ConvergeFailure) as failure:
        run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft)
    assert 'table ip filter, base chain FORWARD (hook forward, priority 0, policy drop)' in failure.value.msg
    assert nft.applies() == [] and nft.checks() == []
    assert read_sysctl(tmp_path, 'net/ipv4/ip_forward') == '0'
    # isolated without br_netfilter: nothing of the network is routed, Docker's chain is not in the way
    result, nft = run(tmp_path, {'mode': 'isolated'}, nft=nft, br_nf='0')
    assert result['firewall']['blockers'] == []
    with pytest.raises(ConvergeFailure):
        run(tmp_path, {'mode': 'isolated'}, nft=nft, br_nf='1')


def test_coexistence_allow_adds_marked_rules_and_absent_removes_them(tmp_path):
    nft = FakeNft(DOCKER)
    docker_rules = [item for item in nft.listing()['nftables'] if 'rule' in item]
    params = {'cidr': '10.0.0.0/24', 'coexistence': 'allow'}
    predicted, nft = run(tmp_path, params, nft=nft, check_mode=True)
    applied, nft = run(tmp_path, params, nft=nft)
    assert predicted['changes'] == applied['changes'] and predicted['diff'] == applied['diff']
    assert [(c['action'], c['kind']) for c in applied['changes']] == [('create', 'table'), ('add', 'rule'), ('add', 'rule'), ('enable', 'sysctl')]
    assert applied['changes'][1]['description'] == (
        "add rule 'iifname \"fcbr0\" accept comment \"nqrust.microvm pass fcbr0\"' to chain 'ip filter DOCKER-USER'")
    assert len(nft.applies()) == 1   # table and foreign rules: one transaction
    listed = [item['rule'] for item in nft.listing()['nftables'] if 'rule' in item and item['rule']['chain'] == 'DOCKER-USER']
    assert [rule.get('comment') for rule in listed] == ['nqrust.microvm pass fcbr0', 'nqrust.microvm pass fcbr0', None]
    again, nft = run(tmp_path, params, nft=nft)
    assert again['changed'] is False
    # fail mode now: the blocker is back in sight (our rules do not count) and the message says our rules are there
    with pytest.raises(ConvergeFailure) as failure:
        run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft)
    assert 'earlier run with coexistence=allow' in failure.value.msg
    removed, nft = run(tmp_path, {'state': 'absent'}, nft=nft)
    assert sorted(c['action'] for c in removed['changes']) == ['delete', 'remove', 'remove']
    assert [item for item in nft.listing()['nftables'] if 'rule' in item] == docker_rules


def test_stale_pass_rules_go_when_nothing_is_in_the_way(tmp_path):
    nft = FakeNft(DOCKER)
    run(tmp_path, {'cidr': '10.0.0.0/24', 'coexistence': 'allow'}, nft=nft)
    # Docker's policy goes to accept: the marked rules are not needed any more
    for chain in nft.chains:
        if chain['name'] == 'FORWARD':
            chain['policy'] = 'accept'
    result, nft = run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft)
    assert [(c['action'], c['kind']) for c in result['changes']] == [('remove', 'rule'), ('remove', 'rule')]


def test_a_failed_transaction_changes_nothing_and_is_reported(tmp_path):
    nft = FakeNft(fail='Error: Could not process rule: Operation not supported')
    with pytest.raises(ConvergeFailure) as failure:
        run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft)
    assert 'step 1 of 2' in failure.value.msg and 'Operation not supported' in failure.value.msg
    assert 'nothing had been changed before it' in failure.value.msg
    assert read_sysctl(tmp_path, 'net/ipv4/ip_forward') == '0'
    with pytest.raises(ConvergeFailure) as failure:
        run(tmp_path, {'cidr': '10.0.0.0/24'}, nft=nft, check_mode=True)
    assert 'nft --check' in failure.value.msg


def test_a_failed_forwarding_write_rolls_the_rules_back(tmp_path):
    nft = FakeNft(DOCKER)
    run(tmp_path, {'cidr': '10.0.0.0/24', 'mode': 'isolated', 'coexistence': 'allow'}, nft=nft, br_nf='1')
    before = nft.listing()
    applied_before = len(nft.applies())

    def refuse(name, value):
        raise SysctlError('writing %s=%s: Read-only file system' % (name, value))

    sess = session(tmp_path, nft=nft)
    sess.procsys.write = refuse
    task = FirewallTask({'bridge': 'fcbr0', 'cidr': '10.0.0.0/24', 'coexistence': 'allow'})
    with pytest.raises(ConvergeFailure) as failure:
        converge(None, task.validate, task.read, task.plan, task.handlers, after=task.after, view=task.view,
                 report=task.report, session_factory=lambda: sess, lock=False,
                 operational_errors=OPERATIONAL_ERRORS + (NftError,))
    assert "enable sysctl 'net.ipv4.ip_forward'" in failure.value.msg and 'rolled back' in failure.value.msg
    assert len(nft.applies()) == applied_before + 2   # the plan's transaction and the one undoing it

    def strip(listing):
        return [dict((kind, dict((key, value) for key, value in obj.items() if key != 'handle')) for kind, obj in item.items())
                for item in listing['nftables']]
    assert strip(nft.listing()) == strip(before)


def test_undo_commands_put_back_a_replaced_table_and_removed_rules(tmp_path):
    nft = FakeNft(DOCKER)
    run(tmp_path, {'cidr': '10.0.0.0/24', 'coexistence': 'allow'}, nft=nft)
    s = spec(mode='open')
    host = read_host(session(tmp_path, nft=nft), s)
    plan = plan_firewall(s, host)
    assert sorted(c.action for c in plan.changes) == ['delete', 'remove', 'remove']
    commands = undo_commands(plan, 'fcbr0', host.ruleset)
    assert [list(c)[0] for c in commands][:3] == ['add', 'delete', 'add']
    assert [list(c)[0] for c in commands][-2:] == ['insert', 'insert']


def test_refused_is_an_operational_error():
    assert FirewallRefused in OPERATIONAL_ERRORS and ValidationErrors in OPERATIONAL_ERRORS
