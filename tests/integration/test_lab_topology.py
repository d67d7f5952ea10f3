"""The lab's hosts, veth links and upstream host, proven with real traffic."""

import os

import pytest

import lab as lablib
from lab import residue


def test_two_hosts_on_a_veth_pair_exchange_traffic(lab):
    before = residue.root_links()
    a = lab.add_host('a')
    b = lab.add_host('b')
    link = lab.connect(a, 'eth0', b, 'eth1', addr_a='198.51.100.1/24', addr_b='198.51.100.2/24')
    assert link['ifname_a'] == 'eth0' and link['ifname_b'] == 'eth1'

    end_a, end_b = a.link('eth0'), b.link('eth1')
    assert end_a['linkinfo']['info_kind'] == 'veth' and end_b['linkinfo']['info_kind'] == 'veth'
    assert 'UP' in end_a['flags'] and 'UP' in end_b['flags']
    assert 'link_netnsid' in end_a and 'link_netnsid' in end_b, 'the peers live in different namespaces'
    assert b.link('eth0') is None and a.link('eth1') is None
    assert a.addresses('eth0') == ['198.51.100.1/24']
    assert b.addresses('eth1') == ['198.51.100.2/24']
    assert residue.root_links() == before, 'the pair was made inside the namespaces, never in the root one'

    assert a.ping('198.51.100.2')
    assert b.ping('198.51.100.1', count=2)
    assert not a.ping('198.51.100.3', timeout=1), 'nobody has .3: the ping must fail'

    listener = b.tcp_listen(8080)
    assert a.tcp_connect('198.51.100.2', 8080)
    assert not a.tcp_connect('198.51.100.2', 8081, timeout=1), 'nothing listens on 8081'
    listener.stop()
    assert not a.tcp_connect('198.51.100.2', 8080, timeout=1), 'the listener is stopped'


def test_hosts_are_isolated_until_connected(lab):
    a = lab.add_host('a')
    b = lab.add_host('b')
    a.add_address('lo', '192.0.2.10/32')
    b.add_address('lo', '192.0.2.20/32')
    assert a.ping('192.0.2.10')
    assert not a.ping('192.0.2.20', timeout=1)
    assert list(a.links()) == ['lo']


def test_etc_files_overlay_only_the_host(lab):
    with open('/etc/hosts', encoding='utf-8') as handle:
        machine_hosts = handle.read()
    host = lab.add_host('hv1', etc_files={'hosts': '127.0.0.1 localhost\n198.51.100.7 registry.lab.test\n'})
    assert host.run(['cat', '/etc/hosts']).stdout == '127.0.0.1 localhost\n198.51.100.7 registry.lab.test\n'
    assert os.path.isfile(os.path.join(lablib.ETC_NETNS, host.netns, 'hosts'))
    with open('/etc/hosts', encoding='utf-8') as handle:
        assert handle.read() == machine_hosts


def test_run_reports_failures_with_their_output(lab):
    host = lab.add_host('a')
    with pytest.raises(lablib.LabCommandError) as info:
        host.run(['sh', '-c', 'echo broken >&2; exit 3'])
    assert info.value.returncode == 3
    assert 'broken' in str(info.value) and host.netns in str(info.value)
    assert host.run(['sh', '-c', 'exit 4'], check=False).returncode == 4
    assert host.run(['cat'], input='fed through stdin').stdout == 'fed through stdin'
    with pytest.raises(lablib.LabError, match='timed out'):
        host.run(['sleep', '5'], timeout=0.5)


def test_commands_run_inside_the_namespace(lab):
    host = lab.add_host('a')
    lab.connect(host, 'veth7', host, 'veth8')
    names = host.run(['cat', '/proc/net/dev']).stdout
    assert 'veth7' in names and 'veth8' in names
    assert 'veth7' not in residue.root_links()
    host.sysctl('net.ipv4.ip_forward', 1)
    assert host.run(['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.strip() == '1'


def test_spawned_processes_are_stopped_by_teardown():
    with lablib.Lab() as instance:
        host = instance.add_host('a')
        proc = host.spawn(['sleep', '300'])
        lab_id = instance.lab_id
        assert proc.poll() is None
    assert proc.poll() is not None
    assert residue.is_clean(residue.residue(lab_id))


def test_upstream_plays_the_internet(lab):
    hv1 = lab.add_host('hv1')
    hv2 = lab.add_host('hv2')
    loner = lab.add_host('loner')
    upstream = lab.upstream(hv1, hv2)
    assert upstream.name == 'upstream' and upstream.netns == lab.prefix + 'upstream'
    assert lab.upstream() is upstream
    assert hv1.uplink['gateway'] == lablib.UPSTREAM_GATEWAY
    assert hv1.uplink['address'] != hv2.uplink['address']
    assert hv1.addresses('uplink0') == [hv1.uplink['address']]

    assert hv1.ping(lablib.UPSTREAM_GATEWAY)
    assert hv1.ping(lablib.INTERNET_ADDRESS), 'the default route leads to the "internet"'
    assert hv2.ping(hv1.uplink['address'].split('/')[0]), 'attached hosts share the upstream segment'
    assert not loner.ping(lablib.INTERNET_ADDRESS, timeout=1)

    upstream.tcp_listen(443, lablib.INTERNET_ADDRESS)
    assert hv2.tcp_connect(lablib.INTERNET_ADDRESS, 443)

    # the internet has no route back to private addresses: guests need NAT to get out
    hv1.add_address('lo', '10.99.0.1/32')
    private_source = hv1.run(['busybox', 'ping', '-c', '1', '-W', '1', '-I', '10.99.0.1', lablib.INTERNET_ADDRESS], check=False)
    assert private_source.returncode != 0


def test_named_lab_is_reused_by_id():
    lab_id = 'reuse' + os.urandom(3).hex()
    first = lablib.Lab(lab_id)
    try:
        first.add_host('hv1')
        first.connect('hv1', 'eth0', first.add_host('hv2'), 'eth0', '198.51.100.1/24', '198.51.100.2/24')
        first.detach()
        second = lablib.Lab(lab_id)
        assert second.reused
        assert sorted(second.hosts) == ['hv1', 'hv2']
        assert second.host('hv1').ping('198.51.100.2')
        assert second.add_host('hv1', exist_ok=True) is second.host('hv1')
        second.connect('hv1', 'eth0', 'hv2', 'eth0', '198.51.100.1/24', '198.51.100.2/24', exist_ok=True)
        with pytest.raises(lablib.LabError, match='already has a host'):
            second.add_host('hv1')
        second.teardown()
        second.teardown()
    finally:
        lablib.sweep(lab_ids=[lab_id])
    assert residue.is_clean(residue.residue(lab_id))


@pytest.mark.parametrize('call, message', [
    (lambda lb: lb.add_host('bad/name'), 'invalid host name'),
    (lambda lb: lb.connect(lb.add_host('a'), 'x' * 16, lb.add_host('b'), 'eth0'), 'invalid interface name'),
    (lambda lb: lb.connect(lb.add_host('a'), 'eth0', lb.add_host('b'), 'eth0', addr_a='10.0.0.300/24'), 'invalid address'),
    (lambda lb: lb.host('nobody'), 'has no host'),
])
def test_bad_input_is_refused(lab, call, message):
    with pytest.raises(lablib.LabError, match=message):
        call(lab)


def test_bad_lab_id_is_refused():
    with pytest.raises(lablib.LabError, match='invalid lab id'):
        lablib.Lab('has-dash')
