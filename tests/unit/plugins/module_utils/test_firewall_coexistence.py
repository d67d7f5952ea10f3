# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_coexistence import (
    find_blockers,
    marked_rules,
    pass_comment,
    pass_rules,
    refusal_message,
    relevant_families,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import Ruleset

IP = {'ip', 'ip6', 'inet', 'bridge'}


def chain(family, table, name, hook=None, policy=None, prio=0):
    data = {'family': family, 'table': table, 'name': name, 'handle': 1}
    if hook:
        data.update(type='filter', hook=hook, prio=prio, policy=policy or 'accept')
    return {'chain': data}


def rule(family, table, chain_name, expr, handle=10, comment=None):
    data = {'family': family, 'table': table, 'chain': chain_name, 'handle': handle, 'expr': expr}
    if comment:
        data['comment'] = comment
    return {'rule': data}


def iface(key, value):
    return {'match': {'op': '==', 'left': {'meta': {'key': key}}, 'right': value}}


def ruleset(*items):
    tables = sorted({(item[k]['family'], item[k]['table']) for item in items for k in item if k in ('chain', 'rule')})
    return Ruleset.from_json({'nftables': [{'table': {'family': f, 'name': t, 'handle': 1}} for f, t in tables] + list(items)})


def docker(*user_rules):
    return ruleset(
        chain('ip', 'filter', 'FORWARD', 'forward', 'drop'),
        chain('ip', 'filter', 'DOCKER-USER'),
        chain('ip', 'filter', 'DOCKER-FORWARD'),
        rule('ip', 'filter', 'FORWARD', [{'counter': {'packets': 3, 'bytes': 9}}, {'jump': {'target': 'DOCKER-USER'}}], 1),
        rule('ip', 'filter', 'FORWARD', [{'jump': {'target': 'DOCKER-FORWARD'}}], 2),
        *(list(user_rules) + [rule('ip', 'filter', 'DOCKER-USER', [{'return': None}], 3),
                              rule('ip', 'filter', 'DOCKER-FORWARD', [iface('oifname', 'docker0'), {'accept': None}], 4)]))


def test_docker_forward_policy_drop_blocks_and_pass_rules_go_to_docker_user():
    blockers = find_blockers(docker(), 'fcbr0', IP)
    assert len(blockers) == 1
    blocker = blockers[0]
    assert blocker.reason == 'policy drop'
    assert blocker.target.ref == 'ip filter DOCKER-USER'
    assert blocker.describe() == 'table ip filter, base chain FORWARD (hook forward, priority 0, policy drop): policy drop'
    assert blocker.to_dict()['pass_chain'] == 'ip filter DOCKER-USER'
    assert [r.text() for r in pass_rules(blocker.target, 'fcbr0')] == [
        'iifname "fcbr0" accept comment "nqrust.microvm pass fcbr0"', 'oifname "fcbr0" accept comment "nqrust.microvm pass fcbr0"']


def test_users_own_accepts_for_the_bridge_clear_the_block():
    both = docker(rule('ip', 'filter', 'DOCKER-USER', [iface('iifname', 'fcbr0'), {'counter': None}, {'accept': None}], 20),
                  rule('ip', 'filter', 'DOCKER-USER', [iface('oifname', {'set': ['fcbr0', 'fcbr1']}), {'accept': None}], 21))
    assert find_blockers(both, 'fcbr0', IP) == []
    one = docker(rule('ip', 'filter', 'DOCKER-USER', [iface('iifname', 'fcbr0'), {'accept': None}], 20))
    assert len(find_blockers(one, 'fcbr0', IP)) == 1


def test_our_own_marked_rules_never_count():
    marked = docker(*[rule('ip', 'filter', 'DOCKER-USER', [iface(key, 'fcbr0'), {'accept': None}], 20 + n, pass_comment('fcbr0'))
                      for n, key in enumerate(('iifname', 'oifname'))])
    assert len(find_blockers(marked, 'fcbr0', IP)) == 1
    assert [r.handle for r in marked_rules(marked, 'fcbr0')] == [20, 21]
    assert marked_rules(marked, 'fcbr1') == []


