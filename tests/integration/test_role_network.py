"""The nqrust.microvm.network role through ansible-runner on a lab host, proven with real traffic.

A hypervisor ``hv1`` with an uplink to the lab's upstream "internet" gets a NAT network and an
isolated one from ``fc_networks``. Simulated guests behind TAPs get DHCP leases from the networks'
dnsmasq and the reachability each mode promises is checked both ways. Check mode on the fresh host
predicts the real run task by task; the second run changes nothing; ``state: absent`` removes
exactly what the role made.
"""

import json
import os

import pytest

from lab.playbook import run_playbook
from lab import snapshot as snapshots
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module

INTERNET = '192.0.2.1'
NAT = {'name': 'Tenants', 'bridge': 'fcbr0', 'mode': 'nat', 'cidr': '10.50.0.0/24', 'gateway': '10.50.0.1',
       'dhcp': {'static_leases': [{'mac': '02:fc:00:00:50:05', 'ip': '10.50.0.5', 'hostname': 'db1'}]}}
ISOLATED = {'bridge': 'fcbr1', 'mode': 'isolated', 'cidr': '10.60.0.0/24'}


def _play(networks, dirs, **extra):
    role_vars = dict(dirs, network_dnsmasq_supervisor='pidfile', **extra)
    if networks is not None:
        role_vars['fc_networks'] = networks
    return [{'name': 'Networks', 'hosts': 'hypervisors', 'gather_facts': False,
             'roles': [{'role': 'nqrust.microvm.network', 'vars': role_vars}]}]


def _changed_items(run):
    """(task, item label, changed) for every module task of the role, in order."""
    found = []
    for result in run.results('hv1'):
        for item in result.get('results', [result]):
            if 'changed' in item and result['_task'] not in ('Sort the networks by what happens to them',):
                found.append((result['_task'], json.dumps(item.get('item', {}).get('bridge')), item['changed']))
    return found


def _tap(hv, name, bridge):
    hv.ip('tuntap', 'add', name, 'mode', 'tap')
    hv.ip('link', 'set', name, 'master', bridge)
    hv.ip('link', 'set', name, 'up')


def test_nat_and_isolated_networks_keep_their_promises(lab, ansible_env, dirs):
    hv = lab.add_host('hv1')
    up = lab.upstream(hv)
    play = _play([NAT, ISOLATED], dirs)

    check = run_playbook(lab, play, {'hv1': hv}, ansible_env, check=True, diff=True)
    assert check.ok, check.failures()
    assert hv.link('fcbr0') is None

    real = run_playbook(lab, play, {'hv1': hv}, ansible_env, diff=True)
    assert real.ok, real.failures()
    assert _changed_items(check) == _changed_items(real)
    assert real.changed('hv1') == check.changed('hv1') > 0

    again = run_playbook(lab, play, {'hv1': hv}, ansible_env)
    assert again.ok, again.failures()
    assert again.changed('hv1') == 0, again.changed_tasks('hv1')

    # guests: two on the NAT network (one with the static lease), one on the isolated network
    for tap, bridge in (('tap-n1', 'fcbr0'), ('tap-n2', 'fcbr0'), ('tap-i1', 'fcbr1')):
        _tap(hv, tap, bridge)
    n1 = lab.add_guest('n1', hv, 'tap-n1')
    n2 = lab.add_guest('n2', hv, 'tap-n2', mac='02:fc:00:00:50:05')
    i1 = lab.add_guest('i1', hv, 'tap-i1')
    lease_n1, lease_n2, lease_i1 = n1.dhcp(), n2.dhcp(), i1.dhcp()
    assert 128 <= int(lease_n1['ip'].rsplit('.', 1)[1]) <= 254, lease_n1      # the dynamic (high) half
    assert lease_n2['ip'] == '10.50.0.5'                                       # the static lease
    assert lease_n1.get('router') == '10.50.0.1'
    assert not lease_i1.get('router'), lease_i1                                # isolated: no default route

    # routes back so that refusals are the firewall's doing, not a missing route
    up.ip('route', 'replace', '10.50.0.0/24', 'via', hv.uplink['address'].split('/')[0])
    up.ip('route', 'replace', '10.60.0.0/24', 'via', hv.uplink['address'].split('/')[0])
    matrix = {
        'nat guest -> gateway': n1.ping('10.50.0.1'),
        'nat guest -> nat guest': n1.ping('10.50.0.5'),
        'nat guest -> upstream': n1.ping(INTERNET),
        'upstream -> nat guest': up.ping(lease_n1['ip'], timeout=1),
        'nat guest -> isolated guest': n1.ping(lease_i1['ip'], timeout=1),
        'isolated guest -> gateway': i1.ping('10.60.0.1'),
        'isolated guest -> upstream': i1.ping(INTERNET, timeout=1),
        'upstream -> isolated guest': up.ping(lease_i1['ip'], timeout=1),
        'isolated guest -> nat guest': i1.ping(lease_n1['ip'], timeout=1),
    }
    assert matrix == {
        'nat guest -> gateway': True, 'nat guest -> nat guest': True, 'nat guest -> upstream': True,
        'upstream -> nat guest': False, 'nat guest -> isolated guest': False,
        'isolated guest -> gateway': True, 'isolated guest -> upstream': False,
        'upstream -> isolated guest': False, 'isolated guest -> nat guest': False,
    }

    # remove the isolated network: its dnsmasq, table and bridge go, the NAT network stays as it was
    for guest in ('i1',):
        lab.remove_guest(guest)
    hv.ip('link', 'delete', 'tap-i1')
    gone = run_playbook(lab, _play([NAT, dict(ISOLATED, state='absent')], dirs), {'hv1': hv}, ansible_env)
    assert gone.ok, gone.failures()
    assert hv.link('fcbr1') is None
    tables = [entry['table']['name'] for entry in json.loads(hv.run(['nft', '-j', 'list', 'tables']).stdout)['nftables']
              if 'table' in entry]
    assert not [name for name in tables if name.endswith('fcbr1')], tables
    assert sorted(os.listdir(dirs['network_dnsmasq_config_dir'])) == ['fcbr0.conf', 'fcbr0.dhcp-hosts', 'fcbr0.hosts']
    assert n1.ping(INTERNET)


