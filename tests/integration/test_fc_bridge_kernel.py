"""Kernel lane: fc_bridge's VLAN settings (vlan_filtering, vlan_default_pvid) on a kernel that has them.

Skips with the probe's reason elsewhere; in the kernel lane (NQRUST_KERNEL_LANE=1, Debian's kernel
under qemu) a skip fails the run.
"""

import pytest

from lab import bridge_vlans, kernel
from lab.module_run import run_module

# every module run starts a Python under qemu TCG: allow for a slow, busy machine
pytestmark = [pytest.mark.kernel, pytest.mark.module, pytest.mark.timeout(1200)]


def fc_bridge(host, check_mode=False, **args):
    return run_module(host, 'fc_bridge', args, check_mode=check_mode, diff=True, timeout=900)


def apply_twice(host, **args):
    """A real run, then a second one that changes nothing and finds what the first predicted.

    (Check mode against the real run is proven in the main lane; under qemu TCG every module
    run costs minutes, so this lane keeps to the runs that need the kernel feature.)
    """
    applied = fc_bridge(host, **args)
    assert not applied.get('failed'), applied.get('msg')
    again = fc_bridge(host, **args)
    assert again['changed'] is False and again['changes'] == [], again['changes']
    assert applied['diff']['after'] == again['diff']['before']
    return applied


def bridge_data(host, name):
    return host.link(name)['linkinfo']['info_data']


def test_vlan_filtering_and_default_pvid_are_set_read_back_and_changed(lab):
    kernel.require('vlan_filtering')
    hv = lab.add_host('hv')

    created = apply_twice(hv, name='fcbr0', vlan_filtering=True, vlan_default_pvid=10, stp=False, forward_delay=0)
    assert created['changes'][0]['details']['settings']['vlan_filtering'] is True
    data = bridge_data(hv, 'fcbr0')
    assert data['vlan_filtering'] == 1 and data['vlan_default_pvid'] == 10
    assert created['bridge']['vlan_filtering'] is True and created['bridge']['vlan_default_pvid'] == 10

    changed = fc_bridge(hv, name='fcbr0', vlan_filtering=False, vlan_default_pvid=0)
    assert not changed.get('failed'), changed.get('msg')
    update = changed['changes'][0]
    assert update['action'] == 'update'
    assert update['details']['before'] == {'vlan_filtering': True, 'vlan_default_pvid': 10}
    assert update['details']['after'] == {'vlan_filtering': False, 'vlan_default_pvid': 0}
    data = bridge_data(hv, 'fcbr0')
    assert data['vlan_filtering'] == 0 and data['vlan_default_pvid'] == 0
    assert changed['bridge']['vlan_filtering'] is False and changed['bridge']['vlan_default_pvid'] == 0


def test_default_pvid_puts_a_new_tap_port_in_that_vlan_and_traffic_flows(lab):
    kernel.require('vlan_filtering', 'tun')
    hv = lab.add_host('hv')
    created = fc_bridge(hv, name='fcbr0', addresses=['10.71.0.1/24'], vlan_filtering=True, vlan_default_pvid=30,
                        stp=False, forward_delay=0)
    assert created['changed'] is True and not created.get('failed'), created.get('msg')
    hv.ip('tuntap', 'add', 'dev', 'tap30', 'mode', 'tap')
    hv.ip('link', 'set', 'dev', 'tap30', 'master', 'fcbr0')
    hv.set_up('tap30')

    membership = bridge_vlans.read(hv)
    assert membership['tap30'] == [{'vid': 30, 'pvid': True, 'untagged': True}], membership
    guest = lab.add_guest('vm30', hv, 'tap30')
    guest.add_address('eth0', '10.71.0.2/24')
    assert guest.ping('10.71.0.1', count=2), 'the guest reaches the bridge address in VLAN 30'
