"""fc_bridge on lab hosts: check mode vs real run, idempotence, refusals, real traffic and bridged mode.

Every test builds its own hosts (network namespaces) and runs the module inside them with
lab.module_run (the integration lane runs these again with pyroute2 0.7, NQRUST_TARGET_PYTHON).
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from lab import kernel
from lab.module_run import run_module
from lab.topology import wait_ready

pytestmark = pytest.mark.module


# --------------------------------------------------------------------------- helpers

def expected_mac(name):
    """The documented default MAC: sha256 of 'nqrust.microvm/bridge/<machine id>/<name>', first 6 bytes,
    with the multicast bit cleared and the locally administered bit set."""
    with open('/etc/machine-id', encoding='ascii') as handle:
        machine_id = handle.read().strip()
    digest = bytearray(hashlib.sha256(('nqrust.microvm/bridge/%s/%s' % (machine_id, name)).encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ':'.join('%02x' % octet for octet in digest)


def fc_bridge(host, check_mode=False, **args):
    return run_module(host, 'fc_bridge', args, check_mode=check_mode, diff=True)


def converge_twice(host, **args):
    """Check mode, real run, second run: the check run predicts the real one, which the second run confirms."""
    predicted = fc_bridge(host, check_mode=True, **args)
    assert not predicted.get('failed'), predicted.get('msg')
    applied = fc_bridge(host, **args)
    assert not applied.get('failed'), applied.get('msg')
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == applied[key], key
    again = fc_bridge(host, **args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False and again['changes'] == [], again['changes']
    assert again['diff']['before'] == again['diff']['after']
    # what the first run said the host would look like is what the second run found
    assert applied['diff']['after'] == again['diff']['before']
    return predicted, applied, again


def ip_link(host, name):
    found = host.link(name)
    assert found is not None, '%s has no link %s' % (host.where, name)
    return found


def snapshot(host):
    """Links, addresses and routes of a host, without the fields that tick by themselves (timers, DAD state)."""
    links = []
    for item in host.ip_json('-d', 'link', 'show'):
        info = item.get('linkinfo', {})
        links.append((item['ifindex'], item['ifname'], info.get('info_kind'), item.get('master'), item.get('mtu'),
                      item.get('address'), 'UP' in item.get('flags', []), item.get('ifalias'),
                      json.dumps(dict((key, value) for key, value in info.get('info_data', {}).items()
                                      if not key.endswith('_timer')), sort_keys=True)))
    addresses = sorted((item['ifname'], addr['family'], addr['local'], addr['prefixlen'])
                       for item in host.ip_json('addr', 'show') for addr in item.get('addr_info', []))
    routes = []
    for family in ('-4', '-6'):
        for item in host.ip_json(family, 'route', 'show', 'table', 'all'):
            item.pop('expires', None)
            routes.append(json.dumps(item, sort_keys=True))
    return {'links': links, 'addresses': addresses, 'routes': sorted(routes)}


def settled_snapshot(host, timeout=10.0):
    """A snapshot once IPv6 duplicate address detection is over (it adds local routes as it finishes)."""
    deadline = time.monotonic() + timeout
    while True:
        tentative = [addr for item in host.ip_json('addr', 'show') for addr in item.get('addr_info', [])
                     if addr.get('tentative')]
        if not tentative or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return snapshot(host)


def assert_unchanged(host, before):
    """The host's links, addresses and routes are those of ``before``; the message lists what differs."""
    now = snapshot(host)
    problems = []
    for key in ('links', 'addresses', 'routes'):
        gone = [item for item in before[key] if item not in now[key]]
        new = [item for item in now[key] if item not in before[key]]
        if gone or new:
            problems.append('%s: gone %s, new %s' % (key, gone, new))
    assert not problems, '; '.join(problems)


def add_tap(host, name, bridge=None):
    host.ip('tuntap', 'add', 'dev', name, 'mode', 'tap')
    if bridge:
        host.ip('link', 'set', 'dev', name, 'master', bridge)
    host.set_up(name)


# --------------------------------------------------------------------------- create, tune, idempotence

