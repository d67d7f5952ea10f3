"""Kernel lane: bridge VLAN filtering and 802.1Q with real traffic between simulated guests.

Skips with the probe's reason on a kernel without the features; in the kernel lane
(NQRUST_KERNEL_LANE=1, Debian's kernel under qemu) a skip fails the run.
"""

import pytest

from lab import bridge_vlans, kernel

# under qemu without KVM every process start is slow: ~2 minutes per test on an idle machine
pytestmark = [pytest.mark.kernel, pytest.mark.timeout(900)]

SUBNET = '10.70.0.%d/24'


def access_port(host, tap, vid, bridge='br0'):
    """A TAP on the bridge as an untagged access port of VLAN vid (and of nothing else)."""
    host.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap')
    host.ip('link', 'set', 'dev', tap, 'master', bridge)
    host.run(['bridge', 'vlan', 'del', 'dev', tap, 'vid', '1'])
    host.run(['bridge', 'vlan', 'add', 'dev', tap, 'vid', str(vid), 'pvid', 'untagged'])
    host.set_up(tap)


def filtering_bridge(host, bridge='br0'):
    host.ip('link', 'add', bridge, 'type', 'bridge', 'vlan_filtering', '1')
    host.set_up(bridge)


def test_access_vlans_isolate_guests(lab):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    ports = {'tap100a': 100, 'tap100b': 100, 'tap200': 200}
    for tap, vid in ports.items():
        access_port(hv, tap, vid)

    membership = bridge_vlans.read(hv)
    for tap, vid in ports.items():
        assert membership[tap] == [{'vid': vid, 'pvid': True, 'untagged': True}], membership

    guests = {}
    for number, tap in enumerate(sorted(ports), start=1):
        guest = lab.add_guest('vm-' + tap[3:], hv, tap)
        guest.add_address('eth0', SUBNET % number)
        guests[tap] = (guest, (SUBNET % number).split('/', 1)[0])
    vm100a, ip100a = guests['tap100a']
    vm100b, ip100b = guests['tap100b']
    vm200, ip200 = guests['tap200']

    assert vm100a.ping(ip100b, count=2), 'VLAN 100 guests reach each other'
    assert vm100b.ping(ip100a)
    assert not vm200.ping(ip100a, timeout=1), 'VLAN 200 does not reach VLAN 100'
    assert not vm100b.ping(ip200, timeout=1)
    vm100b.tcp_listen(8080)
    assert vm100a.tcp_connect(ip100b, 8080)
    assert not vm200.tcp_connect(ip100b, 8080, timeout=1)

    # moving the port to VLAN 100 joins the guest to that segment: the isolation was the VLAN
    hv.run(['bridge', 'vlan', 'del', 'dev', 'tap200', 'vid', '200'])
    hv.run(['bridge', 'vlan', 'add', 'dev', 'tap200', 'vid', '100', 'pvid', 'untagged'])
    assert bridge_vlans.read(hv)['tap200'] == [{'vid': 100, 'pvid': True, 'untagged': True}]
    assert vm200.ping(ip100a, count=2)


def test_tagged_trunk_carries_each_vlan_to_its_subinterface(lab):
    kernel.require('tun', 'vlan_filtering', '8021q')
    hv = lab.add_host('hv1')
    router = lab.add_host('router')
    filtering_bridge(hv)
    lab.connect(hv, 'trunk0', router, 'trunk0')
    hv.ip('link', 'set', 'dev', 'trunk0', 'master', 'br0')
    hv.run(['bridge', 'vlan', 'del', 'dev', 'trunk0', 'vid', '1'])
    for vid in (100, 200):
        hv.run(['bridge', 'vlan', 'add', 'dev', 'trunk0', 'vid', str(vid)])
        router.ip('link', 'add', 'link', 'trunk0', 'name', 'trunk0.%d' % vid, 'type', 'vlan', 'id', str(vid))
        router.add_address('trunk0.%d' % vid, '10.%d.0.254/24' % (vid // 100 + 70))
        router.set_up('trunk0.%d' % vid)
    vlan_link = router.link('trunk0.100')
    assert vlan_link['linkinfo']['info_kind'] == 'vlan' and vlan_link['linkinfo']['info_data']['id'] == 100

    access_port(hv, 'tap100', 100)
    access_port(hv, 'tap200', 200)
    assert bridge_vlans.read(hv)['trunk0'] == [{'vid': 100, 'pvid': False, 'untagged': False},
                                               {'vid': 200, 'pvid': False, 'untagged': False}]
    vm100 = lab.add_guest('vm100', hv, 'tap100')
    vm200 = lab.add_guest('vm200', hv, 'tap200')
    vm100.add_address('eth0', '10.71.0.1/24')
    vm200.add_address('eth0', '10.72.0.1/24')
    assert vm100.ping('10.71.0.254', count=2), 'VLAN 100 leaves the bridge tagged and reaches trunk0.100'
    assert vm200.ping('10.72.0.254', count=2)

    # with VLAN 200 removed from the trunk, its guest is cut off while VLAN 100 still works
    hv.run(['bridge', 'vlan', 'del', 'dev', 'trunk0', 'vid', '200'])
    assert not vm200.ping('10.72.0.254', timeout=1)
    assert vm100.ping('10.71.0.254')
