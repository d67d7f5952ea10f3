# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A netlink session over pyroute2 ``IPRoute``: read state once, write by index.

Works with pyroute2 0.7.x (Debian 12 ships 0.7.2) and 0.9.x; only APIs present
in both are used: ``IPRoute().get_links()``, ``get_addr()``, ``link()``,
``addr()`` and ``msg.get_attr()`` (nested ``IFLA_LINKINFO`` ->
``IFLA_INFO_KIND``).

* ``NetlinkSession`` reads links and addresses with one dump per object kind,
  turns the messages into plain immutable records (``Link``, ``Address``) and
  caches them until ``refresh()``.
* Writes go through the session too, so every ``NetlinkError`` becomes a
  ``NetlinkOperationError`` whose message names the operation and the object
  and says in plain English what the errno means.
* Links are deleted and changed by index, never by name (by name costs a dump
  per call in pyroute2).
* Links the collection creates carry ``OWNER_MARKER`` in their ``ifalias``;
  ``is_ours()`` tells them apart, and purges only ever remove those.

The import of pyroute2 is guarded: modules check ``HAS_PYROUTE2`` and call
``module.fail_json(msg=missing_required_lib('pyroute2'),
exception=PYROUTE2_IMPORT_ERROR)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import traceback
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_dump import dump_links


class _NetlinkErrorUnavailable(Exception):
    """Stands in for pyroute2's NetlinkError when pyroute2 is missing (never raised)."""

    def __init__(self, code=0, msg=None):
        super(_NetlinkErrorUnavailable, self).__init__(code, msg)
        self.code = code


try:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    IPRoute = None
    NetlinkError = _NetlinkErrorUnavailable
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None


# ifalias value of every link the collection creates.  A link is "ours" if its
# alias is exactly the marker or starts with the marker and ':' (room for a
# note such as the VM id).
OWNER_MARKER = 'nqrust.microvm'

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
ARPHRD_ETHER = 1
ARPHRD_NONE = 0xFFFE
IFLA_TUN_TYPE_TUN = 1
IFLA_TUN_TYPE_TAP = 2
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254


# --------------------------------------------------------------------------- errors

_ERRNO_EXPLANATIONS = {
    errno.EPERM: 'operation not permitted: changing network links needs root or the CAP_NET_ADMIN capability',
    errno.EACCES: 'permission denied: changing network links needs root or the CAP_NET_ADMIN capability',
    errno.EEXIST: 'it already exists (a link with that name, or that address on the link, is already present)',
    errno.ENODEV: 'no such device: the link does not exist (it may have been removed meanwhile)',
    errno.ENOENT: 'not found: the link, address or entry does not exist',
    errno.EBUSY: 'device or resource busy: the link is in use (for instance enslaved to another master, or still open)',
    errno.EOPNOTSUPP: ('operation not supported: the kernel lacks this feature or its module is not loaded '
                       '(for instance 8021q for VLAN links, or bridge VLAN filtering)'),
    errno.EPROTONOSUPPORT: 'protocol not supported: the kernel lacks the module for this link kind',
    errno.ERANGE: 'value out of range: for instance an MTU above what the device or its parent allows',
    errno.EINVAL: ('invalid argument: the kernel refused a value, for instance an MTU below the minimum (68 for IPv4, '
                   '1280 for IPv6) or above the maximum, or an attribute this link kind does not take'),
    errno.EADDRNOTAVAIL: 'address not available: the address is not configured on that link',
    errno.EAFNOSUPPORT: 'address family not supported: for instance IPv6 is disabled on this host or link',
    errno.ELOOP: 'it would create a loop: for instance enslaving a bridge to itself or to one of its ports',
    errno.EMLINK: 'too many links: the master cannot take another port',
    errno.ENOSPC: 'no space left: a kernel table is full',
    errno.ENOMEM: 'the kernel is out of memory',
    errno.ENOBUFS: 'the netlink socket ran out of buffer space; retry with fewer changes at once',
    errno.ENETDOWN: 'the network is down: bring the link up first',
    errno.EAGAIN: 'resource temporarily unavailable; retry',
}


def explain_errno(code):
    """Plain-English meaning of an errno from the kernel, e.g. ``EPERM`` -> needs root/CAP_NET_ADMIN."""
    if code is None:
        return 'unknown error'
    code = abs(int(code))
    text = _ERRNO_EXPLANATIONS.get(code)
    if text is None:
        text = os.strerror(code)
    return text


def errno_name(code):
    """``'EPERM'`` for 1, ``'errno 4242'`` for an unknown code."""
    if code is None:
        return 'errno ?'
    code = abs(int(code))
    # Linux gives some numbers two names; use the one netlink users know
    preferred = {errno.EOPNOTSUPP: 'EOPNOTSUPP', errno.EAGAIN: 'EAGAIN'}
    return preferred.get(code) or errno.errorcode.get(code, 'errno %s' % code)