def test_an_unconditional_drop_rule_blocks_a_policy_accept_chain():
    established = {'match': {'op': 'in', 'left': {'ct': {'key': 'state'}}, 'right': ['established', 'related']}}
    fw = ruleset(chain('inet', 'firewalld', 'filter_FORWARD', 'forward', 'accept', prio=10),
                 rule('inet', 'firewalld', 'filter_FORWARD', [established, {'accept': None}], 1),
                 rule('inet', 'firewalld', 'filter_FORWARD', [{'reject': {'type': 'icmpx', 'expr': 'admin-prohibited'}}], 2))
    blockers = find_blockers(fw, 'br0', IP)
    assert len(blockers) == 1
    assert blockers[0].reason == 'rule "reject with icmpx admin-prohibited" (handle 2) drops all traffic that reaches it'
    assert blockers[0].target.ref == 'inet firewalld filter_FORWARD'


def test_drop_in_a_jumped_chain_names_that_chain():
    rs = ruleset(chain('ip', 't', 'fwd', 'forward', 'accept'), chain('ip', 't', 'sub'),
                 rule('ip', 't', 'fwd', [{'jump': {'target': 'sub'}}], 1), rule('ip', 't', 'sub', [{'counter': None}, {'drop': None}], 2))
    assert 'of chain sub' in find_blockers(rs, 'br0', IP)[0].reason


def test_harmless_chains_are_not_blockers():
    rs = ruleset(
        chain('ip', 'a', 'fwd', 'forward', 'drop'), rule('ip', 'a', 'fwd', [{'accept': None}], 1),          # accepts everything first
        chain('ip', 'b', 'fwd', 'forward', 'accept'), rule('ip', 'b', 'fwd', [iface('iifname', 'x'), {'drop': None}], 1),  # conditional
        chain('ip', 'c', 'in', 'input', 'drop'),                                                             # another hook
        chain('inet', 'nqrust_microvm_fw_other', 'forward', 'forward', 'drop'),                              # the collection's own
        chain('ip', 'd', 'fwd', 'forward', 'accept'), chain('ip', 'd', 'loop'),
        rule('ip', 'd', 'fwd', [{'jump': {'target': 'loop'}}], 1), rule('ip', 'd', 'loop', [{'jump': {'target': 'loop'}}], 2),
        chain('ip', 'e', 'fwd', 'forward', 'accept'), chain('ip', 'e', 'g'),
        rule('ip', 'e', 'fwd', [{'goto': {'target': 'g'}}], 1), rule('ip', 'e', 'fwd', [{'drop': None}], 2),  # never reached
    )
    assert find_blockers(rs, 'br0', IP) == []


def test_only_relevant_families_are_judged():
    rs = ruleset(chain('ip6', 'filter', 'FORWARD', 'forward', 'drop'))
    assert find_blockers(rs, 'br0', {'ip', 'inet', 'bridge'}) == []
    assert len(find_blockers(rs, 'br0', {'ip6', 'inet', 'bridge'})) == 1


def test_bridge_family_blockers_cannot_be_passed():
    rs = ruleset(chain('bridge', 'b', 'fwd', 'forward', 'drop'))
    blocker = find_blockers(rs, 'br0', IP)[0]
    assert blocker.target is None
    msg = refusal_message('net0', 'br0', 'isolated', [blocker])
    assert 'coexistence=allow cannot add accept rules to bridge-family chains' in msg
    assert 'Nothing was changed' in msg


def test_relevant_families():
    none = {'ip': False, 'ip6': False}
    assert relevant_families('open', True, True, {'ip': True, 'ip6': True}) == set()
    assert relevant_families('nat', True, False, none) == {'ip', 'inet', 'bridge'}
    assert relevant_families('routed', False, True, none) == {'ip6', 'inet', 'bridge'}
    assert relevant_families('isolated', True, True, none) == {'bridge'}
    assert relevant_families('bridged', True, False, {'ip': True, 'ip6': False}) == {'ip', 'inet', 'bridge'}


def test_refusal_message_says_what_is_in_the_way_and_how_to_resolve_it():
    rs = docker()
    blockers = find_blockers(rs, 'fcbr0', IP)
    msg = refusal_message('fcbr0 Network', 'fcbr0', 'nat', blockers)
    assert msg.startswith('network fcbr0 Network (bridge fcbr0, mode nat): another firewall would silently drop its forwarded traffic: '
                          'table ip filter, base chain FORWARD (hook forward, priority 0, policy drop): policy drop. Nothing was changed.')
    assert 'add "iifname fcbr0 accept" and "oifname fcbr0 accept" at the top of chain ip filter DOCKER-USER' in msg
    assert 'iptables -I DOCKER-USER -i fcbr0 -j ACCEPT' in msg
    assert 'coexistence=allow' in msg and 'nqrust.microvm pass fcbr0' in msg
