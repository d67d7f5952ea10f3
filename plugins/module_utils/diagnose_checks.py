# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The seed's troubleshooting section as checks: what a host's networks need, against what the host has.

``diagnose(items, interfaces, host, source)`` is pure: ``items`` is the host's
``fc_networks`` (docs/network-model.md; ``None`` is the default network, as
for the network role), ``interfaces`` the registry's VM interface rows on
those networks (or ``None`` when they are not known), ``host`` a ``HostView``
(what ``diagnose_host.read_host`` read) and ``source`` says where the
networks came from (``'registry'`` or ``'inventory'``, only for the wording).

It returns ``checks``: one dict per check made, ``{network, bridge, check,
ok, message, fix}``, in a stable order (each network in the order given,
then the VM interfaces, then what the host has that nothing expects).
``message`` is a plain sentence starting with the object it is about
(``"fcbr0: bridge is down"``); ``fix`` says what to do, or is ``None`` when
the check passed.  A missing bridge is reported once: the checks that need
the bridge are not made for it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils import network_spec
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_rules import (
    MODES_WITH_TABLE,
    MODES_WITH_UPLINK,
    TABLE_FAMILY,
    TABLE_PREFIX,
    desired_table,
    table_name,
)

SITE = 'run playbooks/site.yml (the network role)'
SOURCES = ('registry', 'inventory')
CHECKS = ('network_spec', 'bridge', 'bridge_up', 'bridge_address', 'bridge_mtu', 'uplink', 'vlan_filtering',
          'bridge_vlan', 'dhcp', 'firewall', 'forwarding', 'absent', 'tap', 'tap_vlan', 'unregistered_bridge',
          'unregistered_tap', 'stray_firewall', 'stray_dhcp')


@dataclasses.dataclass
class DhcpState(object):
    """One network's dnsmasq as read: its configuration file, whether it runs (and its pid), how it is supervised."""

    config_path: str
    config_present: bool
    running: bool
    supervisor: str
    unit_name: str
    pid: Optional[int] = None
    stale_pid: Optional[int] = None
    stale_alive: bool = False
    error: Optional[str] = None


@dataclasses.dataclass
class HostView(object):
    """What one read of the host found.

    ``links``/``addresses`` are ``netlink.Link``/``netlink.Address`` records;
    ``port_vlans`` ``{ifindex: netlink.PortVlans}`` (``None``: not read);
    ``ruleset`` an ``nftables.Ruleset`` or ``None`` with ``nft_error`` saying
    why; ``forwarding`` ``{4: bool, 6: bool}``; ``default_uplinks`` the
    interfaces of the default routes ``{4: (...), 6: (...)}``; ``dhcp``
    ``{bridge: DhcpState}`` for the bridges asked about and every bridge with
    a dnsmasq configuration file of the collection.
    """

    links: tuple = ()
    addresses: tuple = ()
    port_vlans: Optional[dict] = None
    ruleset: object = None
    nft_error: Optional[str] = None
    forwarding: dict = dataclasses.field(default_factory=dict)
    default_uplinks: dict = dataclasses.field(default_factory=dict)
    dhcp: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.by_name = dict((link.name, link) for link in self.links)
        self.by_index = dict((link.index, link) for link in self.links)

    def link(self, name):
        return self.by_name.get(name)

    def name_of(self, index):
        link = self.by_index.get(index)
        return link.name if link is not None else None

    def ports(self, bridge):
        return sorted(link.name for link in self.links if link.master_index == bridge.index)

    def addresses_of(self, link):
        return [address.cidr for address in self.addresses if address.index == link.index and not address.is_link_local]


class _Report(object):
    """Collects the checks in order."""

    def __init__(self):
        self.checks = []

    def add(self, network, bridge, check, ok, message, fix=None):
        self.checks.append({'network': network, 'bridge': bridge, 'check': check, 'ok': bool(ok), 'message': message,
                            'fix': None if ok else fix})

    def good(self, network, bridge, check, message):
        self.add(network, bridge, check, True, message)

    def bad(self, network, bridge, check, message, fix):
        self.add(network, bridge, check, False, message, fix)


def _lacks(source):
    return 'the registry has no network for it' if source == 'registry' else 'fc_networks does not list it'


def _record_fix(source, what):
    if source == 'registry':
        return ('record it in the registry (playbooks/network_create.yml, or nqrust.microvm.fc_network_registry '
                'state=registered) or remove it from the host (playbooks/network_delete.yml)')
    return 'add it to the host\'s fc_networks, or list it there with state: absent to have %s removed' % what


