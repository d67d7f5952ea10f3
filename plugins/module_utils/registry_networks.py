# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Networks in the registry: validation, records, parameterized SQL, auto-registration.

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
import re

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import RegistryError
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import MODES, NETWORK_KEY_CONFLICT, NETWORK_TYPES
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationError,
    Validator,
    cidr as check_cidr,
    dhcp_range,
    gateway as check_gateway,
    interface_name,
    ip_address,
    mac_address,
    vlan_id as check_vlan_id,
)

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

DHCP_KEYS = ('enabled', 'range_start', 'range_end', 'lease_time', 'static_leases')
DNS_KEYS = ('enabled', 'upstream', 'domain')
AUTO_DESCRIPTION = 'Auto-registered from VM creation'
NAME_MAX = 255
MTU_MIN = 68
MTU_MAX = 65535

_SELECT = """
SELECT n.id, n.name, n.description, n.type, n.vlan_id, n.bridge_name, n.host_id, n.cidr, n.gateway,
       n.created_at, n.updated_at, n.mode, n.uplink, n.mtu, n.dhcp, n.dns, h.name,
       (SELECT count(DISTINCT i.vm_id) FROM vm_network_interface i WHERE i.network_id = n.id)
  FROM network n LEFT JOIN host h ON h.id = n.host_id"""
_ORDER = ' ORDER BY h.name NULLS FIRST, n.host_id, n.bridge_name, COALESCE(n.vlan_id, 0), n.name, n.id'

_LEASE_TIME_RE = re.compile(r'^([0-9]+)([smhdw]?)$')
_LEASE_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
_DNS_LABEL_RE = re.compile(r'^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$')

ALLOWED_NAME = 'name must be 1 to %d characters' % NAME_MAX
ALLOWED_MTU = 'MTU must be an integer from %d to %d (0 clears it: the kernel default)' % (MTU_MIN, MTU_MAX)
ALLOWED_LEASE_TIME = ("lease time must be seconds (at least 120) or a number with a unit s, m, h, d or w "
                      "(e.g. 12h), or 'infinite'")
ALLOWED_HOSTNAME = ('host name must be DNS labels of 1 to 63 letters, digits and "-" (not first or last), '
                    'separated by dots, at most 253 characters')


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


# --------------------------------------------------------------------------- validation

def _check_name(param, value):
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(param, value, ALLOWED_NAME, 'empty')
    if len(value) > NAME_MAX:
        raise ValidationError(param, value, ALLOWED_NAME, 'is %d characters long' % len(value))
    return value