def test_create_check_mode_predicts_real_run_and_second_run_is_unchanged(lab):
    hv = lab.add_host('hv')
    args = dict(name='fcbr0', addresses=['10.60.0.1/24', 'fd60::1/64'], mtu=1400, stp=False, forward_delay=0,
                multicast_snooping=False, txqueuelen=10000)

    predicted, applied, dummy = converge_twice(hv, **args)

    assert applied['changed'] is True
    assert [(c['action'], c['kind'], c['target']) for c in applied['changes']] == [
        ('create', 'bridge', 'fcbr0'), ('add', 'address', '10.60.0.1/24'), ('add', 'address', 'fd60::1/64'),
        ('up', 'bridge', 'fcbr0')]
    assert applied['diff']['before'] == 'name: fcbr0\nstate: absent\n'
    assert predicted['bridge']['ifindex'] is None and predicted['bridge']['addresses'] == ['10.60.0.1/24', 'fd60::1/64']

    link = ip_link(hv, 'fcbr0')
    data = link['linkinfo']['info_data']
    mac = expected_mac('fcbr0')
    assert link['address'] == mac
    assert link['mtu'] == 1400 and link['txqlen'] == 10000 and 'UP' in link['flags']
    assert data['stp_state'] == 0 and data['forward_delay'] == 0 and data['mcast_snooping'] == 0
    assert link['ifalias'] == 'nqrust.microvm'
    assert sorted(a for a in hv.addresses('fcbr0', family=None) if not a.startswith('fe80')) == ['10.60.0.1/24', 'fd60::1/64']

    bridge = applied['bridge']
    assert bridge['name'] == 'fcbr0' and bridge['ifindex'] == link['ifindex'] and bridge['mac'] == mac
    assert bridge['mtu'] == 1400 and bridge['txqueuelen'] == 10000 and bridge['addresses'] == ['10.60.0.1/24', 'fd60::1/64']
    assert bridge['ports'] == [] and bridge['uplink'] is None and bridge['managed'] is True
    assert bridge['stp'] is False and bridge['forward_delay'] == 0 and bridge['multicast_snooping'] is False
    assert bridge['vlan_filtering'] is False


def test_update_makes_the_address_list_exact_and_tunes_an_existing_bridge(lab):
    hv = lab.add_host('hv')
    hv.ip('link', 'add', 'br1', 'type', 'bridge', 'stp_state', '1', 'forward_delay', '1500')
    hv.add_address('br1', '10.61.0.1/24')
    hv.add_address('br1', '10.61.0.99/24')
    before = ip_link(hv, 'br1')

    predicted, applied, dummy = converge_twice(hv, name='br1', addresses=['10.61.0.1/24', '10.62.0.1/24'],
                                               stp=False, forward_delay=2.5, mac='02:aa:bb:cc:dd:01', mtu=9000)

    descriptions = [c['description'] for c in applied['changes']]
    assert descriptions[0] == "remove address 10.61.0.99/24 from bridge 'br1'"
    update = applied['changes'][1]
    assert update['action'] == 'update'
    assert update['details']['before'] == {'mac': before['address'], 'mtu': 1500, 'stp': True, 'forward_delay': 15}
    assert update['details']['after'] == {'mac': '02:aa:bb:cc:dd:01', 'mtu': 9000, 'stp': False, 'forward_delay': 2.5}
    assert "add address 10.62.0.1/24 to bridge 'br1'" in descriptions
    assert "bring bridge 'br1' up" in descriptions
    link = ip_link(hv, 'br1')
    assert link['ifindex'] == before['ifindex'], 'the bridge is changed in place'
    assert link['address'] == '02:aa:bb:cc:dd:01' and link['mtu'] == 9000
    assert link['linkinfo']['info_data']['stp_state'] == 0 and link['linkinfo']['info_data']['forward_delay'] == 250
    assert sorted(hv.addresses('br1')) == ['10.61.0.1/24', '10.62.0.1/24']
    assert predicted['bridge']['ifindex'] == before['ifindex']

    # addresses left out are not managed; an empty list removes all
    unmanaged = fc_bridge(hv, name='br1', mac='02:aa:bb:cc:dd:01')
    assert unmanaged['changed'] is False
    emptied = fc_bridge(hv, name='br1', mac='02:aa:bb:cc:dd:01', addresses=[])
    assert emptied['changed'] is True and hv.addresses('br1') == [] and emptied['bridge']['addresses'] == []


