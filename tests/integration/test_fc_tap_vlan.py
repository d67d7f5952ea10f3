"""Kernel lane: fc_tap access and trunk VLANs on a VLAN-filtering bridge, with real traffic.

TAP VLANs are planned and applied by fc_vlan's ``port_vlan``, so the changes are fc_vlan's
(``remove VLAN 1 from port ...``, ``add VLAN 100 (pvid, untagged) to port ...``). Port VLANs are
read back through pyroute2 (``lab.bridge_vlans``), not from the module.

Needs bridge VLAN filtering (and 802.1Q for the trunk test): skips with the probe's reason on a
kernel without them; in the kernel lane (NQRUST_KERNEL_LANE=1, Debian's kernel under qemu) a
skip fails the run. Under qemu TCG a fresh Python costs tens of seconds, so the module runs go
through the lab's fork server (``lab.module_run.module_runner``).
"""

import os

import pytest

from fc_tap_testing import check_then_apply, converge_twice, descriptions
from lab import bridge_vlans, kernel
from lab.module_run import module_runner
from lab.snapshot import assert_unchanged, snapshot

pytestmark = [pytest.mark.kernel, pytest.mark.module, pytest.mark.timeout(1200)]


@pytest.fixture(name='fc_tap', scope='module')
def fc_tap_fixture():
    """``fc_tap(host, check_mode=False, **args)`` -> the module's result dict (diff mode on)."""
    with module_runner() as run:
        yield lambda host, check_mode=False, **args: run(host, 'fc_tap', args, check_mode=check_mode, diff=True)


def filtering_bridge(host, name='br0', filtering=True):
    host.ip('link', 'add', name, 'type', 'bridge', 'vlan_filtering', '1' if filtering else '0')
    host.set_up(name)


def test_access_vlans_separate_guests_and_follow_changes(lab, fc_tap):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    taps = [{'name': 'tap100a', 'vlan': 100}, {'name': 'tap100b', 'vlan': 100}, {'name': 'tap200', 'vlan': 200}]
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, bridge='br0', taps=taps)
    assert descriptions(applied)[3:] == [
        "remove VLAN 1 from port 'tap100a' of bridge 'br0'", "add VLAN 100 (pvid, untagged) to port 'tap100a' of bridge 'br0'",
        "remove VLAN 1 from port 'tap100b' of bridge 'br0'", "add VLAN 100 (pvid, untagged) to port 'tap100b' of bridge 'br0'",
        "remove VLAN 1 from port 'tap200' of bridge 'br0'", "add VLAN 200 (pvid, untagged) to port 'tap200' of bridge 'br0'"]
    membership = bridge_vlans.read(hv)
    assert membership['tap100a'] == membership['tap100b'] == bridge_vlans.access(100)
    assert membership['tap200'] == bridge_vlans.access(200)
    assert [nic['host_dev_name'] for nic in applied['network_interfaces']] == ['tap100a', 'tap100b', 'tap200']

    guests = {}
    for number, entry in enumerate(taps, start=1):
        guest = lab.add_guest('vm-' + entry['name'][3:], hv, entry['name'])
        guest.add_address('eth0', '10.70.0.%d/24' % number)
        guests[entry['name']] = (guest, '10.70.0.%d' % number)
    vm100a, ip100a = guests['tap100a']
    vm100b, ip100b = guests['tap100b']
    vm200, ip200 = guests['tap200']
    assert vm100a.ping(ip100b, count=2), 'two guests on access VLAN 100 reach each other'
    assert not vm200.ping(ip100a, timeout=1), 'VLAN 200 does not reach VLAN 100'
    assert not vm100b.ping(ip200, timeout=1)

    # moving tap200 to VLAN 100 with the module joins its guest to that segment
    taps[2]['vlan'] = 100
    dummy, moved = check_then_apply(fc_tap, hv, bridge='br0', taps=taps)
    assert descriptions(moved) == ["remove VLAN 200 from port 'tap200' of bridge 'br0'",
                                   "add VLAN 100 (pvid, untagged) to port 'tap200' of bridge 'br0'"]
    assert bridge_vlans.read(hv)['tap200'] == bridge_vlans.access(100)
    assert vm200.ping(ip100a, count=2)