def _check_mtu(param, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(param, value, ALLOWED_MTU, 'not an integer')
    if value == 0:
        return None
    if value < MTU_MIN or value > MTU_MAX:
        raise ValidationError(param, value, ALLOWED_MTU)
    return value


def lease_time(param, value):
    """A dnsmasq lease time: seconds (>= 120), a number with a unit, or 'infinite'; returned as text."""
    if isinstance(value, bool):
        raise ValidationError(param, value, ALLOWED_LEASE_TIME, 'not a number')
    text = str(value).strip().lower()
    if text == 'infinite':
        return text
    match = _LEASE_TIME_RE.match(text)
    if not match:
        raise ValidationError(param, value, ALLOWED_LEASE_TIME)
    seconds = int(match.group(1)) * _LEASE_UNITS[match.group(2)]
    if seconds < 120:
        raise ValidationError(param, value, ALLOWED_LEASE_TIME, 'shorter than 2 minutes (dnsmasq\'s minimum)')
    return text


def hostname(param, value):
    """A DNS host name (labels of letters, digits and '-'), returned in lower case."""
    if not isinstance(value, str) or not value:
        raise ValidationError(param, value, ALLOWED_HOSTNAME, 'empty' if value == '' else 'not a string')
    text = value.rstrip('.')
    if len(text) > 253:
        raise ValidationError(param, value, ALLOWED_HOSTNAME, 'is %d characters long' % len(text))
    for label in text.split('.'):
        if not _DNS_LABEL_RE.match(label):
            raise ValidationError(param, value, ALLOWED_HOSTNAME, 'label %r is not allowed' % label)
    return text.lower()


def _blank(value):
    return value is None or value == ''


def split_cidr(param, value, gateway_param='gateway'):
    """``(network_text, gateway_from_cidr)`` from ``10.0.0.0/24`` or ``10.0.0.1/24`` (the second gives a gateway)."""
    iface = check_cidr(param, value)
    network = iface.network
    if iface.ip == network.network_address and network.num_addresses > 1:
        return str(network), None
    try:
        address = check_gateway(param, str(iface.ip), network, cidr_param=param)
    except ValidationError as exc:
        raise ValidationError(param, value, 'CIDR must be a network (10.0.0.0/24) or the gateway address with its '
                              'prefix length (10.0.0.1/24)', exc.problem) from None
    return str(network), str(address)


def first_host(network_text):
    network = ipaddress.ip_network(network_text, strict=False)
    for address in network.hosts():
        return str(address)
    return str(network.network_address)


def network_options(params):
    """Static checks of the network options given (not ``None``); returns ``(values, validator)``.

    ``values`` maps columns to normalised values (``None`` to clear, for the
    options that can be cleared with ``''`` or ``0``).  The checks that need
    the stored row too (gateway inside the CIDR, DHCP inside the CIDR, an
    uplink for bridged mode) are ``check_merged``'s.
    """
    v = Validator()
    values = {}
    if params.get('name') is not None:
        values['name'] = v.check(_check_name, 'name', params['name'])
    if params.get('description') is not None:
        values['description'] = params['description'] if params['description'] != '' else None
    if params.get('type') is not None:
        if params['type'] not in NETWORK_TYPES:
            v.add('type', params['type'], 'type must be one of %s' % ', '.join(NETWORK_TYPES))
        values['type'] = params['type']
    if params.get('vlan_id') is not None:
        values['vlan_id'] = v.check(check_vlan_id, 'vlan_id', params['vlan_id'])
    if params.get('bridge_name') is not None:
        values['bridge_name'] = v.check(interface_name, 'bridge_name', params['bridge_name'])
    cidr_gateway = None
    if params.get('cidr') is not None:
        if params['cidr'] == '':
            values['cidr'] = None
        else:
            split = v.check(split_cidr, 'cidr', params['cidr'])
            if split is not None:
                values['cidr'], cidr_gateway = split
    if params.get('gateway') is not None:
        if params['gateway'] == '':
            values['gateway'] = None
        else:
            address = v.check(ip_address, 'gateway', params['gateway'])
            if address is not None:
                values['gateway'] = str(address)
                if cidr_gateway is not None and cidr_gateway != str(address):
                    v.add('cidr', params['cidr'], 'give the network (e.g. %s) when gateway is given'
                          % values.get('cidr'), 'names the address %s but gateway is %s' % (cidr_gateway, address))
    if cidr_gateway is not None and 'gateway' not in values:
        values['gateway'] = cidr_gateway
    if params.get('mode') is not None:
        if params['mode'] not in MODES:
            v.add('mode', params['mode'], 'mode must be one of %s' % ', '.join(MODES))
        values['mode'] = params['mode']
    if params.get('uplink') is not None:
        values['uplink'] = None if params['uplink'] == '' else v.check(interface_name, 'uplink', params['uplink'])
    if params.get('mtu') is not None:
        values['mtu'] = v.check(_check_mtu, 'mtu', params['mtu'])
    if params.get('dhcp') is not None:
        values['dhcp'] = _dhcp_static(v, params['dhcp'])
    if params.get('dns') is not None:
        values['dns'] = _dns_static(v, params['dns'])
    return values, v


def _dhcp_static(v, dhcp):
    if not isinstance(dhcp, dict):
        v.add('dhcp', dhcp, 'dhcp must be a dictionary with enabled, range_start, range_end, lease_time, static_leases')
        return None
    result = dict((key, None) for key in DHCP_KEYS)
    result['static_leases'] = []
    if dhcp.get('enabled') is not None:
        result['enabled'] = bool(dhcp['enabled'])
    for key in ('range_start', 'range_end'):
        if not _blank(dhcp.get(key)):
            address = v.check(ip_address, 'dhcp.%s' % key, dhcp[key])
            result[key] = str(address) if address is not None else None
    for key, other in (('range_start', 'range_end'), ('range_end', 'range_start')):
        if _blank(dhcp.get(key)) and not _blank(dhcp.get(other)):
            v.add('dhcp.%s' % key, dhcp.get(key), 'dhcp.range_start and dhcp.range_end go together', 'missing')
    if not _blank(dhcp.get('lease_time')):
        result['lease_time'] = v.check(lease_time, 'dhcp.lease_time', dhcp['lease_time'])
    leases = dhcp.get('static_leases') or []
    if not isinstance(leases, list):
        v.add('dhcp.static_leases', leases, 'static leases must be a list of {mac, ip, hostname}')
        leases = []
    seen_macs, seen_ips, seen_names = {}, {}, {}
    for position, lease in enumerate(leases):
        param = 'dhcp.static_leases[%d]' % position
        if not isinstance(lease, dict):
            v.add(param, lease, 'a static lease is a dictionary with mac, ip and an optional hostname')
            continue
        item = {'mac': None, 'ip': None, 'hostname': None}
        item['mac'] = v.check(mac_address, param + '.mac', lease.get('mac'))
        address = v.check(ip_address, param + '.ip', lease.get('ip'))
        item['ip'] = str(address) if address is not None else None
        if not _blank(lease.get('hostname')):
            item['hostname'] = v.check(hostname, param + '.hostname', lease['hostname'])
        for key, seen in (('mac', seen_macs), ('ip', seen_ips), ('hostname', seen_names)):
            if item[key] is None:
                continue
            if item[key] in seen:
                v.add('%s.%s' % (param, key), lease.get(key), 'every static lease needs its own %s' % key,
                      'already used by dhcp.static_leases[%d]' % seen[item[key]])
            else:
                seen[item[key]] = position
        result['static_leases'].append(item)
    return result


def _dns_static(v, dns):
    if not isinstance(dns, dict):
        v.add('dns', dns, 'dns must be a dictionary with enabled, upstream and domain')
        return None
    result = {'enabled': None, 'upstream': None, 'domain': None}
    if dns.get('enabled') is not None:
        result['enabled'] = bool(dns['enabled'])
    if dns.get('upstream') is not None:
        upstream = dns['upstream']
        if not isinstance(upstream, list):
            upstream = [upstream]
        servers = []
        for position, server in enumerate(upstream):
            address = v.check(ip_address, 'dns.upstream[%d]' % position, server)
            if address is not None:
                servers.append(str(address))
        result['upstream'] = servers
    if not _blank(dns.get('domain')):
        result['domain'] = v.check(hostname, 'dns.domain', dns['domain'])
    return result


def _empty_settings(value, keys):
    """A dhcp/dns object with nothing set is stored as NULL (the role's defaults)."""
    if value is None:
        return True
    return all(value.get(key) in (None, []) for key in keys)


def normalise_settings(values):
    for key, keys in (('dhcp', DHCP_KEYS), ('dns', DNS_KEYS)):
        if key in values and _empty_settings(values[key], keys):
            values[key] = None
    return values


def check_merged(merged, v=None, given=()):
    """Checks across fields on the network as it would be stored (``merged``: current row updated by the options).

    Gateway inside the CIDR, DHCP range and static leases inside the CIDR
    and clear of the gateway, DHCP enabled only with a CIDR, an uplink for
    bridged mode, a VLAN id for type ``vlan``.  ``given`` names the options
    the user gave, so messages blame those.
    """
    v = v or Validator()
    network = None
    if merged.get('cidr'):
        try:
            network = ipaddress.ip_network(merged['cidr'], strict=False)
        except ValueError:
            v.add('cidr', merged['cidr'], 'CIDR must be a network such as 10.0.0.0/24', 'the stored value is not valid')
    gateway = merged.get('gateway')
    if gateway and network is not None and ('gateway' in given or 'cidr' in given):
        v.check(check_gateway, 'gateway', gateway, network, cidr_param='cidr')
    elif gateway and network is None and 'gateway' in given:
        v.add('gateway', gateway, 'gateway needs a cidr to be inside of', 'the network has no cidr')
    if merged.get('mode') == 'bridged' and not merged.get('uplink') and ('mode' in given or 'uplink' in given):
        v.add('uplink', merged.get('uplink'), 'bridged mode needs an uplink (the NIC that joins the bridge)', 'missing')
    if merged.get('type') == 'vlan' and not merged.get('vlan_id') and ('type' in given or 'vlan_id' in given):
        v.add('vlan_id', merged.get('vlan_id'), "type 'vlan' needs a VLAN id from 1 to 4094", 'missing')
    dhcp = merged.get('dhcp')
    if dhcp and ('dhcp' in given or 'cidr' in given or 'gateway' in given):
        _check_dhcp_in_network(v, dhcp, network, gateway)
    return v


def _check_dhcp_in_network(v, dhcp, network, gateway):
    uses_addresses = dhcp.get('enabled') or dhcp.get('range_start') or dhcp.get('static_leases')
    if network is None:
        if uses_addresses:
            v.add('dhcp', _short_dhcp(dhcp), 'DHCP needs the network to have a cidr', 'the network has no cidr')
        return
    gateway_address = None
    if gateway:
        try:
            gateway_address = ipaddress.ip_address(gateway)
        except ValueError:
            gateway_address = None
    if dhcp.get('range_start') and dhcp.get('range_end'):
        v.check(dhcp_range, 'dhcp.range_start/range_end', dhcp['range_start'], dhcp['range_end'], network,
                gateway_address=gateway_address)
    for position, lease in enumerate(dhcp.get('static_leases') or []):
        if not lease.get('ip'):
            continue
        param = 'dhcp.static_leases[%d].ip' % position
        allowed = 'a static lease address must be inside cidr (%s), not its network or broadcast address and not the gateway' % network
        try:
            address = ipaddress.ip_address(lease['ip'])
        except ValueError:
            continue
        if address.version != network.version or address not in network:
            v.add(param, lease['ip'], allowed, 'is outside %s' % network)
        elif network.version == 4 and network.prefixlen < 31 and address in (network.network_address, network.broadcast_address):
            v.add(param, lease['ip'], allowed, 'is the %s address' % ('network' if address == network.network_address else 'broadcast'))
        elif gateway_address is not None and address == gateway_address:
            v.add(param, lease['ip'], allowed, 'is the gateway')


def _short_dhcp(dhcp):
    return dict((key, value) for key, value in dhcp.items() if value not in (None, []))


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
