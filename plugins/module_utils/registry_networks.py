# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Networks in the registry: records, parameterized SQL, auto-registration (the rules for values: network_settings.py).

Records use the NQRust manager's field names (``GET /v1/networks``): ``id``,
``name``, ``description``, ``type``, ``vlan_id``, ``bridge_name``,
``host_id``, ``cidr``, ``gateway``, ``created_at``, ``updated_at``; then the
collection's settings ``mode``, ``uplink``, ``mtu``, ``dhcp``, ``dns``; then
``host_name`` and ``vm_count`` (``GET /v1/networks/{id}/vms/count``).

A network is identified by its ``id`` or by its key (host, bridge, VLAN):
the unique index ``network_host_bridge_vlan_key`` makes the key unique, and
auto-registration is ``INSERT ... ON CONFLICT DO NOTHING`` on it, so any
number of concurrent registrations of one network leave one row and raise
no error.

Deleting a network locks its row (``FOR UPDATE``) before counting the VM
interfaces attached to it; attaching takes a ``FOR KEY SHARE`` lock on the
same row (as the foreign key does), so a delete and an attach never
interleave: either the delete sees the new interface and refuses, or the
attach finds the network gone.

``cidr`` is stored as the network (``192.168.18.0/24``) and ``gateway`` as an
address (``192.168.18.240``), as the seed's API shows them.  The
``192.168.18.240/24`` form (the bridge's address with prefix) is accepted as
``cidr`` too: it means network ``192.168.18.0/24`` with that gateway.

Column names in SQL come only from the constants of this file; every value
is a query parameter.
"""

from __future__ import annotations

import datetime
import ipaddress
import json

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import RegistryError
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import NETWORK_KEY_CONFLICT

API_FIELDS = ('id', 'name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id', 'cidr', 'gateway',
              'created_at', 'updated_at')
SETTINGS_FIELDS = ('mode', 'uplink', 'mtu', 'dhcp', 'dns')
EXTRA_FIELDS = ('host_name', 'vm_count')
RECORD_FIELDS = API_FIELDS + SETTINGS_FIELDS + EXTRA_FIELDS
# columns the collection writes; JSONB ones are cast from text
WRITABLE_COLUMNS = ('name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id', 'cidr', 'gateway',
                    'mode', 'uplink', 'mtu', 'dhcp', 'dns')
JSONB_COLUMNS = ('dhcp', 'dns')
# what a diff shows: everything but generated values (id, timestamps) and counts
VIEW_FIELDS = ('name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id', 'host_name', 'cidr', 'gateway',
               'mode', 'uplink', 'mtu', 'dhcp', 'dns')

AUTO_DESCRIPTION = 'Auto-registered from VM creation'

_SELECT = """
SELECT n.id, n.name, n.description, n.type, n.vlan_id, n.bridge_name, n.host_id, n.cidr, n.gateway,
       n.created_at, n.updated_at, n.mode, n.uplink, n.mtu, n.dhcp, n.dns, h.name,
       (SELECT count(DISTINCT i.vm_id) FROM vm_network_interface i WHERE i.network_id = n.id)
  FROM network n LEFT JOIN host h ON h.id = n.host_id"""
_ORDER = ' ORDER BY h.name NULLS FIRST, n.host_id, n.bridge_name, COALESCE(n.vlan_id, 0), n.name, n.id'


class NetworkNotFoundError(RegistryError):
    """No network with that id or key."""


class NetworkInUseError(RegistryError):
    """A network with VM interfaces attached cannot be deleted; ``interfaces`` and ``vms`` are the counts."""

    def __init__(self, network, interfaces, vms):
        self.network = network
        self.interfaces = interfaces
        self.vms = vms
        super(NetworkInUseError, self).__init__(
            "cannot delete network '%s' (id %s): %d VM interface%s attached (%d VM%s); "
            'detach or delete them first: a network can only be deleted when its VM count is 0'
            % (network['name'], network['id'], interfaces, '' if interfaces == 1 else 's', vms, '' if vms == 1 else 's'))


class NetworkConflictError(RegistryError):
    """Another network already has this host, bridge and VLAN."""


# --------------------------------------------------------------------------- records

def _iso(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        text = value.replace(tzinfo=None).isoformat()
        return text + 'Z'
    return value


def _json_value(value):
    if isinstance(value, (bytes, bytearray)):
        value = value.decode('utf-8')
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def network_record(row):
    """A network as plain data (API field names, then settings, ``host_name``, ``vm_count``) from a ``_SELECT`` row."""
    record = dict(zip(RECORD_FIELDS, row))
    for key in ('id', 'host_id'):
        if record[key] is not None:
            record[key] = str(record[key])
    for key in ('created_at', 'updated_at'):
        record[key] = _iso(record[key])
    for key in JSONB_COLUMNS:
        record[key] = _json_value(record[key])
    if record['vm_count'] is None:
        record['vm_count'] = 0
    return record


def network_view(record):
    """The part of a record a diff shows (no generated ids, timestamps or counts)."""
    if record is None:
        return {}
    return dict((key, record.get(key)) for key in VIEW_FIELDS)


def default_name(bridge_name, vlan=None):
    """The seed's name for an auto-registered network: ``fcbr0 Network`` (``fcbr0 VLAN 10 Network``)."""
    if vlan:
        return '%s VLAN %d Network' % (bridge_name, vlan)
    return '%s Network' % bridge_name


def default_type(vlan):
    return 'vlan' if vlan else 'bridge'


# --------------------------------------------------------------------------- SQL

def _lock_clause(lock):
    if lock is None:
        return ''
    if lock not in ('update', 'no key update', 'share', 'key share'):
        raise ValueError('unknown row lock %r' % (lock,))
    return ' FOR %s OF n' % lock.upper()


def select_networks(cur, host_id=None, bridge_name=None, network_type=None, vlan_id=None, network_id=None, name=None):
    """Networks matching every filter given, ordered by host name, bridge, VLAN, name."""
    where, args = [], []
    for column, value in (('n.host_id', host_id), ('n.bridge_name', bridge_name), ('n.type', network_type),
                          ('n.vlan_id', vlan_id), ('n.id', network_id), ('n.name', name)):
        if value is not None:
            where.append('%s = %%s' % column)
            args.append(value)
    query = _SELECT + (' WHERE ' + ' AND '.join(where) if where else '') + _ORDER
    cur.execute(query, args)
    return [network_record(row) for row in cur.fetchall()]


def get_network(cur, network_id, lock=None):
    """The network with this id, or None; ``lock`` ('update', 'key share'...) locks its row."""
    cur.execute(_SELECT + ' WHERE n.id = %s' + _lock_clause(lock), (network_id,))
    row = cur.fetchone()
    return network_record(row) if row is not None else None


def find_network(cur, host_id, bridge_name, vlan, lock=None):
    """The network with this key (host, bridge, VLAN or none), or None."""
    cur.execute(_SELECT + ' WHERE n.host_id = %s AND n.bridge_name = %s AND COALESCE(n.vlan_id, 0) = %s'
                + _lock_clause(lock), (host_id, bridge_name, vlan or 0))
    row = cur.fetchone()
    return network_record(row) if row is not None else None


def _sql_value(column, value):
    if column in JSONB_COLUMNS and value is not None:
        return json.dumps(value, sort_keys=True)
    return value


def _placeholder(column):
    return '%s::jsonb' if column in JSONB_COLUMNS else '%s'


def insert_network(cur, values, network_id=None, on_conflict_nothing=True):
    """Insert a network; returns its id, or None when a network with its key exists (``ON CONFLICT DO NOTHING``)."""
    columns = [column for column in WRITABLE_COLUMNS if column in values]
    placeholders = [_placeholder(column) for column in columns]
    args = [_sql_value(column, values[column]) for column in columns]
    if network_id is not None:
        columns.insert(0, 'id')
        placeholders.insert(0, '%s')
        args.insert(0, network_id)
    query = 'INSERT INTO network (%s) VALUES (%s)' % (', '.join(columns), ', '.join(placeholders))
    if on_conflict_nothing:
        query += ' ON CONFLICT %s DO NOTHING' % NETWORK_KEY_CONFLICT
    cur.execute(query + ' RETURNING id', args)
    row = cur.fetchone()
    return str(row[0]) if row is not None else None


def update_network(cur, network_id, values):
    """Set the given columns (and ``updated_at``) of a network."""
    columns = [column for column in WRITABLE_COLUMNS if column in values]
    if not columns:
        return
    assignments = ['%s = %s' % (column, _placeholder(column)) for column in columns]
    args = [_sql_value(column, values[column]) for column in columns] + [network_id]
    cur.execute('UPDATE network SET %s, updated_at = now() WHERE id = %%s' % ', '.join(assignments), args)


def attached_counts(cur, network_id):
    """``(interfaces, vms)`` attached to a network."""
    cur.execute('SELECT count(*), count(DISTINCT vm_id) FROM vm_network_interface WHERE network_id = %s', (network_id,))
    interfaces, vms = cur.fetchone()
    return interfaces, vms


def vm_count(cur, network_id):
    """The number of VMs with an interface on the network (``GET /v1/networks/{id}/vms/count``)."""
    return attached_counts(cur, network_id)[1]


def delete_network(cur, network_id):
    """Delete a network unless VM interfaces are attached (``NetworkInUseError`` with the counts).

    Locks the row first, so an attach running at the same time either
    finishes before the count (and the delete is refused) or waits and then
    finds the network gone.  Returns the deleted record, or None when there
    was no such network.
    """
    record = get_network(cur, network_id, lock='update')
    if record is None:
        return None
    interfaces, vms = attached_counts(cur, network_id)
    if interfaces:
        raise NetworkInUseError(record, interfaces, vms)
    cur.execute('DELETE FROM network WHERE id = %s', (network_id,))
    return record


def auto_register(cur, host_id, bridge_name, vlan=None, name=None, description=AUTO_DESCRIPTION, network_type=None,
                  settings=None, lock=None):
    """Make sure the network (host, bridge, VLAN) exists, as the seed's ``ensure_network_registered``.

    ``INSERT ... ON CONFLICT DO NOTHING`` on the network key, then a read: no
    check-then-insert window, so concurrent registrations leave one row and
    none fails.  An existing network is left as it is.  Returns
    ``(record, created)``.  With ``lock='key share'`` the row stays locked
    until the transaction ends, so it cannot be deleted under an attach.
    """
    values = {
        'name': name or default_name(bridge_name, vlan),
        'description': description,
        'type': network_type or default_type(vlan),
        'vlan_id': vlan,
        'bridge_name': bridge_name,
        'host_id': host_id,
    }
    if settings:
        values.update(settings)
    created_id = insert_network(cur, values)
    record = find_network(cur, host_id, bridge_name, vlan, lock=lock)
    if record is None:  # pragma: no cover - only if someone deletes it between the two statements
        raise NetworkNotFoundError('network for host %s, bridge %s, VLAN %s vanished while registering it'
                                   % (host_id, bridge_name, vlan or 'none'))
    return record, created_id is not None


# --------------------------------------------------------------------------- the fc_networks shape

def fc_network(record):
    """One ``fc_networks`` item (see docs/network-model.md) from a network record or row dict.

    Every key is present; ``None`` means "the network role's default".
    """
    cidr = record.get('cidr')
    gateway = record.get('gateway')
    if cidr:
        try:
            iface = ipaddress.ip_interface(str(cidr).strip())
            cidr = str(iface.network)
            if not gateway and iface.ip != iface.network.network_address:
                gateway = str(iface.ip)
        except ValueError:
            pass
    dhcp = _json_value(record.get('dhcp')) or {}
    dns = _json_value(record.get('dns')) or {}
    return {
        'name': record.get('name'),
        'description': record.get('description'),
        'registry_id': str(record['id']) if record.get('id') is not None else None,
        'type': record.get('type'),
        'bridge': record.get('bridge_name'),
        'mode': record.get('mode') or 'nat',
        'cidr': cidr or None,
        'gateway': gateway or None,
        'uplink': record.get('uplink'),
        'mtu': record.get('mtu'),
        'vlan_id': record.get('vlan_id'),
        'dhcp': {
            'enabled': dhcp.get('enabled'),
            'range_start': dhcp.get('range_start'),
            'range_end': dhcp.get('range_end'),
            'lease_time': dhcp.get('lease_time'),
            'static_leases': [
                {'mac': lease.get('mac'), 'ip': lease.get('ip'), 'hostname': lease.get('hostname')}
                for lease in (dhcp.get('static_leases') or []) if isinstance(lease, dict)
            ],
        },
        'dns': {
            'enabled': dns.get('enabled'),
            'upstream': dns.get('upstream'),
            'domain': dns.get('domain'),
        },
        'state': 'present',
    }
