# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The settings of one network and their rules, wherever a network is described.

The registry (``fc_network_registry``), the network role's ``fc_networks`` (``network_spec``)
and the DHCP/DNS module (``fc_dnsmasq``) check a network's name, CIDR and gateway, mode,
uplink, MTU and its ``dhcp``/``dns`` dictionaries with these functions, so a value one of
them accepts the others accept too. Pure, standard library only.
"""

from __future__ import annotations

import ipaddress
import re

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

MODES = ('nat', 'routed', 'isolated', 'bridged', 'open')
NETWORK_TYPES = ('bridge', 'vlan', 'overlay')
# modes in which guests are routed at layer 3 by the host, so DHCP and DNS are on by default (with a cidr)
DHCP_MODES = ('nat', 'routed', 'isolated')
DHCP_KEYS = ('enabled', 'range_start', 'range_end', 'lease_time', 'static_leases')
DNS_KEYS = ('enabled', 'upstream', 'domain')
NAME_MAX = 255
MTU_MIN = 68
MTU_MAX = 65535

_LEASE_TIME_RE = re.compile(r'^([0-9]+)([smhdw]?)$')
_LEASE_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
_DNS_LABEL_RE = re.compile(r'^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$')

ALLOWED_NAME = 'name must be 1 to %d characters' % NAME_MAX
ALLOWED_MTU = 'MTU must be an integer from %d to %d (0 clears it: the kernel default)' % (MTU_MIN, MTU_MAX)
ALLOWED_LEASE_TIME = ("lease time must be seconds (at least 120) or a number with a unit s, m, h, d or w "
                      "(e.g. 12h), or 'infinite'")
ALLOWED_HOSTNAME = ('host name must be DNS labels of 1 to 63 letters, digits and "-" (not first or last), '
                    'separated by dots, at most 253 characters')


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
