# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The nftables rules of one network, per mode (pure: no I/O).

Each network that needs rules gets its own table ``inet nqrust_microvm_fw_<bridge>``,
so converging one network replaces only that table (one atomic transaction)
and ``state: absent`` deletes exactly it.  Tables judge only packets that enter
or leave their own bridge; everything else passes them untouched (policy
accept), and because a drop in any table is final, traffic between two
networks is refused when either network's rules refuse it.

Rules of the forward chain (``B`` the bridge, ``U`` the uplinks, ``C`` the CIDRs)::

    iifname B oifname B accept                      all modes with a table: guests reach each other
                                                    (seen here only when br_netfilter hands bridged
                                                    frames to the IP hooks)
    iifname B oifname U ip saddr C accept           nat, routed: guests out through the uplinks
    iifname U oifname B ct state established,related accept      nat: only replies come back in
    iifname U oifname B ip daddr C accept           routed: the outside reaches guests
    iifname B counter reject with icmpx admin-prohibited          guests to anywhere else
    oifname B counter drop                          anything else into the network

and, in nat mode, ``ip saddr C oifname U masquerade`` in a ``postrouting``
NAT chain (IPv4 and, with an IPv6 CIDR, IPv6).  ``isolated`` keeps only the
first rule and the two refusals; ``bridged`` and ``open`` have no table.
"""

from __future__ import annotations

from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import MODES
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import (
    COLLECTION_PREFIX,
    Chain,
    Rule,
    Table,
    TableContent,
    counter,
    ct,
    masquerade,
    match,
    meta,
    names,
    payload,
    prefix,
    reject_admin_prohibited,
    verdict,
)

MODES_WITH_TABLE = ('nat', 'routed', 'isolated')
MODES_WITH_UPLINK = ('nat', 'routed')

TABLE_FAMILY = 'inet'
TABLE_PREFIX = COLLECTION_PREFIX + '_fw_'
FORWARD_CHAIN = 'forward'
POSTROUTING_CHAIN = 'postrouting'
FILTER_PRIORITY = 0      # "priority filter"
SRCNAT_PRIORITY = 100    # "priority srcnat"
COMMENT_MARKER = 'nqrust.microvm'


def table_name(bridge):
    """``'nqrust_microvm_fw_fcbr0'``: the table of the network on ``bridge``."""
    return TABLE_PREFIX + bridge


def table_of(bridge):
    return Table(TABLE_FAMILY, table_name(bridge))


def is_firewall_table(table):
    """Whether ``table`` (a ``Table``) is a network table of this module."""
    return table.family == TABLE_FAMILY and table.name.startswith(TABLE_PREFIX)


def forwarding_needed(mode, cidr, ipv6_cidr):
    """``{4: bool, 6: bool}``: which IP forwarding the mode needs (only nat and routed route)."""
    routes = mode in MODES_WITH_UPLINK
    return {4: routes and cidr is not None, 6: routes and ipv6_cidr is not None}


def _families(cidr, ipv6_cidr):
    found = []
    if cidr is not None:
        found.append(('ip', cidr))
    if ipv6_cidr is not None:
        found.append(('ip6', ipv6_cidr))
    return found


def _comment(mode, text):
    return '%s %s: %s' % (COMMENT_MARKER, mode, text)


def forward_rules(mode, bridge, cidr=None, ipv6_cidr=None, uplinks=()):
    """The forward chain's rules as ``(expr, comment)`` pairs, in order."""
    if mode not in MODES_WITH_TABLE:
        return []
    iif_bridge = match(meta('iifname'), bridge)
    oif_bridge = match(meta('oifname'), bridge)
    rules = [([iif_bridge, oif_bridge, verdict('accept')], _comment(mode, 'within the network'))]
    if mode in MODES_WITH_UPLINK:
        iif_up = match(meta('iifname'), names(uplinks))
        oif_up = match(meta('oifname'), names(uplinks))
        for proto, network in _families(cidr, ipv6_cidr):
            rules.append(([iif_bridge, oif_up, match(payload(proto, 'saddr'), prefix(network)), verdict('accept')],
                          _comment(mode, 'guests to the uplink')))
        if mode == 'nat':
            rules.append(([iif_up, oif_bridge, match(ct('state'), ['established', 'related'], op='in'), verdict('accept')],
                          _comment(mode, 'replies to guests')))
        else:
            for proto, network in _families(cidr, ipv6_cidr):
                rules.append(([iif_up, oif_bridge, match(payload(proto, 'daddr'), prefix(network)), verdict('accept')],
                              _comment(mode, 'uplink to guests')))
    rules.append(([iif_bridge, counter(), reject_admin_prohibited()], _comment(mode, 'refuse guests elsewhere')))
    rules.append(([oif_bridge, counter(), verdict('drop')], _comment(mode, 'refuse all else into the network')))
    return rules


def postrouting_rules(mode, cidr=None, ipv6_cidr=None, uplinks=()):
    """The NAT chain's rules (nat mode only): masquerade the network's traffic leaving by the uplinks."""
    if mode != 'nat':
        return []
    oif_up = match(meta('oifname'), names(uplinks))
    return [([match(payload(proto, 'saddr'), prefix(network)), oif_up, masquerade()], _comment(mode, 'masquerade'))
            for proto, network in _families(cidr, ipv6_cidr)]


def desired_table(mode, bridge, cidr=None, ipv6_cidr=None, uplinks=()):
    """The ``TableContent`` the network needs, or ``None`` (bridged, open: no table).

    ``cidr``/``ipv6_cidr`` are ``ipaddress`` networks (or ``None``), ``uplinks``
    interface names (nat and routed need at least one).
    """
    if mode not in MODES:
        raise ValueError('unknown mode %r' % (mode,))
    if mode not in MODES_WITH_TABLE:
        return None
    if mode in MODES_WITH_UPLINK and not uplinks:
        raise ValueError('mode %s needs at least one uplink' % mode)
    table = table_of(bridge)
    chains = [Chain(TABLE_FAMILY, table.name, FORWARD_CHAIN, 'filter', 'forward', FILTER_PRIORITY, 'accept')]
    rules = [Rule(TABLE_FAMILY, table.name, FORWARD_CHAIN, tuple(expr), comment)
             for expr, comment in forward_rules(mode, bridge, cidr, ipv6_cidr, uplinks)]
    nat = postrouting_rules(mode, cidr, ipv6_cidr, uplinks)
    if nat:
        chains.append(Chain(TABLE_FAMILY, table.name, POSTROUTING_CHAIN, 'nat', 'postrouting', SRCNAT_PRIORITY, 'accept'))
        rules.extend(Rule(TABLE_FAMILY, table.name, POSTROUTING_CHAIN, tuple(expr), comment) for expr, comment in nat)
    return TableContent(table, tuple(chains), tuple(rules))


__all__ = [
    'MODES', 'MODES_WITH_TABLE', 'MODES_WITH_UPLINK', 'TABLE_FAMILY', 'TABLE_PREFIX',
    'desired_table', 'forward_rules', 'forwarding_needed', 'is_firewall_table', 'postrouting_rules', 'table_name', 'table_of',
]