def test_trunk_port_carries_tagged_vlans_to_a_router_guest(lab, fc_tap):
    kernel.require('tun', 'vlan_filtering', '8021q')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    taps = [{'name': 'tap-router', 'trunk_vlans': [100, 200]}, {'name': 'tap-vm100', 'vlan': 100}, {'name': 'tap-vm200', 'vlan': 200}]
    assert not fc_tap(hv, bridge='br0', taps=taps).get('failed')
    assert bridge_vlans.read(hv)['tap-router'] == bridge_vlans.tagged(100, 200)
    router = lab.add_guest('router', hv, 'tap-router')
    for vid, subnet in ((100, '10.71.0'), (200, '10.72.0')):
        router.ip('link', 'add', 'link', 'eth0', 'name', 'eth0.%d' % vid, 'type', 'vlan', 'id', str(vid))
        router.add_address('eth0.%d' % vid, '%s.254/24' % subnet)
        router.set_up('eth0.%d' % vid)
    vm100 = lab.add_guest('vm100', hv, 'tap-vm100')
    vm100.add_address('eth0', '10.71.0.1/24')
    vm200 = lab.add_guest('vm200', hv, 'tap-vm200')
    vm200.add_address('eth0', '10.72.0.1/24')
    assert vm100.ping('10.71.0.254', count=2), 'VLAN 100 reaches the router tagged, on eth0.100'
    assert vm200.ping('10.72.0.254', count=2)

    # VLAN 200 off the trunk: its guest is cut off, VLAN 100 keeps working
    dummy, applied = check_then_apply(fc_tap, hv, name='tap-router', bridge='br0', trunk_vlans=[100])
    assert descriptions(applied) == ["remove VLAN 200 from port 'tap-router' of bridge 'br0'"]
    assert bridge_vlans.read(hv)['tap-router'] == bridge_vlans.tagged(100)
    assert not vm200.ping('10.72.0.254', timeout=1)
    assert vm100.ping('10.71.0.254')


def test_hybrid_port_and_isolation(lab, fc_tap):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='tap0', bridge='br0', vlan=10, trunk_vlans=['20-22', 30], isolated=True)
    assert "add VLANs 20-22 (tagged) to port 'tap0' of bridge 'br0'" in descriptions(applied)
    assert bridge_vlans.read(hv)['tap0'] == bridge_vlans.access(10) + bridge_vlans.tagged(20, 21, 22, 30)
    assert hv.link('tap0')['linkinfo']['info_slave_data']['isolated'] is True
    # made again for another multi-queue setting, the TAP keeps the port settings the task leaves alone
    dummy, applied = check_then_apply(fc_tap, hv, name='tap0', bridge='br0', multi_queue=True)
    assert descriptions(applied)[:3] == ["delete tap 'tap0'", "create tap 'tap0'", "update port 'tap0' (isolated: false -> true)"]
    assert bridge_vlans.read(hv)['tap0'] == bridge_vlans.access(10) + bridge_vlans.tagged(20, 21, 22, 30)
    assert hv.link('tap0')['linkinfo']['info_slave_data']['isolated'] is True


def test_vlans_on_a_bridge_with_filtering_off_are_refused_and_nothing_changes(lab, fc_tap):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv, filtering=False)
    before = snapshot(hv)
    result = fc_tap(hv, name='tap0', bridge='br0', trunk_vlans=[5])
    assert result.get('failed')
    assert result['msg'].startswith("parameter 'trunk_vlans' (value ['5']): bridge 'br0' has VLAN filtering off"), result['msg']
    assert_unchanged(before, snapshot(hv))


def test_a_rolled_back_purge_restores_the_vlans_of_the_taps_it_removed(lab, fc_tap):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    hv.ip('link', 'add', 'full0', 'type', 'bridge')
    # full0 gets every port number a bridge has (1023), from TAPs no purge touches (not marked)
    batch = os.path.join(lab.tmpdir, 'fill.batch')
    with open(batch, 'w', encoding='ascii') as handle:
        for number in range(1023):
            handle.write('tuntap add dev fill%04d mode tap\nlink set dev fill%04d master full0\n' % (number, number))
    hv.ip('-batch', batch, timeout=600)
    fc_tap(hv, bridge='br0', taps=[{'name': 'stale0', 'vlan': 100, 'trunk_vlans': [300]}, {'name': 'stale1', 'trunk_vlans': ['200-202']}])
    before = bridge_vlans.read(hv)
    result = fc_tap(hv, bridge='full0', purge=True, taps=[{'name': 'tap0'}])
    assert result.get('failed') and result['rolled_back'] is True, result
    assert 'exchange full' in result['msg']
    after = bridge_vlans.read(hv)
    assert after['stale0'] == before['stale0'] == bridge_vlans.access(100) + bridge_vlans.tagged(300)
    assert after['stale1'] == before['stale1'] == bridge_vlans.tagged(200, 201, 202)
    assert hv.link('stale0')['master'] == 'br0' and hv.link('tap0') is None
