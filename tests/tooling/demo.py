"""make demo / make demo-clean: the collection, from nothing to VMs on networks, against a lab.

Usage (as root, with the lab importable: PYTHONPATH=tests)::

    python tests/tooling/demo.py up      # build or reuse everything, converge, print a summary
    python tests/tooling/demo.py down    # remove everything the demo made

``up`` does what an operator does with the collection, each step through ansible-runner (what
AWX runs jobs with), with the collection's own playbooks:

1. lab ``demo`` (tests/tooling/demo-lab.yml): hypervisors hv1 and hv2 in network namespaces,
   each linked to an ``upstream`` host that plays the internet, and a throwaway PostgreSQL;
2. ``playbooks/registry_init.yml``: the registry schema, hv1 and hv2 registered;
3. ``tests/tooling/demo-registry.yml``: a NAT network and an isolated network per host, declared in
   the registry (both with DHCP); where the kernel has bridge VLAN filtering, the NAT network is
   VLAN 10 and the isolated one VLAN 20 (NQRUST_DEMO_VLANS: ``auto``, the default, ``on`` or ``off``);
4. ``playbooks/site.yml`` with the inventory read from the registry (``demo.registry.yml``, the
   registry inventory plugin) plus the lab's connection settings (``lab-hosts.yml``);
5. ``playbooks/vm_nic_attach.yml`` for two VMs per host (one per network): TAP (in the network's
   VLAN, when it has one), registry row and the Firecracker network-interface object;
6. a simulated guest on each TAP (the lab's guest, with the VM's guest MAC) asks for a DHCP
   lease, then tries to reach the upstream host: NAT guests must, isolated guests must not;
7. ``playbooks/diagnose.yml``: each host against the registry (fails on any problem).

It ends with a summary: networks per host with their VM counts (from the registry), leases (from
each network's dnsmasq), the reachability checked, and how many tasks changed. A second ``up``
changes nothing (the summary says so, task counts from ansible-runner's stats). The files of the
hosts (dnsmasq configuration and leases, boot replay) live in ``.demo/<host>/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid

import ansible_runner
import psycopg
import yaml

from lab import kernel
from lab.playbook import PlaybookRun
from lab.role_dirs import network_role_dirs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# NQRUST_DEMO_LAB_ID / NQRUST_DEMO_STATE let a test run the demo without touching a user's demo
STATE = os.environ.get('NQRUST_DEMO_STATE') or os.path.join(ROOT, '.demo')
LAB_ID = os.environ.get('NQRUST_DEMO_LAB_ID') or 'demo'
HYPERVISORS = ('hv1', 'hv2')
# the two VMs of each host: (name, bridge, mode); ids are derived from the names, so reruns are no-ops
VMS = (('web', 'fcbr0', 'nat'), ('db', 'fcbr1', 'isolated'))
# each network's VLAN, where the kernel has bridge VLAN filtering
VLANS = {'fcbr0': 10, 'fcbr1': 20}
VLAN_CHOICES = ('auto', 'on', 'off')
UPSTREAM_ADDRESS = '203.0.113.1'
EXPECTED_REACH = {'nat': True, 'isolated': False}


def say(text=''):
    sys.stdout.write(text + '\n')
    sys.stdout.flush()


def lab(*argv, check=True):
    """Run the lab CLI; its JSON output, parsed (or the process when check is False)."""
    proc = subprocess.run([sys.executable, '-m', 'lab'] + list(argv), capture_output=True, text=True, check=False)
    if not check:
        return proc
    if proc.returncode != 0:
        raise SystemExit('python -m lab %s failed:\n%s' % (' '.join(argv), proc.stderr))
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def vlans_wanted():
    """(on, why): whether the networks get VLANs (NQRUST_DEMO_VLANS, and what the kernel can do), and why."""
    choice = (os.environ.get('NQRUST_DEMO_VLANS') or 'auto').strip().lower()
    if choice not in VLAN_CHOICES:
        raise SystemExit('demo: NQRUST_DEMO_VLANS is %r; it is one of %s' % (choice, ', '.join(VLAN_CHOICES)))
    if choice == 'off':
        return False, 'off (NQRUST_DEMO_VLANS=off)'
    available, reason = kernel.check('vlan_filtering')
    if available:
        return True, 'on: the kernel has bridge VLAN filtering'
    if choice == 'on':
        raise SystemExit('demo: NQRUST_DEMO_VLANS=on, but %s; nothing was changed' % reason)
    return False, 'off: %s (NQRUST_DEMO_VLANS=auto)' % reason


def settled_vlans(on):
    """The VLAN choice of the demo's first run: a demo is not switched between VLANs and none (make demo-clean first)."""
    path = os.path.join(STATE, 'vlans')
    wanted = 'on' if on else 'off'
    if os.path.exists(path):
        with open(path, encoding='utf-8') as handle:
            made = handle.read().strip()
        if made != wanted:
            raise SystemExit('demo: this demo was made with VLANs %s and this run would have them %s; run '
                             '`make demo-clean` first' % (made, wanted))
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(wanted + '\n')


