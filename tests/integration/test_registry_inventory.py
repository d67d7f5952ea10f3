"""The nqrust.microvm.registry inventory plugin through ansible-inventory against a real registry."""

import json
import os
import re
import secrets
import subprocess
import tempfile

import psycopg
import pytest
import yaml

from registry_testing import admin_execute, fresh_database

HV1 = '11111111-1111-4111-8111-111111111111'
HV2 = '22222222-2222-4222-8222-222222222222'
HV2_TWIN = '2bbbbbbb-2222-4222-8222-222222222222'
HV3 = '33333333-3333-4333-8333-333333333333'
NET_NAT = 'a0000000-0000-4000-8000-000000000001'
NET_VLAN = 'a0000000-0000-4000-8000-000000000002'
NET_BRIDGED = 'a0000000-0000-4000-8000-000000000003'
NET_LEGACY = 'a0000000-0000-4000-8000-000000000004'
NET_TWIN = 'a0000000-0000-4000-8000-000000000005'
TEMPLATE_NAME = "{{ lookup('ansible.builtin.pipe', 'touch /tmp/nqrust-inventory-injected') }}"

FLEET_SQL = """
INSERT INTO host (id, name, addr) VALUES
  ('%(HV1)s', 'hv1', '10.0.0.11'), ('%(HV2)s', 'hv2', '10.0.0.12'), ('%(HV2_TWIN)s', 'hv2', '10.0.0.22'),
  ('%(HV3)s', 'hv3', NULL);
INSERT INTO network (id, name, description, type, vlan_id, bridge_name, host_id, cidr, gateway, mode, uplink, mtu, dhcp, dns)
VALUES
  ('%(NET_NAT)s', 'fcbr0 Network', 'Default NAT network', 'bridge', NULL, 'fcbr0', '%(HV1)s', '192.168.18.0/24',
   '192.168.18.240', 'nat', 'eth0', NULL,
   '{"enabled": true, "range_start": "192.168.18.128", "range_end": "192.168.18.200", "lease_time": "12h",
     "static_leases": [{"mac": "02:fc:00:00:00:05", "ip": "192.168.18.5", "hostname": "db1"}]}',
   '{"enabled": true, "upstream": ["192.0.2.53"], "domain": "fc.internal"}'),
  ('%(NET_VLAN)s', 'Customer A', NULL, 'vlan', 100, 'fcbr0', '%(HV1)s', '10.100.0.0/24', '10.100.0.1', 'routed',
   NULL, 9000, NULL, NULL),
  ('%(NET_BRIDGED)s', 'LAN', NULL, 'bridge', NULL, 'fcbr1', '%(HV2)s', '192.168.1.0/24', '192.168.1.2', 'bridged',
   'eth1', NULL, '{"enabled": false}', NULL),
  ('%(NET_LEGACY)s', 'fcbr0 Network', 'Auto-registered from VM creation', 'bridge', NULL, 'fcbr0', '%(HV2)s',
   '192.168.50.240/24', NULL, 'nat', NULL, NULL, NULL, NULL),
  ('%(NET_TWIN)s', %(TEMPLATE)s, NULL, 'vlan', 7, 'fcbr0', '%(HV2_TWIN)s', NULL, NULL, 'isolated', NULL, NULL, NULL, NULL);
"""


def _empty_dhcp():
    return {'enabled': None, 'range_start': None, 'range_end': None, 'lease_time': None, 'static_leases': []}


def _empty_dns():
    return {'enabled': None, 'upstream': None, 'domain': None}


def _net(**kw):
    item = {'name': None, 'description': None, 'registry_id': None, 'type': 'bridge', 'bridge': None, 'mode': 'nat',
            'cidr': None, 'gateway': None, 'uplink': None, 'mtu': None, 'vlan_id': None, 'dhcp': _empty_dhcp(),
            'dns': _empty_dns(), 'state': 'present'}
    item.update(kw)
    return item