class NetlinkOperationError(Exception):
    """A netlink operation failed; the message names what was being done, on what, and why.

    ``operation`` is e.g. ``"creating tap 'tap0'"``, ``code`` the errno (or
    ``None``) and ``cause`` the original exception::

        creating tap 'tap0': operation not permitted: changing network links needs root ... [EPERM]
    """

    def __init__(self, operation, code=None, cause=None, detail=None):
        self.operation = operation
        self.code = abs(int(code)) if code is not None else None
        self.cause = cause
        self.detail = detail
        super(NetlinkOperationError, self).__init__(self._format())

    def _format(self):
        if self.code is not None:
            text = '%s: %s [%s]' % (self.operation, explain_errno(self.code), errno_name(self.code))
        elif self.detail:
            text = '%s: %s' % (self.operation, self.detail)
        else:
            text = '%s: %s' % (self.operation, self.cause)
        if self.code is not None and self.detail:
            text = '%s (%s)' % (text, self.detail)
        return text

    def __str__(self):
        return self._format()


def _error_code(exc):
    code = getattr(exc, 'code', None)
    if code is None:
        code = getattr(exc, 'errno', None)
    return code


@contextlib.contextmanager
def netlink_operation(operation):
    """Turn pyroute2/OS errors raised inside the block into ``NetlinkOperationError`` naming ``operation``."""
    try:
        yield
    except NetlinkOperationError:
        raise
    except (NetlinkError, OSError) as exc:
        raise NetlinkOperationError(operation, _error_code(exc), exc) from exc


# --------------------------------------------------------------------------- records

@dataclasses.dataclass(frozen=True)
class Link(object):
    """One network link as read from the kernel.

    ``kind`` is the kernel's ``IFLA_INFO_KIND`` (``'bridge'``, ``'tun'``,
    ``'veth'``, ``'vlan'``, ``'vxlan'``...; ``None`` for physical and loopback
    devices).  TAPs and TUNs both have kind ``'tun'``; ``tun_type`` tells them
    apart (``'tap'``/``'tun'``).  ``master_index`` is the bridge a port is
    enslaved to, ``link_index`` the parent of a VLAN or the peer of a veth.
    ``up`` is the administrative state (IFF_UP), ``lower_up`` the carrier.
    """

    index: int
    name: str
    kind: Optional[str] = None
    tun_type: Optional[str] = None
    master_index: Optional[int] = None
    link_index: Optional[int] = None
    mtu: Optional[int] = None
    mac: Optional[str] = None
    up: bool = False
    lower_up: bool = False
    operstate: Optional[str] = None
    alias: Optional[str] = None
    txqlen: Optional[int] = None
    flags: int = 0
    slave_kind: Optional[str] = None
    vlan_id: Optional[int] = None
    vlan_filtering: Optional[bool] = None
    # bridge settings (IFLA_INFO_DATA of a bridge); None when the kernel does not report them
    stp_state: Optional[int] = None
    forward_delay: Optional[int] = None          # centiseconds (clock_t), as the kernel reports it
    mcast_snooping: Optional[bool] = None
    vlan_default_pvid: Optional[int] = None      # None: kernel without bridge VLAN filtering

    @property
    def is_bridge(self):
        return self.kind == 'bridge'

    @property
    def is_tap(self):
        return self.kind == 'tun' and self.tun_type == 'tap'

    @property
    def is_vlan(self):
        return self.kind == 'vlan'

    @property
    def managed(self):
        """True if the collection created this link (its ifalias carries ``OWNER_MARKER``)."""
        return is_ours(self)

    @property
    def kind_label(self):
        """A word for messages: ``'tap'``, ``'bridge'``, ``'vlan'``, ... or ``'link'``."""
        if self.kind == 'tun':
            return self.tun_type or 'tun'
        return self.kind or 'link'

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Address(object):
    """One IP address on a link.  ``family`` is ``socket.AF_INET`` or ``socket.AF_INET6``."""

    index: int
    family: int
    address: str
    prefixlen: int
    scope: int = 0
    label: Optional[str] = None

    @property
    def version(self):
        return 6 if self.family == socket.AF_INET6 else 4

    @property
    def cidr(self):
        """``'10.0.0.1/24'``."""
        return '%s/%d' % (self.address, self.prefixlen)

    @property
    def is_link_local(self):
        """IPv6 link-local (and any other link-scope) addresses, which the kernel manages itself."""
        return self.scope == RT_SCOPE_LINK

    def to_dict(self):
        data = dataclasses.asdict(self)
        data['cidr'] = self.cidr
        data['version'] = self.version
        return data


RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RTPROT_REDIRECT = 1
RTPROT_KERNEL = 2
RTPROT_RA = 9
RTN_UNICAST = 1
RTNH_F_ONLINK = 0x4
_RTPROT_NAMES = {1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 9: 'ra', 16: 'dhcp'}


