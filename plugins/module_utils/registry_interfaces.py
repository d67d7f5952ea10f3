# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""VM network interfaces in the registry (``vm_network_interface``): attach, detach, unique MACs.

A row is one Firecracker NIC: ``vm_id``, ``network_id``, ``iface_id``
(``eth0``), ``guest_mac`` and ``host_dev_name`` (the TAP), as the seed's
table and Firecracker's ``network-interfaces`` API name them.  A VM has one
row per ``iface_id``; a guest MAC is used by one row only (compared without
regard to case, the manager writes ``AA:FC:...``, the collection
``aa:fc:...``).  Both are unique indexes, so a race between two attaches ends
in a clear error, never in a duplicate.

When the ``vm`` row does not exist yet (a fleet run without the manager), it
is created with just an id and a name; a manager's ``vm`` table that needs
more columns refuses that, and the message says to create the VM in the
manager first.
"""

from __future__ import annotations

import datetime

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import (
    RegistryError,
    database_error_message,
)

INTERFACE_FIELDS = ('id', 'vm_id', 'network_id', 'iface_id', 'guest_mac', 'host_dev_name', 'created_at')
# what a diff shows; the network is shown by its own view (a new network's id differs between check and real run)
VIEW_FIELDS = ('vm_id', 'iface_id', 'guest_mac', 'host_dev_name')
_SELECT = 'SELECT id, vm_id, network_id, iface_id, guest_mac, host_dev_name, created_at FROM vm_network_interface'


class MacInUseError(RegistryError):
    """The guest MAC is already used by another interface."""


class VmRowError(RegistryError):
    """The VM row could not be created."""


def _iso(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.replace(tzinfo=None).isoformat() + 'Z'
    return value


def interface_record(row):
    record = dict(zip(INTERFACE_FIELDS, row))
    for key in ('id', 'vm_id', 'network_id'):
        if record[key] is not None:
            record[key] = str(record[key])
    record['created_at'] = _iso(record['created_at'])
    return record


def interface_view(record):
    if record is None:
        return {}
    view = dict((key, record.get(key)) for key in VIEW_FIELDS)
    if view.get('guest_mac'):
        view['guest_mac'] = view['guest_mac'].lower()
    return view


def get_interface(cur, vm_id, iface_id, lock=False):
    cur.execute(_SELECT + ' WHERE vm_id = %%s AND iface_id = %%s%s' % (' FOR UPDATE' if lock else ''), (vm_id, iface_id))
    row = cur.fetchone()
    return interface_record(row) if row is not None else None


def list_interfaces(cur, vm_id=None, network_id=None):
    where, args = [], []
    if vm_id is not None:
        where.append('vm_id = %s')
        args.append(vm_id)
    if network_id is not None:
        where.append('network_id = %s')
        args.append(network_id)
    cur.execute(_SELECT + (' WHERE ' + ' AND '.join(where) if where else '') + ' ORDER BY vm_id, iface_id', args)
    return [interface_record(row) for row in cur.fetchall()]


def mac_user(cur, mac, exclude_id=None):
    """The interface that uses this guest MAC (any case), other than ``exclude_id``; or None."""
    cur.execute(_SELECT + ' WHERE lower(guest_mac) = lower(%s) AND (%s::uuid IS NULL OR id <> %s::uuid)',
                (mac, exclude_id, exclude_id))
    row = cur.fetchone()
    return interface_record(row) if row is not None else None


def mac_in_use(mac, user):
    return MacInUseError("guest_mac %s is already used by VM %s iface %s (interface id %s): every guest MAC in the "
                         "registry must be unique" % (mac, user['vm_id'], user['iface_id'], user['id']))


def ensure_vm(cur, vm_id, name=None):
    """Create the ``vm`` row (id, name) when it does not exist; returns True when it was created."""
    cur.execute('SELECT 1 FROM vm WHERE id = %s', (vm_id,))
    if cur.fetchone() is not None:
        return False
    cur.execute('SAVEPOINT nqrust_vm_row')
    try:
        cur.execute('INSERT INTO vm (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING', (vm_id, name or vm_id))
        inserted = cur.rowcount
    except Exception as exc:  # pylint: disable=broad-except
        cur.execute('ROLLBACK TO SAVEPOINT nqrust_vm_row')
        raise VmRowError('VM %s is not in the registry\'s vm table and cannot be added with only an id and a name '
                         '(%s): create the VM in the NQRust manager first' % (vm_id, database_error_message(exc))) from None
    cur.execute('RELEASE SAVEPOINT nqrust_vm_row')
    return inserted != 0


def _unique_violation(exc):
    return getattr(exc, 'sqlstate', None) == '23505'


def insert_interface(cur, vm_id, network_id, iface_id, guest_mac, host_dev_name):
    try:
        cur.execute('SAVEPOINT nqrust_vni')
        cur.execute('INSERT INTO vm_network_interface (vm_id, network_id, iface_id, guest_mac, host_dev_name) '
                    'VALUES (%s, %s, %s, %s, %s) RETURNING id', (vm_id, network_id, iface_id, guest_mac, host_dev_name))
        new_id = cur.fetchone()[0]
        cur.execute('RELEASE SAVEPOINT nqrust_vni')
    except Exception as exc:  # pylint: disable=broad-except
        cur.execute('ROLLBACK TO SAVEPOINT nqrust_vni')
        _raise_clear(cur, exc, guest_mac, vm_id, iface_id)
        raise
    return str(new_id)


def update_interface(cur, interface_id, values):
    columns = [column for column in ('network_id', 'guest_mac', 'host_dev_name') if column in values]
    if not columns:
        return
    try:
        cur.execute('SAVEPOINT nqrust_vni')
        cur.execute('UPDATE vm_network_interface SET %s WHERE id = %%s' % ', '.join('%s = %%s' % column for column in columns),
                    [values[column] for column in columns] + [interface_id])
        cur.execute('RELEASE SAVEPOINT nqrust_vni')
    except Exception as exc:  # pylint: disable=broad-except
        cur.execute('ROLLBACK TO SAVEPOINT nqrust_vni')
        _raise_clear(cur, exc, values.get('guest_mac'), None, None)
        raise


def _raise_clear(cur, exc, guest_mac, vm_id, iface_id):
    """Turn a unique violation (a concurrent attach won) into the message a pre-check would give."""
    if not _unique_violation(exc):
        return
    if guest_mac:
        user = mac_user(cur, guest_mac)
        if user is not None:
            raise mac_in_use(guest_mac, user) from None
    if vm_id is not None:
        raise RegistryError('VM %s already has an interface %s (created at the same time by another run); run again '
                            'to update it' % (vm_id, iface_id)) from None


def get_interface_by_id(cur, interface_id):
    cur.execute(_SELECT + ' WHERE id = %s', (interface_id,))
    row = cur.fetchone()
    return interface_record(row) if row is not None else None


def delete_interface(cur, interface_id):
    cur.execute('DELETE FROM vm_network_interface WHERE id = %s', (interface_id,))
    return cur.rowcount
