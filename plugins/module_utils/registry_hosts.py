# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hypervisor hosts in the registry's ``host`` table.

The NQRust manager owns the ``host`` table (its agent registers each
hypervisor on start-up); the collection reads it to resolve the ``host`` of a
network, and can register hosts itself for fleets run without the manager
(``fc_registry_host``).  A host is named by its ``name`` or its ``id``; the
inventory plugin uses the name as the inventory host name and ``addr`` as
``ansible_host``.

All SQL is parameterized.
"""

from __future__ import annotations

import uuid

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import RegistryError
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import LOCK_NAMESPACE

LOCK_HOST_NAME = 2
KNOWN_HOSTS_SHOWN = 10


class UnknownHostError(RegistryError):
    """A host name or id that is not in the registry; the message names it and the hosts there are."""


def as_uuid(value):
    """The canonical text of a UUID, or None when ``value`` is not one."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        return None


def host_record(row):
    """``{'id', 'name', 'addr'}`` from a ``(id, name, addr)`` row."""
    host_id, name, addr = row[:3]
    return {'id': str(host_id), 'name': name, 'addr': addr}


def _known_hosts(cur):
    cur.execute('SELECT name FROM host ORDER BY name LIMIT %s', (KNOWN_HOSTS_SHOWN + 1,))
    names = [row[0] for row in cur.fetchall()]
    cur.execute('SELECT count(*) FROM host')
    total = cur.fetchone()[0]
    return names[:KNOWN_HOSTS_SHOWN], total


def resolve_host(cur, value, param='host'):
    """The host record for a name or an id; ``UnknownHostError`` naming it (and the known hosts) otherwise."""
    text = str(value)
    host_id = as_uuid(text)
    if host_id is not None:
        cur.execute('SELECT id, name, addr FROM host WHERE id = %s', (host_id,))
        row = cur.fetchone()
        if row is not None:
            return host_record(row)
    cur.execute('SELECT id, name, addr FROM host WHERE name = %s ORDER BY id', (text,))
    rows = cur.fetchall()
    if len(rows) == 1:
        return host_record(rows[0])
    if len(rows) > 1:
        raise UnknownHostError("%s '%s' is ambiguous: %d hosts in the registry have that name (ids %s); give the id instead"
                               % (param, text, len(rows), ', '.join(str(row[0]) for row in rows)))
    names, total = _known_hosts(cur)
    if total == 0:
        known = 'the registry has no hosts yet (register them with nqrust.microvm.fc_registry_host)'
    else:
        known = 'known hosts: %s%s' % (', '.join(names), ' and %d more' % (total - len(names)) if total > len(names) else '')
    raise UnknownHostError("unknown host: %s '%s' is not a host name or id in the registry's host table; %s"
                           % (param, text, known))


def lock_host_name(cur, name):
    """Serialise registrations of one host name (``host.name`` has no unique key: the manager's table)."""
    cur.execute('SELECT pg_advisory_xact_lock(%s, hashtext(%s))', (LOCK_NAMESPACE + LOCK_HOST_NAME, name))


def find_hosts_by_name(cur, name, lock=False):
    cur.execute('SELECT id, name, addr FROM host WHERE name = %%s ORDER BY id%s' % (' FOR UPDATE' if lock else ''), (name,))
    return [host_record(row) for row in cur.fetchall()]


def get_host(cur, host_id, lock=False):
    cur.execute('SELECT id, name, addr FROM host WHERE id = %%s%s' % (' FOR UPDATE' if lock else ''), (host_id,))
    row = cur.fetchone()
    return host_record(row) if row is not None else None


def insert_host(cur, name, addr, host_id=None):
    """Insert a host; the id is generated unless given.  ``addr`` defaults to the name (the manager needs one)."""
    cur.execute('INSERT INTO host (id, name, addr) VALUES (COALESCE(%s::uuid, gen_random_uuid()), %s, %s) '
                'RETURNING id, name, addr', (host_id, name, addr if addr else name))
    return host_record(cur.fetchone())


def update_host(cur, host_id, name, addr):
    cur.execute('UPDATE host SET name = %s, addr = %s WHERE id = %s RETURNING id, name, addr', (name, addr, host_id))
    return host_record(cur.fetchone())


def host_references(cur, host_id):
    """``(networks, vms)`` that reference the host (``vm.host_id`` only where the vm table has it)."""
    cur.execute('SELECT count(*) FROM network WHERE host_id = %s', (host_id,))
    networks = cur.fetchone()[0]
    cur.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'vm' AND column_name = 'host_id'")
    vms = 0
    if cur.fetchone() is not None:
        cur.execute('SELECT count(*) FROM vm WHERE host_id = %s', (host_id,))
        vms = cur.fetchone()[0]
    return networks, vms


def delete_host(cur, host_id):
    cur.execute('DELETE FROM host WHERE id = %s', (host_id,))
    return cur.rowcount


def list_hosts(cur):
    cur.execute('SELECT id, name, addr FROM host ORDER BY name, id')
    return [host_record(row) for row in cur.fetchall()]
