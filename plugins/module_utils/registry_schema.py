# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The registry schema: versioned, transactional, idempotent migrations.

The seed's tables (``network``, ``vm_network_interface``, and the ``host``
and ``vm`` rows they reference) are a contract with the NQRust manager, which
reads the same rows: migrations only ever add tables, columns, constraints
and indexes -- they never rename, retype or drop anything.  Where the manager
made a table already, ``CREATE TABLE IF NOT EXISTS`` leaves it as it is and
the check after version 1 makes sure the seed's columns are there.

Versions (recorded in ``nqrust_microvm_schema_version``):

1. the seed's tables, exactly as the seed shows them, when they do not exist
   yet (``host`` and ``vm`` minimal: the manager owns them);
2. the collection's network settings: ``network.mode``, ``uplink``, ``mtu``,
   ``dhcp`` (JSONB), ``dns`` (JSONB), ``host.addr``; range checks that bind new
   rows only (``NOT VALID``), so a manager's old rows never block a migration;
3. the keys: one network per (host, bridge, VLAN) -- what auto-registration
   relies on (``INSERT ... ON CONFLICT``) -- unique guest MACs (case-blind),
   one row per (VM, iface id), and an index for VM counts.  Duplicates that
   would stop a unique index are reported by name first.

``migrate`` runs every pending version in one transaction under a
transaction-scoped advisory lock, so two runs at the same time serialise
(the second finds nothing to do) and a failed run leaves the database as it
was.  In check mode the transaction is rolled back: the migrations really
run, so check mode proves they apply, and nothing stays.
"""

from __future__ import annotations

import hashlib

from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import MODES
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import (
    RegistryError,
    database_error_message,
)


VERSION_TABLE = 'nqrust_microvm_schema_version'
# pg_advisory_xact_lock(key1, key2): key1 is 'nqru' as an int32, key2 says what is locked
LOCK_NAMESPACE = 0x6E717275
LOCK_SCHEMA = 1
MIN_SERVER_VERSION = 130000  # gen_random_uuid() is built in from PostgreSQL 13


# The seed's columns (name -> type family), checked after version 1 whoever made the tables.
SEED_COLUMNS = {
    'network': {
        'id': 'uuid', 'name': 'text', 'description': 'text', 'type': 'text', 'vlan_id': 'integer',
        'bridge_name': 'text', 'host_id': 'uuid', 'cidr': 'text', 'gateway': 'text',
        'created_at': 'timestamp', 'updated_at': 'timestamp',
    },
    'vm_network_interface': {
        'id': 'uuid', 'vm_id': 'uuid', 'network_id': 'uuid', 'iface_id': 'text', 'guest_mac': 'text',
        'host_dev_name': 'text', 'created_at': 'timestamp',
    },
    'host': {'id': 'uuid', 'name': 'text'},
    'vm': {'id': 'uuid'},
}

_TYPE_FAMILIES = {
    'uuid': ('uuid',),
    'text': ('character varying', 'text', 'character'),
    'integer': ('integer', 'smallint', 'bigint'),
    'timestamp': ('timestamp with time zone', 'timestamp without time zone'),
}


class RegistrySchemaError(RegistryError):
    """The schema is missing, too old, or cannot be migrated (the message says why and what to do)."""


def _sql_constraint(table, name, definition):
    """SQL adding a constraint when no constraint of that name exists on the table (no IF NOT EXISTS for those)."""
    return """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = '%(name)s' AND conrelid = '%(table)s'::regclass) THEN
        ALTER TABLE %(table)s ADD CONSTRAINT %(name)s %(definition)s;
    END IF;
END
$$""" % {'table': table, 'name': name, 'definition': definition}


V1_SEED_TABLES = [
    # host and vm belong to the NQRust manager; these minimal forms are only made when they are missing
    """
CREATE TABLE IF NOT EXISTS host (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now()
)""",
    """
CREATE TABLE IF NOT EXISTS vm (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now()
)""",
    # the seed's network registry, column for column
    """
CREATE TABLE IF NOT EXISTS network (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    description TEXT,
    type VARCHAR(50) NOT NULL,
    vlan_id INT,
    bridge_name VARCHAR(255) NOT NULL,
    host_id UUID REFERENCES host(id),
    cidr VARCHAR(50),
    gateway VARCHAR(50),
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now()
)""",
    """