def test_the_default_network_when_fc_networks_is_not_set(lab, ansible_env, dirs):
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    run = run_playbook(lab, _play(None, dirs), {'hv1': hv}, ansible_env)
    assert run.ok, run.failures()
    assert hv.addresses('fcbr0') == ['192.168.18.240/24']
    _tap(hv, 'tap-d1', 'fcbr0')
    guest = lab.add_guest('d1', hv, 'tap-d1')
    lease = guest.dhcp()
    assert lease['router'] == '192.168.18.240'
    assert guest.ping(INTERNET)


@pytest.mark.parametrize('networks, expected', [
    # the role's argument specs catch types and choices, fc_network_spec the rest
    ([dict(NAT, mode='natted')], "mode must be one of: nat, routed, isolated, bridged, open, got: natted found in fc_networks"),
    ([NAT, dict(ISOLATED, cidr='10.50.0.0/16')], "fc_networks[1].cidr' (value '10.50.0.0/16'): overlaps"),
    ([dict(NAT, dhcp={'range_start': '10.50.0.1', 'range_end': '10.50.0.9'})], 'contains the gateway'),
    ([dict(NAT, vlan_id=4095)], "fc_networks[0].vlan_id"),
    ([{'bridge': 'fcbr9', 'mode': 'bridged'}], "fc_networks[0].uplink"),
])
def test_bad_networks_fail_before_the_host_changes(lab, ansible_env, dirs, networks, expected):
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    before = snapshot(hv)
    run = run_playbook(lab, _play(networks, dirs), {'hv1': hv}, ansible_env)
    assert not run.ok
    failed = [item for item in run.results('hv1') if item['_event'] == 'runner_on_failed']
    assert failed and expected in failed[0]['msg'], failed
    assert_unchanged(before, snapshot(hv))
    assert not os.path.exists(dirs['network_dnsmasq_config_dir'])


