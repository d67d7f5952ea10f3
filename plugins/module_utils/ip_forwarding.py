# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""IP forwarding and br_netfilter switches, read and written through ``/proc/sys``.

``/proc/sys/net`` shows the network namespace of the process that opens it,
so a module run inside a namespace (``ip netns exec``) reads and writes that
namespace's settings.  Only turning forwarding *on* is offered: the
collection never turns it off (other networks, containers or the host's own
routing may need it).

``net.ipv6.conf.all.forwarding=1`` makes the kernel stop accepting router
advertisements on interfaces whose ``accept_ra`` is 1; hosts that learn their
IPv6 default route by SLAAC need ``accept_ra=2`` on the uplink.
"""

from __future__ import annotations

FORWARDING = {4: 'net.ipv4.ip_forward', 6: 'net.ipv6.conf.all.forwarding'}
BR_NETFILTER = {'ip': 'net.bridge.bridge-nf-call-iptables', 'ip6': 'net.bridge.bridge-nf-call-ip6tables'}


def read_forwarding(procsys):
    """``{4: bool, 6: bool}``: whether IPv4 and IPv6 forwarding are on."""
    return dict((version, procsys.enabled(name)) for version, name in FORWARDING.items())


def read_br_netfilter(procsys):
    """``{'ip': bool, 'ip6': bool}``: whether bridged frames pass the IPv4/IPv6 netfilter hooks (br_netfilter)."""
    return dict((family, procsys.enabled(name)) for family, name in BR_NETFILTER.items())


__all__ = ['BR_NETFILTER', 'FORWARDING', 'read_br_netfilter', 'read_forwarding']
