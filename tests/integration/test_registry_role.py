"""The nqrust.microvm.registry role through ansible-playbook: migrate, register hosts and networks, idempotent."""

import os
import re
import subprocess
import tempfile

import pytest
import yaml

from registry_testing import fresh_database

PLAY = [{
    'name': 'Registry',
    'hosts': 'localhost',
    'connection': 'local',
    'gather_facts': False,
    'roles': [{
        'role': 'nqrust.microvm.registry',
        'vars': {
            'registry_hosts': [{'name': 'hv1', 'addr': '10.0.0.11'}, {'name': 'hv2'}],
            'registry_networks': [
                {'host': 'hv1', 'bridge_name': 'fcbr0', 'mode': 'nat', 'cidr': '192.168.18.240/24',
                 'dhcp': {'enabled': True, 'range_start': '192.168.18.128', 'range_end': '192.168.18.200'}},
                {'host': 'hv1', 'bridge': 'fcbr0', 'vlan_id': 100, 'name': 'Customer A', 'cidr': '10.100.0.0/24',
                 'mode': 'routed'},
                {'host': 'hv2', 'bridge_name': 'fcbr1', 'mode': 'bridged', 'uplink': 'eth1', 'state': 'registered'},
            ],
        },
    }],
}]


@pytest.fixture(name='workdir')
def workdir_fixture():
    path = tempfile.mkdtemp(prefix='nqrust-role-')
    try:
        yield path
    finally:
        subprocess.run(['rm', '-rf', path], check=False)


def playbook(ansible_env, workdir, play, env=None):
    path = os.path.join(workdir, 'registry.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(play, handle, sort_keys=False)
    run_env = dict(ansible_env)
    run_env.update(env or {})
    proc = subprocess.run(['ansible-playbook', '-i', 'localhost,', path], env=run_env, capture_output=True, text=True,
                          timeout=300, check=False)
    recap = re.search(r'localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', proc.stdout)
    return proc, (tuple(int(group) for group in recap.groups()) if recap else None)


def test_the_role_migrates_registers_and_then_changes_nothing(postgres, ansible_env, workdir):
    with fresh_database(postgres, migrate=False) as registry:
        proc, recap = playbook(ansible_env, workdir, PLAY, env=registry.env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert recap == (4, 3, 0, 0), proc.stdout
        assert registry.query('SELECT max(version) FROM nqrust_microvm_schema_version') == [(3,)]
        assert registry.query('SELECT name, addr FROM host ORDER BY name') == [('hv1', '10.0.0.11'), ('hv2', 'hv2')]
        rows = registry.query('SELECT h.name, n.bridge_name, n.vlan_id, n.name, n.mode, n.cidr, n.gateway '
                              'FROM network n JOIN host h ON h.id = n.host_id ORDER BY 1, 2, COALESCE(n.vlan_id, 0)')
        assert rows == [('hv1', 'fcbr0', None, 'fcbr0 Network', 'nat', '192.168.18.0/24', '192.168.18.240'),
                        ('hv1', 'fcbr0', 100, 'Customer A', 'routed', '10.100.0.0/24', '10.100.0.1'),
                        ('hv2', 'fcbr1', None, 'fcbr1 Network', 'bridged', None, None)]
        proc, recap = playbook(ansible_env, workdir, PLAY, env=registry.env())
        assert proc.returncode == 0 and recap == (4, 0, 0, 0), proc.stdout


def test_the_role_takes_connection_variables_and_validates_them(postgres, ansible_env, workdir):
    with fresh_database(postgres, migrate=False) as registry:
        options = registry.options()
        play = [{'hosts': 'localhost', 'connection': 'local', 'gather_facts': False, 'roles': [{
            'role': 'nqrust.microvm.registry',
            'vars': dict(('registry_%s' % key, value) for key, value in options.items())}]}]
        proc, recap = playbook(ansible_env, workdir, play)
        assert proc.returncode == 0 and recap == (2, 1, 0, 0), proc.stdout + proc.stderr
        assert password_free(proc, registry.password)
        play[0]['roles'][0]['vars']['registry_ssl_mode'] = 'sometimes'
        proc, recap = playbook(ansible_env, workdir, play)
        assert proc.returncode != 0 and 'registry_ssl_mode' in proc.stdout


def password_free(proc, password):
    return password not in proc.stdout and password not in proc.stderr
