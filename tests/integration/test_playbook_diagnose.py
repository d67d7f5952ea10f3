"""playbooks/diagnose.yml through ansible-runner, the way an AWX job runs it, against a registry and a lab host.

A throwaway PostgreSQL holds the registry (host ``hv1``, a NAT network on ``fcbr0``); the hosts come from
the registry inventory plugin (``*.registry.yml``, its ``compose`` pointing the host at its lab namespace);
the network role builds the network. Then diagnose.yml finds nothing wrong -- in check mode too -- and
after each breakage (bridge down, dnsmasq killed, nft table deleted, a registry network and VM interface
the host lacks, a bridge and TAP the registry lacks) it fails with the right sentence, and passes again
once the fix it names has been applied.
"""

import os
import signal
import time

import yaml

from lab.module_run import target_python
from lab.playbook import run_playbook

from registry_testing import add_host, fresh_database

# Not marked `module`: the playbooks run once, with the venv's pyroute2. The modules and roles they drive
# run again under pyroute2 0.7 in their own tests (the lane's second pass), and CI has 90 minutes.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, 'playbooks', 'diagnose.yml')
NET_NAT = 'd1a90000-0000-4000-8000-000000000001'
NET_GHOST = 'd1a90000-0000-4000-8000-000000000007'
VM = 'd1a90000-0000-4000-8000-0000000000a1'
COMPARE = 'Compare each host with what it should have'
SAY = 'Say what was found'
FAIL = 'Fail when something is wrong (diagnose_fail_on_problems)'


class Site:
    """The registry, the registry inventory file and the lab host, with the two playbooks to run."""

    def __init__(self, lab, hv, registry, env, dirs):
        self.lab, self.hv, self.registry, self.dirs = lab, hv, registry, dirs
        self.env = dict(env, **registry.env())
        self.inventory = os.path.join(lab.tmpdir, 'fleet.registry.yml')
        with open(self.inventory, 'w', encoding='utf-8') as handle:
            yaml.safe_dump({'plugin': 'nqrust.microvm.registry', 'compose': {
                'ansible_connection': "'nqrust.microvm.netns'",
                'ansible_netns_name': "'%s'" % hv.netns,
                'ansible_python_interpreter': "'%s'" % target_python(),
            }}, handle)

    def converge(self):
        """What the fixes say: run the network role (site.yml's network part) from the registry inventory."""
        play = [{'name': 'Networks', 'hosts': 'all', 'gather_facts': False,
                 'roles': [{'role': 'nqrust.microvm.network'}]}]
        run = run_playbook(self.lab, play, {'hv1': self.hv}, self.env, inventory=self.inventory, extravars=self.dirs)
        assert run.ok, run.failures()

    def diagnose(self, check=False, **extravars):
        run = run_playbook(self.lab, PLAYBOOK, {'hv1': self.hv}, self.env, inventory=self.inventory,
                           extravars=dict(self.dirs, **extravars), check=check)
        (result,) = run.results('hv1', task=COMPARE)
        return run, result

    def expect(self, *expected):
        """diagnose.yml fails with exactly these (check, message) problems, said in the report and the failure."""
        run, result = self.diagnose()
        found = [(item['check'], item['message']) for item in result['problems']]
        assert found == list(expected), found
        assert not run.ok and run.failed('hv1') == 1
        (said,) = run.results('hv1', task=SAY)
        (failed,) = run.results('hv1', task=FAIL)
        for item in result['problems']:
            line = '%s -- %s' % (item['message'], item['fix'])
            assert line in said['msg'], said['msg']
            assert line in failed['msg'], failed['msg']
        return result['problems']

    def expect_clean(self):
        run, result = self.diagnose()
        assert run.ok, run.failures()
        assert result['problems'] == [] and result['source'] == 'registry', result['problems']
        assert run.changed('hv1') == 0
        return result