def test_default_mac_is_stable_across_recreation_and_ports(lab):
    kernel.require('tun')
    hv = lab.add_host('hv')
    first = fc_bridge(hv, name='fcbr5')
    mac = first['bridge']['mac']
    assert mac == expected_mac('fcbr5')
    assert int(mac.split(':')[0], 16) & 0x03 == 0x02, 'unicast, locally administered'

    add_tap(hv, 'tap5a', 'fcbr5')
    add_tap(hv, 'tap5b', 'fcbr5')
    assert ip_link(hv, 'fcbr5')['address'] == mac, 'ports joining do not change the MAC'

    gone = fc_bridge(hv, name='fcbr5', state='absent', force=True)
    assert gone['changed'] is True and gone['bridge'] is None and hv.link('fcbr5') is None
    again = fc_bridge(hv, name='fcbr5')
    assert again['changed'] is True and again['bridge']['mac'] == mac
    assert again['bridge']['ifindex'] != first['bridge']['ifindex']
    assert expected_mac('fcbr6') != mac


# --------------------------------------------------------------------------- deletion

def test_delete_refuses_a_bridge_with_ports_unless_forced(lab):
    kernel.require('tun')
    hv = lab.add_host('hv')
    fc_bridge(hv, name='fcbr0', addresses=['10.63.0.1/24'])
    add_tap(hv, 'tap0', 'fcbr0')
    add_tap(hv, 'tap1', 'fcbr0')
    before = settled_snapshot(hv)

    for check_mode in (True, False):
        refused = fc_bridge(hv, check_mode=check_mode, name='fcbr0', state='absent')
        assert refused['failed'] is True
        assert "parameter 'force' (value False)" in refused['msg']
        assert "bridge 'fcbr0' still has ports tap0, tap1" in refused['msg']
        assert 'force must be true' in refused['msg']
        assert_unchanged(hv, before)

    predicted = fc_bridge(hv, check_mode=True, name='fcbr0', state='absent', force=True)
    deleted = fc_bridge(hv, name='fcbr0', state='absent', force=True)
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == deleted[key]
    assert deleted['changes'][0]['details'] == {'ports': ['tap0', 'tap1']}
    assert deleted['diff']['after'] == 'name: fcbr0\nstate: absent\n'
    assert 'ports:\n  - tap0\n  - tap1\n' in deleted['diff']['before']
    assert hv.link('fcbr0') is None
    assert hv.link('tap0')['ifname'] == 'tap0' and 'master' not in hv.link('tap0'), 'ports are detached, not deleted'

    absent = fc_bridge(hv, name='fcbr0', state='absent')
    assert absent['changed'] is False and absent['changes'] == [] and absent['bridge'] is None


# --------------------------------------------------------------------------- refusals

def no_dad(*hosts):
    """Links made from now on skip IPv6 duplicate address detection (faster, steadier snapshots)."""
    for host in hosts:
        for scope in ('all', 'default'):
            host.sysctl('net.ipv6.conf.%s.accept_dad' % scope, 0)


def _prepare_refusals(lab):
    hv = lab.add_host('hv')
    no_dad(hv)
    lab.connect(hv, 'eth0', hv, 'peer0', addr_a='192.0.2.10/24')
    lab.connect(hv, 'eth1', hv, 'peer1')
    hv.ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'eth0')
    hv.ip('link', 'add', 'brother', 'type', 'bridge')
    hv.ip('link', 'set', 'dev', 'eth1', 'master', 'brother')
    hv.ip('link', 'add', 'fcbr0', 'type', 'bridge')
    return hv