def vm_id(host, name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, 'nqrust-microvm-demo/%s/%s' % (host, name)))


def host_dirs(host):
    """Where a lab host keeps its files (``.demo/<host>/``): the hosts share this machine's file system."""
    return network_role_dirs(os.path.join(STATE, host))


def write_inventories(info, server):
    """lab-hosts.yml: how Ansible reaches each lab host; demo.registry.yml: the registry inventory."""
    hosts = {}
    for name in HYPERVISORS:
        hosts[name] = dict(host_dirs(name), ansible_connection='nqrust.microvm.netns',
                           ansible_netns_name=info['hosts'][name]['netns'], ansible_pipelining=True,
                           ansible_python_interpreter=sys.executable)
    group_vars = {
        # dnsmasq as a pidfile daemon inside the host's namespace (the lab has no systemd per host)
        'network_dnsmasq_supervisor': 'pidfile',
        # the host role: kernel modules and sysctls; packages and /etc files are this machine's
        'host_install_packages': False,
        'host_persist': False,
    }
    lab_hosts = {'all': {'children': {'hypervisors': {'hosts': hosts, 'vars': group_vars}}}}
    registry = {'plugin': 'nqrust.microvm.registry', 'login_host': server['socket_dir'],
                'login_port': server['port'], 'login_user': server['user'], 'login_db': server['dbname']}
    for filename, data in (('lab-hosts.yml', lab_hosts), ('demo.registry.yml', registry)):
        with open(os.path.join(STATE, filename), 'w', encoding='utf-8') as handle:
            handle.write('# written by tests/tooling/demo.py; do not edit\n')
            yaml.safe_dump(data, handle, sort_keys=True)
    for name in HYPERVISORS:
        for path in host_dirs(name).values():
            os.makedirs(path, mode=0o755, exist_ok=True)