def test_diagnose_finds_each_breakage_and_passes_after_the_fix(lab, postgres, ansible_env, dirs):
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    with fresh_database(postgres, prefix='dg') as registry:
        host_id = add_host(registry, 'hv1', addr='192.0.2.11')
        registry.execute("INSERT INTO network (id, name, type, bridge_name, host_id, cidr, gateway, mode) VALUES "
                         "(%s, 'Tenants', 'bridge', 'fcbr0', %s, '10.71.0.0/24', '10.71.0.1', 'nat')", (NET_NAT, host_id))
        site = Site(lab, hv, registry, ansible_env, dirs)
        site.converge()

        # a healthy host: no problems, in check mode too, and nothing changes
        result = site.expect_clean()
        assert {item['check'] for item in result['checks']} >= {'bridge', 'bridge_up', 'bridge_address', 'uplink', 'dhcp',
                                                                'firewall', 'forwarding'}
        run, result = site.diagnose(check=True)
        assert run.ok and result['problems'] == [], run.failures()

        # 1. the bridge is down
        hv.ip('link', 'set', 'fcbr0', 'down')
        (problem,) = site.expect(('bridge_up', 'fcbr0: bridge is down'))
        assert problem['fix'] == 'run playbooks/site.yml (the network role) or `ip link set fcbr0 up`'
        run, result = site.diagnose(diagnose_fail_on_problems=False)     # reported, but the job stays green
        assert run.ok and [item['check'] for item in result['problems']] == ['bridge_up'], run.failures()
        hv.ip('link', 'set', 'fcbr0', 'up')
        site.expect_clean()

        # 2. the DHCP server is killed
        pidfile = os.path.join(dirs['network_dnsmasq_run_dir'], 'fcbr0.pid')
        with open(pidfile, encoding='ascii') as handle:
            pid = int(handle.read().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while os.path.exists('/proc/%d' % pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (problem,) = site.expect(('dhcp', 'fcbr0: the DHCP server (dnsmasq) is not running (pid %d of its pid file has '
                                          'exited), so VMs get no IP address' % pid))
        assert '`dnsmasq --conf-file=%s`' % os.path.join(dirs['network_dnsmasq_config_dir'], 'fcbr0.conf') in problem['fix']
        site.converge()
        site.expect_clean()

        # 3. the NAT and forward rules are deleted
        hv.run(['nft', 'delete', 'table', 'inet', 'nqrust_microvm_fw_fcbr0'])
        site.expect(('firewall', 'fcbr0: the NAT and forward rules (nft table inet nqrust_microvm_fw_fcbr0) are missing: '
                                 'guests cannot reach the outside'))
        site.converge()
        site.expect_clean()

        # 4. the registry has a network and a VM interface that the host lacks
        registry.execute("INSERT INTO network (id, name, type, bridge_name, host_id, cidr, gateway, mode) VALUES "
                         "(%s, 'Ghost', 'bridge', 'fcbr7', %s, '10.77.0.0/24', '10.77.0.1', 'isolated')",
                         (NET_GHOST, host_id))
        registry.execute("INSERT INTO vm (id, name) VALUES (%s, 'vm-a')", (VM,))
        registry.execute("INSERT INTO vm_network_interface (vm_id, network_id, iface_id, guest_mac, host_dev_name) "
                         "VALUES (%s, %s, 'eth0', 'aa:fc:00:00:00:a1', 'fctapdg1')", (VM, NET_NAT))
        site.expect(('bridge', 'fcbr7: bridge is missing'),
                    ('tap', 'fctapdg1 (VM %s eth0): TAP is missing, but the registry attaches it to fcbr0' % VM))
        registry.execute('DELETE FROM network WHERE id = %s', (NET_GHOST,))
        hv.ip('tuntap', 'add', 'fctapdg1', 'mode', 'tap')
        hv.ip('link', 'set', 'fctapdg1', 'master', 'fcbr0')
        hv.ip('link', 'set', 'fctapdg1', 'up')
        site.expect_clean()

        # 5. the host has a bridge and a TAP of the collection that the registry lacks
        hv.ip('link', 'add', 'fcbr8', 'type', 'bridge')
        hv.ip('link', 'set', 'fcbr8', 'alias', 'nqrust.microvm')
        hv.ip('tuntap', 'add', 'fctapdg2', 'mode', 'tap')
        hv.ip('link', 'set', 'fctapdg2', 'alias', 'nqrust.microvm:vm=dg2')
        hv.ip('link', 'set', 'fctapdg2', 'master', 'fcbr0')
        problems = site.expect(
            ('unregistered_bridge', 'fcbr8: bridge exists on this host (made by the collection) but the registry has no '
                                    'network for it'),
            ('unregistered_tap', 'fctapdg2: TAP exists on this host on bridge fcbr0 but no VM interface of the registry '
                                 'uses it'))
        assert 'playbooks/network_create.yml' in problems[0]['fix'] and 'vm_nic_attach.yml' in problems[1]['fix']
        for name in ('fcbr8', 'fctapdg2', 'fctapdg1'):
            hv.ip('link', 'delete', name)
        registry.execute('DELETE FROM vm_network_interface WHERE vm_id = %s', (VM,))
        site.expect_clean()


def test_diagnose_without_a_registry_compares_with_fc_networks(lab, ansible_env, dirs):
    """A host run from plain inventory variables: diagnose.yml compares it with its fc_networks, no database."""
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    networks = [{'bridge': 'fcbr1', 'mode': 'isolated', 'cidr': '10.72.0.0/24'}]
    host_vars = {'hv1': {'fc_networks': networks}}
    play = [{'name': 'Networks', 'hosts': 'all', 'gather_facts': False, 'roles': [{'role': 'nqrust.microvm.network'}]}]
    run = run_playbook(lab, play, {'hv1': hv}, ansible_env, extravars=dirs, host_vars=host_vars)
    assert run.ok, run.failures()
    run = run_playbook(lab, PLAYBOOK, {'hv1': hv}, ansible_env, extravars=dirs, host_vars=host_vars)
    assert run.ok, run.failures()
    (result,) = run.results('hv1', task=COMPARE)
    assert result['source'] == 'inventory' and result['problems'] == []
    assert [item['check'] for item in result['checks']] == ['bridge', 'bridge_up', 'bridge_address', 'dhcp', 'firewall']

    hv.ip('address', 'flush', 'dev', 'fcbr1')
    run = run_playbook(lab, PLAYBOOK, {'hv1': hv}, ansible_env, extravars=dirs, host_vars=host_vars)
    assert not run.ok
    (said,) = run.results('hv1', task=SAY)
    assert said['msg'][0] == 'hv1: 5 checks, 1 problem against fc_networks', said['msg']
    assert said['msg'][1] == ('fcbr1: bridge does not have its address 10.72.0.1/24 (it has no address): guests get no '
                              'gateway and no DHCP -- run playbooks/site.yml (the network role) or '
                              '`ip address add 10.72.0.1/24 dev fcbr1`'), said['msg']