@dataclasses.dataclass(frozen=True)
class Route(object):
    """One route as read from the kernel (any table, IPv4 or IPv6).

    ``dst`` is ``None`` for a default route; ``oif`` the output ifindex
    (``None`` for multipath routes, whose hops' ifindexes are in
    ``multipath_oifs``); ``priority`` the metric; ``flags`` the route's
    ``rtm_flags`` (``RTNH_F_ONLINK``...).  ``nexthop_id`` is set for routes
    that use a nexthop object.
    """

    family: int
    dst: Optional[str]
    dst_len: int
    table: int = RT_TABLE_MAIN
    oif: Optional[int] = None
    gateway: Optional[str] = None
    priority: Optional[int] = None
    proto: int = 0
    scope: int = 0
    type: int = RTN_UNICAST
    prefsrc: Optional[str] = None
    tos: int = 0
    flags: int = 0
    multipath_oifs: tuple = ()
    nexthop_id: Optional[int] = None

    @property
    def version(self):
        return 6 if self.family == socket.AF_INET6 else 4

    @property
    def destination(self):
        """``'default'`` or ``'10.0.0.0/24'``."""
        if not self.dst_len and self.dst in (None, '0.0.0.0', '::'):
            return 'default'
        return '%s/%d' % (self.dst, self.dst_len)

    @property
    def kernel_managed(self):
        """Routes the kernel makes and removes itself (connected, local table) or learns (RA, redirects)."""
        return self.table == RT_TABLE_LOCAL or self.proto in (RTPROT_KERNEL, RTPROT_RA, RTPROT_REDIRECT)

    def describe(self, dev=None):
        """``'default via 192.0.2.1 dev eth0 metric 100'`` in ``ip route`` words (IPv6 routes start with ``-6``)."""
        words = ['-6'] if self.version == 6 else []
        words.append(self.destination)
        if self.gateway:
            words += ['via', self.gateway]
        if dev:
            words += ['dev', dev]
        if self.table != RT_TABLE_MAIN:
            words += ['table', str(self.table)]
        if self.proto not in (0, 3):
            words += ['proto', _RTPROT_NAMES.get(self.proto, str(self.proto))]
        if self.scope:
            words += ['scope', {253: 'link', 254: 'host'}.get(self.scope, str(self.scope))]
        if self.prefsrc:
            words += ['src', self.prefsrc]
        if self.priority is not None:
            words += ['metric', str(self.priority)]
        if self.tos:
            words += ['tos', str(self.tos)]
        if self.flags & RTNH_F_ONLINK:
            words.append('onlink')
        return ' '.join(words)

    def to_dict(self):
        data = dataclasses.asdict(self)
        data['multipath_oifs'] = list(self.multipath_oifs)
        data['destination'] = self.destination
        return data


def route_from_msg(msg):
    """A ``Route`` from an ``rtmsg`` (the table from ``RTA_TABLE`` when present, so tables above 255 work)."""
    hops = msg.get_attr('RTA_MULTIPATH') or ()
    oifs = []
    for hop in hops:
        try:
            oifs.append(int(hop['oif']))
        except (KeyError, TypeError, ValueError):
            continue
    table = msg.get_attr('RTA_TABLE')
    return Route(
        family=int(_field(msg, 'family', socket.AF_INET)),
        dst=msg.get_attr('RTA_DST'),
        dst_len=int(_field(msg, 'dst_len', 0)),
        table=int(table if table is not None else _field(msg, 'table', RT_TABLE_MAIN)),
        oif=msg.get_attr('RTA_OIF'),
        gateway=msg.get_attr('RTA_GATEWAY'),
        priority=msg.get_attr('RTA_PRIORITY'),
        proto=int(_field(msg, 'proto', 0)),
        scope=int(_field(msg, 'scope', 0)),
        type=int(_field(msg, 'type', RTN_UNICAST)),
        prefsrc=msg.get_attr('RTA_PREFSRC'),
        tos=int(_field(msg, 'tos', 0)),
        flags=int(_field(msg, 'flags', 0)),
        multipath_oifs=tuple(oifs),
        nexthop_id=msg.get_attr('RTA_NH_ID'),
    )


def owner_alias(note=None):
    """The ifalias to give a link the collection creates: ``'nqrust.microvm'`` or ``'nqrust.microvm:<note>'``."""
    if note:
        return '%s:%s' % (OWNER_MARKER, note)
    return OWNER_MARKER


def is_ours(link_or_alias):
    """True if a ``Link`` (or an ifalias string) carries the collection's marker."""
    alias = link_or_alias.alias if isinstance(link_or_alias, Link) else link_or_alias
    if not alias:
        return False
    return alias == OWNER_MARKER or alias.startswith(OWNER_MARKER + ':')


def _nested_attr(value, name):
    """Attribute ``name`` of a nested netlink attribute (a decoded nla, or a ``{'attrs': [...]}`` dict)."""
    if value is None:
        return None
    getter = getattr(value, 'get_attr', None)
    if getter is not None:
        return getter(name)
    if isinstance(value, dict):
        for pair in value.get('attrs', ()):
            if pair[0] == name:
                return pair[1]
    return None


def _field(msg, name, default=None):
    try:
        value = msg[name]
    except (KeyError, IndexError, TypeError):
        return default
    return default if value is None else value