CREATE TABLE IF NOT EXISTS vm_network_interface (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    vm_id UUID NOT NULL REFERENCES vm(id) ON DELETE CASCADE,
    network_id UUID REFERENCES network(id) ON DELETE SET NULL,
    iface_id VARCHAR(255) NOT NULL,
    guest_mac VARCHAR(17),
    host_dev_name VARCHAR(255),
    created_at TIMESTAMPTZ DEFAULT now()
)""",
]

V2_NETWORK_SETTINGS = [
    "ALTER TABLE host ADD COLUMN IF NOT EXISTS addr TEXT",
    "ALTER TABLE network ADD COLUMN IF NOT EXISTS mode VARCHAR(16) NOT NULL DEFAULT 'nat'",
    "ALTER TABLE network ADD COLUMN IF NOT EXISTS uplink VARCHAR(15)",
    "ALTER TABLE network ADD COLUMN IF NOT EXISTS mtu INT",
    "ALTER TABLE network ADD COLUMN IF NOT EXISTS dhcp JSONB",
    "ALTER TABLE network ADD COLUMN IF NOT EXISTS dns JSONB",
    _sql_constraint('network', 'network_mode_check',
                    "CHECK (mode IN (%s))" % ', '.join("'%s'" % mode for mode in MODES)),
    _sql_constraint('network', 'network_mtu_check', 'CHECK (mtu IS NULL OR mtu BETWEEN 68 AND 65535) NOT VALID'),
    _sql_constraint('network', 'network_vlan_id_check', 'CHECK (vlan_id IS NULL OR vlan_id BETWEEN 1 AND 4094) NOT VALID'),
    _sql_constraint('network', 'network_dhcp_check', "CHECK (dhcp IS NULL OR jsonb_typeof(dhcp) = 'object') NOT VALID"),
    _sql_constraint('network', 'network_dns_check', "CHECK (dns IS NULL OR jsonb_typeof(dns) = 'object') NOT VALID"),
]

V3_KEYS = [
    """
CREATE UNIQUE INDEX IF NOT EXISTS network_host_bridge_vlan_key
    ON network (host_id, bridge_name, (COALESCE(vlan_id, 0)))""",
    """
CREATE UNIQUE INDEX IF NOT EXISTS vm_network_interface_guest_mac_key
    ON vm_network_interface (lower(guest_mac)) WHERE guest_mac IS NOT NULL""",
    """
CREATE UNIQUE INDEX IF NOT EXISTS vm_network_interface_vm_iface_key
    ON vm_network_interface (vm_id, iface_id)""",
    """