# --------------------------------------------------------------------------- one network

def _check_bridge(report, net, host):
    name, bridge = net['name'], net['bridge']
    link = host.link(bridge)
    if link is None:
        report.bad(name, bridge, 'bridge', '%s: bridge is missing' % bridge,
                   '%s; it creates the bridge (nqrust.microvm.fc_bridge)' % SITE)
        return None
    if not link.is_bridge:
        report.bad(name, bridge, 'bridge', '%s: is a %s, not a bridge' % (bridge, link.kind_label),
                   'delete or rename the %s `%s`, then %s' % (link.kind_label, bridge, SITE))
        return None
    report.good(name, bridge, 'bridge', '%s: bridge exists' % bridge)
    if link.up:
        report.good(name, bridge, 'bridge_up', '%s: bridge is up' % bridge)
    else:
        report.bad(name, bridge, 'bridge_up', '%s: bridge is down' % bridge, '%s or `ip link set %s up`' % (SITE, bridge))
    return link


def _check_address(report, net, host, link):
    name, bridge = net['name'], net['bridge']
    if not net['address'] or net['mode'] == 'bridged':
        return
    has = host.addresses_of(link)
    wanted = ipaddress.ip_interface(net['address'])
    if any(ipaddress.ip_interface(text) == wanted for text in has):
        report.good(name, bridge, 'bridge_address', '%s: bridge has its address %s' % (bridge, net['address']))
        return
    report.bad(name, bridge, 'bridge_address',
               '%s: bridge does not have its address %s (it has %s): guests get no gateway and no DHCP'
               % (bridge, net['address'], ', '.join(has) or 'no address'),
               '%s or `ip address add %s dev %s`' % (SITE, net['address'], bridge))


def _check_mtu(report, net, link):
    if net['mtu'] is None:
        return
    name, bridge = net['name'], net['bridge']
    if link.mtu == net['mtu']:
        report.good(name, bridge, 'bridge_mtu', '%s: MTU is %d' % (bridge, link.mtu))
    else:
        report.bad(name, bridge, 'bridge_mtu', '%s: MTU is %s, the network wants %d' % (bridge, link.mtu, net['mtu']),
                   '%s or `ip link set %s mtu %d`' % (SITE, bridge, net['mtu']))


def _uplinks(report, net, host):
    """The uplinks the network's rules use (as the network role passes them), checked; ``None`` when unknown."""
    name, bridge, mode, uplink = net['name'], net['bridge'], net['mode'], net['uplink']
    if mode == 'bridged':
        link = host.link(bridge)
        ports = host.ports(link) if link is not None else []
        if uplink in ports:
            report.good(name, bridge, 'uplink', '%s: uplink %s is a port of the bridge' % (bridge, uplink))
        else:
            report.bad(name, bridge, 'uplink', '%s: uplink %s is not a port of the bridge (bridged mode: guests reach '
                       'no LAN)' % (bridge, uplink), '%s; it moves %s into the bridge with its addresses' % (SITE, uplink))
        return None
    if mode not in MODES_WITH_UPLINK:
        return ()
    if uplink:
        if host.link(uplink) is None:
            report.bad(name, bridge, 'uplink', '%s: uplink %s does not exist on this host' % (bridge, uplink),
                       'correct the network\'s uplink (or leave it empty for the default route\'s interface), then %s'
                       % SITE)
            return None
        report.good(name, bridge, 'uplink', '%s: uplink %s exists' % (bridge, uplink))
        return (uplink,)
    found = tuple(host.default_uplinks.get(4, ()))
    if not found:
        report.bad(name, bridge, 'uplink', '%s: the host has no IPv4 default route, so %s guests have no way out'
                   % (bridge, mode), 'add a default route (`ip route add default via <router>`) or set the network\'s '
                   'uplink, then %s' % SITE)
        return None
    report.good(name, bridge, 'uplink', '%s: traffic leaves by %s (the default route)' % (bridge, ', '.join(found)))
    return found


def _check_bridge_vlan(report, net, link, host):
    """The bridge's own VLAN: its address, and with it the gateway, DHCP and DNS, serve the network's VLAN."""
    if not net['address'] or host.port_vlans is None:
        return
    name, bridge, vid = net['name'], net['bridge'], net['vlan_id']
    entry = host.port_vlans.get(link.index)
    pvid = entry.pvid if entry is not None else None
    if pvid == vid:
        report.good(name, bridge, 'bridge_vlan', '%s: its address %s is in VLAN %d' % (bridge, net['address'], vid))
    else:
        where = 'VLAN %d' % pvid if pvid else 'no VLAN'
        report.bad(name, bridge, 'bridge_vlan', '%s: its own port is in %s, so guests in VLAN %d cannot reach its '
                   'address %s (no gateway, DHCP or DNS)' % (bridge, where, vid, net['address']),
                   '%s or `bridge vlan add dev %s vid %d pvid untagged self`' % (SITE, bridge, vid))