def link_from_msg(msg):
    """A ``Link`` from an ``ifinfmsg`` (or anything with ``get_attr`` and item access)."""
    flags = int(_field(msg, 'flags', 0))
    linkinfo = msg.get_attr('IFLA_LINKINFO')
    kind = _nested_attr(linkinfo, 'IFLA_INFO_KIND')
    slave_kind = _nested_attr(linkinfo, 'IFLA_INFO_SLAVE_KIND')
    data = _nested_attr(linkinfo, 'IFLA_INFO_DATA')
    tun_type = None
    vlan_id = None
    vlan_filtering = None
    bridge_settings = {}
    if kind == 'tun':
        code = _nested_attr(data, 'IFLA_TUN_TYPE')
        if code is None:
            # kernels before 4.x report no tun data; the ARP type tells TAP from TUN
            code = {ARPHRD_ETHER: IFLA_TUN_TYPE_TAP, ARPHRD_NONE: IFLA_TUN_TYPE_TUN}.get(_field(msg, 'ifi_type'))
        tun_type = {IFLA_TUN_TYPE_TUN: 'tun', IFLA_TUN_TYPE_TAP: 'tap'}.get(code)
    elif kind == 'vlan':
        vlan_id = _nested_attr(data, 'IFLA_VLAN_ID')
    elif kind == 'bridge':
        filtering = _nested_attr(data, 'IFLA_BR_VLAN_FILTERING')
        vlan_filtering = None if filtering is None else bool(filtering)
        bridge_settings = _bridge_settings(data)
    master = msg.get_attr('IFLA_MASTER')
    link = msg.get_attr('IFLA_LINK')
    mac = msg.get_attr('IFLA_ADDRESS')
    return Link(
        index=int(_field(msg, 'index', 0)),
        name=msg.get_attr('IFLA_IFNAME'),
        kind=kind,
        tun_type=tun_type,
        master_index=master or None,
        link_index=link or None,
        mtu=msg.get_attr('IFLA_MTU'),
        mac=mac.lower() if isinstance(mac, str) else mac,
        up=bool(flags & IFF_UP),
        lower_up=bool(flags & IFF_LOWER_UP),
        operstate=msg.get_attr('IFLA_OPERSTATE'),
        alias=msg.get_attr('IFLA_IFALIAS') or None,
        txqlen=msg.get_attr('IFLA_TXQLEN'),
        flags=flags,
        slave_kind=slave_kind,
        vlan_id=vlan_id,
        vlan_filtering=vlan_filtering,
        **bridge_settings
    )


def _bridge_settings(data):
    """The bridge settings ``Link`` carries, from a bridge's ``IFLA_INFO_DATA`` (missing ones are ``None``)."""
    snooping = _nested_attr(data, 'IFLA_BR_MCAST_SNOOPING')
    return {
        'stp_state': _nested_attr(data, 'IFLA_BR_STP_STATE'),
        'forward_delay': _nested_attr(data, 'IFLA_BR_FORWARD_DELAY'),
        'mcast_snooping': None if snooping is None else bool(snooping),
        'vlan_default_pvid': _nested_attr(data, 'IFLA_BR_VLAN_DEFAULT_PVID'),
    }


def address_from_msg(msg):
    """An ``Address`` from an ``ifaddrmsg``.

    For IPv4 the local address is ``IFA_LOCAL`` (``IFA_ADDRESS`` is the peer on
    point-to-point links); IPv6 reports it in ``IFA_ADDRESS``.
    """
    family = int(_field(msg, 'family', socket.AF_INET))
    address = msg.get_attr('IFA_LOCAL') if family == socket.AF_INET else None
    if address is None:
        address = msg.get_attr('IFA_ADDRESS')
    return Address(
        index=int(_field(msg, 'index', 0)),
        family=family,
        address=address,
        prefixlen=int(_field(msg, 'prefixlen', 0)),
        scope=int(_field(msg, 'scope', 0)),
        label=msg.get_attr('IFA_LABEL'),
    )


# --------------------------------------------------------------------------- bridge port VLANs

AF_BRIDGE = 7
RTEXT_FILTER_BRVLAN = 0x2
RTEXT_FILTER_BRVLAN_COMPRESSED = 0x4
BRIDGE_FLAGS_MASTER = 0x1      # IFLA_BRIDGE_FLAGS: the request is for the port's bridge (bridge vlan ... master)
BRIDGE_FLAGS_SELF = 0x2        # IFLA_BRIDGE_FLAGS: the request is for the device itself (bridge vlan ... self)
BRIDGE_VLAN_INFO_MASTER = 0x1
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
BRIDGE_VLAN_INFO_RANGE_BEGIN = 0x8
BRIDGE_VLAN_INFO_RANGE_END = 0x10
BRIDGE_VLAN_INFO_BRENTRY = 0x20
_BRIDGE_VID_MIN = 1
_BRIDGE_VID_MAX = 4094


@dataclasses.dataclass(frozen=True)
class PortVlan(object):
    """VLAN ids ``start`` to ``end`` on one bridge port (or bridge), all with the same flags.

    ``pvid``: untagged frames arriving on the port are put in this VLAN (a
    port has at most one, so a pvid entry is always a single id);
    ``untagged``: frames of these VLANs leave the port without a tag.
    """

    start: int
    end: int
    pvid: bool = False
    untagged: bool = False

    @property
    def vids(self):
        return range(self.start, self.end + 1)

    @property
    def text(self):
        """``'100'`` or ``'100-110'``, as ``bridge vlan`` and the modules' options write it."""
        return str(self.start) if self.start == self.end else '%d-%d' % (self.start, self.end)

    @property
    def flags(self):
        """The kernel's ``BRIDGE_VLAN_INFO_*`` flags of this entry (no range flags)."""
        return (BRIDGE_VLAN_INFO_PVID if self.pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if self.untagged else 0)

    def to_dict(self):
        return {'vlans': self.text, 'pvid': self.pvid, 'untagged': self.untagged}


