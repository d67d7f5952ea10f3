# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One read of everything ``diagnose_checks`` looks at; nothing is changed.

* links and addresses: one netlink dump each (``NetlinkSession``); routes only
  when a ``nat``/``routed`` network has no uplink of its own (its default
  route's interface is the uplink), bridge port VLANs only when a network has
  a VLAN;
* nftables: one ``nft -j list ruleset`` (``NftCli``); without ``nft`` the
  view carries the reason instead of a ruleset;
* IP forwarding from ``/proc/sys`` (this network namespace);
* each network's dnsmasq as the ``fc_dnsmasq`` module finds it: its
  configuration file, its daemon by pid file or ``/proc`` scan
  (``dnsmasq_service.find_daemon``), and where systemd runs its unit's state
  (``SystemdSupervisor.show``); plus every ``<bridge>.conf`` of the
  collection's configuration directory, so that left-over instances show up.
"""

from __future__ import annotations

import os

from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_service
from ansible_collections.nqrust.microvm.plugins.module_utils.diagnose_checks import DhcpState, HostView
from ansible_collections.nqrust.microvm.plugins.module_utils.dnsmasq_config import Paths
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall import default_route_interfaces
from ansible_collections.nqrust.microvm.plugins.module_utils.ip_forwarding import read_forwarding
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftError
from ansible_collections.nqrust.microvm.plugins.module_utils.sysctl import ProcSys, SysctlError


def config_bridges(config_dir):
    """The bridges with a ``<bridge>.conf`` in the collection's dnsmasq configuration directory."""
    try:
        names = os.listdir(config_dir)
    except OSError:
        return []
    return sorted(name[:-len('.conf')] for name in names if name.endswith('.conf') and len(name) > len('.conf'))


def read_dhcp(bridge, dirs, supervisor, run_command=None, proc=dnsmasq_service.PROC):
    """``DhcpState`` of one network's dnsmasq (``supervisor``: ``'systemd'`` or ``'pidfile'``)."""
    paths = Paths.of(bridge, **dirs)
    state = DhcpState(config_path=paths.config, config_present=os.path.isfile(paths.config), running=False,
                      supervisor=supervisor, unit_name=paths.unit_name)
    daemon = dnsmasq_service.find_daemon(paths, proc)
    state.pid = daemon.pid
    state.stale_pid = daemon.pidfile_pid if daemon.stale_pidfile else None
    state.stale_alive = state.stale_pid is not None and dnsmasq_service.alive(state.stale_pid, proc)
    state.running = daemon.running
    if supervisor == 'systemd' and run_command is not None:
        try:
            unit = dnsmasq_service.SystemdSupervisor(run_command, paths).show()
        except dnsmasq_service.ServiceError as exc:
            state.error = str(exc)
        else:
            if unit['active']:
                state.running = True
                state.pid = unit['main_pid'] or state.pid
    return state


def read_host(session, nft, bridges, dirs, supervisor, need_routes=True, need_vlans=False, run_command=None,
              procsys=None, proc=dnsmasq_service.PROC):
    """A ``HostView``: ``session`` a ``NetlinkSession``, ``nft`` an ``NftCli`` (or ``None``: nft is not installed).

    ``dirs`` holds ``config_dir``, ``state_dir``, ``run_dir`` and ``unit_dir`` of the dnsmasq instances.
    """
    links = session.links()
    addresses = session.addresses()
    view = HostView(links=links, addresses=addresses)
    if need_routes:
        view.default_uplinks = default_route_interfaces(session.routes(), view.by_index)
    if need_vlans:
        view.port_vlans = dict((entry.index, entry) for entry in session.port_vlans())
    if nft is None:
        view.nft_error = 'the nft command is not installed'
    else:
        try:
            view.ruleset = nft.list_ruleset()
        except NftError as exc:
            view.nft_error = str(exc)
    try:
        view.forwarding = read_forwarding(procsys or ProcSys())
    except SysctlError:
        view.forwarding = {}
    for bridge in sorted(set(bridges) | set(config_bridges(dirs['config_dir']))):
        view.dhcp[bridge] = read_dhcp(bridge, dirs, supervisor, run_command=run_command, proc=proc)
    return view


__all__ = ['config_bridges', 'read_dhcp', 'read_host']
