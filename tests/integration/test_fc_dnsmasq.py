"""fc_dnsmasq on lab hosts: real DHCP and DNS through a bridge and TAP, live static leases, absent, refusals.

Each test gets its own lab host with a bridge carrying the gateway address and its own config,
state and run directories (``/tmp/nql-<labid>-dnsmasq-*``: the filesystem is shared between lab
hosts); the dnsmasq the module starts is stopped with ``state=absent`` at the end of each test,
also when it fails. The integration lane runs these again with pyroute2 0.7 (NQRUST_TARGET_PYTHON).
"""

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from lab import processes
from lab.module_run import module_path, run_module
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module

BRIDGE = 'fcbr0'
CIDR = '10.77.0.0/24'
GATEWAY = '10.77.0.1'
DOMAIN = 'fc.internal'
STATIC_MAC = 'aa:fc:00:00:00:05'
STATIC_IP = '10.77.0.5'

# A DNS A query over UDP, run with the lab's Python inside a guest namespace; prints
# {"rcode": N, "answers": [addresses]} (no parsing of a tool's human-readable output).
DNS_QUERY = r'''
import json, random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
ident = random.randrange(65536)
question = b''.join(bytes([len(part)]) + part.encode() for part in name.split('.')) + b'\0' + struct.pack('!HH', 1, 1)
packet = struct.pack('!HHHHHH', ident, 0x0100, 1, 0, 0, 0) + question
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(3)
sock.sendto(packet, (server, 53))
data = sock.recv(4096)
rid, flags, qd, an, ns, ar = struct.unpack('!HHHHHH', data[:12])
assert rid == ident
offset = 12 + len(question)
answers = []
for _ in range(an):
    if data[offset] & 0xC0 == 0xC0:
        offset += 2
    else:
        while data[offset]:
            offset += data[offset] + 1
        offset += 1
    rtype, rclass, ttl, length = struct.unpack('!HHIH', data[offset:offset + 10])
    offset += 10
    if rtype == 1:
        answers.append(socket.inet_ntoa(data[offset:offset + length]))
    offset += length
print(json.dumps({'rcode': flags & 0xF, 'answers': answers}))
'''


# --------------------------------------------------------------------------- helpers

class Network(object):
    """A lab host with a bridge holding the gateway address, TAPs on demand, and the instance's directories."""

    def __init__(self, lab, host_name='hv1', bridge=BRIDGE, cidr=CIDR, gateway=GATEWAY):
        self.lab = lab
        self.host = lab.hosts.get(host_name) or lab.add_host(host_name)
        self.bridge = bridge
        self.cidr = cidr
        self.gateway = gateway
        prefix = ipaddress.ip_network(cidr).prefixlen
        self.host.ip('link', 'add', bridge, 'type', 'bridge')
        self.host.ip('link', 'set', 'dev', bridge, 'type', 'bridge', 'forward_delay', '0')
        self.host.add_address(bridge, '%s/%d' % (gateway, prefix))
        self.host.set_up(bridge)
        self.root = tempfile.mkdtemp(prefix='nql-%s-dnsmasq-' % lab.lab_id)
        os.chmod(self.root, 0o755)  # dnsmasq re-reads its hosts files after dropping privileges
        self.dirs = {'config_dir': os.path.join(self.root, 'etc'), 'state_dir': os.path.join(self.root, 'lib'),
                     'run_dir': os.path.join(self.root, 'run')}
        self.taps = 0

    def args(self, **extra):
        args = {'bridge': self.bridge, 'cidr': self.cidr, 'gateway': self.gateway}
        args.update(self.dirs)
        dhcp = {'ping_check': False}
        dhcp.update(extra.pop('dhcp', {}))
        args['dhcp'] = dhcp
        args.update(extra)
        return args

    def run(self, check_mode=False, **args):
        return run_module(self.host, 'fc_dnsmasq', args, check_mode=check_mode, diff=True)

    def guest(self, name, mac=None):
        self.taps += 1
        tap = 'tap%s%d' % (self.bridge[-1], self.taps)
        self.host.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap')
        self.host.ip('link', 'set', 'dev', tap, 'master', self.bridge)
        self.host.set_up(tap)
        return self.lab.add_guest(name, self.host, tap, mac=mac)

    def files(self):
        found = []
        for root, dummy, names in os.walk(self.root):
            found.extend(os.path.relpath(os.path.join(root, name), self.root) for name in names)
        return sorted(found)

    def stop(self):
        """state=absent (stop what the test started), then remove the directories."""
        try:
            if os.path.isdir(self.root):
                run_module(self.host, 'fc_dnsmasq', dict(self.dirs, bridge=self.bridge, state='absent'))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(name='network')
