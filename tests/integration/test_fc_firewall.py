"""fc_firewall on lab hosts: each mode's promise proved with real traffic, coexistence, check mode, refusals.

Topology of every test: a hypervisor ``hv`` with an uplink to the lab's upstream "internet"
(uplink0, 203.0.113.x/24, default route via 203.0.113.1), network A on bridge ``bra``
(10.61.0.0/24, gateway .1, guests ga1 .11 and ga2 .12) and network B on bridge ``brb``
(10.62.0.0/24, gateway .1, guest gb1 .11). Guests are simulated VMs behind real TAPs
(lab.add_guest) with static addresses and a default route via their gateway.

Modules run inside the lab hosts with lab.module_run (the integration lane runs these again
with pyroute2 0.7, NQRUST_TARGET_PYTHON).
"""

import json

import pytest

from lab import INTERNET_ADDRESS, UPSTREAM_GATEWAY
from lab.module_run import run_module
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module

NET_A = {'bridge': 'bra', 'cidr': '10.61.0.0/24', 'gateway': '10.61.0.1', 'guests': {'ga1': ('tapa1', '10.61.0.11'), 'ga2': ('tapa2', '10.61.0.12')}}
NET_B = {'bridge': 'brb', 'cidr': '10.62.0.0/24', 'gateway': '10.62.0.1', 'guests': {'gb1': ('tapb1', '10.62.0.11')}}
TABLE_A = 'nqrust_microvm_fw_bra'
TABLE_B = 'nqrust_microvm_fw_brb'
PORT = 8080


# --------------------------------------------------------------------------- helpers

def fc_firewall(host, check_mode=False, **args):
    return run_module(host, 'fc_firewall', args, check_mode=check_mode, diff=True)


