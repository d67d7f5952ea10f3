# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet as the inventory plugin sees it: every host and its networks, read in one query.

``FLEET_QUERY`` joins ``host`` to ``network`` once (no query per host);
``build_fleet(rows)`` turns its rows into::

    {'hosts': {'hv1': {'id': '...', 'addr': '10.0.0.11', 'networks': [<fc_networks item>, ...]}, ...},
     'renamed': [('hv1', 'hv1-1a2b3c4d'), ...]}

with each network in the ``fc_networks`` shape of docs/network-model.md
(``registry_networks.fc_network``).  Hosts are named by ``host.name``; when
two hosts share a name, the later ones (by id) get ``-<first 8 hex of the
id>`` appended and are listed in ``renamed``.  ``group_names(item, ...)``
gives the groups a network puts its host in (by network, bridge, VLAN and
mode).

Pure Python apart from running the query; JSON-serialisable output (so the
inventory cache can keep it).
"""

from __future__ import annotations

import re

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_networks import fc_network

FLEET_QUERY = """
SELECT h.id, h.name, h.addr,
       n.id, n.name, n.description, n.type, n.vlan_id, n.bridge_name, n.cidr, n.gateway,
       n.mode, n.uplink, n.mtu, n.dhcp, n.dns
  FROM host h
  LEFT JOIN network n ON n.host_id = h.id
 ORDER BY h.name, h.id, n.bridge_name, COALESCE(n.vlan_id, 0), n.name, n.id"""

_NETWORK_COLUMNS = ('id', 'name', 'description', 'type', 'vlan_id', 'bridge_name', 'cidr', 'gateway',
                    'mode', 'uplink', 'mtu', 'dhcp', 'dns')
GROUP_KINDS = ('network', 'bridge', 'vlan', 'mode')
_GROUP_CHARS_RE = re.compile(r'[^a-z0-9_]+')


def fetch_rows(conn):
    """Run the fleet query (the only statement the inventory plugin sends) and return its rows."""
    with conn.cursor() as cur:
        cur.execute(FLEET_QUERY)
        return cur.fetchall()


def build_fleet(rows):
    """Hosts with their ``fc_networks`` from ``FLEET_QUERY`` rows (see the module docstring)."""
    hosts = {}
    renamed = []
    by_id = {}
    for row in rows:
        host_id = str(row[0])
        entry = by_id.get(host_id)
        if entry is None:
            name = row[1]
            if name in hosts:
                new_name = '%s-%s' % (name, host_id.replace('-', '')[:8])
                renamed.append((name, new_name))
                name = new_name
            entry = {'id': host_id, 'addr': row[2], 'networks': []}
            hosts[name] = entry
            by_id[host_id] = entry
        if row[3] is None:
            continue
        entry['networks'].append(fc_network(dict(zip(_NETWORK_COLUMNS, row[3:]))))
    return {'hosts': hosts, 'renamed': renamed}


def group_part(value):
    """A value as part of a group name: lower case, runs of anything but [a-z0-9_] become '_'."""
    return _GROUP_CHARS_RE.sub('_', str(value).lower()).strip('_') or '_'


def group_names(item, prefix='fc_', kinds=GROUP_KINDS):
    """The groups one ``fc_networks`` item puts its host in: ``fc_network_<name>``, ``fc_bridge_<bridge>``,
    ``fc_vlan_<id>`` (only with a VLAN), ``fc_mode_<mode>``."""
    names = []
    for kind in kinds:
        if kind == 'network' and item.get('name'):
            names.append('%snetwork_%s' % (prefix, group_part(item['name'])))
        elif kind == 'bridge' and item.get('bridge'):
            names.append('%sbridge_%s' % (prefix, group_part(item['bridge'])))
        elif kind == 'vlan' and item.get('vlan_id'):
            names.append('%svlan_%d' % (prefix, item['vlan_id']))
        elif kind == 'mode' and item.get('mode'):
            names.append('%smode_%s' % (prefix, group_part(item['mode'])))
    return names