def network_fixture(lab):
    made = []

    def make(**kwargs):
        item = Network(lab, **kwargs)
        made.append(item)
        return item

    yield make
    for item in reversed(made):
        item.stop()


def ok(result):
    assert not result.get('failed'), result.get('msg')
    return result


def converge_twice(net, **args):
    """Check mode, real run, second run: the check run predicts the real one, which the second run confirms."""
    predicted = ok(net.run(check_mode=True, **args))
    applied = ok(net.run(**args))
    for key in ('changed', 'changes', 'diff', 'action', 'network', 'files'):
        assert predicted[key] == applied[key], key
    again = ok(net.run(**args))
    assert again['changed'] is False and again['changes'] == [] and again['action'] == 'none'
    assert again['pid'] == applied['pid']
    assert all(item['before'] == item['after'] for item in again['diff'])
    assert [item['after'] for item in again['diff']] == [item['after'] for item in applied['diff']]
    return predicted, applied, again


def dnsmasq_pids(host):
    return sorted(pid for pid in processes.netns_pids(host.netns)
                  if os.path.basename((processes.cmdline(pid).split() or [''])[0]) == 'dnsmasq')


def lease_ips(net):
    with open(os.path.join(net.dirs['state_dir'], '%s.leases' % net.bridge), encoding='ascii') as handle:
        return sorted(line.split()[2] for line in handle if line.strip())


def dns_query(guest, server, name):
    result = guest.run([sys.executable, '-I', '-S', '-c', DNS_QUERY, server, name], check=False, timeout=20)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def in_pools(address, pools):
    address = ipaddress.ip_address(address)
    return any(ipaddress.ip_address(pool['start']) <= address <= ipaddress.ip_address(pool['end']) for pool in pools)


# --------------------------------------------------------------------------- DHCP and DNS with real traffic

def test_a_guest_gets_a_lease_in_the_dynamic_range_check_mode_exact_second_run_unchanged(lab, network):
    net = network()
    predicted, applied, dummy = converge_twice(net, **net.args(dns={'domain': DOMAIN}))
    assert predicted['action'] == 'started' and predicted['pid'] is None
    assert applied['action'] == 'started' and dnsmasq_pids(net.host) == [applied['pid']]
    pools = applied['network']['dhcp']['ranges']
    assert pools == [{'start': '10.77.0.128', 'end': '10.77.0.254'}]  # the seed's high half
    guest = net.guest('vm1')
    lease = guest.dhcp()
    assert in_pools(lease['ip'], pools)
    assert lease['router'] == GATEWAY and lease['dns'] == [GATEWAY] and lease['domain'] == DOMAIN
    assert lease['lease_time'] == 3600
    assert guest.ping(GATEWAY)
    # the guest's own name (sent with its request) resolves through the network's DNS
    assert dns_query(guest, GATEWAY, 'vm1.%s' % DOMAIN)['answers'] == [lease['ip']]
    listed = ok(net.run(**net.args(dns={'domain': DOMAIN})))['leases']
    assert [(item['mac'], item['ip'], item['hostname']) for item in listed] == [(guest.mac, lease['ip'], 'vm1')]
    # the configuration is ours only: the bridge, no /etc/dnsmasq.conf, no /etc/hosts
    assert processes.cmdline(applied['pid']).split()[1:] == ['--conf-file=%s' % applied['files']['config']]