EXPECTED_HOSTVARS = {
    'hv1': {
        'ansible_host': '10.0.0.11',
        'fc_registry_host_id': HV1,
        'fc_networks': [
            _net(name='fcbr0 Network', description='Default NAT network', registry_id=NET_NAT, bridge='fcbr0', mode='nat',
                 cidr='192.168.18.0/24', gateway='192.168.18.240', uplink='eth0',
                 dhcp={'enabled': True, 'range_start': '192.168.18.128', 'range_end': '192.168.18.200', 'lease_time': '12h',
                       'static_leases': [{'mac': '02:fc:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}]},
                 dns={'enabled': True, 'upstream': ['192.0.2.53'], 'domain': 'fc.internal'}),
            _net(name='Customer A', registry_id=NET_VLAN, type='vlan', bridge='fcbr0', mode='routed', cidr='10.100.0.0/24',
                 gateway='10.100.0.1', mtu=9000, vlan_id=100),
        ],
    },
    'hv2': {
        'ansible_host': '10.0.0.12',
        'fc_registry_host_id': HV2,
        'fc_networks': [
            # a manager row with the bridge address as cidr: the network and its gateway
            _net(name='fcbr0 Network', description='Auto-registered from VM creation', registry_id=NET_LEGACY,
                 bridge='fcbr0', cidr='192.168.50.0/24', gateway='192.168.50.240'),
            _net(name='LAN', registry_id=NET_BRIDGED, bridge='fcbr1', mode='bridged', cidr='192.168.1.0/24',
                 gateway='192.168.1.2', uplink='eth1', dhcp=dict(_empty_dhcp(), enabled=False)),
        ],
    },
    'hv2-2bbbbbbb': {
        'ansible_host': '10.0.0.22',
        'fc_registry_host_id': HV2_TWIN,
        'fc_networks': [
            _net(name=TEMPLATE_NAME, registry_id=NET_TWIN, type='vlan', bridge='fcbr0', mode='isolated', vlan_id=7),
        ],
    },
    'hv3': {
        'fc_registry_host_id': HV3,
        'fc_networks': [],
    },
}

TEMPLATE_GROUP = 'fc_network_' + re.sub('[^a-z0-9_]+', '_', TEMPLATE_NAME.lower()).strip('_')

EXPECTED_GROUPS = {
    'fc_bridge_fcbr0': ['hv1', 'hv2', 'hv2-2bbbbbbb'],
    'fc_bridge_fcbr1': ['hv2'],
    'fc_mode_bridged': ['hv2'],
    'fc_mode_isolated': ['hv2-2bbbbbbb'],
    'fc_mode_nat': ['hv1', 'hv2'],
    'fc_mode_routed': ['hv1'],
    'fc_network_customer_a': ['hv1'],
    'fc_network_fcbr0_network': ['hv1', 'hv2'],
    'fc_network_lan': ['hv2'],
    TEMPLATE_GROUP: ['hv2-2bbbbbbb'],
    'fc_vlan_100': ['hv1'],
    'fc_vlan_7': ['hv2-2bbbbbbb'],
    # every host, hv3 (no networks) too: the group the collection's playbooks run on
    'hypervisors': ['hv1', 'hv2', 'hv2-2bbbbbbb', 'hv3'],
}


def unwrap(value):
    """ansible-inventory marks values from inventory plugins as not-to-be-templated: {"__ansible_unsafe": v} -> v."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((key, unwrap(item)) for key, item in value.items())
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


@pytest.fixture(scope='module', name='fleet')
def fleet_fixture(postgres):
    with fresh_database(postgres) as registry:
        values = dict(HV1=HV1, HV2=HV2, HV2_TWIN=HV2_TWIN, HV3=HV3, NET_NAT=NET_NAT, NET_VLAN=NET_VLAN,
                      NET_BRIDGED=NET_BRIDGED, NET_LEGACY=NET_LEGACY, NET_TWIN=NET_TWIN, TEMPLATE='%(template)s')
        hosts, networks = (FLEET_SQL % values).split(';', 1)
        with registry.connect() as conn:
            conn.execute(hosts)
            conn.execute(networks.strip().rstrip(';'), {'template': TEMPLATE_NAME})
        yield registry


@pytest.fixture(name='workdir')
def workdir_fixture():
    path = tempfile.mkdtemp(prefix='nqrust-inventory-')
    try:
        yield path
    finally:
        subprocess.run(['rm', '-rf', path], check=False)


def write_config(workdir, name='fleet.registry.yml', **options):
    config = {'plugin': 'nqrust.microvm.registry'}
    config.update(options)
    path = os.path.join(workdir, name)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(config, handle)
    return path


def inventory(ansible_env, config, env=None, extra=(), check=True):
    run_env = dict(ansible_env)
    run_env.update(env or {})
    run_env['ANSIBLE_INVENTORY_UNPARSED_FAILED'] = 'true'
    run_env['ANSIBLE_INVENTORY_ENABLED'] = 'nqrust.microvm.registry'
    proc = subprocess.run(['ansible-inventory', '-i', config, '--list'] + list(extra), env=run_env, capture_output=True,
                          text=True, timeout=180, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc
    return None, proc


def groups_of(listing):
    result = {}
    for name, group in listing.items():
        if name in ('_meta', 'all'):
            continue
        if group.get('hosts'):
            result[name] = sorted(group['hosts'])
    return result


def test_list_matches_the_expected_inventory(fleet, ansible_env, workdir):
    config = write_config(workdir, **fleet.options())
    listing, proc = inventory(ansible_env, config)
    assert unwrap(listing['_meta']['hostvars']) == EXPECTED_HOSTVARS
    assert groups_of(listing) == EXPECTED_GROUPS
    assert sorted(listing['all']['children']) == sorted(list(EXPECTED_GROUPS) + ['ungrouped'])   # ungrouped: empty
    assert "two hosts are named 'hv2'; the later one is listed as 'hv2-2bbbbbbb'" in proc.stderr
    # values from the database are marked unsafe: never templated
    name = listing['_meta']['hostvars']['hv2-2bbbbbbb']['fc_networks'][0]['name']
    assert name == {'__ansible_unsafe': TEMPLATE_NAME}


def test_the_pg_environment_and_a_dsn_work_too(fleet, ansible_env, workdir):
    config = write_config(workdir)
    listing, dummy = inventory(ansible_env, config, env=fleet.env(unix=True))
    assert unwrap(listing['_meta']['hostvars']) == EXPECTED_HOSTVARS
    config = write_config(workdir, 'dsn.registry.yaml', dsn=fleet.dsn())
    listing, dummy = inventory(ansible_env, config)
    assert sorted(listing['_meta']['hostvars']) == sorted(EXPECTED_HOSTVARS)


def test_constructed_compose_groups_keyed_groups_and_prefix(fleet, ansible_env, workdir):
    config = write_config(
        workdir, **dict(fleet.options(), group_prefix='nq_', group_by=['vlan', 'mode'], host_group='fleet_eu1',
                        compose={'fc_vlans': "fc_networks | map(attribute='vlan_id') | select | list",
                                 'bridges': "fc_networks | map(attribute='bridge') | unique | list"},
                        groups={'routers': "fc_networks | selectattr('mode', 'equalto', 'routed') | list | length > 0"},
                        keyed_groups=[{'key': "fc_networks | map(attribute='bridge') | list", 'prefix': 'uses'}]))
    listing, dummy = inventory(ansible_env, config)
    hostvars = unwrap(listing['_meta']['hostvars'])
    assert hostvars['hv1']['fc_vlans'] == [100] and hostvars['hv2']['bridges'] == ['fcbr0', 'fcbr1']
    groups = groups_of(listing)
    assert groups['routers'] == ['hv1']
    assert groups['uses_fcbr0'] == ['hv1', 'hv2', 'hv2-2bbbbbbb'] and groups['uses_fcbr1'] == ['hv2']
    assert groups['nq_vlan_100'] == ['hv1'] and groups['nq_mode_bridged'] == ['hv2']
    assert not [name for name in groups if name.startswith('fc_') or name.startswith('nq_network_')]
    assert groups['fleet_eu1'] == ['hv1', 'hv2', 'hv2-2bbbbbbb', 'hv3'] and 'hypervisors' not in groups
    # no host group at all, and a name Ansible would not take, said before the database is read
    config = write_config(workdir, 'nogroup.registry.yml', **dict(fleet.options(), host_group=''))
    listing, dummy = inventory(ansible_env, config)
    assert 'hypervisors' not in groups_of(listing) and groups_of(listing)['ungrouped'] == ['hv3']
    config = write_config(workdir, 'badgroup.registry.yml', **dict(fleet.options(), host_group='eu-1 hosts'))
    dummy, proc = inventory(ansible_env, config, check=False)
    assert proc.returncode != 0
    assert ("option 'host_group' (value 'eu-1 hosts'): a group name is letters, digits and _, not starting with a "
            "digit (or empty: no such group)") in proc.stderr


def test_strict_makes_a_bad_expression_fatal(fleet, ansible_env, workdir):
    lenient = write_config(workdir, **dict(fleet.options(), compose={'broken': 'no_such_variable.attribute'}))
    listing, dummy = inventory(ansible_env, lenient)
    assert 'broken' not in listing['_meta']['hostvars']['hv1']
    strict = write_config(workdir, 'strict.registry.yml',
                          **dict(fleet.options(), strict=True, compose={'broken': 'no_such_variable.attribute'}))
    dummy, proc = inventory(ansible_env, strict, check=False)
    assert proc.returncode != 0 and 'Could not set broken for host' in proc.stderr


def test_the_cache_serves_the_second_run_until_flushed(fleet, ansible_env, workdir):
    cache_dir = os.path.join(workdir, 'cache')
    config = write_config(workdir, **dict(fleet.options(), cache=True, cache_plugin='ansible.builtin.jsonfile',
                                          cache_connection=cache_dir, cache_timeout=3600))
    first, dummy = inventory(ansible_env, config)
    assert os.listdir(cache_dir), 'the first run filled the cache'
    extra = '44444444-4444-4444-8444-444444444444'
    fleet.execute("INSERT INTO host (id, name, addr) VALUES (%s, 'hv4', '10.0.0.14')", (extra,))
    try:
        cached, dummy = inventory(ansible_env, config)
        assert cached == first, 'the second run came from the cache'
        flushed, dummy = inventory(ansible_env, config, extra=['--flush-cache'])
        assert 'hv4' in flushed['_meta']['hostvars']
    finally:
        fleet.execute('DELETE FROM host WHERE id = %s', (extra,))


def _statements_logged(log_file, offset):
    with open(log_file, encoding='utf-8', errors='replace') as handle:
        handle.seek(offset)
        text = handle.read()
    entries = re.split(r'(?m)^(?=\d{4}-\d\d-\d\d )', text)   # a log entry starts with its timestamp
    return [entry.split('statement: ', 1)[1] for entry in entries if 'statement: ' in entry]


def test_one_query_for_the_whole_fleet_whatever_its_size(fleet, postgres, ansible_env, workdir):
    """Every statement of a read-only role is logged (log_statement=all); the plugin sends exactly one."""
    role = 'inv_%s' % secrets.token_hex(4)
    password = secrets.token_hex(12)
    admin_execute(postgres, "CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    admin_execute(postgres, 'ALTER ROLE %s SET log_statement = %s' % (role, "'all'"))
    admin_execute(postgres, 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s' % role, dbname=fleet.dbname)
    config = write_config(workdir, **dict(fleet.options(), login_user=role, login_password=password))
    added = []
    try:
        counts = []
        for size in (0, 40):
            with fleet.connect() as conn:
                for number in range(len(added), size):
                    host = conn.execute("INSERT INTO host (name, addr) VALUES (%s, %s) RETURNING id",
                                        ('extra%02d' % number, '10.9.0.%d' % number)).fetchone()[0]
                    conn.execute("INSERT INTO network (name, type, vlan_id, bridge_name, host_id) VALUES "
                                 "('n', 'bridge', NULL, 'fcbr0', %s), ('m', 'vlan', 5, 'fcbr0', %s)", (host, host))
                    added.append(host)
            offset = os.path.getsize(postgres.log_file)
            listing, dummy = inventory(ansible_env, config)
            assert len(listing['_meta']['hostvars']) == 4 + size
            statements = _statements_logged(postgres.log_file, offset)
            counts.append(len(statements))
            assert len(statements) == 1 and 'FROM host h' in statements[0] and 'LEFT JOIN network n' in statements[0], statements
        assert counts == [1, 1]
    finally:
        with fleet.connect() as conn:
            for host in added:
                conn.execute('DELETE FROM network WHERE host_id = %s', (host,))
                conn.execute('DELETE FROM host WHERE id = %s', (host,))
        admin_execute(postgres, 'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %s' % role, dbname=fleet.dbname)
        admin_execute(postgres, 'DROP ROLE %s' % role)


def test_values_from_the_registry_are_never_templated(fleet, ansible_env, workdir):
    config = write_config(workdir, **fleet.options())
    marker = '/tmp/nqrust-inventory-injected'
    if os.path.exists(marker):
        os.unlink(marker)
    env = dict(ansible_env, ANSIBLE_INVENTORY_ENABLED='nqrust.microvm.registry')
    proc = subprocess.run(['ansible', 'hv2-2bbbbbbb', '-i', config, '-m', 'ansible.builtin.debug',
                           '-a', 'msg={{ fc_networks[0].name }}'], env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert TEMPLATE_NAME in proc.stdout
    assert not os.path.exists(marker), 'a network name from the database was run as a template'


def test_failures_are_one_line_without_password(fleet, postgres, ansible_env, workdir):
    config = write_config(workdir, **dict(fleet.options(), login_password='Wr0ng-' + fleet.password[:10]))
    dummy, proc = inventory(ansible_env, config, check=False)
    assert proc.returncode != 0
    assert ('cannot connect to the registry database on host 127.0.0.1 port %d (database %s, user nqrust): '
            'password authentication failed for user "nqrust"' % (postgres.port, fleet.dbname)) in proc.stderr
    assert fleet.password[:10] not in proc.stderr + proc.stdout
    with fresh_database(postgres, migrate=False) as empty:
        config = write_config(workdir, 'empty.registry.yml', **empty.options())
        dummy, proc = inventory(ansible_env, config, check=False)
        assert proc.returncode != 0 and 'no (or an old) nqrust.microvm schema' in proc.stderr


def test_files_with_other_names_are_not_read(fleet, ansible_env, workdir):
    config = write_config(workdir, 'fleet.yml', **fleet.options())
    dummy, proc = inventory(ansible_env, config, check=False)
    assert proc.returncode != 0
    with psycopg.connect(fleet.dsn()) as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)