REFUSALS = [
    ('name-too-long', dict(name='fcbr-much-too-long0'), 'name', "'fcbr-much-too-long0'", 'is 19 bytes long; interface name must be 1 to 15 bytes'),
    ('name-slash', dict(name='fc/br'), 'name', "'fc/br'", "contains '/'"),
    ('name-space', dict(name='fc br'), 'name', "'fc br'", 'contains whitespace'),
    ('bad-cidr', dict(name='fcbr0', addresses=['10.0.0.300/24']), 'addresses[0]', "'10.0.0.300/24'", 'CIDR must be an IPv4 or IPv6 address'),
    ('no-prefix', dict(name='fcbr0', addresses=['10.0.0.1']), 'addresses[0]', "'10.0.0.1'", 'no prefix length'),
    ('broadcast', dict(name='fcbr0', addresses=['10.0.0.255/24']), 'addresses[0]', "'10.0.0.255/24'", 'not the network or broadcast address'),
    ('duplicate', dict(name='fcbr0', addresses=['10.0.0.1/24', '10.0.0.1/24']), 'addresses', "['10.0.0.1/24', '10.0.0.1/24']",
     '10.0.0.1/24 is listed more than once'),
    ('mtu-low', dict(name='fcbr0', mtu=67), 'mtu', '67', 'MTU must be an integer from 68 to 65535'),
    ('mtu-high', dict(name='fcbr0', mtu=65536), 'mtu', '65536', 'MTU must be an integer from 68 to 65535'),
    ('mtu-ipv6', dict(name='fcbr0', mtu=1000, addresses=['fd00::1/64']), 'mtu', '1000', 'IPv6 needs an MTU of 1280 or more'),
    ('mac-multicast', dict(name='fcbr0', mac='01:00:5e:00:00:01'), 'mac', "'01:00:5e:00:00:01'", 'multicast bit set'),
    ('forward-delay', dict(name='fcbr0', forward_delay=31), 'forward_delay', '31.0', 'from 0 to 30'),
    ('forward-delay-stp', dict(name='fcbr0', stp=True, forward_delay=1), 'forward_delay', '1.0', 'below 2 s while stp is true'),
    ('pvid', dict(name='fcbr0', vlan_default_pvid=4095), 'vlan_default_pvid', '4095', 'from 0 (no default VLAN) to 4094'),
    ('txqueuelen', dict(name='fcbr0', txqueuelen=-1), 'txqueuelen', '-1', 'txqueuelen must be an integer from 0 to 4294967295'),
    ('not-a-bridge', dict(name='eth0'), 'name', "'eth0'", "'eth0' is a veth link"),
    ('not-a-bridge-absent', dict(name='eth0', state='absent', force=True), 'name', "'eth0'", 'the module never touches other devices'),
    ('uplink-missing', dict(name='fcbr0', uplink='eth9'), 'uplink', "'eth9'", 'no link of that name exists'),
    ('uplink-itself', dict(name='fcbr0', uplink='fcbr0'), 'uplink', "'fcbr0'", 'is the bridge itself'),
    ('uplink-enslaved', dict(name='fcbr0', uplink='eth1'), 'uplink', "'eth1'", "is already a port of 'brother'"),
    ('uplink-bridge', dict(name='fcbr0', uplink='brother'), 'uplink', "'brother'", 'is a bridge'),
    ('uplink-loopback', dict(name='fcbr0', uplink='lo'), 'uplink', "'lo'", 'is the loopback device'),
    ('uplink-mtu', dict(name='fcbr0', uplink='eth0', mtu=9000), 'mtu', '9000', "uplink 'eth0' has MTU 1500"),
    ('uplink-addresses', dict(name='fcbr0', uplink='eth0', addresses=['192.0.2.11/24']), 'addresses', "['192.0.2.11/24']",
     "leaves out 192.0.2.10/24 of uplink 'eth0'"),
]