def test_a_static_lease_is_honoured_and_its_name_resolves(lab, network):
    net = network()
    args = net.args(dhcp={'static_leases': [{'mac': STATIC_MAC, 'ip': STATIC_IP, 'hostname': 'db1'}]}, dns={'domain': DOMAIN})
    converge_twice(net, **args)
    guest = net.guest('vm1', mac=STATIC_MAC)
    lease = guest.dhcp()
    assert lease['ip'] == STATIC_IP and lease['hostname'] == 'db1'
    other = net.guest('vm2')
    assert other.dhcp()['ip'] != STATIC_IP
    assert dns_query(other, GATEWAY, 'db1')['answers'] == [STATIC_IP]
    assert dns_query(other, GATEWAY, 'db1.%s' % DOMAIN)['answers'] == [STATIC_IP]
    assert other.ping(STATIC_IP)


def test_isolated_mode_hands_out_no_default_route(lab, network):
    net = network()
    dummy, applied, dummy = converge_twice(net, **net.args(mode='isolated'))
    assert applied['network']['dhcp']['router'] is None and applied['network']['dns']['upstream'] == []
    lease = net.guest('vm1').dhcp()
    assert lease['router'] is None and lease['routers'] == []
    assert ipaddress.ip_address(lease['ip']) in ipaddress.ip_network(CIDR)


def test_upstream_dns_on_and_off(lab, network):
    net = network()
    upstream = lab.upstream(net.host)
    server = upstream.dnsmasq('inet0', ('203.0.113.200', '203.0.113.210'), port=53,
                              extra_options=['address=/outside.example/192.0.2.80'])
    try:
        guest = net.guest('vm1')
        ok(net.run(**net.args(dns={'upstream': ['203.0.113.1']})))
        guest.dhcp()
        assert dns_query(guest, GATEWAY, 'outside.example')['answers'] == ['192.0.2.80']
        changed = ok(net.run(**net.args(dns={'upstream': []})))
        assert changed['action'] == 'restarted'
        assert dns_query(guest, GATEWAY, 'outside.example')['answers'] == []
    finally:
        server.stop()


# --------------------------------------------------------------------------- live changes

def test_static_leases_come_and_go_live_keeping_the_pid_and_the_leases(lab, network):
    net = network()
    base = net.args(dns={'domain': DOMAIN})
    started = ok(net.run(**base))
    pid = started['pid']
    first = net.guest('vm1')
    first_ip = first.dhcp()['ip']
    assert lease_ips(net) == [first_ip]

    statics = [{'mac': STATIC_MAC, 'ip': STATIC_IP, 'hostname': 'db1'}, {'mac': 'aa:fc:00:00:00:09', 'ip': '10.77.0.9', 'hostname': 'spare'}]
    with_static = net.args(dhcp={'static_leases': statics}, dns={'domain': DOMAIN})
    predicted = ok(net.run(check_mode=True, **with_static))
    added = ok(net.run(**with_static))
    for key in ('changed', 'changes', 'diff', 'action', 'pid'):
        assert predicted[key] == added[key], key
    assert added['action'] == 'reloaded' and added['pid'] == pid and dnsmasq_pids(net.host) == [pid]
    assert [change['details'].get('file') for change in added['changes']] == ['dhcp_hosts', 'addn_hosts', None]
    assert lease_ips(net) == [first_ip]
    assert first.ping(GATEWAY)
    second = net.guest('vm2', mac=STATIC_MAC)
    assert second.dhcp()['ip'] == STATIC_IP
    assert dns_query(first, GATEWAY, 'db1.%s' % DOMAIN)['answers'] == [STATIC_IP]
    assert dns_query(first, GATEWAY, 'spare.%s' % DOMAIN)['answers'] == ['10.77.0.9']
    assert ok(net.run(**with_static))['changed'] is False

    removed = ok(net.run(**base))
    assert removed['action'] == 'reloaded' and removed['pid'] == pid and dnsmasq_pids(net.host) == [pid]
    assert lease_ips(net) == sorted([first_ip, STATIC_IP])
    # the static names are gone; db1 keeps resolving through vm2's lease, which is kept until it ends
    assert dns_query(first, GATEWAY, 'spare.%s' % DOMAIN)['answers'] == []
    assert dns_query(first, GATEWAY, 'db1.%s' % DOMAIN)['answers'] == [STATIC_IP]
    assert first.ping(GATEWAY) and second.ping(GATEWAY)

    # a change to the main configuration restarts dnsmasq; the lease file carries the leases over
    longer = net.args(dhcp={'lease_time': '2h'}, dns={'domain': DOMAIN})
    restarted = ok(net.run(**longer))
    assert restarted['action'] == 'restarted' and restarted['pid'] != pid and dnsmasq_pids(net.host) == [restarted['pid']]
    assert lease_ips(net) == sorted([first_ip, STATIC_IP])
    assert first.dhcp()['ip'] == first_ip