@dataclasses.dataclass(frozen=True)
class PortVlans(object):
    """The VLAN membership of one bridge port, or of a bridge itself, as the kernel reports it.

    ``master_index`` is the port's bridge; a bridge's own entry (``bridge
    vlan ... self``) reports its own ifindex there (``is_self``).  ``vlans``
    is a tuple of ``PortVlan`` sorted by id, with neighbouring ids of equal
    flags merged into ranges, whichever form the kernel sent.
    """

    index: int
    name: str
    master_index: Optional[int] = None
    vlans: tuple = ()

    @property
    def is_self(self):
        return self.master_index is None or self.master_index == self.index

    @property
    def pvid(self):
        """The port VLAN id, or ``None``."""
        for vlan in self.vlans:
            if vlan.pvid:
                return vlan.start
        return None

    def flags_by_vid(self):
        """``{vid: (pvid, untagged)}`` of every VLAN of the port."""
        found = {}
        for vlan in self.vlans:
            for vid in vlan.vids:
                found[vid] = (vlan.pvid, vlan.untagged)
        return found

    def to_dict(self):
        return {'index': self.index, 'name': self.name, 'master_index': self.master_index,
                'vlans': [vlan.to_dict() for vlan in self.vlans]}


def merge_port_vlans(entries):
    """``PortVlan`` runs from ``(vid, pvid, untagged)`` triples: sorted, neighbours of equal flags merged.

    A pvid entry is never merged with its neighbours (there is one pvid).
    """
    merged = []
    for vid, pvid, untagged in sorted(entries):
        last = merged[-1] if merged else None
        if (last is not None and not pvid and not last.pvid and last.untagged == bool(untagged)
                and vid == last.end + 1):
            merged[-1] = PortVlan(last.start, vid, False, last.untagged)
        elif last is not None and last.start <= vid <= last.end:
            continue  # repeated id (the kernel never sends one): keep the first
        else:
            merged.append(PortVlan(vid, vid, bool(pvid), bool(untagged)))
    return tuple(merged)


def _vlan_infos(spec):
    """``(vid, flags)`` of every ``IFLA_BRIDGE_VLAN_INFO`` in an ``IFLA_AF_SPEC`` (decoded nla or plain dict)."""
    if spec is None:
        return
    try:
        pairs = spec['attrs']
    except (KeyError, TypeError, IndexError):
        pairs = ()
    for pair in pairs or ():
        if pair[0] != 'IFLA_BRIDGE_VLAN_INFO':
            continue
        info = pair[1]
        yield int(info['vid']), int(info['flags'])


def port_vlans_from_msg(msg):
    """A ``PortVlans`` from one message of an ``AF_BRIDGE`` link dump (compressed ranges or one entry per id)."""
    entries = []
    begin = None
    for vid, flags in _vlan_infos(msg.get_attr('IFLA_AF_SPEC')):
        pvid = bool(flags & BRIDGE_VLAN_INFO_PVID)
        untagged = bool(flags & BRIDGE_VLAN_INFO_UNTAGGED)
        if flags & BRIDGE_VLAN_INFO_RANGE_BEGIN:
            begin = (vid, pvid, untagged)
            continue
        if flags & BRIDGE_VLAN_INFO_RANGE_END and begin is not None:
            start, pvid, untagged = begin
            begin = None
            entries.extend((number, pvid, untagged) for number in range(start, vid + 1))
            continue
        entries.append((vid, pvid, untagged))
    master = msg.get_attr('IFLA_MASTER')
    return PortVlans(
        index=int(_field(msg, 'index', 0)),
        name=msg.get_attr('IFLA_IFNAME'),
        master_index=master or None,
        vlans=merge_port_vlans(entries),
    )


def port_vlan_attrs(vlan):
    """The ``IFLA_BRIDGE_VLAN_INFO`` attributes that add or remove one ``PortVlan`` (two for a range)."""
    for vid in (vlan.start, vlan.end):
        if not _BRIDGE_VID_MIN <= int(vid) <= _BRIDGE_VID_MAX:
            raise ValueError('VLAN id %s is outside %d-%d' % (vid, _BRIDGE_VID_MIN, _BRIDGE_VID_MAX))
    if vlan.start > vlan.end:
        raise ValueError('VLAN range %d-%d is reversed' % (vlan.start, vlan.end))
    if vlan.start == vlan.end:
        return [['IFLA_BRIDGE_VLAN_INFO', {'flags': vlan.flags, 'vid': vlan.start}]]
    if vlan.pvid:
        raise ValueError('VLAN range %s cannot be the pvid: a port has one pvid' % vlan.text)
    return [['IFLA_BRIDGE_VLAN_INFO', {'flags': vlan.flags | BRIDGE_VLAN_INFO_RANGE_BEGIN, 'vid': vlan.start}],
            ['IFLA_BRIDGE_VLAN_INFO', {'flags': vlan.flags | BRIDGE_VLAN_INFO_RANGE_END, 'vid': vlan.end}]]