def converge(host, **args):
    """Check mode, real run, second run: the check run predicts the real one exactly, the second changes nothing."""
    predicted = fc_firewall(host, check_mode=True, **args)
    assert not predicted.get('failed'), predicted.get('msg')
    applied = fc_firewall(host, **args)
    assert not applied.get('failed'), applied.get('msg')
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == applied[key], key
    again = fc_firewall(host, **args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False and again['changes'] == [], again['changes']
    assert again['diff']['before'] == again['diff']['after']
    assert applied['diff']['after'] == again['diff']['before']
    assert {k: v for k, v in predicted['firewall'].items() if k != 'nftables'} == \
        {k: v for k, v in applied['firewall'].items() if k != 'nftables'}
    return applied


def nft_json(host, *args):
    return host.run(['nft', '-j'] + list(args)).stdout


def nft_tables(host):
    return sorted('%s %s' % (item['table']['family'], item['table']['name'])
                  for item in json.loads(nft_json(host, 'list', 'tables'))['nftables'] if 'table' in item)


def sysctl(host, name):
    return host.run(['cat', '/proc/sys/' + name.replace('.', '/')]).stdout.strip()


def make_hv(lab):
    hv = lab.add_host('hv')
    up = lab.upstream(hv)
    return hv, up


def make_network(lab, hv, net, create_bridge=True):
    if create_bridge:
        hv.ip('link', 'add', net['bridge'], 'type', 'bridge', 'forward_delay', '0')
        hv.add_address(net['bridge'], '%s/24' % net['gateway'])
        hv.set_up(net['bridge'])
    guests = {}
    for name, (tap, address) in sorted(net['guests'].items()):
        hv.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap')
        hv.ip('link', 'set', 'dev', tap, 'master', net['bridge'])
        hv.set_up(tap)
        guest = lab.add_guest(name, hv, tap)
        guest.set_up('eth0')
        guest.add_address('eth0', '%s/24' % address)
        guest.ip('route', 'replace', 'default', 'via', net['gateway'])
        guests[name] = guest
    return guests


def address(net, guest):
    return net['guests'][guest][1]


def route_upstream_to(up, hv, net):
    """Give the upstream host a route to the network via the hypervisor (where a mode promises it, or to prove a refusal)."""
    up.ip('route', 'replace', net['cidr'], 'via', hv.uplink['address'].split('/')[0])


def args_for(net, mode, **extra):
    args = {'name': 'net %s' % net['bridge'], 'bridge': net['bridge'], 'mode': mode, 'cidr': net['cidr']}
    args.update(extra)
    return args


def check_matrix(expected, actual):
    wrong = ['%s: expected %s, got %s' % (what, 'allowed' if want else 'refused', 'allowed' if actual[what] else 'refused')
             for what, want in expected.items() if actual[what] != want]
    assert not wrong, '; '.join(wrong)


def tcp(src, dst_host, address_, port=PORT):
    with dst_host.tcp_listen(port):
        return src.tcp_connect(address_, port, timeout=1)


# --------------------------------------------------------------------------- modes

def test_nat_keeps_its_promise(lab):
    hv, up = make_hv(lab)
    a = make_network(lab, hv, NET_A)
    b = make_network(lab, hv, NET_B)
    assert sysctl(hv, 'net.ipv4.ip_forward') == '0'

    applied = converge(hv, **args_for(NET_A, 'nat'))
    converge(hv, **args_for(NET_B, 'nat'))

    assert [(c['action'], c['kind'], c['target']) for c in applied['changes']] == [
        ('create', 'table', 'inet %s' % TABLE_A), ('enable', 'sysctl', 'net.ipv4.ip_forward')]
    assert applied['firewall']['uplinks'] == ['uplink0']
    assert applied['firewall']['table'] == 'inet %s' % TABLE_A
    assert sysctl(hv, 'net.ipv4.ip_forward') == '1'
    assert 'inet %s' % TABLE_A in nft_tables(hv) and 'inet %s' % TABLE_B in nft_tables(hv)

    # guest -> upstream first, while the upstream has no route back: only masquerade makes it work
    matrix = {
        'guest->gateway': a['ga1'].ping(NET_A['gateway']),
        'guest->guest same network': a['ga1'].ping(address(NET_A, 'ga2')),
        'guest->upstream (ping)': a['ga1'].ping(INTERNET_ADDRESS),
        'guest->upstream (tcp)': tcp(a['ga1'], up, INTERNET_ADDRESS),
    }
    route_upstream_to(up, hv, NET_A)
    matrix.update({
        'upstream->guest (ping)': up.ping(address(NET_A, 'ga1'), timeout=1),
        'upstream->guest (tcp)': tcp(up, a['ga1'], address(NET_A, 'ga1')),
        'guest A->guest B': a['ga1'].ping(address(NET_B, 'gb1'), timeout=1),
        'guest A->guest B (tcp)': tcp(a['ga1'], b['gb1'], address(NET_B, 'gb1')),
        'guest B->guest A': b['gb1'].ping(address(NET_A, 'ga1'), timeout=1),
        'guest B->upstream': b['gb1'].ping(INTERNET_ADDRESS),
    })
    check_matrix({
        'guest->gateway': True, 'guest->guest same network': True, 'guest->upstream (ping)': True, 'guest->upstream (tcp)': True,
        'upstream->guest (ping)': False, 'upstream->guest (tcp)': False,
        'guest A->guest B': False, 'guest A->guest B (tcp)': False, 'guest B->guest A': False, 'guest B->upstream': True,
    }, matrix)


def test_routed_keeps_its_promise(lab):
    hv, up = make_hv(lab)
    a = make_network(lab, hv, NET_A)
    b = make_network(lab, hv, NET_B)
    applied = converge(hv, **args_for(NET_A, 'routed', uplinks=['uplink0']))
    converge(hv, **args_for(NET_B, 'routed'))
    assert applied['firewall']['rules']['forward']['rules'][1].startswith('iifname "bra" oifname "uplink0" ip saddr 10.61.0.0/24 accept')
    assert 'postrouting' not in applied['firewall']['rules']
    route_upstream_to(up, hv, NET_A)
    matrix = {
        'guest->gateway': a['ga1'].ping(NET_A['gateway']),
        'guest->guest same network': a['ga1'].ping(address(NET_A, 'ga2')),
        'guest->upstream': a['ga1'].ping(INTERNET_ADDRESS),
        'upstream->guest (ping)': up.ping(address(NET_A, 'ga1')),
        'upstream->guest (tcp)': tcp(up, a['ga1'], address(NET_A, 'ga1')),
        'guest A->guest B': a['ga1'].ping(address(NET_B, 'gb1'), timeout=1),
        'guest B->guest A': b['gb1'].ping(address(NET_A, 'ga1'), timeout=1),
    }
    check_matrix({'guest->gateway': True, 'guest->guest same network': True, 'guest->upstream': True,
                  'upstream->guest (ping)': True, 'upstream->guest (tcp)': True,
                  'guest A->guest B': False, 'guest B->guest A': False}, matrix)


def test_isolated_keeps_its_promise(lab):
    hv, up = make_hv(lab)
    a = make_network(lab, hv, NET_A)
    b = make_network(lab, hv, NET_B)
    applied = converge(hv, **args_for(NET_A, 'isolated'))
    converge(hv, **args_for(NET_B, 'nat'))
    # isolated needs no forwarding; B's nat turned it on, so the refusals below are A's rules at work
    assert [c['kind'] for c in applied['changes']] == ['table']
    assert sysctl(hv, 'net.ipv4.ip_forward') == '1'
    route_upstream_to(up, hv, NET_A)
    with a['ga1'].tcp_listen(PORT):
        host_reaches_guest = hv.tcp_connect(address(NET_A, 'ga1'), PORT, timeout=1)
    matrix = {
        'guest->gateway': a['ga1'].ping(NET_A['gateway']),
        'guest->host (tcp to gateway)': tcp(a['ga1'], hv, NET_A['gateway']),
        'host->guest': host_reaches_guest,
        'guest->guest same network': a['ga1'].ping(address(NET_A, 'ga2')),
        'guest->upstream': a['ga1'].ping(INTERNET_ADDRESS, timeout=1),
        'guest->upstream gateway': a['ga1'].ping(UPSTREAM_GATEWAY, timeout=1),
        'upstream->guest': up.ping(address(NET_A, 'ga1'), timeout=1),
        'guest A->guest B': a['ga1'].ping(address(NET_B, 'gb1'), timeout=1),
        'guest B->guest A': b['gb1'].ping(address(NET_A, 'ga1'), timeout=1),
    }
    check_matrix({'guest->gateway': True, 'guest->host (tcp to gateway)': True, 'host->guest': True,
                  'guest->guest same network': True, 'guest->upstream': False, 'guest->upstream gateway': False,
                  'upstream->guest': False, 'guest A->guest B': False, 'guest B->guest A': False}, matrix)


def test_bridged_keeps_its_promise(lab):
    """A's bridge holds the uplink: guests are on the upstream LAN. B (nat) goes out through A's bridge."""
    hv, up = make_hv(lab)
    uplink_address = hv.uplink['address']
    net_a = dict(NET_A, gateway=uplink_address.split('/')[0],
                 guests={'ga1': ('tapa1', '203.0.113.61'), 'ga2': ('tapa2', '203.0.113.62')})
    # what fc_bridge's bridged mode does: the uplink joins the bridge, its address and default route move to it
    hv.ip('link', 'add', 'bra', 'type', 'bridge', 'forward_delay', '0')
    hv.ip('link', 'set', 'dev', 'uplink0', 'master', 'bra')
    hv.ip('address', 'del', uplink_address, 'dev', 'uplink0')
    hv.add_address('bra', uplink_address)
    hv.set_up('bra')
    hv.ip('route', 'replace', 'default', 'via', UPSTREAM_GATEWAY, 'dev', 'bra')
    a = make_network(lab, hv, net_a, create_bridge=False)
    for guest in a.values():
        guest.ip('route', 'replace', 'default', 'via', UPSTREAM_GATEWAY)
    b = make_network(lab, hv, NET_B)

    applied = converge(hv, **args_for(net_a, 'bridged', cidr=None, uplinks=['uplink0']))
    assert applied['changes'] == [] and applied['firewall']['table'] is None
    assert not any(name.endswith('_bra') for name in nft_tables(hv))
    nat_b = converge(hv, **args_for(NET_B, 'nat'))
    assert nat_b['firewall']['uplinks'] == ['bra']

    with a['ga1'].tcp_listen(PORT):
        upstream_tcp = up.tcp_connect(address(net_a, 'ga1'), PORT, timeout=1)
    matrix = {
        'guest->host': a['ga1'].ping(net_a['gateway']),
        'guest->guest same network': a['ga1'].ping(address(net_a, 'ga2')),
        'guest->upstream': a['ga1'].ping(UPSTREAM_GATEWAY),
        'upstream->guest (ping)': up.ping(address(net_a, 'ga1')),
        'upstream->guest (tcp)': upstream_tcp,
        'guest A->guest B': a['ga1'].ping(address(NET_B, 'gb1'), timeout=1),
        'guest B->guest A (A is B\'s outside)': b['gb1'].ping(address(net_a, 'ga1')),
    }
    check_matrix({'guest->host': True, 'guest->guest same network': True, 'guest->upstream': True,
                  'upstream->guest (ping)': True, 'upstream->guest (tcp)': True,
                  'guest A->guest B': False, 'guest B->guest A (A is B\'s outside)': True}, matrix)


def test_open_removes_the_networks_rules_and_filters_nothing(lab):
    hv, up = make_hv(lab)
    a = make_network(lab, hv, NET_A)
    b = make_network(lab, hv, NET_B)
    converge(hv, **args_for(NET_A, 'nat'))
    converge(hv, **args_for(NET_B, 'open'))
    applied = converge(hv, **args_for(NET_A, 'open'))
    assert [(c['action'], c['kind'], c['target']) for c in applied['changes']] == [('delete', 'table', 'inet %s' % TABLE_A)]
    assert applied['firewall']['table'] is None and applied['firewall']['rules'] == {}
    assert nft_tables(hv) == []
    # forwarding stays on (it is never turned off); with nothing filtering, everything is forwarded
    assert sysctl(hv, 'net.ipv4.ip_forward') == '1'
    route_upstream_to(up, hv, NET_A)
    up.ip('route', 'replace', NET_B['cidr'], 'via', hv.uplink['address'].split('/')[0])
    matrix = {
        'guest->guest same network': a['ga1'].ping(address(NET_A, 'ga2')),
        'guest->upstream': a['ga1'].ping(INTERNET_ADDRESS),
        'upstream->guest': up.ping(address(NET_A, 'ga1')),
        'guest A->guest B': a['ga1'].ping(address(NET_B, 'gb1')),
    }
    check_matrix({'guest->guest same network': True, 'guest->upstream': True, 'upstream->guest': True,
                  'guest A->guest B': True}, matrix)


# --------------------------------------------------------------------------- ownership and independence

USER_TABLE = {'nftables': [
    {'add': {'table': {'family': 'inet', 'name': 'userfw'}}},
    {'add': {'chain': {'family': 'inet', 'table': 'userfw', 'name': 'input', 'type': 'filter', 'hook': 'input', 'prio': 0, 'policy': 'accept'}}},
    {'add': {'chain': {'family': 'inet', 'table': 'userfw', 'name': 'forward', 'type': 'filter', 'hook': 'forward', 'prio': -5, 'policy': 'accept'}}},
    {'add': {'set': {'family': 'inet', 'table': 'userfw', 'name': 'blocked', 'type': 'ipv4_addr', 'elem': ['198.51.100.7']}}},
    {'add': {'rule': {'family': 'inet', 'table': 'userfw', 'chain': 'input', 'comment': 'user rule', 'expr': [
        {'match': {'op': '==', 'left': {'payload': {'protocol': 'tcp', 'field': 'dport'}}, 'right': 22}}, {'accept': None}]}}},
    {'add': {'rule': {'family': 'inet', 'table': 'userfw', 'chain': 'forward', 'expr': [
        {'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'daddr'}}, 'right': '@blocked'}}, {'drop': None}]}}},
]}


def test_users_table_and_other_networks_stay_byte_identical(lab):
    hv, dummy = make_hv(lab)
    make_network(lab, hv, NET_A)
    make_network(lab, hv, NET_B)
    hv.run(['nft', '-j', '-f', '-'], input=json.dumps(USER_TABLE))
    user_before = nft_json(hv, 'list', 'table', 'inet', 'userfw')

    converge(hv, **args_for(NET_B, 'routed'))
    b_before = nft_json(hv, 'list', 'table', 'inet', TABLE_B)
    converge(hv, **args_for(NET_A, 'nat'))
    replaced = converge(hv, **args_for(NET_A, 'isolated'))
    assert [(c['action'], c['kind']) for c in replaced['changes']] == [('replace', 'table')]
    assert nft_json(hv, 'list', 'table', 'inet', TABLE_B) == b_before
    removed = converge(hv, **args_for(NET_A, 'isolated', state='absent'))
    assert [(c['action'], c['target']) for c in removed['changes']] == [('delete', 'inet %s' % TABLE_A)]

    assert nft_json(hv, 'list', 'table', 'inet', 'userfw') == user_before
    assert nft_json(hv, 'list', 'table', 'inet', TABLE_B) == b_before
    assert nft_tables(hv) == ['inet %s' % TABLE_B, 'inet userfw']
    # absent never turns forwarding off
    assert sysctl(hv, 'net.ipv4.ip_forward') == '1'
    # and absent again is a no-op
    again = fc_firewall(hv, **args_for(NET_A, 'isolated', state='absent'))
    assert again['changed'] is False


def test_ipv6_network_turns_on_ipv6_forwarding_and_masquerades_both_families(lab):
    hv, dummy = make_hv(lab)
    make_network(lab, hv, NET_A)
    before = sysctl(hv, 'net.ipv6.conf.all.forwarding')
    assert before == '0'
    applied = converge(hv, **args_for(NET_A, 'nat', ipv6_cidr='fd61::/64', uplinks='uplink0'))
    assert [c['target'] for c in applied['changes'] if c['kind'] == 'sysctl'] == ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding']
    assert sysctl(hv, 'net.ipv6.conf.all.forwarding') == '1'
    rules = applied['firewall']['rules']
    assert any('ip6 saddr fd61::/64' in rule for rule in rules['forward']['rules'])
    assert [rule.split(' comment')[0] for rule in rules['postrouting']['rules']] == [
        'ip saddr 10.61.0.0/24 oifname "uplink0" masquerade', 'ip6 saddr fd61::/64 oifname "uplink0" masquerade']
    assert applied['firewall']['forwarding'] == {'net.ipv4.ip_forward': True, 'net.ipv6.conf.all.forwarding': True}


# --------------------------------------------------------------------------- coexistence

DOCKER_LIKE = {'nftables': [
    {'add': {'table': {'family': 'ip', 'name': 'filter'}}},
    {'add': {'chain': {'family': 'ip', 'table': 'filter', 'name': 'FORWARD', 'type': 'filter', 'hook': 'forward', 'prio': 0, 'policy': 'drop'}}},
    {'add': {'chain': {'family': 'ip', 'table': 'filter', 'name': 'DOCKER-USER'}}},
    {'add': {'chain': {'family': 'ip', 'table': 'filter', 'name': 'DOCKER-FORWARD'}}},
    {'add': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'FORWARD', 'expr': [{'jump': {'target': 'DOCKER-USER'}}]}}},
    {'add': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'FORWARD', 'expr': [{'jump': {'target': 'DOCKER-FORWARD'}}]}}},
    {'add': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'DOCKER-USER', 'expr': [{'return': None}]}}},
    {'add': {'rule': {'family': 'ip', 'table': 'filter', 'chain': 'DOCKER-FORWARD', 'expr': [
        {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': 'docker0'}}, {'accept': None}]}}},
]}


def test_docker_like_forward_drop_fails_clearly_then_opt_in_passes_traffic(lab):
    hv, up = make_hv(lab)
    a = make_network(lab, hv, NET_A)
    hv.run(['nft', '-j', '-f', '-'], input=json.dumps(DOCKER_LIKE))
    docker_before = nft_json(hv, 'list', 'table', 'ip', 'filter')
    before = snapshot(hv)
    forwarding_before = sysctl(hv, 'net.ipv4.ip_forward')

    for check_mode in (True, False):
        refused = fc_firewall(hv, check_mode=check_mode, **args_for(NET_A, 'nat'))
        assert refused['failed'] is True
        msg = refused['msg']
        for part in ('table ip filter', 'base chain FORWARD', 'hook forward', 'priority 0', 'policy drop',
                     'Nothing was changed', 'DOCKER-USER', 'coexistence=allow'):
            assert part in msg, (part, msg)
    assert_unchanged(before, snapshot(hv))
    assert nft_json(hv, 'list', 'table', 'ip', 'filter') == docker_before
    assert sysctl(hv, 'net.ipv4.ip_forward') == forwarding_before

    allowed = converge(hv, **args_for(NET_A, 'nat', coexistence='allow'))
    assert [(c['action'], c['kind']) for c in allowed['changes']] == [
        ('create', 'table'), ('add', 'rule'), ('add', 'rule'), ('enable', 'sysctl')]
    assert allowed['firewall']['pass_rules'] == [
        {'chain': 'ip filter DOCKER-USER', 'rule': 'iifname "bra" accept comment "nqrust.microvm pass bra"'},
        {'chain': 'ip filter DOCKER-USER', 'rule': 'oifname "bra" accept comment "nqrust.microvm pass bra"'}]
    assert allowed['firewall']['blockers'][0]['pass_chain'] == 'ip filter DOCKER-USER'
    # the other firewall's base chain itself is untouched: the rules went to DOCKER-USER
    listed = json.loads(nft_json(hv, 'list', 'chain', 'ip', 'filter', 'FORWARD'))['nftables']
    original = json.loads(docker_before)['nftables']
    assert [item for item in listed if 'rule' in item] == [item for item in original if 'rule' in item and item['rule']['chain'] == 'FORWARD']

    route_upstream_to(up, hv, NET_A)
    matrix = {
        'guest->guest same network': a['ga1'].ping(address(NET_A, 'ga2')),
        'guest->upstream': a['ga1'].ping(INTERNET_ADDRESS),
        'upstream->guest': up.ping(address(NET_A, 'ga1'), timeout=1),
    }
    check_matrix({'guest->guest same network': True, 'guest->upstream': True, 'upstream->guest': False}, matrix)

    # with the opt-in withdrawn, the module fails again and says its earlier rules are in place; nothing changes
    withdrawn = fc_firewall(hv, **args_for(NET_A, 'nat'))
    assert withdrawn['failed'] is True and 'earlier run with coexistence=allow' in withdrawn['msg']

    removed = converge(hv, **args_for(NET_A, 'nat', state='absent'))
    assert sorted((c['action'], c['kind']) for c in removed['changes']) == [('delete', 'table'), ('remove', 'rule'), ('remove', 'rule')]
    assert nft_json(hv, 'list', 'table', 'ip', 'filter') == docker_before
    assert nft_tables(hv) == ['ip filter']


FIREWALLD_LIKE = {'nftables': [
    {'add': {'table': {'family': 'inet', 'name': 'firewalld'}}},
    {'add': {'chain': {'family': 'inet', 'table': 'firewalld', 'name': 'filter_FORWARD', 'type': 'filter', 'hook': 'forward',
                       'prio': 10, 'policy': 'accept'}}},
    {'add': {'rule': {'family': 'inet', 'table': 'firewalld', 'chain': 'filter_FORWARD', 'expr': [
        {'match': {'op': 'in', 'left': {'ct': {'key': 'state'}}, 'right': ['established', 'related']}}, {'accept': None}]}}},
    {'add': {'rule': {'family': 'inet', 'table': 'firewalld', 'chain': 'filter_FORWARD', 'expr': [
        {'reject': {'type': 'icmpx', 'expr': 'admin-prohibited'}}]}}},
]}


def test_firewalld_like_final_reject_is_detected_and_opt_in_goes_to_the_base_chain(lab):
    hv, up = make_hv(lab)
    a = make_network(lab, hv, NET_A)
    hv.run(['nft', '-j', '-f', '-'], input=json.dumps(FIREWALLD_LIKE))
    before = snapshot(hv)
    refused = fc_firewall(hv, **args_for(NET_A, 'routed'))
    assert refused['failed'] is True
    assert 'table inet firewalld, base chain filter_FORWARD (hook forward, priority 10, policy accept)' in refused['msg']
    assert 'reject with icmpx admin-prohibited' in refused['msg']
    assert_unchanged(before, snapshot(hv))

    allowed = converge(hv, **args_for(NET_A, 'routed', coexistence='allow'))
    assert {rule['chain'] for rule in allowed['firewall']['pass_rules']} == {'inet firewalld filter_FORWARD'}
    route_upstream_to(up, hv, NET_A)
    assert a['ga1'].ping(INTERNET_ADDRESS)
    assert up.ping(address(NET_A, 'ga1'))
    converge(hv, **args_for(NET_A, 'routed', state='absent'))
    assert nft_tables(hv) == ['inet firewalld']


# --------------------------------------------------------------------------- refusals

def test_rejected_inputs_name_parameter_value_and_allowed_and_change_nothing(lab):
    hv, dummy = make_hv(lab)
    make_network(lab, hv, dict(NET_A, guests={}))
    cases = [
        (args_for(NET_A, 'bogus'), ['mode', 'bogus', 'nat', 'routed', 'isolated', 'bridged', 'open']),
        (args_for(NET_A, 'nat', cidr='10.61.0.1/24'), ["parameter 'cidr'", "'10.61.0.1/24'", 'host bits are set', 'IPv4 network']),
        (args_for(NET_A, 'nat', cidr='10.61.0/24x'), ["parameter 'cidr'", "'10.61.0/24x'", 'IPv4 network']),
        (args_for(NET_A, 'nat', cidr='fd00::/64'), ["parameter 'cidr'", "'fd00::/64'", 'is an IPv6 address']),
        (args_for(NET_A, 'nat', ipv6_cidr='10.0.0.0/8'), ["parameter 'ipv6_cidr'", "'10.0.0.0/8'", 'IPv6 network']),
        (args_for(NET_A, 'nat', bridge='a-bridge-name-too-long'), ["parameter 'bridge'", "'a-bridge-name-too-long'", '1 to 15 bytes']),
        (args_for(NET_A, 'nat', uplinks=['bad/name']), ["parameter 'uplinks[0]'", "'bad/name'", "contains '/'"]),
        (args_for(NET_A, 'nat', uplinks=['bra']), ["parameter 'uplinks[0]'", "'bra'", 'is the bridge itself']),
        (args_for(NET_A, 'nat', uplinks=['nosuch0']), ["parameter 'uplinks[0]'", "'nosuch0'", 'no link of that name exists']),
        (args_for(NET_A, 'nat', bridge='nosuchbr'), ["parameter 'bridge'", "'nosuchbr'", 'existing Linux bridge', 'no link of that name']),
        (args_for(NET_A, 'nat', bridge='uplink0'), ["parameter 'bridge'", "'uplink0'", 'existing Linux bridge', 'not a bridge']),
        (args_for(NET_A, 'routed', cidr=None), ["parameter 'cidr'", 'None', 'needs the network']),
        (args_for(NET_A, 'bridged', cidr=None, uplinks=['uplink0']), ["parameter 'uplinks[0]'", "'uplink0'", 'not a port of bridge bra']),
        (args_for(NET_A, 'nat', coexistence='maybe'), ['coexistence', 'maybe', 'fail', 'allow']),
    ]
    before = snapshot(hv)
    nft_before = nft_json(hv, 'list', 'ruleset')
    for args, parts in cases:
        for check_mode in (False, True):
            result = fc_firewall(hv, check_mode=check_mode, **args)
            assert result.get('failed') is True, (args, result)
            for part in parts:
                assert part in result['msg'], (part, result['msg'])
            assert_unchanged(before, snapshot(hv))
    assert nft_json(hv, 'list', 'ruleset') == nft_before
    assert sysctl(hv, 'net.ipv4.ip_forward') == '0'

    # no default route and no uplinks given: nat cannot know where "outside" is
    hv.ip('route', 'del', 'default')
    result = fc_firewall(hv, **args_for(NET_A, 'nat'))
    assert result['failed'] is True
    assert "parameter 'uplinks' (value None)" in result['msg'] and 'no IPv4 default route' in result['msg']
    assert nft_json(hv, 'list', 'ruleset') == nft_before