def test_a_dnsmasq_that_died_is_started_again_and_a_stale_pidfile_is_ignored(lab, network):
    net = network()
    args = net.args()
    pid = ok(net.run(**args))['pid']
    # simulate a crash and a pid file naming some other process
    processes.stop({pid: processes.start_time(pid)})
    sleeper = net.host.spawn(['sleep', '300'])
    try:
        with open(os.path.join(net.dirs['run_dir'], '%s.pid' % BRIDGE), 'w', encoding='ascii') as handle:
            handle.write('%d\n' % sleeper.pid)
        predicted = ok(net.run(check_mode=True, **args))
        assert predicted['action'] == 'started' and [c['action'] for c in predicted['changes']] == ['start']
        again = ok(net.run(**args))
        assert again['action'] == 'started' and dnsmasq_pids(net.host) == [again['pid']]
        assert sleeper.poll() is None  # the process the stale pid file named was not signalled
    finally:
        lab.stop_process(sleeper)


# --------------------------------------------------------------------------- absent, two networks

def test_absent_stops_the_daemon_and_removes_exactly_its_files(lab, network):
    net = network()
    os.makedirs(net.dirs['config_dir'])
    foreign = os.path.join(net.dirs['config_dir'], 'other.conf')
    with open(foreign, 'w', encoding='ascii') as handle:
        handle.write('# not ours\n')
    started = ok(net.run(**net.args(dhcp={'static_leases': [{'mac': STATIC_MAC, 'ip': STATIC_IP}]})))
    net.guest('vm1').dhcp()
    assert net.files() == ['etc/fcbr0.conf', 'etc/fcbr0.dhcp-hosts', 'etc/fcbr0.hosts', 'etc/other.conf',
                           'lib/fcbr0.leases', 'run/fcbr0.pid']
    absent = dict(net.dirs, bridge=BRIDGE, state='absent')
    predicted = ok(net.run(check_mode=True, **absent))
    removed = ok(net.run(**absent))
    for key in ('changed', 'changes', 'diff', 'action'):
        assert predicted[key] == removed[key], key
    assert removed['action'] == 'stopped' and removed['pid'] is None
    assert [(c['action'], c['details'].get('file')) for c in removed['changes']] == [
        ('stop', None), ('delete', 'config'), ('delete', 'dhcp_hosts'), ('delete', 'addn_hosts'), ('delete', 'leases'),
        ('delete', 'pidfile')]
    assert not processes.is_running(started['pid']) and dnsmasq_pids(net.host) == []
    assert net.files() == ['etc/other.conf']
    assert ok(net.run(**absent))['changed'] is False


def test_two_networks_on_one_host_each_serve_their_own_bridge(lab, network):
    one = network()
    two = network(bridge='fcbr1', cidr='10.78.0.0/24', gateway='10.78.0.1')
    first = ok(one.run(**one.args()))
    second = ok(two.run(**two.args()))
    assert sorted(dnsmasq_pids(one.host)) == sorted([first['pid'], second['pid']])
    lease_one = one.guest('vm1').dhcp()
    lease_two = two.guest('vm2').dhcp()
    assert lease_one['router'] == GATEWAY and ipaddress.ip_address(lease_one['ip']) in ipaddress.ip_network(CIDR)
    assert lease_two['router'] == '10.78.0.1' and ipaddress.ip_address(lease_two['ip']) in ipaddress.ip_network('10.78.0.0/24')
    ok(one.run(**dict(one.dirs, bridge=BRIDGE, state='absent')))
    assert dnsmasq_pids(one.host) == [second['pid']]


# --------------------------------------------------------------------------- refusals