def _check_vlan_filtering(report, net, link, host):
    if not net['vlan_id']:
        return
    name, bridge = net['name'], net['bridge']
    if link.vlan_filtering:
        report.good(name, bridge, 'vlan_filtering', '%s: VLAN filtering is on (VLAN %d)' % (bridge, net['vlan_id']))
        _check_bridge_vlan(report, net, link, host)
    elif link.vlan_filtering is None:
        report.bad(name, bridge, 'vlan_filtering', '%s: the kernel has no bridge VLAN filtering, so VLAN %d cannot '
                   'be kept apart' % (bridge, net['vlan_id']),
                   'boot a kernel with bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING) and 802.1Q, then %s' % SITE)
    else:
        report.bad(name, bridge, 'vlan_filtering', '%s: VLAN filtering is off, so VLAN %d is not kept apart'
                   % (bridge, net['vlan_id']), '%s or `ip link set %s type bridge vlan_filtering 1`' % (SITE, bridge))


def _check_dhcp(report, net, host):
    name, bridge = net['name'], net['bridge']
    state = host.dhcp.get(bridge)
    wanted = bool(net['cidr'] and (net['dhcp']['enabled'] or net['dns']['enabled']))
    if state is None:
        return
    if state.error:
        report.bad(name, bridge, 'dhcp', '%s: cannot tell whether the DHCP server (dnsmasq) runs: %s'
                   % (bridge, state.error), 'look at the error, then %s' % SITE)
        return
    if not wanted:
        if state.running:
            report.bad(name, bridge, 'dhcp', '%s: a dnsmasq (pid %s) runs although the network has DHCP and DNS off'
                       % (bridge, state.pid), '%s; it stops it' % SITE)
        return
    what = 'DHCP server (dnsmasq)' if net['dhcp']['enabled'] else 'DNS server (dnsmasq)'
    if not state.config_present:
        report.bad(name, bridge, 'dhcp', '%s: the %s is not set up (%s is missing), so VMs get no IP address'
                   % (bridge, what, state.config_path), '%s; it writes the configuration and starts dnsmasq' % SITE)
        return
    if state.running:
        report.good(name, bridge, 'dhcp', '%s: the %s is running%s' % (bridge, what, ' (pid %d)' % state.pid if state.pid else ''))
        return
    if state.supervisor == 'systemd':
        fix = '%s or `systemctl start %s` (`journalctl -u %s` says why it stopped)' % (SITE, state.unit_name, state.unit_name)
    else:
        fix = '%s or `dnsmasq --conf-file=%s`' % (SITE, state.config_path)
    stale = ''
    if state.stale_pid and state.stale_alive:
        stale = ' (its pid file names pid %d, which is another process)' % state.stale_pid
    elif state.stale_pid:
        stale = ' (pid %d of its pid file has exited)' % state.stale_pid
    report.bad(name, bridge, 'dhcp', '%s: the %s is not running%s, so VMs get no IP address' % (bridge, what, stale), fix)


def _table_words(mode):
    return {'nat': 'NAT and forward rules', 'routed': 'forward rules', 'isolated': 'isolation rules'}.get(mode, 'rules')


