"""The guest simulator: a VM's view of a TAP, DHCP from dnsmasq, ping and TCP through the relay."""

import ipaddress
import os
import subprocess
import sys

import pytest

import lab as lablib
from lab import residue
from lab.guest import RELAY

GATEWAY = '10.20.0.1'
FIRST, LAST = '10.20.0.100', '10.20.0.150'


def make_bridge(host, taps, bridge='br0', cidr=GATEWAY + '/24'):
    """A bridge with TAP ports made with plain ``ip`` commands, as the collection's fc_tap will."""
    host.ip('link', 'add', bridge, 'type', 'bridge')
    host.add_address(bridge, cidr)
    host.set_up(bridge)
    for tap in taps:
        host.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap')
        host.ip('link', 'set', 'dev', tap, 'master', bridge)
        host.set_up(tap)


@pytest.fixture(name='hv')
def hv_fixture(lab):
    host = lab.add_host('hv1')
    make_bridge(host, ['tap0', 'tap1'])
    host.dhcp_server = host.dnsmasq('br0', (FIRST, LAST), router=GATEWAY, dns_servers=[GATEWAY], domain='lab.test')
    return host


def test_guest_gets_a_lease_and_reaches_its_host(lab, hv):
    with open('/etc/resolv.conf', encoding='utf-8') as handle:
        machine_resolv = handle.read()
    guest = lab.add_guest('vm1', hv, 'tap0', mac='02:fc:00:00:00:01')
    assert guest.netns == lab.prefix + 'vm1'
    eth0 = guest.link('eth0')
    assert eth0['address'] == '02:fc:00:00:00:01' and 'UP' in eth0['flags']
    assert 'LOWER_UP' in hv.link('tap0')['flags'], 'the relay holds the TAP open like a VMM: carrier is up'

    lease = guest.dhcp()
    assert ipaddress.ip_address(FIRST) <= ipaddress.ip_address(lease['ip']) <= ipaddress.ip_address(LAST)
    assert lease['prefixlen'] == 24 and lease['router'] == GATEWAY and lease['dns'] == [GATEWAY]
    assert lease['domain'] == 'lab.test' and lease['server'] == GATEWAY
    assert guest.addresses('eth0') == ['%s/24' % lease['ip']]
    routes = guest.ip_json('route', 'show', 'default')
    assert [route['gateway'] for route in routes] == [GATEWAY]
    assert guest.run(['cat', '/etc/resolv.conf']).stdout == 'search lab.test\nnameserver %s\n' % GATEWAY
    with open('/etc/resolv.conf', encoding='utf-8') as handle:
        assert handle.read() == machine_resolv, "the machine's resolv.conf is untouched"
    assert [(item['mac'], item['ip'], item['hostname']) for item in hv.dhcp_server.leases()] == [('02:fc:00:00:00:01', lease['ip'], 'vm1')]

    assert guest.ping(GATEWAY)
    full_frames = guest.run(['busybox', 'ping', '-c', '1', '-W', '2', '-s', '1472', GATEWAY], check=False)
    assert full_frames.returncode == 0, 'frames of the full 1500-byte MTU pass the relay'
    assert not guest.ping('10.20.0.99', timeout=1)
    hv.tcp_listen(9000, GATEWAY)
    assert guest.tcp_connect(GATEWAY, 9000)
    guest.tcp_listen(2222)
    assert hv.tcp_connect(lease['ip'], 2222)


def test_two_guests_on_one_bridge_reach_each_other(lab, hv):
    vm1 = lab.add_guest('vm1', hv, 'tap0')
    vm2 = lab.add_guest('vm2', hv, 'tap1')
    assert vm1.mac != vm2.mac and vm1.mac == lablib.stable_mac(lab.lab_id, 'vm1')
    lease1, lease2 = vm1.dhcp(), vm2.dhcp()
    assert lease1['ip'] != lease2['ip']
    assert vm1.ping(lease2['ip']) and vm2.ping(lease1['ip'])
    vm2.tcp_listen(80)
    assert vm1.tcp_connect(lease2['ip'], 80)

    # the traffic really flows through the relay: without it vm2 is unreachable
    lab.remove_guest('vm2')
    assert 'LOWER_UP' not in hv.link('tap1')['flags'], 'no VMM attached: no carrier'
    assert not vm1.ping(lease2['ip'], timeout=1)
    assert 'vm2' not in lab.hosts and lab.prefix + 'vm2' not in residue.netns_list()
    assert vm1.ping(GATEWAY)


def test_attaching_to_a_missing_tap_fails_and_leaves_nothing(lab):
    hv = lab.add_host('hv1')
    make_bridge(hv, ['tap0'])
    links_before = sorted(hv.links())
    namespaces_before = residue.netns_list()
    with pytest.raises(lablib.LabError, match='TAP tap9 does not exist'):
        lab.add_guest('vm1', hv, 'tap9')
    assert sorted(hv.links()) == links_before
    assert residue.netns_list() == namespaces_before
    assert not os.path.exists(os.path.join(lablib.ETC_NETNS, lab.prefix + 'vm1'))
    assert 'vm1' not in lab.hosts and 'vm1' not in lab.state.read()['hosts']
    assert not residue.pgrep(lab.prefix + 'vm1')

    with pytest.raises(lablib.LabError, match='not a TAP'):
        lab.add_guest('vm1', hv, 'br0')
    assert residue.netns_list() == namespaces_before


def test_the_relay_itself_never_creates_a_tap(lab):
    """Even without the library's pre-check, the relay refuses a missing TAP (TUNSETIFF would create it)."""
    hv = lab.add_host('hv1')
    guest_ns = lab.add_host('g').netns
    result = subprocess.run([sys.executable, RELAY, '--host-netns', hv.netns, '--tap', 'tap9', '--guest-netns', guest_ns],
                            capture_output=True, text=True, timeout=30, env=lab.child_env(), check=False)
    assert result.returncode == 2
    assert 'TAP tap9 does not exist' in result.stderr
    assert sorted(hv.links()) == ['lo']
    assert sorted(lab.host('g').links()) == ['lo']

    result = subprocess.run([sys.executable, RELAY, '--host-netns', lab.prefix + 'nohost', '--tap', 'tap0',
                             '--guest-netns', guest_ns], capture_output=True, text=True, timeout=30, env=lab.child_env(), check=False)
    assert result.returncode == 2 and 'does not exist' in result.stderr
    assert lab.prefix + 'nohost' not in residue.netns_list()


def test_dhcp_without_a_server_fails_in_bounded_time(lab):
    hv = lab.add_host('hv1')
    make_bridge(hv, ['tap0'])
    guest = lab.add_guest('vm1', hv, 'tap0')
    with pytest.raises(lablib.LabError, match='no DHCP lease'):
        guest.dhcp(timeout=1)
    assert guest.addresses('eth0') == []