@pytest.mark.parametrize('args, param, value, words', [item[1:] for item in REFUSALS], ids=[item[0] for item in REFUSALS])
def test_rejected_input_names_parameter_value_and_leaves_the_host_unchanged(lab, args, param, value, words):
    hv = _prepare_refusals(lab)
    before = settled_snapshot(hv)
    for check_mode in (True, False):
        result = fc_bridge(hv, check_mode=check_mode, **args)
        assert result.get('failed') is True, result
        assert "parameter '%s' (value %s" % (param, value) in result['msg'], result['msg']
        assert words in result['msg'], result['msg']
        assert_unchanged(hv, before)


def test_all_problems_are_reported_at_once(lab):
    hv = lab.add_host('hv')
    result = fc_bridge(hv, name='x' * 16, mtu=10, addresses=['nope'])
    assert result['failed'] is True
    assert result['msg'].startswith('3 invalid parameters: ')
    for param in ("'name'", "'mtu'", "'addresses[0]'"):
        assert param in result['msg']


def test_vlan_settings_fail_clearly_where_the_kernel_lacks_them(lab):
    available, dummy = kernel.check('vlan_filtering')
    if available:
        pytest.skip('this kernel has bridge VLAN filtering; test_fc_bridge_kernel.py covers it')
    hv = lab.add_host('hv')
    before = settled_snapshot(hv)
    created = fc_bridge(hv, name='fcbr0', vlan_filtering=True)
    assert created['failed'] is True
    assert 'vlan_filtering=true' in created['msg'] and 'no bridge VLAN filtering' in created['msg'], created['msg']
    assert 'EOPNOTSUPP' in created['msg'] and created['rolled_back'] is True
    assert_unchanged(hv, before)  # the bridge made before the failing step is deleted again

    # once a bridge exists, the kernel is known to lack the feature: refused before any change, check mode too
    fc_bridge(hv, name='fcbr0', vlan_filtering=False)
    before = settled_snapshot(hv)
    for check_mode in (True, False):
        refused = fc_bridge(hv, check_mode=check_mode, name='fcbr0', vlan_default_pvid=10)
        assert refused['failed'] is True
        assert "parameter 'vlan_default_pvid' (value 10)" in refused['msg'] and 'no bridge VLAN filtering' in refused['msg']
        assert_unchanged(hv, before)


# --------------------------------------------------------------------------- real traffic

def test_guest_on_a_tap_port_reaches_the_bridge_address(lab):
    kernel.require('tun')
    hv = lab.add_host('hv')
    converge_twice(hv, name='fcbr0', addresses=['10.64.0.1/24'], stp=False, forward_delay=0)
    add_tap(hv, 'tap-vm1', 'fcbr0')
    guest = lab.add_guest('vm1', hv, 'tap-vm1')
    guest.add_address('eth0', '10.64.0.2/24')

    assert guest.ping('10.64.0.1', count=2)
    listener = hv.tcp_listen(7001, '10.64.0.1')
    try:
        assert guest.tcp_connect('10.64.0.1', 7001)
    finally:
        listener.stop()
    result = fc_bridge(hv, name='fcbr0', addresses=['10.64.0.1/24'], stp=False, forward_delay=0)
    assert result['changed'] is False and result['bridge']['ports'] == ['tap-vm1']
    assert result['bridge']['operstate'] == 'UP'


# --------------------------------------------------------------------------- bridged mode

ECHO_SERVER = r'''
import socket, sys, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(8)
sys.stdout.write('listening\n'); sys.stdout.flush(); sys.stdout.close()
def serve(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)
while True:
    conn, peer = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''

# One TCP connection, a numbered line every 20 ms, each echoed back: how long did the
# longest silence last, and did the connection survive?  Runs until STOP_FILE exists.
PROBER = r'''
import json, os, socket, sys, time
address, port, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = socket.create_connection((address, port), timeout=5)
conn.settimeout(10)
sys.stdout.write('connected\n'); sys.stdout.flush()
sent = echoed = 0
last = time.monotonic()
longest = 0.0
error = None
try:
    while not os.path.exists(stop_file):
        sent += 1
        line = ('%d\n' % sent).encode()
        conn.sendall(line)
        data = b''
        while not data.endswith(b'\n'):
            chunk = conn.recv(64)
            if not chunk:
                raise ConnectionError('closed by the peer')
            data += chunk
        if data != line:
            raise ValueError('echo %r for %r' % (data, line))
        echoed += 1
        now = time.monotonic()
        longest = max(longest, now - last)
        last = now
        time.sleep(0.02)