def _built(host, bridges):
    """What the role builds on a host, comparable between hosts: bridges, their addresses and routes, the nft tables."""
    links = snapshots.links(host)
    state = {
        'bridges': {name: {key: value for key, value in links[name].items() if key != 'ifindex'}
                    for name in bridges if name in links},
        'addresses': [entry for entry in snapshots.addresses(host) if entry.split()[0] in bridges],
        'routes': [entry for entry in snapshots.routes(host) if json.loads(entry)['dev'] in bridges],
        'forwarding': host.run(['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.strip(),
        'tables': {},
    }
    for entry in snapshots.nft_tables(host):
        family, name = entry.split()
        if name.startswith('nqrust_microvm'):
            listed = json.loads(host.run(['nft', '-j', 'list', 'table', family, name]).stdout)['nftables']
            for item in listed:
                for value in item.values():
                    if isinstance(value, dict):
                        value.pop('handle', None)
            state['tables'][entry] = [item for item in listed if 'metainfo' not in item]
    return state


def test_the_persisted_replay_rebuilds_the_same_networks_on_a_fresh_host(lab, ansible_env, dirs):
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    run = run_playbook(lab, _play([NAT, ISOLATED], dirs), {'hv1': hv}, ansible_env)
    assert run.ok, run.failures()
    (persist,) = run.results('hv1', task='Keep the networks across reboots (boot-time replay files and unit)')
    assert persist['bridges'] == ['fcbr0', 'fcbr1'] and len(persist['tables']) == 2, persist

    unit = os.path.join(dirs['network_persist_unit_dir'], 'nqrust-microvm-networks.service')
    verify = hv.run(['systemd-analyze', 'verify', unit], check=False)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr

    # "reboot": a fresh host with nothing but the replay files, run as the unit runs them
    fresh = lab.add_host('hv2')
    boot = dirs['network_persist_dir']
    fresh.run(['ip', '-batch', os.path.join(boot, 'links.batch')])
    fresh.run(['nft', '-j', '-f', os.path.join(boot, 'nftables.json')])
    fresh.run(['sysctl', '-q', '-p', os.path.join(boot, 'sysctl.conf')])
    assert _built(fresh, ('fcbr0', 'fcbr1')) == _built(hv, ('fcbr0', 'fcbr1'))

    # a second run writes nothing; removing a network takes it out of the replay
    again = run_playbook(lab, _play([NAT, ISOLATED], dirs), {'hv1': hv}, ansible_env)
    assert again.changed('hv1') == 0, again.changed_tasks('hv1')
    run_playbook(lab, _play([NAT, dict(ISOLATED, state='absent')], dirs), {'hv1': hv}, ansible_env)
    with open(os.path.join(boot, 'links.batch')) as handle:
        assert 'fcbr1' not in handle.read()


def test_routed_and_open_networks(lab, ansible_env, dirs):
    hv = lab.add_host('hv1')
    up = lab.upstream(hv)
    routed = {'bridge': 'fcbr2', 'mode': 'routed', 'cidr': '10.70.0.0/24'}
    opened = {'bridge': 'fcbr3', 'mode': 'open', 'cidr': '10.80.0.0/24', 'gateway': '10.80.0.1'}
    check = run_playbook(lab, _play([routed, opened], dirs), {'hv1': hv}, ansible_env, check=True)
    assert check.ok, check.failures()
    run = run_playbook(lab, _play([routed, opened], dirs), {'hv1': hv}, ansible_env)
    assert run.ok, run.failures()
    assert _changed_items(check) == _changed_items(run)
    assert hv.addresses('fcbr3') == ['10.80.0.1/24']
    tables = snapshots.nft_tables(hv)
    assert [entry for entry in tables if entry.endswith('fcbr2')] and not [e for e in tables if e.endswith('fcbr3')]
    assert sorted(os.listdir(dirs['network_dnsmasq_config_dir'])) == ['fcbr2.conf', 'fcbr2.dhcp-hosts', 'fcbr2.hosts']

    _tap(hv, 'tap-r1', 'fcbr2')
    guest = lab.add_guest('r1', hv, 'tap-r1')
    lease = guest.dhcp()
    up.ip('route', 'replace', '10.70.0.0/24', 'via', hv.uplink['address'].split('/')[0])
    _tap(hv, 'tap-o1', 'fcbr3')
    other = lab.add_guest('o1', hv, 'tap-o1')
    other.ip('address', 'add', '10.80.0.9/24', 'dev', 'eth0')
    # routed: no NAT, both ways, once the outside has a route; open: no filtering by the collection
    matrix = {
        'routed guest -> gateway': guest.ping('10.70.0.1'),
        'routed guest -> upstream': guest.ping(INTERNET),
        'upstream -> routed guest': up.ping(lease['ip']),
        'routed guest -> open guest': guest.ping('10.80.0.9', timeout=1),
        'open guest -> gateway': other.ping('10.80.0.1'),
    }
    assert matrix == {'routed guest -> gateway': True, 'routed guest -> upstream': True, 'upstream -> routed guest': True,
                      'routed guest -> open guest': False, 'open guest -> gateway': True}

    again = run_playbook(lab, _play([routed, opened], dirs), {'hv1': hv}, ansible_env)
    assert again.changed('hv1') == 0, again.changed_tasks('hv1')


def test_bridged_network_moves_the_uplink_and_keeps_the_host_reachable(lab, ansible_env, dirs):
    hv = lab.add_host('hv1')
    up = lab.upstream(hv)
    address = hv.uplink['address']
    bridged = {'bridge': 'br0', 'mode': 'bridged', 'uplink': 'uplink0'}
    check = run_playbook(lab, _play([bridged], dirs), {'hv1': hv}, ansible_env, check=True)
    assert check.ok, check.failures()
    assert hv.link('br0') is None

    run = run_playbook(lab, _play([bridged], dirs), {'hv1': hv}, ansible_env)
    assert run.ok, run.failures()
    assert _changed_items(check) == _changed_items(run)
    (armed,) = run.results('hv1', task='Arm the rollback of uplinks moving into bridges (commit-confirmed)')
    assert armed['armed'] is True
    (confirmed,) = run.results('hv1', task='Confirm the uplink moves (a failure here means they were rolled back)')
    assert confirmed['disarmed'] is True
    assert hv.link('uplink0')['master'] == 'br0'
    assert hv.addresses('br0') == [address] and hv.addresses('uplink0') == []
    assert hv.ping(INTERNET)

    # a guest on the bridge is on the upstream LAN itself
    _tap(hv, 'tap-b1', 'br0')
    guest = lab.add_guest('b1', hv, 'tap-b1')
    guest.ip('address', 'add', '203.0.113.200/24', 'dev', 'eth0')
    assert guest.ping('203.0.113.1')
    assert up.ping('203.0.113.200')

    again = run_playbook(lab, _play([bridged], dirs), {'hv1': hv}, ansible_env)
    assert again.ok and again.changed('hv1') == 0, again.changed_tasks('hv1')
    (armed,) = again.results('hv1', task='Arm the rollback of uplinks moving into bridges (commit-confirmed)')
    assert armed['armed'] is False