CREATE INDEX IF NOT EXISTS vm_network_interface_network_id_idx
    ON vm_network_interface (network_id)""",
]

# The conflict target of auto-registration: it must match network_host_bridge_vlan_key exactly.
NETWORK_KEY_CONFLICT = '(host_id, bridge_name, (COALESCE(vlan_id, 0)))'


def check_seed_columns(cur):
    """Fail when a table made by someone else lacks a seed column or has it with an unrelated type."""
    cur.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
        (list(SEED_COLUMNS),))
    found = {}
    for table, column, data_type in cur.fetchall():
        found.setdefault(table, {})[column] = data_type
    problems = []
    for table in sorted(SEED_COLUMNS):
        for column, family in sorted(SEED_COLUMNS[table].items()):
            actual = found.get(table, {}).get(column)
            if actual is None:
                problems.append('%s.%s is missing' % (table, column))
            elif actual not in _TYPE_FAMILIES[family]:
                problems.append('%s.%s is %s, not %s' % (table, column, actual, family))
    if problems:
        raise RegistrySchemaError('the registry tables do not match the NQRust schema: %s; the collection adds '
                                  'columns but never changes existing ones, so fix these by hand first'
                                  % '; '.join(problems))


def check_no_duplicate_keys(cur):
    """Before the unique indexes of version 3: name the rows that would stop them."""
    problems = []
    cur.execute(
        "SELECT n.host_id::text, n.bridge_name, n.vlan_id, count(*), string_agg(n.id::text, ', ' ORDER BY n.id) "
        "FROM network n WHERE n.host_id IS NOT NULL "
        "GROUP BY n.host_id, n.bridge_name, n.vlan_id HAVING count(*) > 1 ORDER BY 1, 2, 3 LIMIT 10")
    for host_id, bridge, vlan, count, ids in cur.fetchall():
        problems.append('%d networks for host %s, bridge %s, VLAN %s (ids %s)'
                        % (count, host_id, bridge, vlan if vlan is not None else 'none', ids))
    cur.execute(
        "SELECT lower(guest_mac), count(*), string_agg(id::text, ', ' ORDER BY id) FROM vm_network_interface "
        "WHERE guest_mac IS NOT NULL GROUP BY lower(guest_mac) HAVING count(*) > 1 ORDER BY 1 LIMIT 10")
    for mac, count, ids in cur.fetchall():
        problems.append('guest MAC %s is used by %d interfaces (ids %s)' % (mac, count, ids))
    cur.execute(
        "SELECT vm_id::text, iface_id, count(*) FROM vm_network_interface "
        "GROUP BY vm_id, iface_id HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 10")
    for vm, iface, count in cur.fetchall():
        problems.append('VM %s has %d interfaces with iface_id %s' % (vm, count, iface))
    if problems:
        raise RegistrySchemaError('cannot add the registry keys (version 3), the data has duplicates: %s; '
                                  'merge or delete the duplicates, then migrate again' % '; '.join(problems))


class Migration(object):
    """One schema version: SQL statements and checks (callables taking a cursor), run in order."""

    def __init__(self, version, description, steps):
        self.version = version
        self.description = description
        self.steps = list(steps)

    @property
    def checksum(self):
        digest = hashlib.sha256()
        for step in self.steps:
            text = step if isinstance(step, str) else 'check:' + step.__name__
            digest.update(text.encode('utf-8'))
            digest.update(b'\0')
        return digest.hexdigest()

    def run(self, cur):
        for step in self.steps:
            if isinstance(step, str):
                cur.execute(step)
            else:
                step(cur)

    def to_dict(self):
        return {'version': self.version, 'description': self.description}


MIGRATIONS = (
    Migration(1, "the seed's tables: host, vm, network, vm_network_interface", V1_SEED_TABLES + [check_seed_columns]),
    Migration(2, 'network settings: mode, uplink, mtu, dhcp, dns; host address', V2_NETWORK_SETTINGS),
    Migration(3, 'keys: one network per host, bridge and VLAN; unique guest MACs; one row per VM iface',
              [check_no_duplicate_keys] + V3_KEYS),
)
LATEST_VERSION = MIGRATIONS[-1].version


def server_version_check(conn):
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        raise RegistrySchemaError('the registry needs PostgreSQL 13 or later; the server is version %d.%d'
                                  % (version // 10000, version % 10000))


def _version_table_exists(cur):
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
    return bool(cur.fetchone()[0])


def applied_versions(cur):
    """``{version: checksum}`` of the applied migrations (empty when the version table does not exist)."""
    if not _version_table_exists(cur):
        return {}
    cur.execute('SELECT version, checksum FROM %s' % VERSION_TABLE)
    return dict(cur.fetchall())


def current_version(cur):
    """The highest applied version, 0 for a database the collection never migrated."""
    applied = applied_versions(cur)
    return max(applied) if applied else 0


def require_current(cur):
    """Fail with what to do when the schema is older than this collection needs; return the version."""
    version = current_version(cur)
    if version < LATEST_VERSION:
        raise RegistrySchemaError(
            'the registry schema is at version %d, this collection needs version %d: run the '
            'nqrust.microvm.registry role or the nqrust.microvm.fc_registry_migrate module first'
            % (version, LATEST_VERSION))
    return version


def migrate(conn, target=None, check_mode=False):
    """Apply the pending migrations up to ``target`` (default: the latest) in one locked transaction.

    Returns ``{'changed', 'version_before', 'version', 'applied': [{'version', 'description'}],
    'warnings'}``.  Raises ``RegistrySchemaError`` (the transaction rolled back) when a
    migration cannot run.
    """
    target = LATEST_VERSION if target is None else target
    if target < 0 or target > LATEST_VERSION:
        raise RegistrySchemaError('schema version %s does not exist: the versions are 1 to %d' % (target, LATEST_VERSION))
    server_version_check(conn)
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT pg_advisory_xact_lock(%s, %s)', (LOCK_NAMESPACE, LOCK_SCHEMA))
            cur.execute(
                'CREATE TABLE IF NOT EXISTS %s ('
                ' version INT PRIMARY KEY,'
                ' description TEXT NOT NULL,'
                ' checksum TEXT NOT NULL,'
                ' applied_at TIMESTAMPTZ NOT NULL DEFAULT now())' % VERSION_TABLE)
            applied = applied_versions(cur)
            before = max(applied) if applied else 0
            warnings = []
            for migration in MIGRATIONS:
                recorded = applied.get(migration.version)
                if recorded is not None and recorded != migration.checksum:
                    warnings.append('schema version %d was applied from a different definition (checksum %s, '
                                    'this collection has %s)' % (migration.version, recorded[:12], migration.checksum[:12]))
            done = []
            for migration in MIGRATIONS:
                if migration.version > target or migration.version in applied:
                    continue
                try:
                    migration.run(cur)
                except RegistryError:
                    raise
                except Exception as exc:  # pylint: disable=broad-except
                    raise RegistrySchemaError('schema version %d (%s) could not be applied, nothing was changed: %s'
                                              % (migration.version, migration.description,
                                                 database_error_message(exc))) from None
                cur.execute('INSERT INTO %s (version, description, checksum) VALUES (%%s, %%s, %%s)' % VERSION_TABLE,
                            (migration.version, migration.description, migration.checksum))
                done.append(migration.to_dict())
    except BaseException:
        conn.rollback()
        raise
    if check_mode or not done:
        conn.rollback()
    else:
        conn.commit()
    after = max([before] + [item['version'] for item in done])
    return {
        'changed': bool(done),
        'version_before': before,
        'version': after,
        'applied': done,
        'warnings': warnings,
    }