def _show_port_vlans(vlans):
    texts = [vlan.text for vlan in vlans]
    words = 'VLAN' if len(texts) == 1 and '-' not in texts[0] else 'VLANs'
    flags = set()
    for vlan in vlans:
        if vlan.pvid:
            flags.add('pvid')
        if vlan.untagged:
            flags.add('untagged')
    text = '%s %s' % (words, ','.join(texts))
    return text + (' (%s)' % ', '.join(sorted(flags)) if flags else '')


def _link_kind_word(kind, attrs):
    if kind == 'tuntap':
        return attrs.get('mode') or 'tuntap'
    return kind


# --------------------------------------------------------------------------- session

class NetlinkUnavailable(Exception):
    """pyroute2 is not installed (modules should have checked ``HAS_PYROUTE2``)."""


class NetlinkSession(object):
    """One ``IPRoute`` socket, with cached state read by one dump per object kind.

    ::

        with NetlinkSession() as nl:
            br = nl.link('fcbr0')                 # from the cached dump
            ports = nl.ports(br)
            idx = nl.create_link('tuntap', 'tap0', mode='tap', settings={'mtu': 1500})
            nl.set_link(idx, display='tap0', master=br.index)
            nl.refresh()                          # re-read on next access

    ``ipr`` may be an already open ``IPRoute`` (or a fake in tests); the session
    then does not close it.  ``dumps`` counts the dumps per kind, so tests can
    check that state is read once.
    """

    def __init__(self, ipr=None):
        self._ipr = ipr
        self._owns = ipr is None
        self._port_vlans = None
        self._links = None
        self._links_by_name = None
        self._links_by_index = None
        self._addresses = None
        self._routes = None
        self.dumps = {'links': 0, 'addresses': 0}

    # ----------------------------------------------------------- lifecycle
    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()
        return False

    def open(self):
        if self._ipr is not None:
            return self
        if not HAS_PYROUTE2:
            raise NetlinkUnavailable('pyroute2 is not installed')
        with netlink_operation('opening a netlink socket'):
            self._ipr = IPRoute()
        self._owns = True
        return self

    def close(self):
        if self._ipr is not None and self._owns:
            try:
                self._ipr.close()
            finally:
                self._ipr = None

    @property
    def ipr(self):
        """The underlying ``IPRoute``, for calls the session does not wrap (use ``call()`` for errors)."""
        if self._ipr is None:
            self.open()
        return self._ipr

    def refresh(self):
        """Forget the cached state; the next read dumps again."""
        self._port_vlans = None
        self._links = None
        self._links_by_name = None
        self._links_by_index = None
        self._addresses = None
        self._routes = None

    # ----------------------------------------------------------- reading
    def links(self):
        """All links, sorted by index (one ``RTM_GETLINK`` dump per session until ``refresh()``)."""
        if self._links is None:
            with netlink_operation('reading the links'):
                if self._owns:
                    # the session's own socket: the lean reader (about 30x faster than pyroute2's decoding)
                    messages = dump_links()
                else:
                    messages = self.ipr.get_links()
            self.dumps['links'] += 1
            records = sorted((link_from_msg(msg) for msg in messages), key=lambda rec: rec.index)
            self._links = tuple(records)
            self._links_by_name = dict((rec.name, rec) for rec in records)
            self._links_by_index = dict((rec.index, rec) for rec in records)
        return self._links

    def link(self, name):
        """The link called ``name``, or ``None``."""
        self.links()
        return self._links_by_name.get(name)

    def link_by_index(self, index):
        """The link with ifindex ``index``, or ``None``."""
        self.links()
        return self._links_by_index.get(index)

    def ports(self, bridge):
        """Links enslaved to ``bridge`` (a ``Link``, an ifindex or a name), sorted by name."""
        index = self._index_of(bridge)
        if index is None:
            return ()
        return tuple(sorted((rec for rec in self.links() if rec.master_index == index), key=lambda rec: rec.name))

    def addresses(self, link=None):
        """All IP addresses (one ``RTM_GETADDR`` dump), or those of one link (``Link``, ifindex or name)."""
        if self._addresses is None:
            with netlink_operation('reading the IP addresses'):
                messages = self.ipr.get_addr()
            self.dumps['addresses'] += 1
            records = [address_from_msg(msg) for msg in messages]
            records.sort(key=lambda rec: (rec.index, rec.family, rec.address, rec.prefixlen))
            self._addresses = tuple(records)
        if link is None:
            return self._addresses
        index = self._index_of(link)
        return tuple(rec for rec in self._addresses if rec.index == index)

    def routes(self, link=None):
        """All routes of every table, IPv4 and IPv6 (one ``AF_UNSPEC`` ``RTM_GETROUTE`` dump), or those leaving by one link.

        ``link`` (``Link``, ifindex or name) selects routes whose output
        interface, or one of whose multipath hops, is that link.  The
        ``dumps['routes']`` counter appears with the first dump.
        """
        if self._routes is None:
            with netlink_operation('reading the routes'):
                messages = self.ipr.get_routes(family=socket.AF_UNSPEC)
            self.dumps['routes'] = self.dumps.get('routes', 0) + 1
            self._routes = tuple(route_from_msg(msg) for msg in messages
                                 if int(_field(msg, 'family', 0)) in (socket.AF_INET, socket.AF_INET6))
        if link is None:
            return self._routes
        index = self._index_of(link)
        return tuple(rec for rec in self._routes if rec.oif == index or index in rec.multipath_oifs)

    def port_vlans(self, link=None):
        """Bridge-port VLAN membership of every port and bridge (one ``AF_BRIDGE`` link dump), or of one link.

        The dump asks for ``RTEXT_FILTER_BRVLAN_COMPRESSED`` (ranges, so a
        trunk of 4094 VLANs stays small) and reads ``IFLA_AF_SPEC`` ->
        ``IFLA_BRIDGE_VLAN_INFO`` of each message.  Returns a tuple of
        ``PortVlans`` sorted by ifindex (bridges carry their own ``self``
        entries), cached until ``refresh()``; with ``link`` (``Link``, ifindex
        or name) that link's ``PortVlans`` or ``None``.  A kernel without
        bridge VLAN filtering reports the ports with no VLANs.  The
        ``dumps['port_vlans']`` counter appears with the first dump.
        """
        if self._port_vlans is None:
            with netlink_operation('reading the bridge port VLANs'):
                # match={} keeps pyroute2 0.7 from turning ext_mask into a message filter
                messages = self.ipr.link('dump', family=AF_BRIDGE, ext_mask=RTEXT_FILTER_BRVLAN_COMPRESSED, match={})
                records = [port_vlans_from_msg(msg) for msg in messages]
            self.dumps['port_vlans'] = self.dumps.get('port_vlans', 0) + 1
            found = {}
            for rec in records:
                prior = found.get(rec.index)
                # a port whose own driver also answers (SR-IOV NICs) comes twice: keep the entry with VLANs
                if prior is None or (not prior.vlans and rec.vlans):
                    found[rec.index] = rec
            self._port_vlans = tuple(found[index] for index in sorted(found))
        if link is None:
            return self._port_vlans
        index = self._index_of(link)
        for rec in self._port_vlans:
            if rec.index == index:
                return rec
        return None

    def add_port_vlans(self, link, vlans, bridge_self=False, display=None):
        """Add ``PortVlan`` entries to a bridge port (``Link`` or ifindex), or to a bridge itself with ``bridge_self``.

        A VLAN the port already has takes the flags given here: that is how
        pvid/untagged are changed.  Setting a pvid moves it (a port has one).
        One ``RTM_SETLINK`` request; the kernel applies its entries in order
        and stops at the first it refuses, so pass one entry per call when a
        failure must leave nothing half done.
        """
        self._port_vlan_request('add', link, vlans, bridge_self, display)

    def delete_port_vlans(self, link, vlans, bridge_self=False, display=None):
        """Remove ``PortVlan`` entries (their flags do not matter) from a bridge port or, with ``bridge_self``, a bridge."""
        self._port_vlan_request('del', link, vlans, bridge_self, display)

    def _port_vlan_request(self, command, link, vlans, bridge_self, display):
        index = self._require_index(link)
        vlans = list(vlans)
        attrs = [['IFLA_BRIDGE_FLAGS', BRIDGE_FLAGS_SELF if bridge_self else BRIDGE_FLAGS_MASTER]]
        for vlan in vlans:
            attrs.extend(port_vlan_attrs(vlan))
        if isinstance(link, Link):
            name = link.name
        else:
            name = display or '#%s' % link
        where = "bridge '%s' itself" % name if bridge_self else "port '%s'" % name
        if command == 'add':
            operation = 'adding %s to %s' % (_show_port_vlans(vlans), where)
        else:
            operation = 'removing %s from %s' % (_show_port_vlans(vlans), where)
        with netlink_operation(operation):
            # vlan_filter() sends RTM_SETLINK/RTM_DELLINK with family AF_BRIDGE in pyroute2 0.7 and 0.9;
            # a complete IFLA_AF_SPEC passes through both versions' argument filters unchanged
            self.ipr.vlan_filter(command, index=index, IFLA_AF_SPEC={'attrs': attrs})

    def fetch_link(self, link):
        """Read one link afresh from the kernel (one request, cache untouched); ``None`` if it is gone."""
        index = link.index if isinstance(link, Link) else link
        query = {'index': index} if isinstance(index, int) else {'ifname': index}
        try:
            messages = self.ipr.link('get', **query)
        except NetlinkError as exc:
            if _error_code(exc) == errno.ENODEV:
                return None
            raise NetlinkOperationError('reading link %s' % _show_target(link), _error_code(exc), exc) from exc
        for msg in messages:
            return link_from_msg(msg)
        return None

    # ----------------------------------------------------------- writing
    def call(self, operation, func, *args, **kwargs):
        """Run any pyroute2 call, translating its errors into ``NetlinkOperationError(operation, ...)``."""
        with netlink_operation(operation):
            return func(*args, **kwargs)

    def create_link(self, kind, name, alias=OWNER_MARKER, settings=None, **create_attrs):
        """Create a link and return its ifindex.

        ``kind`` is pyroute2's (``'bridge'``, ``'tuntap'`` with ``mode='tap'``,
        ``'vlan'``, ``'veth'``...); ``create_attrs`` go into the create
        request.  ``alias`` (default: the collection's marker; ``None`` for
        none) and ``settings`` (``mtu``, ``address``, ``txqlen``, ``master``,
        ``state``... which a TAP create ignores) are then set in one request.
        The call is atomic: if setting them fails the new link is deleted
        again.  An existing link of that name is an ``EEXIST`` error even for
        TAPs (pyroute2 silently reuses an existing TAP).
        """
        operation = "creating %s '%s'" % (_link_kind_word(kind, create_attrs), name)
        if kind == 'tuntap' and self.fetch_link(name) is not None:
            raise NetlinkOperationError(operation, errno.EEXIST)
        with netlink_operation(operation):
            self.ipr.link('add', ifname=name, kind=kind, **create_attrs)
        created = self.fetch_link(name)
        if created is None:
            raise NetlinkOperationError(operation, detail='the kernel accepted the request but the link is not there')
        extra = dict(settings or {})
        if alias is not None:
            extra['ifalias'] = alias
        if extra:
            try:
                with netlink_operation('%s (setting %s)' % (operation, _show_attrs(extra))):
                    self.ipr.link('set', index=created.index, **extra)
            except NetlinkOperationError:
                try:
                    self.ipr.link('del', index=created.index)
                except (NetlinkError, OSError):
                    pass
                raise
        return created.index

    def set_link(self, link, display=None, **attrs):
        """Change attributes of a link (``Link`` or ifindex; ``display`` names it in messages)."""
        index = self._require_index(link)
        operation = 'changing %s (%s)' % (_show_target(link, display), _show_attrs(attrs))
        with netlink_operation(operation):
            self.ipr.link('set', index=index, **attrs)

    def delete_link(self, link, display=None):
        """Delete a link by index (``Link`` or ifindex; ``display`` names it in messages)."""
        index = self._require_index(link)
        with netlink_operation('deleting %s' % _show_target(link, display)):
            self.ipr.link('del', index=index)

    def add_address(self, link, address, prefixlen, display=None, **attrs):
        """Add ``address/prefixlen`` to a link (``Link`` or ifindex)."""
        index = self._require_index(link)
        with netlink_operation('adding address %s/%s to %s' % (address, prefixlen, _show_target(link, display))):
            self.ipr.addr('add', index=index, address=str(address), prefixlen=int(prefixlen), **attrs)

    def delete_address(self, link, address, prefixlen, display=None):
        """Remove ``address/prefixlen`` from a link (``Link`` or ifindex)."""
        index = self._require_index(link)
        with netlink_operation('removing address %s/%s from %s' % (address, prefixlen, _show_target(link, display))):
            self.ipr.addr('del', index=index, address=str(address), prefixlen=int(prefixlen))

    def add_route(self, route, link, display=None):
        """Add ``route`` (a ``Route``) with output interface ``link`` (``Link`` or ifindex) instead of its own.

        Table, metric, gateway, protocol, scope, type, preferred source, TOS
        and the onlink flag are kept; multipath routes and routes using
        nexthop objects are not supported here.
        """
        index = self._require_index(link)
        attrs = _route_attrs(route)
        attrs['oif'] = index
        with netlink_operation('adding route %s' % route.describe(_show_dev(link, display))):
            self.ipr.route('add', **attrs)

    def delete_route(self, route, display=None):
        """Delete ``route`` (a ``Route``, matched by table, destination, metric, TOS and output interface)."""
        attrs = _route_attrs(route)
        if route.oif is not None:
            attrs['oif'] = route.oif
        with netlink_operation('deleting route %s' % route.describe(display)):
            self.ipr.route('del', **attrs)

    # ----------------------------------------------------------- internals
    def _index_of(self, link):
        if isinstance(link, Link):
            return link.index
        if isinstance(link, int) and not isinstance(link, bool):
            return link
        found = self.link(link)
        return found.index if found is not None else None

    @staticmethod
    def _require_index(link):
        if isinstance(link, Link):
            return link.index
        if isinstance(link, int) and not isinstance(link, bool):
            return link
        raise TypeError('links are changed by index: pass a Link or an ifindex, not %r' % (link,))


def _show_target(link, display=None):
    if isinstance(link, Link):
        return "%s '%s'" % (link.kind_label, link.name)
    if display:
        return "link '%s'" % display
    if isinstance(link, int):
        return 'link #%d' % link
    return "link '%s'" % link


def _show_dev(link, display=None):
    if display:
        return display
    if isinstance(link, Link):
        return link.name
    return '#%s' % link


def _route_attrs(route):
    """pyroute2 ``route()`` keyword arguments for a ``Route`` (without ``oif``)."""
    attrs = {
        'family': route.family,
        'dst_len': route.dst_len,
        'table': route.table,
        'proto': route.proto,
        'scope': route.scope,
        'type': route.type,
        'tos': route.tos,
        'flags': route.flags & RTNH_F_ONLINK,
    }
    if route.dst_len:
        attrs['dst'] = route.dst
    for key in ('gateway', 'priority', 'prefsrc'):
        value = getattr(route, key)
        if value is not None:
            attrs[key] = value
    return attrs


def _show_attrs(attrs):
    return ', '.join('%s=%s' % (key, attrs[key]) for key in sorted(attrs))