def _check_firewall(report, net, host, uplinks):
    name, bridge, mode = net['name'], net['bridge'], net['mode']
    table = '%s %s' % (TABLE_FAMILY, table_name(bridge))
    if host.ruleset is None:
        if net['firewall'] and mode in MODES_WITH_TABLE:
            report.bad(name, bridge, 'firewall', '%s: cannot read the nftables ruleset: %s' % (bridge, host.nft_error),
                       'install nftables (the nft command) on the host, then %s' % SITE)
        return
    current = host.ruleset.content(TABLE_FAMILY, table_name(bridge))
    if mode not in MODES_WITH_TABLE:
        if current is not None:
            report.bad(name, bridge, 'firewall', '%s: has firewall table %s although mode %s has none' % (bridge, table, mode),
                       '%s or `nft delete table %s`' % (SITE, table))
        return
    words = _table_words(mode)
    if current is None:
        report.bad(name, bridge, 'firewall', '%s: the %s (nft table %s) are missing%s'
                   % (bridge, words, table, ': guests cannot reach the outside' if mode == 'nat' else ''),
                   '%s; it loads the table (nqrust.microvm.fc_firewall)' % SITE)
        return
    if uplinks is None:
        report.good(name, bridge, 'firewall', '%s: nft table %s is there (its rules were not compared: the uplink is '
                    'not known)' % (bridge, table))
        return
    desired = desired_table(mode, bridge, ipaddress.ip_network(net['cidr']) if net['cidr'] else None, None, uplinks)
    if current.key() == desired.key():
        report.good(name, bridge, 'firewall', '%s: the %s (nft table %s) are in place' % (bridge, words, table))
        return
    report.bad(name, bridge, 'firewall', '%s: the rules of nft table %s are not what mode %s needs%s'
               % (bridge, table, mode, ' (uplink %s)' % ', '.join(uplinks) if uplinks else ''),
               '%s; it replaces the table (`nft list table %s` shows what is there now)' % (SITE, table))


def _check_forwarding(report, net, host):
    name, bridge, mode = net['name'], net['bridge'], net['mode']
    if mode not in MODES_WITH_UPLINK or not net['cidr'] or 4 not in host.forwarding:
        return
    if host.forwarding[4]:
        report.good(name, bridge, 'forwarding', '%s: IPv4 forwarding is on' % bridge)
    else:
        report.bad(name, bridge, 'forwarding', '%s: IPv4 forwarding is off (net.ipv4.ip_forward=0), so %s guests '
                   'cannot reach the outside' % (bridge, mode), '%s or `sysctl -w net.ipv4.ip_forward=1`' % SITE)


def _check_network(report, net, host):
    name, bridge = net['name'], net['bridge']
    if net['state'] == 'absent':
        if host.link(bridge) is not None:
            report.bad(name, bridge, 'absent', '%s: should be gone (state absent) but still exists' % bridge,
                       '%s; it removes the network' % SITE)
        else:
            report.good(name, bridge, 'absent', '%s: is gone, as it should be (state absent)' % bridge)
        return
    link = _check_bridge(report, net, host)
    if link is None:
        return
    _check_address(report, net, host, link)
    _check_mtu(report, net, link)
    uplinks = _uplinks(report, net, host)
    _check_vlan_filtering(report, net, link, host)
    _check_dhcp(report, net, host)
    _check_firewall(report, net, host, uplinks)
    _check_forwarding(report, net, host)


# --------------------------------------------------------------------------- VM interfaces

def _vm_text(row):
    return 'VM %s %s' % (row.get('vm_id'), row.get('iface_id') or 'eth0')


def _check_interface(report, row, net, host):
    tap = row.get('host_dev_name')
    name, bridge = net['name'], net['bridge']
    if not tap:
        return
    link = host.link(tap)
    who = '%s (%s)' % (tap, _vm_text(row))
    if link is None:
        report.bad(name, bridge, 'tap', '%s: TAP is missing, but the registry attaches it to %s' % (who, bridge),
                   'run playbooks/vm_nic_attach.yml for the VM, or drop the registry row with playbooks/vm_nic_detach.yml')
        return
    if not link.is_tap:
        report.bad(name, bridge, 'tap', '%s: is a %s, not a TAP' % (who, link.kind_label),
                   'delete the %s `%s`, then run playbooks/vm_nic_attach.yml for the VM' % (link.kind_label, tap))
        return
    master = host.name_of(link.master_index) if link.master_index else None
    if master != bridge:
        report.bad(name, bridge, 'tap', '%s: TAP is %s, not on bridge %s' % (
            who, 'on bridge %s' % master if master else 'on no bridge', bridge),
            'run playbooks/vm_nic_attach.yml for the VM or `ip link set %s master %s`' % (tap, bridge))
        return
    if not link.up:
        report.bad(name, bridge, 'tap', '%s: TAP is down' % who,
                   'run playbooks/vm_nic_attach.yml for the VM or `ip link set %s up`' % tap)
        return
    report.good(name, bridge, 'tap', '%s: TAP is up on bridge %s' % (who, bridge))
    if net['vlan_id'] and host.port_vlans is not None:
        entry = host.port_vlans.get(link.index)
        pvid = entry.pvid if entry is not None else None
        if pvid == net['vlan_id']:
            report.good(name, bridge, 'tap_vlan', '%s: TAP is in VLAN %d' % (who, pvid))
        else:
            report.bad(name, bridge, 'tap_vlan', '%s: TAP is in %s, the network is VLAN %d' % (
                who, 'VLAN %d' % pvid if pvid else 'no VLAN', net['vlan_id']),
                'run playbooks/vm_nic_attach.yml for the VM or `bridge vlan add dev %s vid %d pvid untagged`'
                % (tap, net['vlan_id']))


