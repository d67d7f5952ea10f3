"""``python -m lab``: up (idempotent), info, exec, guest, pg-up/pg-info, down, sweep, probe."""

import json
import os
import subprocess
import sys

import psycopg
import pytest

from lab import residue

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPEC = '''
hosts:
  hv1:
    etc_files: {hosts: "127.0.0.1 localhost\\n"}
    sysctls: {net.ipv4.ip_forward: 1}
  hv2:
    routes: [{to: 10.50.0.0/24, via: 198.51.100.1}]
links:
  - {a: hv1, ifname_a: eth1, addr_a: 198.51.100.1/24, b: hv2, ifname_b: eth1, addr_b: 198.51.100.2/24}
upstream: [hv1]
'''


def cli(*args, check=True):
    result = subprocess.run([sys.executable, '-m', 'lab'] + list(args), capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=TESTS), check=False)
    if check and result.returncode != 0:
        pytest.fail('python -m lab %s failed (%s): %s %s' % (' '.join(args), result.returncode, result.stdout, result.stderr))
    return result


@pytest.fixture(name='lab_id')
def lab_id_fixture():
    lab_id = 'cli' + os.urandom(3).hex()
    yield lab_id
    cli('down', '--lab-id', lab_id, check=False)
    cli('sweep', '--lab-id', lab_id, check=False)


def test_up_is_idempotent_and_down_removes_everything(tmp_path, lab_id):
    root_links = residue.root_links()
    spec = tmp_path / 'lab.yml'
    spec.write_text(SPEC)
    first = json.loads(cli('up', '--lab-id', lab_id, '--spec', str(spec)).stdout)
    assert first['lab_id'] == lab_id
    assert {name: host['netns'] for name, host in first['hosts'].items()} == {
        'hv1': 'nql-%s-hv1' % lab_id, 'hv2': 'nql-%s-hv2' % lab_id, 'upstream': 'nql-%s-upstream' % lab_id}
    assert first['hosts']['hv1']['uplink']['gateway'] == '203.0.113.1'

    assert cli('exec', '--lab-id', lab_id, 'hv2', '--', 'busybox', 'ping', '-c', '1', '-W', '2', '198.51.100.1').returncode == 0
    assert cli('exec', '--lab-id', lab_id, 'hv1', '--', 'busybox', 'ping', '-c', '1', '-W', '2', '192.0.2.1').returncode == 0
    assert cli('exec', '--lab-id', lab_id, 'hv1', 'cat', '/proc/sys/net/ipv4/ip_forward').stdout.strip() == '1'
    assert cli('exec', '--lab-id', lab_id, 'hv1', '--', 'sh', '-c', 'exit 7', check=False).returncode == 7
    routes = json.loads(cli('exec', '--lab-id', lab_id, 'hv2', '--', 'ip', '-j', 'route', 'show', '10.50.0.0/24').stdout)
    assert routes[0]['gateway'] == '198.51.100.1'

    again = json.loads(cli('up', '--lab-id', lab_id, '--spec', str(spec)).stdout)
    assert again['hosts'] == first['hosts'] and again['links'] == first['links']
    assert json.loads(cli('info', '--lab-id', lab_id).stdout)['hosts'] == first['hosts']

    down = json.loads(cli('down', '--lab-id', lab_id).stdout)
    assert sorted(down['namespaces']) == sorted(host['netns'] for host in first['hosts'].values())
    assert residue.is_clean(residue.residue(lab_id, root_links))
    assert cli('info', '--lab-id', lab_id, check=False).returncode == 1


def test_guest_and_postgres_belong_to_the_lab(tmp_path, lab_id):
    spec = tmp_path / 'lab.yml'
    spec.write_text('hosts: [hv1]\n')
    cli('up', '--lab-id', lab_id, '--spec', str(spec))
    for argv in (['link', 'add', 'br0', 'type', 'bridge'], ['addr', 'add', '10.60.0.1/24', 'dev', 'br0'], ['link', 'set', 'br0', 'up'],
                 ['tuntap', 'add', 'dev', 'tap0', 'mode', 'tap'], ['link', 'set', 'tap0', 'master', 'br0', 'up']):
        cli('exec', '--lab-id', lab_id, 'hv1', '--', 'ip', *argv)
    missing = cli('guest', '--lab-id', lab_id, '--name', 'vm1', '--host', 'hv1', '--tap', 'tap9', check=False)
    assert missing.returncode == 1 and 'TAP tap9 does not exist' in missing.stderr
    guest = json.loads(cli('guest', '--lab-id', lab_id, '--name', 'vm1', '--host', 'hv1', '--tap', 'tap0').stdout)
    assert guest['netns'] == 'nql-%s-vm1' % lab_id and guest['tap'] == 'tap0'
    assert cli('exec', '--lab-id', lab_id, 'vm1', '--', 'ip', 'addr', 'add', '10.60.0.5/24', 'dev', 'eth0').returncode == 0
    assert cli('exec', '--lab-id', lab_id, 'vm1', '--', 'busybox', 'ping', '-c', '1', '-W', '2', '10.60.0.1').returncode == 0, \
        'the relay outlives the command that started it'

    info = json.loads(cli('pg-up', '--lab-id', lab_id).stdout)
    assert json.loads(cli('pg-up', '--lab-id', lab_id).stdout)['port'] == info['port'], 'pg-up re-uses the running server'
    assert json.loads(cli('pg-info', '--lab-id', lab_id).stdout)['dsn'] == info['dsn']
    with psycopg.connect(info['dsn'], connect_timeout=10) as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('nqrust',)
    with psycopg.connect(info['dsn_unix'], connect_timeout=10):
        pass

    down = json.loads(cli('down', '--lab-id', lab_id).stdout)
    assert down['postgres'] and any('tap_relay.py' in item for item in down['processes'])
    assert residue.is_clean(residue.residue(lab_id))
    assert not residue.pgrep(info['datadir'])


def test_a_failed_up_removes_the_lab_it_started(tmp_path, lab_id):
    spec = tmp_path / 'lab.yml'
    spec.write_text('hosts: [hv1]\nlinks:\n  - {a: hv1, ifname_a: eth0, b: nohost, ifname_b: eth0}\n')
    result = cli('up', '--lab-id', lab_id, '--spec', str(spec), check=False)
    assert result.returncode == 1 and "no host 'nohost'" in result.stderr
    assert residue.is_clean(residue.residue(lab_id))
    spec.write_text('hosts: [hv1]\nbogus: 1\n')
    result = cli('up', '--lab-id', lab_id, '--spec', str(spec), check=False)
    assert result.returncode == 1 and 'unknown key(s) bogus' in result.stderr


def test_probe_reports_kernel_features():
    report = json.loads(cli('probe').stdout)
    assert set(report) == {'8021q', 'vlan_filtering', 'tun', 'bridge'}
    assert report['tun']['available'] is True and report['bridge']['available'] is True
    for feature in report.values():
        assert isinstance(feature['available'], bool) and feature['reason']