BAD = [
    ({'cidr': '10.77.0.0/24', 'gateway': '10.77.0.1', 'dhcp': {'range_start': '10.77.1.10', 'range_end': '10.77.1.20'}},
     'dhcp.range_start/range_end', 'start is outside 10.77.0.0/24'),
    ({'dhcp': {'range_start': '10.77.0.1', 'range_end': '10.77.0.20'}}, 'dhcp.range_start/range_end', 'contains the gateway'),
    ({'dhcp': {'static_leases': [{'mac': STATIC_MAC, 'ip': '10.99.0.5'}]}}, 'dhcp.static_leases[0].ip', 'is outside 10.77.0.0/24'),
    ({'dhcp': {'static_leases': [{'mac': STATIC_MAC, 'ip': '10.77.0.200'}]}}, 'dhcp.static_leases[0].ip',
     'is inside the dynamic range 10.77.0.128-10.77.0.254'),
    ({'dhcp': {'static_leases': [{'mac': STATIC_MAC, 'ip': STATIC_IP}, {'mac': STATIC_MAC, 'ip': '10.77.0.6'}]}},
     'dhcp.static_leases[1].mac', 'already used by dhcp.static_leases[0]'),
    ({'dhcp': {'static_leases': [{'mac': STATIC_MAC, 'ip': STATIC_IP}, {'mac': 'aa:fc:00:00:00:06', 'ip': STATIC_IP}]}},
     'dhcp.static_leases[1].ip', 'already used by dhcp.static_leases[0]'),
    ({'dhcp': {'static_leases': [{'mac': '33:33:00:00:00:01', 'ip': STATIC_IP}]}}, 'dhcp.static_leases[0].mac', 'multicast bit set'),
    ({'bridge': 'fcbr7'}, 'bridge', 'no such link'),
    ({'cidr': '10.66.0.0/24', 'gateway': '10.66.0.1'}, 'bridge', 'it has 10.77.0.1/24'),
    ({'supervisor': 'systemd'}, 'supervisor', 'systemd is not running on this host'),
]


@pytest.mark.parametrize('bad, param, problem', BAD, ids=[item[1] + ':' + item[2][:24] for item in BAD])
def test_bad_input_fails_naming_the_parameter_and_changes_nothing(lab, network, bad, param, problem):
    net = network()
    before = snapshot(net.host)
    for check_mode in (True, False):
        result = net.run(check_mode=check_mode, **net.args(**bad))
        assert result.get('failed') is True
        assert "parameter '%s' (value " % param in result['msg'] and problem in result['msg'], result['msg']
    assert_unchanged(before, snapshot(net.host))
    assert net.files() == [] and dnsmasq_pids(net.host) == []


# --------------------------------------------------------------------------- systemd

@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed')
def test_the_systemd_unit_renders_and_verifies(lab, network, tmp_path):
    """PID 1 is not systemd here: render the unit for a real network and check it with systemd-analyze verify."""
    net = network()
    started = ok(net.run(**net.args(dns={'domain': DOMAIN})))
    sys.path.insert(0, module_path())
    try:
        from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_config  # pylint: disable=import-outside-toplevel
        from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(module_path())
    validator = Validator()
    spec = dnsmasq_config.spec_from_params(validator, dict(net.args(dns={'domain': DOMAIN}), unit_dir=str(tmp_path)))
    assert validator.ok, validator.messages
    dnsmasq = processes.cmdline(started['pid']).split()[0]
    dnsmasq = shutil.which(dnsmasq) or dnsmasq
    files = dnsmasq_config.desired_files(spec, dnsmasq, shutil.which('kill') or '/bin/kill', with_unit=True)
    # the configuration the unit points at is the one the module runs
    with open(started['files']['config'], encoding='utf-8') as handle:
        assert files[spec.paths.config] == handle.read()
    unit = spec.paths.unit
    assert os.path.basename(unit) == 'nqrust-dnsmasq-fcbr0.service'
    with open(unit, 'w', encoding='utf-8') as handle:
        handle.write(files[unit])
    done = subprocess.run(['systemd-analyze', 'verify', '--man=no', unit], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0 and (done.stdout + done.stderr).strip() == '', done.stdout + done.stderr
    test = subprocess.run([dnsmasq, '--test', '--conf-file=%s' % started['files']['config']], capture_output=True, text=True,
                          check=False, timeout=30)
    assert test.returncode == 0, test.stderr