except Exception as exc:
    error = '%s: %s' % (type(exc).__name__, exc)
sys.stdout.write(json.dumps({'sent': sent, 'echoed': echoed, 'longest_gap': longest, 'error': error}) + '\n')
'''


class Prober:
    """Echo traffic from ctl to hv over one TCP connection while something runs."""

    def __init__(self, lab, ctl, hv, address, port=7100):
        self.stop_file = os.path.join(lab.tmpdir, 'prober-stop')
        self.server = hv.spawn([sys.executable, '-c', ECHO_SERVER, '0.0.0.0', str(port)], stdout=subprocess.PIPE)
        wait_ready(self.server, 10, 'echo server in %s' % hv.where)
        self.client = ctl.spawn([sys.executable, '-c', PROBER, address, str(port), self.stop_file],
                                stdout=subprocess.PIPE)
        assert self.client.stdout.readline().strip() == b'connected'
        self.lab = lab

    def result(self):
        with open(self.stop_file, 'w', encoding='utf-8'):
            pass
        out = self.client.stdout.readline()
        self.client.wait(timeout=30)
        self.lab.stop_process(self.server)
        return json.loads(out)


def _bridged_lab(lab):
    """ctl --veth-- hv: hv's eth0 (192.0.2.10/24) is the uplink; hv's default route goes via ctl,
    which also has the 'far' address 198.51.100.1 that hv reaches only through that default route."""
    hv = lab.add_host('hv')
    ctl = lab.add_host('ctl')
    no_dad(hv, ctl)
    lab.connect(ctl, 'eth0', hv, 'eth0', addr_a='192.0.2.1/24', addr_b='192.0.2.10/24')
    ctl.add_address('lo', '198.51.100.1/32')
    hv.ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'eth0')
    hv.ip('route', 'add', '203.0.113.0/24', 'via', '192.0.2.1', 'dev', 'eth0', 'metric', '50', 'table', '100')
    return ctl, hv


def test_bridged_mode_moves_addresses_and_routes_and_the_controller_keeps_reaching_the_host(lab):
    ctl, hv = _bridged_lab(lab)
    uplink_mac = ip_link(hv, 'eth0')['address']
    assert ctl.ping('192.0.2.10') and hv.ping('198.51.100.1')
    predicted = fc_bridge(hv, check_mode=True, name='fcbr1', uplink='eth0', stp=False, forward_delay=0)
    assert hv.link('fcbr1') is None, 'check mode changes nothing'

    prober = Prober(lab, ctl, hv, '192.0.2.10')
    try:
        started = time.monotonic()
        applied = fc_bridge(hv, name='fcbr1', uplink='eth0', stp=False, forward_delay=0)
        took = time.monotonic() - started
        time.sleep(0.5)
    finally:
        traffic = prober.result()
    assert not applied.get('failed'), applied.get('msg')
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == applied[key], key

    # the controller's TCP session survived the move, with at most a short pause
    assert traffic['error'] is None, traffic
    assert traffic['echoed'] > 20 and traffic['longest_gap'] < 5.0, (traffic, took)

    move = applied['changes'][-1]
    assert (move['action'], move['kind'], move['target']) == ('migrate', 'uplink', 'eth0')
    assert move['details']['addresses'] == ['192.0.2.10/24']
    assert move['details']['routes'] == ['203.0.113.0/24 via 192.0.2.1 table 100 metric 50', 'default via 192.0.2.1']
    bridge = applied['bridge']
    assert bridge['ports'] == ['eth0'] and bridge['uplink'] == 'eth0' and bridge['addresses'] == ['192.0.2.10/24']
    assert bridge['mac'] == uplink_mac, 'in bridged mode the bridge takes the uplink MAC'
    assert sorted(bridge['routes']) == ['203.0.113.0/24 via 192.0.2.1 table 100 metric 50', 'default via 192.0.2.1']

    # the kernel agrees: eth0 is a port without addresses, the routes leave by the bridge
    assert ip_link(hv, 'eth0')['master'] == 'fcbr1' and hv.addresses('eth0') == []
    assert hv.addresses('fcbr1') == ['192.0.2.10/24']
    default = hv.ip_json('route', 'show', 'default')
    assert [(r['gateway'], r['dev']) for r in default] == [('192.0.2.1', 'fcbr1')]
    assert [r['dev'] for r in hv.ip_json('route', 'show', 'table', '100')] == ['fcbr1']
    # new traffic both ways, the far address only through the moved default route
    assert ctl.ping('192.0.2.10', count=2) and hv.ping('198.51.100.1', count=2)
    listener = hv.tcp_listen(7002)
    try:
        assert ctl.tcp_connect('192.0.2.10', 7002)
    finally:
        listener.stop()

    again = fc_bridge(hv, name='fcbr1', uplink='eth0', stp=False, forward_delay=0)
    assert again['changed'] is False and again['changes'] == []
    assert again['diff']['before'] == applied['diff']['after']


def test_bridged_mode_absent_hands_everything_back_to_the_uplink(lab):
    ctl, hv = _bridged_lab(lab)
    original = settled_snapshot(hv)
    converge_twice(hv, name='fcbr1', uplink='eth0', stp=False, forward_delay=0)

    prober = Prober(lab, ctl, hv, '192.0.2.10')
    try:
        predicted = fc_bridge(hv, check_mode=True, name='fcbr1', uplink='eth0', state='absent')
        removed = fc_bridge(hv, name='fcbr1', uplink='eth0', state='absent')
        time.sleep(0.5)
    finally:
        traffic = prober.result()
    assert not removed.get('failed'), removed.get('msg')
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == removed[key], key
    assert [c['action'] for c in removed['changes']] == ['release', 'delete']
    assert traffic['error'] is None and traffic['longest_gap'] < 5.0, traffic
    assert removed['bridge'] is None

    now = snapshot(hv)
    assert now['addresses'] == original['addresses']
    assert now['routes'] == original['routes']
    assert [item for item in now['links'] if item[1] != 'fcbr1'] == original['links']
    assert hv.ping('198.51.100.1') and ctl.ping('192.0.2.10')


def test_failed_migration_is_rolled_back(lab):
    """IPv6 is disabled for links made from now on, so the bridge cannot take the uplink's IPv6 route:
    the move fails at its last step, after the uplink was enslaved and its addresses and routes moved."""
    ctl, hv = _bridged_lab(lab)
    hv.ip('-6', 'route', 'add', '2001:db8:70::/64', 'via', 'fe80::1', 'dev', 'eth0')
    hv.sysctl('net.ipv6.conf.default.disable_ipv6', 1)
    before = settled_snapshot(hv)

    predicted = fc_bridge(hv, check_mode=True, name='fcbr1', uplink='eth0')
    assert predicted['changed'] is True and not predicted.get('failed')
    failed = fc_bridge(hv, name='fcbr1', uplink='eth0')

    assert failed['failed'] is True
    msg = failed['msg']
    assert "step 3 of 3 (move uplink 'eth0' into bridge 'fcbr1'" in msg, msg
    assert 'adding route -6 2001:db8:70::/64 via fe80::1 dev fcbr1' in msg and 'IPv6 is disabled' in msg, msg
    assert "undone: 'eth0' has its addresses and routes back and is not a port of 'fcbr1'" in msg, msg
    assert 'rolled back the 2 steps applied before it' in msg, msg
    assert failed['rolled_back'] is True and failed['changed'] is False
    assert failed['failed_change']['action'] == 'migrate'

    assert_unchanged(hv, before)
    assert hv.link('fcbr1') is None and 'master' not in ip_link(hv, 'eth0')
    assert ctl.ping('192.0.2.10') and hv.ping('198.51.100.1')
