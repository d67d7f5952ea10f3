"""Kernel lane: a network with a VLAN, built by the network role, VM NICs on it, real traffic.

Under qemu TCG an ansible-playbook run costs about five minutes, so there are two sizes:

* ``test_the_role_serves_a_vlan_network_and_only_that_vlan`` (the kernel lane, CI): one run of the network
  role, the TAPs made by fc_tap through the lab's fork server, the traffic;
* ``test_a_vlan_network_serves_its_vlan_and_only_it`` (marked ``slow``: ``make kernel-slow``, 40 minutes under
  TCG, a minute or two with KVM) is what ``make demo`` does on a kernel with bridge VLAN filtering, step by
  step, on one lab host:

* the network role makes ``fcbr0`` (NAT, VLAN 10, DHCP): VLAN filtering on and VLAN 10 the bridge's default, so
  the bridge's own address (gateway, dnsmasq) is in VLAN 10; check mode predicts the run, the second run changes
  nothing;
* vm_nic_attach.yml (no registry) gives VM a a TAP in the network's VLAN, VM b one in VLAN 20 (``fc_tap_vlan``)
  and VM c a trunk of tagged VLANs and no untagged one (``fc_tap_trunk_vlans``, ``fc_tap_vlan: none``);
* a guest behind VM a's TAP, with its guest MAC, gets a lease from the network and reaches the upstream host;
  the guest behind VM b's TAP gets no lease and reaches neither the gateway nor VM a, even with an address of
  the subnet;
* diagnose.yml finds the bridge's own VLAN right, and says so.

Both need TUN and bridge VLAN filtering: skips with the probe's reason elsewhere, and in the kernel lane (where a
skip fails the run) run under Debian's kernel. Not marked ``module``: they run once, with the modules under the
controller's pyroute2; the lane's second pass covers fc_bridge's VLAN writes under pyroute2 0.7.
"""

import pytest

from lab import bridge_vlans, kernel
from lab.errors import LabError
from lab.module_run import module_runner
from lab.playbook import run_playbook
from playbook_testing import playbook, stats_data, without_pg

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(3600)]

INTERNET = '192.0.2.1'
NETWORK = {'name': 'Tenants', 'bridge': 'fcbr0', 'mode': 'nat', 'cidr': '10.80.0.0/24', 'gateway': '10.80.0.1',
           'vlan_id': 10, 'dhcp': {'range_start': '10.80.0.100', 'range_end': '10.80.0.150'}}
VM_A = '0ac10000-0000-4000-8000-00000000000a'
VM_B = '0ac10000-0000-4000-8000-00000000000b'
VM_C = '0ac10000-0000-4000-8000-00000000000c'
ROLE_PLAY = [{'name': 'Networks', 'hosts': 'all', 'gather_facts': False, 'roles': [{'role': 'nqrust.microvm.network'}]}]


def vlans_keep_guests_apart(lab, hv, nic_in, nic_out):
    """A guest in the network's VLAN gets a lease and reaches the upstream host; one in VLAN 20 gets nothing."""
    guest_in = lab.add_guest('vm-in', hv, nic_in['host_dev_name'], mac=nic_in['guest_mac'])
    lease = guest_in.dhcp(timeout=30)
    assert lease['router'] == '10.80.0.1' and 100 <= int(lease['ip'].rsplit('.', 1)[1]) <= 150, lease
    assert guest_in.ping(INTERNET, count=2), 'the guest in VLAN 10 reaches the upstream host through NAT'

    guest_out = lab.add_guest('vm-out', hv, nic_out['host_dev_name'], mac=nic_out['guest_mac'])
    with pytest.raises(LabError):
        guest_out.dhcp(timeout=5)   # VLAN 20 has no DHCP server
    guest_out.add_address('eth0', '10.80.0.200/24')
    assert not guest_out.ping('10.80.0.1', timeout=1), 'VLAN 20 does not reach the gateway in VLAN 10'
    assert not guest_out.ping(lease['ip'], timeout=1), 'VLAN 20 does not reach the guest in VLAN 10'


def test_the_role_serves_a_vlan_network_and_only_that_vlan(lab, ansible_env, dirs):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    run = run_playbook(lab, ROLE_PLAY, {'hv1': hv}, ansible_env, extravars=dirs,
                       host_vars={'hv1': {'fc_networks': [NETWORK]}}, diff=True)
    assert run.ok, run.failures()
    assert bridge_vlans.read(hv)['fcbr0'] == bridge_vlans.access(10), 'the bridge address serves VLAN 10'
    with module_runner() as module:
        made = module(hv, 'fc_tap', {'bridge': 'fcbr0', 'taps': [{'vm_id': VM_A, 'vlan': 10}, {'vm_id': VM_B, 'vlan': 20}]})
    assert made['changed'] and not made.get('failed'), made.get('msg')
    nic_in, nic_out = made['network_interfaces']
    membership = bridge_vlans.read(hv)
    assert membership[nic_in['host_dev_name']] == bridge_vlans.access(10), membership
    assert membership[nic_out['host_dev_name']] == bridge_vlans.access(20), membership
    vlans_keep_guests_apart(lab, hv, nic_in, nic_out)


@pytest.mark.slow
def test_a_vlan_network_serves_its_vlan_and_only_it(lab, ansible_env, dirs):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    host_vars = {'hv1': {'fc_networks': [NETWORK]}}

    def role(check=False):
        run = run_playbook(lab, ROLE_PLAY, {'hv1': hv}, ansible_env, extravars=dirs, host_vars=host_vars,
                           check=check, diff=True)
        assert run.ok, run.failures()
        return run

    predicted = role(check=True)
    assert hv.link('fcbr0') is None, 'check mode made the bridge'
    built = role()
    assert built.changed_tasks('hv1') == predicted.changed_tasks('hv1')
    assert role().changed('hv1') == 0
    assert bridge_vlans.read(hv)['fcbr0'] == bridge_vlans.access(10), 'the bridge address serves VLAN 10'

    env = without_pg(ansible_env)

    def attach(vm, **survey):
        run = run_playbook(lab, playbook('vm_nic_attach.yml'), {'hv1': hv}, env,
                           extravars=dict(fc_hosts='hv1', fc_vm_id=vm, fc_network_bridge='fcbr0', **survey))
        assert run.ok, run.failures()
        return stats_data(run)['fc_vm_network_interface']

    nic_a = attach(VM_A, fc_network_vlan_id='10')
    nic_b = attach(VM_B, fc_network_vlan_id='10', fc_tap_vlan='20')
    nic_c = attach(VM_C, fc_network_vlan_id='10', fc_tap_vlan='none', fc_tap_trunk_vlans='30, 40-41')
    membership = bridge_vlans.read(hv)
    assert membership[nic_a['host_dev_name']] == bridge_vlans.access(10), membership
    assert membership[nic_b['host_dev_name']] == bridge_vlans.access(20), membership
    assert membership[nic_c['host_dev_name']] == bridge_vlans.tagged(30, 40, 41)

    vlans_keep_guests_apart(lab, hv, nic_a, nic_b)

    diagnosed = run_playbook(lab, playbook('diagnose.yml'), {'hv1': hv}, ansible_env, extravars=dirs,
                             host_vars=host_vars)
    assert diagnosed.ok, diagnosed.failures()
    (result,) = diagnosed.results('hv1', task='Compare each host with what it should have')
    assert result['problems'] == []
    checks = {item['check']: item['message'] for item in result['checks']}
    assert checks['bridge_vlan'] == 'fcbr0: its address 10.80.0.1/24 is in VLAN 10', checks