class Playbooks(object):
    """Runs playbooks through ansible-runner, shows their output as it comes, and counts changes."""

    def __init__(self, server):
        self.registry_vars = {'registry_login_host': server['socket_dir'], 'registry_login_port': server['port'],
                              'registry_login_user': server['user'], 'registry_login_db': server['dbname']}
        self.env = {key: value for key, value in os.environ.items()
                    if key.startswith(('ANSIBLE_', 'PYTHON')) or key == 'PATH'}
        self.env.update(PGPASSWORD=server['password'], ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        self.changed = {}

    def run(self, title, playbook, extravars=None, registry_inventory=True, limit=None):
        say('== %s: %s' % (title, os.path.relpath(playbook, ROOT)))
        inventory = [os.path.join(STATE, 'lab-hosts.yml')]
        if registry_inventory:
            inventory.append(os.path.join(STATE, 'demo.registry.yml'))
        base = tempfile.mkdtemp(prefix='runner-', dir=STATE)
        runner = ansible_runner.run(
            private_data_dir=base, playbook=playbook, inventory=inventory,
            extravars=dict(self.registry_vars, **(extravars or {})), envvars=self.env, limit=limit,
            quiet=True, rotate_artifacts=1, process_isolation=False,
            event_handler=self._show)
        with runner.stdout as stdout:
            run = PlaybookRun(runner, stdout.read())
        subprocess.run(['rm', '-rf', base], check=False)
        if not run.ok:
            raise SystemExit('demo: %s failed:\n%s' % (title, run.failures()))
        for host in set(run.stats.get('ok', {})) | set(run.stats.get('changed', {})):
            self.changed[host] = self.changed.get(host, 0) + run.changed(host)
        return run

    @staticmethod
    def _show(event):
        if event.get('event') in ('playbook_on_task_start', 'runner_on_ok', 'runner_on_failed',
                                  'runner_on_unreachable', 'playbook_on_stats') and event.get('stdout'):
            say(event['stdout'].strip('\n'))
        return True


def attach_vms(playbooks, vlans):
    """Two VMs per host; returns {(host, vm name): Firecracker network-interface object}."""
    nics = {}
    for host in HYPERVISORS:
        for name, bridge, _mode in VMS:
            survey = {'fc_hosts': host, 'fc_vm_id': vm_id(host, name), 'fc_vm_name': '%s-%s' % (name, host),
                      'fc_network_bridge': bridge}
            if vlans:   # the network is found by bridge and VLAN; the TAP's access VLAN is the network's
                survey['fc_network_vlan_id'] = str(VLANS[bridge])
            title = 'attach VM %s on %s (%s%s)' % (name, host, bridge, ', VLAN %d' % VLANS[bridge] if vlans else '')
            run = playbooks.run(title, os.path.join(ROOT, 'playbooks', 'vm_nic_attach.yml'), survey)
            facts = [item.get('ansible_facts', {}).get('fc_vm_network_interface') for item in run.results(host)]
            facts = [fact for fact in facts if fact]
            if not facts:
                raise SystemExit('demo: vm_nic_attach.yml returned no Firecracker object for %s on %s' % (name, host))
            nics[(host, name)] = facts[-1]
    return nics


def start_guests(info, nics):
    """A simulated guest per VM NIC; returns {(host, vm): {'ip': lease, 'reaches': bool}}."""
    running = {name for name, entry in info['hosts'].items() if entry.get('kind') == 'guest'}
    outcome = {}
    for (host, name), nic in sorted(nics.items()):
        guest = 'g-%s-%s' % (name, host)
        if guest in running:
            lab('exec', '--lab-id', LAB_ID, guest, '--', 'true')
        else:
            lab('guest', '--lab-id', LAB_ID, '--name', guest, '--host', host, '--tap', nic['host_dev_name'],
                '--mac', nic['guest_mac'], '--dhcp', '--timeout', '20')
        ping = lab('exec', '--lab-id', LAB_ID, guest, '--', 'busybox', 'ping', '-c', '1', '-W', '2', UPSTREAM_ADDRESS,
                   check=False)
        bridge = dict((vm, vm_bridge) for vm, vm_bridge, _mode in VMS)[name]
        ips = [ip for mac, ip in leases(host, bridge) if mac.lower() == nic['guest_mac'].lower()]
        outcome[(host, name)] = {'guest': guest, 'ip': ips[0] if ips else 'no lease', 'reaches': ping.returncode == 0}
    return outcome


def registry_counts(server):
    """[(host, bridge, VLAN, mode, cidr, VM NICs)] from the registry."""
    sql = ('SELECT h.name, n.bridge_name, n.vlan_id, n.mode, n.cidr::text, count(i.id) FROM network n '
           'JOIN host h ON h.id = n.host_id LEFT JOIN vm_network_interface i ON i.network_id = n.id '
           'GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2')
    with psycopg.connect(host=server['socket_dir'], port=server['port'], user=server['user'],
                         password=server['password'], dbname=server['dbname']) as conn:
        return conn.execute(sql).fetchall()


def leases(host, bridge):
    """The leases a network's dnsmasq has handed out (its lease file: expiry, MAC, address, name, client id)."""
    path = os.path.join(host_dirs(host)['network_dnsmasq_state_dir'], '%s.leases' % bridge)
    try:
        with open(path, encoding='utf-8') as handle:
            return [line.split()[1:3] for line in handle if len(line.split()) >= 3]
    except FileNotFoundError:
        return []


def summary(server, reach, playbooks, first_run, vlans_said):
    say()
    say('== summary')
    say('  VLANs: %s' % vlans_said)
    for host, bridge, vlan, mode, cidr, count in registry_counts(server):
        handed = ', '.join('%s %s' % (ip, mac) for mac, ip in leases(host, bridge)) or 'none'
        said_vlan = 'VLAN %d' % vlan if vlan else 'no VLAN'
        say('  %s  %-6s %-8s %-8s %-16s VMs: %d  leases: %s' % (host, bridge, said_vlan, mode, cidr, count, handed))
    wrong = []
    for (host, name), seen in sorted(reach.items()):
        mode = dict((vm, vm_mode) for vm, _bridge, vm_mode in VMS)[name]
        expected = EXPECTED_REACH[mode]
        verdict = 'as expected' if seen['reaches'] == expected else 'WRONG'
        if seen['reaches'] != expected:
            wrong.append(seen['guest'])
        reaches = 'reaches' if seen['reaches'] else 'cannot reach'
        say('  guest %-12s (%s, %s) %s upstream %s: %s' % (seen['guest'], mode, seen['ip'], reaches, UPSTREAM_ADDRESS, verdict))
    total = sum(playbooks.changed.values())
    say('  tasks that changed something this run: %d (%s)' % (
        total, ', '.join('%s %d' % item for item in sorted(playbooks.changed.items()))))
    if not first_run and total:
        wrong.append('a second run changed %d task(s)' % total)
    say('  inventory: ansible-inventory -i %s -i %s --graph' % (os.path.relpath(os.path.join(STATE, 'lab-hosts.yml'), ROOT),
                                                                os.path.relpath(os.path.join(STATE, 'demo.registry.yml'), ROOT)))
    say('  remove it all with: make demo-clean')
    if wrong:
        raise SystemExit('demo: not as expected: %s' % ', '.join(wrong))


def up():
    vlans, vlans_said = vlans_wanted()
    os.makedirs(STATE, mode=0o755, exist_ok=True)
    settled_vlans(vlans)
    first_run = not os.path.exists(os.path.join(STATE, 'done'))
    say('== lab %r: hypervisors %s, an upstream host, a throwaway PostgreSQL' % (LAB_ID, ', '.join(HYPERVISORS)))
    lab('up', '--lab-id', LAB_ID, '--spec', os.path.join(ROOT, 'tests', 'tooling', 'demo-lab.yml'))
    info = lab('info', '--lab-id', LAB_ID)
    server = lab('pg-info', '--lab-id', LAB_ID)
    write_inventories(info, server)
    playbooks = Playbooks(server)
    playbooks.run('registry schema and hosts', os.path.join(ROOT, 'playbooks', 'registry_init.yml'),
                  {'registry_host_names': ','.join(HYPERVISORS)}, registry_inventory=False)
    playbooks.run('networks declared in the registry', os.path.join(ROOT, 'tests', 'tooling', 'demo-registry.yml'),
                  {'demo_hosts': list(HYPERVISORS), 'demo_vlans': VLANS if vlans else {}}, registry_inventory=False)
    playbooks.run('site.yml from the registry inventory', os.path.join(ROOT, 'playbooks', 'site.yml'))
    nics = attach_vms(playbooks, vlans)
    for (host, name), nic in sorted(nics.items()):
        say('  %s %s: %s' % (host, name, json.dumps(nic, sort_keys=True)))
    reach = start_guests(info, nics)
    playbooks.run('diagnose: each host against the registry', os.path.join(ROOT, 'playbooks', 'diagnose.yml'))
    summary(server, reach, playbooks, first_run, vlans_said)
    with open(os.path.join(STATE, 'done'), 'w', encoding='utf-8') as handle:
        handle.write('the demo ran once; the next run must change nothing\n')


def down():
    proc = lab('down', '--lab-id', LAB_ID, check=False)
    if proc.returncode != 0:
        raise SystemExit('python -m lab down failed:\n%s' % proc.stderr)
    subprocess.run(['rm', '-rf', STATE], check=True)
    say('demo removed: lab %r (namespaces, links, guests, dnsmasq, PostgreSQL) and %s' % (LAB_ID, STATE))


def main(argv):
    if argv[1:] == ['up']:
        up()
    elif argv[1:] == ['down']:
        down()
    else:
        raise SystemExit('usage: %s up|down' % argv[0])


if __name__ == '__main__':
    main(sys.argv)