# --------------------------------------------------------------------------- what nothing expects

def _check_strays(report, nets, interfaces, host, source):
    known = set(net['bridge'] for net in nets)
    present = set(net['bridge'] for net in nets if net['state'] == 'present')
    for link in sorted(host.links, key=lambda item: item.name):
        if link.is_bridge and link.managed and link.name not in known:
            report.bad(None, link.name, 'unregistered_bridge', '%s: bridge exists on this host (made by the collection) '
                       'but %s' % (link.name, _lacks(source)), _record_fix(source, 'the bridge'))
    if interfaces is not None:
        taps = set(row.get('host_dev_name') for row in interfaces if row.get('host_dev_name'))
        for link in sorted(host.links, key=lambda item: item.name):
            if link.is_tap and link.managed and link.name not in taps:
                master = host.name_of(link.master_index) if link.master_index else None
                report.bad(None, master, 'unregistered_tap', '%s: TAP exists on this host%s but no VM interface of the '
                           'registry uses it' % (link.name, ' on bridge %s' % master if master else ''),
                           'record it with playbooks/vm_nic_attach.yml, or delete it (playbooks/vm_nic_detach.yml, '
                           'or `ip link delete %s`)' % link.name)
    if host.ruleset is not None:
        for table in host.ruleset.tables:
            if table.family == TABLE_FAMILY and table.name.startswith(TABLE_PREFIX):
                bridge = table.name[len(TABLE_PREFIX):]
                if bridge not in present:
                    report.bad(None, bridge, 'stray_firewall', '%s: nft table %s %s is left over: %s'
                               % (bridge, table.family, table.name, _lacks(source)),
                               'playbooks/network_delete.yml for %s, or `nft delete table %s %s`' % (bridge, table.family, table.name))
    for bridge in sorted(host.dhcp):
        state = host.dhcp[bridge]
        if bridge not in known and state.config_present:
            report.bad(None, bridge, 'stray_dhcp', '%s: a dnsmasq configuration of the collection (%s%s) is left over: %s'
                       % (bridge, state.config_path, ', running as pid %d' % state.pid if state.running and state.pid else '',
                          _lacks(source)), 'playbooks/network_delete.yml for %s, or remove it with '
                       'nqrust.microvm.fc_dnsmasq bridge=%s state=absent' % (bridge, bridge))


# --------------------------------------------------------------------------- all of it

def _spec_problems(report, validator):
    for error in validator.errors:
        param = error.param
        network = param.split('.', 1)[0] if param.startswith('fc_networks[') else param
        report.bad(network, None, 'network_spec', 'the network %s is not valid: %s' % (network, error),
                   'correct it in the registry (nqrust.microvm.fc_network_registry) or in fc_networks; the network role '
                   'refuses it as well')


def resolve(items):
    """``(networks, validator)``: the networks with the role's defaults filled in (``network_spec.resolve``)."""
    return network_spec.resolve(items)


def diagnose(items, interfaces, host, source='registry'):
    """The checks (see the module docstring); ``items`` as the network role takes ``fc_networks``."""
    report = _Report()
    nets, validator = resolve(items)
    _spec_problems(report, validator)
    for net in nets:
        _check_network(report, net, host)
    by_id = dict((net['registry_id'], net) for net in nets if net['registry_id'] and net['state'] == 'present')
    for row in interfaces or ():
        net = by_id.get(str(row.get('network_id')))
        if net is not None and host.link(net['bridge']) is not None:
            _check_interface(report, row, net, host)
    _check_strays(report, nets, interfaces, host, source)
    return report.checks


def problems_of(checks):
    """The failed checks as ``{network, bridge, check, message, fix}``."""
    return [dict((key, item[key]) for key in ('network', 'bridge', 'check', 'message', 'fix')) for item in checks if not item['ok']]


def bridges_to_read(items):
    """The bridges whose dnsmasq the reader looks at (those of valid networks)."""
    nets, dummy = resolve(items)
    return [net['bridge'] for net in nets]


def vlans_needed(items):
    nets, dummy = resolve(items)
    return any(net['vlan_id'] for net in nets)


__all__ = ['CHECKS', 'DhcpState', 'HostView', 'SOURCES', 'bridges_to_read', 'diagnose', 'problems_of', 'resolve',
           'vlans_needed']
