"""Registry migrations against a real PostgreSQL: versions, twice, concurrently, check mode, manager-made tables."""

import multiprocessing

import psycopg
import pytest

from registry_testing import collection_import_path, fresh_database

collection_import_path()

from ansible_collections.nqrust.microvm.plugins.module_utils import registry_schema  # noqa: E402  pylint: disable=wrong-import-position

SEED_NETWORK_COLUMNS = ['bridge_name', 'cidr', 'created_at', 'description', 'gateway', 'host_id', 'id', 'name', 'type',
                        'updated_at', 'vlan_id']


def _columns(registry, table):
    return registry.query("SELECT column_name, data_type, character_maximum_length FROM information_schema.columns "
                          "WHERE table_schema = 'public' AND table_name = %s ORDER BY column_name", (table,))


def test_first_migration_makes_the_seed_tables_with_the_seed_columns(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        result = registry.run('fc_registry_migrate', {}, diff=True)
        assert result['changed'] is True and result['version_before'] == 0 and result['version'] == 3
        assert [item['version'] for item in result['applied']] == [1, 2, 3]
        assert result['diff']['before'] == 'version: 0\n'
        network = dict((name, (kind, size)) for name, kind, size in _columns(registry, 'network'))
        # the seed's CREATE TABLE, column for column
        assert network['id'] == ('uuid', None)
        assert network['name'] == ('character varying', 255)
        assert network['description'] == ('text', None)
        assert network['type'] == ('character varying', 50)
        assert network['vlan_id'] == ('integer', None)
        assert network['bridge_name'] == ('character varying', 255)
        assert network['host_id'] == ('uuid', None)
        assert network['cidr'] == ('character varying', 50)
        assert network['gateway'] == ('character varying', 50)
        assert network['created_at'] == ('timestamp with time zone', None)
        assert network['updated_at'] == ('timestamp with time zone', None)
        # what the collection adds
        assert network['mode'] == ('character varying', 16)
        assert network['uplink'] == ('character varying', 15)
        assert network['mtu'] == ('integer', None)
        assert network['dhcp'] == ('jsonb', None) and network['dns'] == ('jsonb', None)
        vni = dict((name, (kind, size)) for name, kind, size in _columns(registry, 'vm_network_interface'))
        assert vni == {
            'id': ('uuid', None), 'vm_id': ('uuid', None), 'network_id': ('uuid', None),
            'iface_id': ('character varying', 255), 'guest_mac': ('character varying', 17),
            'host_dev_name': ('character varying', 255), 'created_at': ('timestamp with time zone', None),
        }
        fks = registry.query(
            "SELECT conrelid::regclass::text, confrelid::regclass::text, confdeltype FROM pg_constraint "
            "WHERE contype = 'f' ORDER BY 1, 2")
        assert fks == [('network', 'host', 'a'), ('vm_network_interface', 'network', 'n'), ('vm_network_interface', 'vm', 'c')]
        indexes = set(row[0] for row in registry.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"))
        assert {'network_host_bridge_vlan_key', 'vm_network_interface_guest_mac_key',
                'vm_network_interface_vm_iface_key', 'vm_network_interface_network_id_idx'} <= indexes
        versions = registry.query('SELECT version, length(checksum) FROM nqrust_microvm_schema_version ORDER BY 1')
        assert versions == [(1, 64), (2, 64), (3, 64)]


def test_second_run_changes_nothing(postgres):
    with fresh_database(postgres) as registry:
        before = registry.dump()
        result = registry.run('fc_registry_migrate', {}, diff=True)
        assert result['changed'] is False and result['applied'] == [] and result['version_before'] == 3
        assert result['diff']['before'] == result['diff']['after']
        assert registry.dump() == before


def test_check_mode_runs_the_migrations_and_rolls_them_back(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        before = registry.dump()
        result = registry.run('fc_registry_migrate', {}, check_mode=True, diff=True)
        assert result['changed'] is True and result['version'] == 3
        assert registry.dump() == before, 'check mode must leave the database as it was'
        real = registry.run('fc_registry_migrate', {}, diff=True)
        assert (real['changed'], real['applied'], real['diff']) == (result['changed'], result['applied'], result['diff'])


def test_migrating_to_a_version_then_to_the_latest(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        first = registry.run('fc_registry_migrate', {'version': 1})
        assert first['version'] == 1 and [item['version'] for item in first['applied']] == [1]
        assert 'mode' not in [row[0] for row in _columns(registry, 'network')]
        rest = registry.run('fc_registry_migrate', {})
        assert rest['version_before'] == 1 and [item['version'] for item in rest['applied']] == [2, 3]
        bad = registry.run('fc_registry_migrate', {'version': 9})
        assert bad['failed'] and "parameter 'version' (value 9)" in bad['msg'] and '1 to 3' in bad['msg']


def _migrate_worker(dsn, barrier, results):
    collection_import_path()
    from ansible_collections.nqrust.microvm.plugins.module_utils import registry_schema as schema  # pylint: disable=import-outside-toplevel,reimported
    try:
        with psycopg.connect(dsn, connect_timeout=30) as conn:
            barrier.wait(timeout=60)
            outcome = schema.migrate(conn)
        results.put(('ok', [item['version'] for item in outcome['applied']]))
    except Exception as exc:  # pylint: disable=broad-except
        results.put(('error', repr(exc)))


def test_four_concurrent_migrations_apply_each_version_once(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        ctx = multiprocessing.get_context('spawn')
        barrier = ctx.Barrier(4)
        results = ctx.Queue()
        workers = [ctx.Process(target=_migrate_worker, args=(registry.dsn(), barrier, results)) for dummy in range(4)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=120) for dummy in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert all(status == 'ok' for status, dummy in outcomes), outcomes
        applied = sorted(versions for dummy, versions in outcomes)
        assert applied == [[], [], [], [1, 2, 3]], 'exactly one run applies the migrations, the others find nothing to do'
        assert registry.query('SELECT version FROM nqrust_microvm_schema_version ORDER BY 1') == [(1,), (2,), (3,)]


def test_tables_the_manager_made_are_kept_and_extended(postgres):
    """A database the NQRust manager created first: its tables, types and rows stay, columns are added."""
    with fresh_database(postgres, migrate=False) as registry:
        registry.execute("""
            CREATE TABLE host (id UUID PRIMARY KEY, name TEXT NOT NULL, addr TEXT NOT NULL UNIQUE,
                               capabilities_json JSONB NOT NULL DEFAULT '{}'::jsonb, last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now());
            CREATE TABLE vm (id UUID PRIMARY KEY, name TEXT NOT NULL, api_sock TEXT NOT NULL, host_id UUID NOT NULL REFERENCES host(id));
            CREATE TABLE network (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), name TEXT NOT NULL, description TEXT,
                                  type TEXT NOT NULL, vlan_id INTEGER, bridge_name TEXT NOT NULL,
                                  host_id UUID REFERENCES host(id) ON DELETE CASCADE, cidr TEXT, gateway TEXT,
                                  created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
            CREATE TABLE vm_network_interface (id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                                  vm_id UUID NOT NULL REFERENCES vm(id) ON DELETE CASCADE,
                                  network_id UUID REFERENCES network(id) ON DELETE SET NULL, iface_id TEXT NOT NULL,
                                  guest_mac TEXT, host_dev_name TEXT, created_at TIMESTAMPTZ DEFAULT now());
            INSERT INTO host (id, name, addr) VALUES ('bbab8c75-f516-47ec-987a-828422b2ee5a', 'hv1', '10.0.0.11:9090');
            INSERT INTO network (id, name, description, type, bridge_name, host_id, cidr, gateway)
                 VALUES ('b1ed8ab4-cf82-4401-8393-6638cf978dd5', 'fcbr0 Network', 'Auto-registered from VM creation',
                         'bridge', 'fcbr0', 'bbab8c75-f516-47ec-987a-828422b2ee5a', '192.168.18.0/24', '192.168.18.240');
        """)
        before_types = _columns(registry, 'network')
        result = registry.run('fc_registry_migrate', {})
        assert result['changed'] is True, result
        after = dict((name, kind) for name, kind, dummy in _columns(registry, 'network'))
        for name, kind, dummy in before_types:
            assert after[name] == kind, 'the manager\'s column %s kept its type' % name
        assert registry.query('SELECT name, mode, cidr, gateway FROM network') == [
            ('fcbr0 Network', 'nat', '192.168.18.0/24', '192.168.18.240')]
        assert registry.query('SELECT name, addr FROM host') == [('hv1', '10.0.0.11:9090')]
        assert 'capabilities_json' in [row[0] for row in _columns(registry, 'host')]


def test_duplicates_that_block_a_key_are_named_and_nothing_changes(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        registry.run('fc_registry_migrate', {'version': 2})
        registry.execute("""
            INSERT INTO host (id, name) VALUES ('bbab8c75-f516-47ec-987a-828422b2ee5a', 'hv1');
            INSERT INTO network (id, name, type, bridge_name, host_id) VALUES
              ('11111111-1111-4111-8111-111111111111', 'a', 'bridge', 'fcbr0', 'bbab8c75-f516-47ec-987a-828422b2ee5a'),
              ('22222222-2222-4222-8222-222222222222', 'b', 'bridge', 'fcbr0', 'bbab8c75-f516-47ec-987a-828422b2ee5a');
        """)
        before = registry.dump()
        result = registry.run('fc_registry_migrate', {})
        assert result['failed'] is True
        assert 'duplicates' in result['msg'] and 'bridge fcbr0' in result['msg']
        assert '11111111-1111-4111-8111-111111111111' in result['msg'] and '22222222-2222-4222-8222-222222222222' in result['msg']
        assert registry.dump() == before


def test_a_table_without_a_seed_column_is_refused_not_altered(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        registry.execute('CREATE TABLE host (id UUID PRIMARY KEY, name TEXT NOT NULL)')
        registry.execute('CREATE TABLE network (id UUID PRIMARY KEY, name TEXT NOT NULL, bridge_name INT)')
        before = registry.dump()
        result = registry.run('fc_registry_migrate', {})
        assert result['failed'] is True
        assert 'network.bridge_name is integer, not text' in result['msg'] and 'network.type is missing' in result['msg']
        assert registry.dump() == before


def test_modules_refuse_an_unmigrated_registry_with_what_to_do(postgres):
    with fresh_database(postgres, migrate=False) as registry:
        result = registry.run('fc_network_registry_info', {})
        assert result['failed'] is True
        assert 'schema is at version 0' in result['msg'] and 'nqrust.microvm.registry role' in result['msg']


def test_latest_version_matches_the_migrations():
    versions = [migration.version for migration in registry_schema.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1)) and registry_schema.LATEST_VERSION == versions[-1]


@pytest.mark.parametrize('table', ['network', 'vm_network_interface'])
def test_migrations_never_drop_or_rename(table):
    for migration in registry_schema.MIGRATIONS:
        for step in migration.steps:
            if isinstance(step, str):
                text = step.upper()
                assert 'DROP ' not in text and 'RENAME' not in text and 'ALTER COLUMN' not in text, (table, step)
