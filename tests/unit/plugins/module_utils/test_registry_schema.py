# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import network_settings
from ansible_collections.nqrust.microvm.plugins.module_utils import registry_schema as schema


def test_versions_are_consecutive_from_one():
    assert [m.version for m in schema.MIGRATIONS] == list(range(1, len(schema.MIGRATIONS) + 1))
    assert schema.LATEST_VERSION == schema.MIGRATIONS[-1].version


def test_checksums_are_stable_and_distinct():
    sums = [m.checksum for m in schema.MIGRATIONS]
    assert len(set(sums)) == len(sums) and all(re.match('^[0-9a-f]{64}$', s) for s in sums)
    assert sums == [m.checksum for m in schema.MIGRATIONS]


def _sql():
    for migration in schema.MIGRATIONS:
        for step in migration.steps:
            if isinstance(step, str):
                yield migration.version, step


@pytest.mark.parametrize('forbidden', [r'\bDROP\b', r'\bRENAME\b', r'\bALTER\s+COLUMN\b', r'\bTRUNCATE\b',
                                       r'\bDELETE\s+FROM\b', r'\bUPDATE\s+\w+\s+SET\b'])
def test_migrations_only_add(forbidden):
    for version, step in _sql():
        assert not re.search(forbidden, step.upper()), (version, step)


def test_every_create_and_add_is_idempotent():
    for version, step in _sql():
        text = ' '.join(step.split()).upper()
        if text.startswith('CREATE'):
            assert 'IF NOT EXISTS' in text, step
        if 'ADD COLUMN' in text:
            assert 'ADD COLUMN IF NOT EXISTS' in text, step
        if 'ADD CONSTRAINT' in text:
            assert 'IF NOT EXISTS (SELECT 1 FROM PG_CONSTRAINT' in text, step


def test_the_seed_tables_are_the_seeds():
    network = ' '.join(schema.V1_SEED_TABLES[2].split())
    for column in ('id UUID PRIMARY KEY DEFAULT gen_random_uuid()', 'name VARCHAR(255) NOT NULL', 'description TEXT',
                   'type VARCHAR(50) NOT NULL', 'vlan_id INT', 'bridge_name VARCHAR(255) NOT NULL',
                   'host_id UUID REFERENCES host(id)', 'cidr VARCHAR(50)', 'gateway VARCHAR(50)',
                   'created_at TIMESTAMPTZ DEFAULT now()', 'updated_at TIMESTAMPTZ DEFAULT now()'):
        assert column in network
    vni = ' '.join(schema.V1_SEED_TABLES[3].split())
    for column in ('vm_id UUID NOT NULL REFERENCES vm(id) ON DELETE CASCADE',
                   'network_id UUID REFERENCES network(id) ON DELETE SET NULL', 'iface_id VARCHAR(255) NOT NULL',
                   'guest_mac VARCHAR(17)', 'host_dev_name VARCHAR(255)'):
        assert column in vni


def test_the_conflict_target_is_the_unique_index():
    index = ' '.join(schema.V3_KEYS[0].split())
    assert index.endswith('ON network %s' % schema.NETWORK_KEY_CONFLICT)


def test_modes_and_types():
    assert network_settings.MODES == ('nat', 'routed', 'isolated', 'bridged', 'open')
    assert network_settings.NETWORK_TYPES == ('bridge', 'vlan', 'overlay')


class _Info(object):
    server_version = 120010


class _OldConn(object):
    info = _Info()


def test_old_servers_are_refused_with_their_version():
    with pytest.raises(schema.RegistrySchemaError, match='PostgreSQL 13 or later; the server is version 12.10'):
        schema.migrate(_OldConn())


def test_unknown_target_versions_are_refused():
    with pytest.raises(schema.RegistrySchemaError, match='schema version 7 does not exist'):
        schema.migrate(_OldConn(), target=7)
