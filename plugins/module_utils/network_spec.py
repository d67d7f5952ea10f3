# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``fc_networks`` (docs/network-model.md) checked as a whole and resolved to what the network role applies.

``resolve(items)`` validates every item with the same rules the registry uses
(``network_settings.network_options`` and ``check_merged``), then the rules across items
(one network per bridge, no overlapping CIDRs), and fills in the role's defaults where a
value is ``None``: mode ``nat``, the bridge address ``gateway/prefix``, DHCP and DNS on for
the modes that route guests, lease time ``1h``, no default route and no upstream DNS for
``isolated``. ``None`` for the whole list means the seed's default network.

Every problem of every item is reported at once, each naming ``fc_networks[i].<key>``,
the value and what is allowed. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import (
    DHCP_KEYS,
    DHCP_MODES,
    DNS_KEYS,
    check_merged,
    first_host,
    network_options,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator

DEFAULT_NETWORK = {
    'name': 'fcbr0 Network',
    'bridge': 'fcbr0',
    'mode': 'nat',
    'cidr': '192.168.18.0/24',
    'gateway': '192.168.18.240',
}
DEFAULT_LEASE_TIME = '1h'
KNOWN_KEYS = ('name', 'description', 'registry_id', 'type', 'bridge', 'mode', 'cidr', 'gateway', 'uplink', 'mtu',
              'vlan_id', 'dhcp', 'dns', 'state')
STATES = ('present', 'absent')


class _Prefixed(object):
    """A Validator view that puts ``fc_networks[i].`` in front of every parameter name."""

    def __init__(self, validator, prefix):
        self.validator = validator
        self.prefix = prefix

    def add(self, param, value, allowed, problem=None):
        self.validator.add(self.prefix + param, value, allowed, problem)


def _item_problems(position, item, validator):
    prefix = 'fc_networks[%d].' % position
    if not isinstance(item, dict):
        validator.add('fc_networks[%d]' % position, item, 'each network is a dictionary (see docs/network-model.md)')
        return None
    view = _Prefixed(validator, prefix)
    for key in sorted(set(item) - set(KNOWN_KEYS)):
        view.add(key, item[key], 'a network takes only the keys %s' % ', '.join(KNOWN_KEYS), 'unknown key')
    state = item.get('state') or 'present'
    if state not in STATES:
        view.add('state', item.get('state'), 'state must be present or absent')
    if not item.get('bridge'):
        view.add('bridge', item.get('bridge'), 'every network names its Linux bridge (1-15 bytes)', 'missing')
    keys = ('name', 'description', 'type', 'vlan_id', 'cidr', 'gateway', 'mode', 'uplink', 'mtu', 'dhcp', 'dns')
    options = dict((key, item.get(key)) for key in keys)
    options['bridge_name'] = item.get('bridge')
    values, checks = network_options(options)
    for error in checks.errors:
        param = 'bridge' if error.param == 'bridge_name' else error.param
        view.add(param, error.value, error.allowed, error.problem)
    if checks.errors:
        return None
    values.setdefault('mode', 'nat')
    if values.get('cidr') and not values.get('gateway'):
        values['gateway'] = first_host(values['cidr'])   # as fc_network_registry stores it
    merged = check_merged(values, given=tuple(values))
    for error in merged.errors:
        view.add(error.param, error.value, error.allowed, error.problem)
    if merged.errors:
        return None
    if state == 'present' and values['mode'] == 'bridged' and values.get('vlan_id'):
        view.add('vlan_id', values['vlan_id'], 'no VLAN on a bridged network: the role would have to make its uplink a '
                 'trunk of that VLAN, which it does not do yet; leave vlan_id empty (the guests share the uplink\'s '
                 'untagged network), or use nat, routed, isolated or open, or set the uplink\'s port VLANs with '
                 'nqrust.microvm.fc_vlan', 'mode bridged')
        return None
    if state == 'present' and values['mode'] in ('nat', 'routed') and not values.get('cidr'):
        view.add('cidr', item.get('cidr'), 'a %s network needs its cidr (the addresses its guests route from)'
                 % values['mode'], 'missing')
        return None
    values['state'] = state
    values['registry_id'] = item.get('registry_id')
    return values


def _resolve_one(values):
    mode = values['mode']
    cidr = values.get('cidr')
    network = ipaddress.ip_network(cidr) if cidr else None
    gateway = values.get('gateway')
    address = '%s/%d' % (gateway, network.prefixlen) if network is not None else None
    dhcp_given = values.get('dhcp') or dict((key, None) for key in DHCP_KEYS)
    dns_given = values.get('dns') or dict((key, None) for key in DNS_KEYS)
    serves = mode in DHCP_MODES and network is not None
    dhcp_enabled = serves if dhcp_given.get('enabled') is None else dhcp_given['enabled']
    dns_enabled = dhcp_enabled if dns_given.get('enabled') is None else dns_given['enabled']
    upstream = dns_given.get('upstream')
    if upstream is None and mode == 'isolated':
        upstream = []
    return {
        'name': values.get('name') or '%s Network' % values['bridge_name'],
        'registry_id': values.get('registry_id'),
        'bridge': values['bridge_name'],
        'mode': mode,
        'state': values['state'],
        'cidr': str(network) if network is not None else None,
        'gateway': gateway,
        'address': address,
        'uplink': values.get('uplink'),
        'mtu': values.get('mtu'),
        'vlan_id': values.get('vlan_id'),
        'dhcp': {
            'enabled': bool(dhcp_enabled),
            'range_start': dhcp_given.get('range_start'),
            'range_end': dhcp_given.get('range_end'),
            'lease_time': dhcp_given.get('lease_time') or DEFAULT_LEASE_TIME,
            'static_leases': list(dhcp_given.get('static_leases') or []),
            'router': mode != 'isolated',
        },
        'dns': {
            'enabled': bool(dns_enabled),
            'upstream': upstream,
            'domain': dns_given.get('domain'),
        },
        'firewall': mode != 'open',
    }


def _across(resolved, validator):
    by_bridge = {}
    for position, item in resolved:
        if item['bridge'] in by_bridge:
            validator.add('fc_networks[%d].bridge' % position, item['bridge'],
                          'one network per bridge (networks sharing a bridge by VLAN are not supported by the role yet)',
                          'fc_networks[%d] uses it too' % by_bridge[item['bridge']])
        else:
            by_bridge[item['bridge']] = position
    present = [(position, item) for position, item in resolved if item['state'] == 'present' and item['cidr']]
    for index, (position, item) in enumerate(present):
        for other_position, other in present[:index]:
            if ipaddress.ip_network(item['cidr']).overlaps(ipaddress.ip_network(other['cidr'])):
                validator.add('fc_networks[%d].cidr' % position, item['cidr'],
                              'networks on one host need CIDRs that do not overlap',
                              'overlaps fc_networks[%d].cidr %s' % (other_position, other['cidr']))


def resolve(items):
    """``(networks, validator)``: the resolved networks (in the order given) and every problem found."""
    validator = Validator()
    if items is None:
        items = [DEFAULT_NETWORK]
    if not isinstance(items, list):
        validator.add('fc_networks', items, 'fc_networks is a list of networks (see docs/network-model.md)')
        return [], validator
    resolved = []
    for position, item in enumerate(items):
        values = _item_problems(position, item, validator)
        if values is not None:
            resolved.append((position, _resolve_one(values)))
    _across(resolved, validator)
    return [item for _position, item in resolved], validator
