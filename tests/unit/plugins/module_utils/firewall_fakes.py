# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake host for the firewall's unit tests: links and routes (netlink), /proc/sys in a temp dir, a fake nft."""

from __future__ import annotations

import os
import socket

from ansible_collections.nqrust.microvm.plugins.module_utils.firewall import FirewallSession
from ansible_collections.nqrust.microvm.plugins.module_utils.sysctl import ProcSys
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import Link, Route
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftCli
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.nft_fakes import FakeNft


class FakeNetlink(object):
    def __init__(self, links=None, routes=None):
        self._links = tuple(links if links is not None else standard_links())
        self._routes = tuple(routes if routes is not None else standard_routes())
        self.reads = {'links': 0, 'routes': 0}
        self.closed = False

    def open(self):
        return self

    def close(self):
        self.closed = True

    def links(self):
        self.reads['links'] += 1
        return self._links

    def routes(self):
        self.reads['routes'] += 1
        return self._routes


def standard_links():
    """lo, eth0 (default route), eth1, bridge fcbr0 with tap0, bridge brl with port eth2."""
    return (
        Link(1, 'lo'),
        Link(2, 'eth0'),
        Link(3, 'eth1'),
        Link(4, 'fcbr0', kind='bridge'),
        Link(5, 'tap0', kind='tun', tun_type='tap', master_index=4),
        Link(6, 'brl', kind='bridge'),
        Link(7, 'eth2', master_index=6),
    )


def standard_routes():
    return (
        Route(socket.AF_INET, None, 0, oif=2, gateway='192.0.2.1'),
        Route(socket.AF_INET, '192.0.2.0', 24, oif=2, proto=2),
        Route(socket.AF_INET, None, 0, table=100, oif=3),            # not the main table
        Route(socket.AF_INET6, None, 0, oif=3, gateway='fe80::1'),
    )


def make_procsys(root, ip_forward=None, ipv6_forwarding=None, br_nf=None):
    """A ProcSys in ``root``; a sysctl not given keeps its file, or starts at 0."""
    values = {'net/ipv4/ip_forward': ip_forward, 'net/ipv6/conf/all/forwarding': ipv6_forwarding}
    if br_nf is not None:
        values['net/bridge/bridge-nf-call-iptables'] = br_nf
        values['net/bridge/bridge-nf-call-ip6tables'] = br_nf
    for path, value in values.items():
        full = os.path.join(str(root), path)
        if value is None and os.path.exists(full):
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w', encoding='ascii') as handle:
            handle.write((value or '0') + '\n')
    return ProcSys(str(root))


def read_sysctl(root, path):
    with open(os.path.join(str(root), path), encoding='ascii') as handle:
        return handle.read().strip()


def session(tmp_path, nft=None, netlink=None, **procsys):
    nft = nft or FakeNft()
    return FirewallSession(NftCli(runner=nft.runner), procsys=make_procsys(tmp_path, **procsys), netlink=netlink or FakeNetlink())
