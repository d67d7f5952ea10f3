# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import ipaddress
import json

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import nftables
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_rules import desired_table
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import (
    NftCli,
    NftError,
    Rule,
    Ruleset,
    Table,
    match,
    meta,
    normalize,
    prefix,
    rule_text,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.nft_fakes import FakeNft

# `nft -j list ruleset` (nftables 1.0.6) after the commands of desired_table('nat', 'fcbr0', 192.168.18.0/24, fd00:18::/64, eth0+eth1)
LISTED_NAT = {'nftables': [{'metainfo': {'version': '1.0.6', 'release_name': 'Lester Gooch #5', 'json_schema_version': 1}},
              {'table': {'family': 'inet', 'name': 'nqrust_microvm_fw_fcbr0', 'handle': 1}},
              {'chain': {'family': 'inet',
                         'table': 'nqrust_microvm_fw_fcbr0',
                         'name': 'forward',
                         'handle': 1,
                         'type': 'filter',
                         'hook': 'forward',
                         'prio': 0,
                         'policy': 'accept'}},
              {'chain': {'family': 'inet',
                         'table': 'nqrust_microvm_fw_fcbr0',
                         'name': 'postrouting',
                         'handle': 2,
                         'type': 'nat',
                         'hook': 'postrouting',
                         'prio': 100,
                         'policy': 'accept'}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'forward',
                        'handle': 3,
                        'comment': 'nqrust.microvm nat: within the network',
                        'expr': [{'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': 'fcbr0'}},
                                 {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': 'fcbr0'}},
                                 {'accept': None}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'forward',
                        'handle': 5,
                        'comment': 'nqrust.microvm nat: guests to the uplink',
                        'expr': [{'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': 'fcbr0'}},
                                 {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': {'set': ['eth0', 'eth1']}}},
                                 {'match': {'op': '==',
                                            'left': {'payload': {'protocol': 'ip', 'field': 'saddr'}},
                                            'right': {'prefix': {'addr': '192.168.18.0', 'len': 24}}}},
                                 {'accept': None}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'forward',
                        'handle': 7,
                        'comment': 'nqrust.microvm nat: guests to the uplink',
                        'expr': [{'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': 'fcbr0'}},
                                 {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': {'set': ['eth0', 'eth1']}}},
                                 {'match': {'op': '==',
                                            'left': {'payload': {'protocol': 'ip6', 'field': 'saddr'}},
                                            'right': {'prefix': {'addr': 'fd00:18::', 'len': 64}}}},
                                 {'accept': None}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'forward',
                        'handle': 9,
                        'comment': 'nqrust.microvm nat: replies to guests',
                        'expr': [{'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': {'set': ['eth0', 'eth1']}}},
                                 {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': 'fcbr0'}},
                                 {'match': {'op': 'in', 'left': {'ct': {'key': 'state'}}, 'right': ['established', 'related']}},
                                 {'accept': None}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'forward',
                        'handle': 10,
                        'comment': 'nqrust.microvm nat: refuse guests elsewhere',
                        'expr': [{'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': 'fcbr0'}},
                                 {'counter': {'packets': 0, 'bytes': 0}},
                                 {'reject': {'type': 'icmpx', 'expr': 'admin-prohibited'}}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'forward',
                        'handle': 11,
                        'comment': 'nqrust.microvm nat: refuse all else into the network',
                        'expr': [{'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': 'fcbr0'}},
                                 {'counter': {'packets': 0, 'bytes': 0}},
                                 {'drop': None}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'postrouting',
                        'handle': 13,
                        'comment': 'nqrust.microvm nat: masquerade',
                        'expr': [{'match': {'op': '==',
                                            'left': {'payload': {'protocol': 'ip', 'field': 'saddr'}},
                                            'right': {'prefix': {'addr': '192.168.18.0', 'len': 24}}}},
                                 {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': {'set': ['eth0', 'eth1']}}},
                                 {'masquerade': None}]}},
              {'rule': {'family': 'inet',
                        'table': 'nqrust_microvm_fw_fcbr0',
                        'chain': 'postrouting',
                        'handle': 15,
                        'comment': 'nqrust.microvm nat: masquerade',
                        'expr': [{'match': {'op': '==',
                                            'left': {'payload': {'protocol': 'ip6', 'field': 'saddr'}},
                                            'right': {'prefix': {'addr': 'fd00:18::', 'len': 64}}}},
                                 {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': {'set': ['eth0', 'eth1']}}},
                                 {'masquerade': None}]}}]}


def nat_table():
    return desired_table('nat', 'fcbr0', ipaddress.ip_network('192.168.18.0/24'), ipaddress.ip_network('fd00:18::/64'), ('eth1', 'eth0'))


def test_a_table_read_back_from_the_kernel_equals_the_table_written():
    listed = Ruleset.from_json(LISTED_NAT).content('inet', 'nqrust_microvm_fw_fcbr0')
    assert listed is not None
    assert listed.key() == nat_table().key()
    assert listed.view() == nat_table().view()


def test_a_changed_rule_makes_the_keys_differ():
    data = json.loads(json.dumps(LISTED_NAT))
    data['nftables'][-1]['rule']['expr'][-1] = {'drop': None}
    listed = Ruleset.from_json(data).content('inet', 'nqrust_microvm_fw_fcbr0')
    assert listed.key() != nat_table().key()


def test_ruleset_records_and_lookups():
    ruleset = Ruleset.from_json(LISTED_NAT)
    assert ruleset.version == '1.0.6'
    assert [t.ref for t in ruleset.tables] == ['inet nqrust_microvm_fw_fcbr0']
    assert [c.name for c in ruleset.base_chains('forward')] == ['forward']
    forward = ruleset.chain('inet', 'nqrust_microvm_fw_fcbr0', 'forward')
    assert forward.is_base and forward.header_text() == 'type filter hook forward priority 0; policy accept'
    assert len(ruleset.rules_of('inet', 'nqrust_microvm_fw_fcbr0', 'postrouting')) == 2
    assert ruleset.content('inet', 'other') is None
    assert Ruleset.from_json({'nftables': []}).tables == ()


def test_normalize_drops_counter_values_and_orders_sets_and_flags():
    one = [{'counter': {'packets': 5, 'bytes': 300}}, match(meta('oifname'), {'set': ['eth1', 'eth0']}),
           match({'ct': {'key': 'state'}}, ['related', 'established'], op='in')]
    two = [{'counter': None}, match(meta('oifname'), {'set': ['eth0', 'eth1']}),
           match({'ct': {'key': 'state'}}, ['established', 'related'], op='in')]
    assert normalize(one) == normalize(two)
    assert Rule('ip', 'f', 'c', tuple(one)).key() == Rule('ip', 'f', 'c', tuple(two)).key()
    assert Rule('ip', 'f', 'c', tuple(one), 'x').key() != Rule('ip', 'f', 'c', tuple(two)).key()


def test_prefix_of_a_host_network_is_a_plain_address():
    assert prefix(ipaddress.ip_network('10.0.0.5/32')) == '10.0.0.5'
    assert prefix(ipaddress.ip_network('10.0.0.0/8')) == {'prefix': {'addr': '10.0.0.0', 'len': 8}}


@pytest.mark.parametrize('expr, text', [
    ([match(meta('iifname'), 'br0'), {'accept': None}], 'iifname "br0" accept'),
    ([match(meta('oifname'), {'set': ['a', 'b']}), {'counter': {'packets': 1, 'bytes': 2}}, {'drop': None}],
     'oifname { "a", "b" } counter drop'),
    ([match({'payload': {'protocol': 'ip', 'field': 'daddr'}}, {'prefix': {'addr': '10.0.0.0', 'len': 8}}, op='!='),
      {'masquerade': None}], 'ip daddr != 10.0.0.0/8 masquerade'),
    ([match({'ct': {'key': 'state'}}, ['established', 'related'], op='in'), {'accept': None}], 'ct state established,related accept'),
    ([{'jump': {'target': 'DOCKER-USER'}}], 'jump DOCKER-USER'),
    ([{'reject': {'type': 'icmpx', 'expr': 'admin-prohibited'}}], 'reject with icmpx admin-prohibited'),
    ([{'reject': None}], 'reject'),
    ([{'limit': {'rate': 5, 'per': 'second'}}, {'accept': None}], 'limit {"per": "second", "rate": 5} accept'),
    ([match({'payload': {'protocol': 'tcp', 'field': 'dport'}}, {'range': [1, 1024]}), {'return': None}], 'tcp dport 1-1024 return'),
])
def test_rule_text(expr, text):
    assert rule_text(expr) == text


def test_rule_text_with_comment():
    assert rule_text([{'accept': None}], 'say "hi"') == 'accept comment "say \\"hi\\""'


def test_replace_commands_clear_any_table_of_that_name_first():
    commands = nat_table().replace_commands()
    assert commands[:3] == [
        {'add': {'table': {'family': 'inet', 'name': 'nqrust_microvm_fw_fcbr0'}}},
        {'delete': {'table': {'family': 'inet', 'name': 'nqrust_microvm_fw_fcbr0'}}},
        {'add': {'table': {'family': 'inet', 'name': 'nqrust_microvm_fw_fcbr0'}}}]
    assert [list(c['add'])[0] for c in commands[3:]] == ['chain', 'chain'] + ['rule'] * 8


def test_rule_builders():
    rule = Rule('ip', 'filter', 'DOCKER-USER', (match(meta('iifname'), 'br0'), {'accept': None}), 'c', handle=7)
    assert nftables.insert_rule(rule) == {'insert': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'DOCKER-USER',
                                                              'expr': [match(meta('iifname'), 'br0'), {'accept': None}], 'comment': 'c'}}}
    assert nftables.delete_rule(rule) == {'delete': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'DOCKER-USER', 'handle': 7}}}
    assert nftables.names(['b', 'a', 'b']) == {'set': ['a', 'b']} and nftables.names(['a']) == 'a'
    assert Table('inet', 't').ref == 'inet t'


def test_cli_lists_and_applies_one_transaction():
    fake = FakeNft()
    cli = NftCli('/usr/sbin/nft', runner=fake.runner)
    cli.apply(nat_table().create_commands())
    assert fake.calls[-1][0] == ['/usr/sbin/nft', '-j', '-f', '-']
    assert len(fake.applies()) == 1
    listed = cli.list_ruleset()
    assert fake.calls[-1][0] == ['/usr/sbin/nft', '-j', 'list', 'ruleset']
    assert listed.content('inet', 'nqrust_microvm_fw_fcbr0').key() == nat_table().key()
    cli.apply([nftables.delete_table(Table('inet', 'nqrust_microvm_fw_fcbr0'))], check=True)
    assert fake.calls[-1][0] == ['/usr/sbin/nft', '--check', '-j', '-f', '-']
    assert cli.list_ruleset().table('inet', 'nqrust_microvm_fw_fcbr0') is not None  # --check applied nothing
    calls = len(fake.calls)
    cli.apply([])
    assert len(fake.calls) == calls


def test_cli_errors_name_the_operation_and_what_nft_said():
    fake = FakeNft(fail='Error: Could not process rule: Operation not supported\n\n')
    cli = NftCli(runner=fake.runner)
    with pytest.raises(NftError) as failure:
        cli.apply([{'add': {'table': {'family': 'inet', 'name': 'x'}}}], operation='applying the rules of network n')
    assert str(failure.value) == 'applying the rules of network n: Error: Could not process rule: Operation not supported'
    with pytest.raises(NftError) as failure:
        NftCli(runner=lambda argv, stdin: (1, '', '')).list_ruleset()
    assert 'nft exited with status 1' in str(failure.value)
    with pytest.raises(NftError) as failure:
        NftCli(runner=lambda argv, stdin: (0, 'not json', '')).list_ruleset()
    assert 'not JSON' in str(failure.value)


def test_cli_subprocess_failure_is_an_nft_error(tmp_path):
    cli = NftCli(str(tmp_path / 'no-such-nft'))
    with pytest.raises(NftError):
        cli.list_ruleset()
