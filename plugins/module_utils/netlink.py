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
    )


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
        self._links = None
        self._links_by_name = None
        self._links_by_index = None
        self._addresses = None
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
        self._links = None
        self._links_by_name = None
        self._links_by_index = None
        self._addresses = None

    # ----------------------------------------------------------- reading
    def links(self):
        """All links, sorted by index (one ``RTM_GETLINK`` dump per session until ``refresh()``)."""
        if self._links is None:
            with netlink_operation('reading the links'):
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

    def port_vlans(self):
        """Bridge-port VLAN membership, one ``AF_BRIDGE`` dump: not implemented yet.

        The place for it: dump ``get_links(family=AF_BRIDGE,
        ext_mask=RTEXT_FILTER_BRVLAN)`` once, read ``IFLA_AF_SPEC`` ->
        ``IFLA_BRIDGE_VLAN_INFO`` per port and return immutable records
        (ifindex, pvid, untagged and tagged ranges), cached like ``links()``.
        It needs a kernel with bridge VLAN filtering (the kernel lane).
        """
        raise NotImplementedError('bridge port VLANs are not read yet (NetlinkSession.port_vlans)')

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


def _show_attrs(attrs):
    return ', '.join('%s=%s' % (key, attrs[key]) for key in sorted(attrs))
