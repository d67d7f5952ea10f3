# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the collection built on a host, written as files that rebuild it at boot.

* ``links.batch`` - an ``ip -batch`` file: each bridge the collection created (its ``ifalias``
  marker) with its MAC, MTU, queue length, STP, forward delay, multicast snooping and VLAN
  settings, its addresses, the ports that are not TAPs (the uplink of a bridged network) and
  the routes through it that are not the kernel's own (the default route a bridged network
  took over from its uplink). TAPs are left out: they belong to VMs, which their VMM starts.
* ``nftables.json`` - one ``nft -j -f`` transaction re-creating every table whose name starts
  with the collection's prefix, exactly as listed now.
* ``sysctl.conf`` - IP forwarding, where it is on.
* ``nqrust-microvm-networks.service`` - a oneshot systemd unit running the three in that order.

Pure rendering from records read elsewhere (``netlink.Link``/``Address``/``Route``,
``nftables.TableContent``); no I/O.
"""

from __future__ import annotations

import dataclasses
import json

from ansible_collections.nqrust.microvm.plugins.module_utils.ip_forwarding import FORWARDING
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import batch

UNIT_NAME = 'nqrust-microvm-networks.service'
HEADER = '# Written by the nqrust.microvm collection (fc_network_persist): %s. Changes here are overwritten.\n'


def _bridge_words(link):
    words = ['link', 'add', 'name', link.name]
    if link.mac:
        words += ['address', link.mac]
    if link.mtu:
        words += ['mtu', str(link.mtu)]
    if link.txqlen is not None:
        words += ['txqueuelen', str(link.txqlen)]
    words += ['type', 'bridge']
    for attr, word in (('stp_state', 'stp_state'), ('forward_delay', 'forward_delay')):
        value = getattr(link, attr)
        if value is not None:
            words += [word, str(int(value))]
    if link.mcast_snooping is not None:
        words += ['mcast_snooping', '1' if link.mcast_snooping else '0']
    if link.vlan_filtering:   # off is the default, and kernels without VLAN filtering refuse the word
        words += ['vlan_filtering', '1']
    if link.vlan_filtering and link.vlan_default_pvid is not None:
        words += ['vlan_default_pvid', str(link.vlan_default_pvid)]
    return ' '.join(words)


def render_links(bridges, links, addresses, routes):
    """The ``ip -batch`` text for ``bridges`` (Links), given every link, address and route of the host."""
    lines = [HEADER % 'bridges, their addresses, uplinks and routes']
    for bridge in sorted(bridges, key=lambda link: link.name):
        lines.append(_bridge_words(bridge))
        if bridge.alias:
            lines.append('link set dev %s alias "%s"' % (bridge.name, bridge.alias.replace('"', '')))
        for port in sorted((link for link in links if link.master_index == bridge.index and not link.is_tap),
                           key=lambda link: link.name):
            lines.append('link set dev %s master %s' % (port.name, bridge.name))
            lines.append('link set dev %s up' % port.name)
        for address in addresses:
            if address.index == bridge.index and not address.is_link_local:
                lines.append('address add %s dev %s' % (address.cidr, bridge.name))
        lines.append('link set dev %s up' % bridge.name)
        for route in routes:
            if route.oif == bridge.index and not route.kernel_managed:
                lines.append('route replace %s' % route.describe(dev=bridge.name))
    return '\n'.join(lines) + '\n'


def _zero_counters(value):
    """Counter statements start at zero: what was counted is not part of the configuration."""
    if isinstance(value, dict):
        if set(value) == {'counter'}:
            return {'counter': {'packets': 0, 'bytes': 0}}
        return dict((key, _zero_counters(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_zero_counters(item) for item in value]
    return value


def render_nftables(contents):
    """The ``nft -j -f`` document re-creating ``contents`` (TableContent list) in one transaction."""
    commands = []
    for content in sorted(contents, key=lambda item: (item.table.family, item.table.name)):
        rules = tuple(dataclasses.replace(rule, expr=tuple(_zero_counters(list(rule.expr)))) for rule in content.rules)
        commands.extend(dataclasses.replace(content, rules=rules).replace_commands())
    return json.dumps(batch(commands), indent=1, sort_keys=True) + '\n'


def render_sysctl(forwarding):
    """``sysctl.conf`` lines for the forwarding switches that are on (``{4: bool, 6: bool}``)."""
    lines = [HEADER % 'IP forwarding the networks need']
    for version in (4, 6):
        if forwarding.get(version):
            lines.append('%s = 1' % FORWARDING[version])
    return '\n'.join(lines) + '\n'


def render_unit(directory, ip_path, nft_path, sysctl_path):
    """The oneshot unit replaying the three files at boot, before the network is up."""
    return '\n'.join([
        HEADER % 'boot-time replay of the networks',
        '[Unit]',
        'Description=nqrust.microvm networks (bridges, addresses, firewall, forwarding)',
        'DefaultDependencies=no',
        'After=systemd-modules-load.service systemd-sysctl.service systemd-udev-settle.service',
        'Before=network-pre.target',
        'Wants=network-pre.target',
        'ConditionPathExists=%s/links.batch' % directory,
        '',
        '[Service]',
        'Type=oneshot',
        'RemainAfterExit=yes',
        'ExecStart=%s -batch %s/links.batch' % (ip_path, directory),
        'ExecStart=%s -j -f %s/nftables.json' % (nft_path, directory),
        'ExecStart=%s -q -p %s/sysctl.conf' % (sysctl_path, directory),
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
    ])
