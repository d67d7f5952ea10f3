# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DHCP address ranges of one IPv4 network: the seed's default split, checks, lease times.

The seed (libvirt's virtual networking page) splits a network in two: the low
half is kept for static assignment (untouched by the DHCP pool), the high half
is handed out dynamically.  ``default_ranges`` computes that high half without
the gateway (so a gateway such as ``192.168.18.240`` splits it in two pools),
``check_ranges`` validates user-given pools (inside the network, clear of the
gateway, not overlapping), and ``check_static_address`` keeps a static lease
out of every pool.

Pure Python, standard library only.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError, dhcp_range

LEASE_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}

ALLOWED_RANGES = ('DHCP ranges must be START-END pools inside cidr, clear of the gateway and of each other')


def usable(network):
    """``(first, last)`` addresses a host may use: without the network and broadcast address below /31."""
    if network.prefixlen >= 31:
        return network.network_address, network.broadcast_address
    return network.network_address + 1, network.broadcast_address - 1


def _without(first, last, address):
    """The range ``first``-``last`` with ``address`` cut out: 0, 1 or 2 ranges."""
    if address is None or not first <= address <= last:
        return [(first, last)]
    parts = []
    if first < address:
        parts.append((first, address - 1))
    if address < last:
        parts.append((address + 1, last))
    return parts


def default_ranges(network, gateway=None):
    """The seed's convention: the high half of ``network`` is dynamic (without the gateway and broadcast address).

    ``192.168.18.0/24`` with gateway ``.240`` gives ``.128-.239`` and ``.241-.254``;
    ``172.16.99.0/24`` with gateway ``.1`` gives ``.128-.254``.  A network too small
    to have a high half without the gateway gives no range (DHCP then serves static leases only).
    """
    first, last = usable(network)
    half = network.network_address + network.num_addresses // 2
    start = max(first, half)
    if start > last:
        return []
    return _without(start, last, gateway)


def static_part(network, gateway=None):
    """The low half kept for static assignment, ``(first, last)``, without a gateway at either end.

    ``None`` for networks too small to have one.  (A gateway in the middle of
    the low half stays inside it: the static leases are checked against it anyway.)
    """
    first, dummy = usable(network)
    last = network.network_address + network.num_addresses // 2 - 1
    if gateway is not None and gateway == first:
        first += 1
    if gateway is not None and gateway == last:
        last -= 1
    if last < first:
        return None
    return (first, last)


def range_text(pool):
    return '%s-%s' % pool


def check_ranges(validator, param, items, network, gateway, cidr_param='cidr'):
    """Validate the pools ``items`` (``[(item_param, start_text, end_text), ...]``).

    Returns the pools as sorted ``ipaddress`` pairs, or ``None`` when one is
    invalid.  Each pool must lie inside ``network``, avoid its network and
    broadcast address and the gateway (errors name ``item_param``), and no two
    pools may overlap (the error names ``param``).
    """
    checked = []
    for item_param, start, end in items:
        pool = validator.check(dhcp_range, item_param, start, end, network, gateway_address=gateway, cidr_param=cidr_param)
        if pool is None:
            return None
        checked.append(pool)
    checked.sort()
    for before, after in zip(checked, checked[1:]):
        if after[0] <= before[1]:
            validator.add(param, ', '.join(range_text(pool) for pool in checked), ALLOWED_RANGES,
                          '%s and %s overlap' % (range_text(before), range_text(after)))
            return None
    return checked


def pool_of(address, pools):
    """The pool holding ``address``, or ``None``."""
    for pool in pools:
        if pool[0] <= address <= pool[1]:
            return pool
    return None


def size(pools):
    """How many addresses the pools hold."""
    return sum(int(last) - int(first) + 1 for first, last in pools)


def check_static_address(param, value, network, gateway, pools, cidr_param='cidr'):
    """A static lease address: inside ``network``, usable, not the gateway, outside every dynamic pool."""
    allowed = ('a static lease address must be inside %s (%s), not its network or broadcast address, '
               'not the gateway and outside the dynamic DHCP ranges' % (cidr_param, network))
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError as exc:
        raise ValidationError(param, value, allowed, str(exc).rstrip('.')) from None
    if address.version != network.version or address not in network:
        raise ValidationError(param, value, allowed, 'is outside %s' % network)
    first, last = usable(network)
    if not first <= address <= last:
        raise ValidationError(param, value, allowed, 'is the %s address' % ('network' if address < first else 'broadcast'))
    if gateway is not None and address == gateway:
        raise ValidationError(param, value, allowed, 'is the gateway')
    pool = pool_of(address, pools)
    if pool is not None:
        raise ValidationError(param, value, allowed, 'is inside the dynamic range %s' % range_text(pool))
    return address


def lease_seconds(text):
    """``'12h'`` -> ``43200``; ``'infinite'`` -> ``None`` (text as the lease-time validator returns it)."""
    if text == 'infinite':
        return None
    text = str(text)
    unit = text[-1] if text[-1:].isalpha() else ''
    number = text[:-1] if unit else text
    return int(number) * LEASE_UNITS[unit]
