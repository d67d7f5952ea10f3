# -*- coding: utf-8 -*-
# Copyright: NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fast rtnetlink link dumps, decoded lazily into pyroute2-shaped messages.

Every module starts by reading all links of the host once. pyroute2 decodes every attribute
of every message (statistics, per-family configuration, ...) and costs about 1.5 ms per link:
1.5 s for a hypervisor with 1000 TAPs, before any work is done. This module sends the same
``RTM_GETLINK`` dump request on a plain netlink socket and decodes only the attributes that
are asked for, when they are asked for, with ``struct``: about 30 times faster.

The messages it returns answer the part of pyroute2's message interface that
``netlink.link_from_msg`` and ``netlink.port_vlans_from_msg`` use (``msg['index']``,
``msg['flags']``, ``msg['ifi_type']``, ``msg.get_attr('IFLA_...')``, nested ``get_attr`` on
``IFLA_LINKINFO`` and its ``IFLA_INFO_DATA`` / ``IFLA_INFO_SLAVE_DATA``, and in ``AF_BRIDGE``
dumps ``IFLA_AF_SPEC`` as ``{'attrs': [('IFLA_BRIDGE_VLAN_INFO', {'flags': .., 'vid': ..}), ...]}``
and ``IFLA_PROTINFO``), so one decoding path serves both readers.
An attribute name missing from the tables below raises ``KeyError``, so a new field cannot
be read as silently absent.

This is the one rtnetlink decoder of the collection: ``messages()`` splits what the kernel
sends into messages, ``error_of()`` reads an ``NLMSG_ERROR`` (acknowledgement or errno, with the
kernel's extended-ack text), ``dump_links()`` runs a dump on its own socket or on one it is
given. The encoding side (link requests, for modules that write without pyroute2) is
``rtnl_socket``; it takes its attribute numbers from the tables here.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NETLINK_ROUTE = 0
AF_UNSPEC = 0
AF_BRIDGE = 7
RTM_NEWLINK = 16
RTM_GETLINK = 18
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100        # in NLMSG_ERROR: the request is not echoed
NLM_F_ACK_TLVS = 0x200      # in NLMSG_ERROR: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF
IFLA_EXT_MASK = 29
RTEXT_FILTER_BRVLAN_COMPRESSED = 1 << 2
RTEXT_FILTER_SKIP_STATS = 1 << 3

NLMSGHDR = struct.Struct('=IHHII')      # length, type, flags, sequence, port id
IFINFOMSG = struct.Struct('=BxHiII')    # family, (pad), type, index, flags, change
RTATTR = struct.Struct('=HH')           # length, type
ERRMSG = struct.Struct('=i')            # negative errno, 0 for an acknowledgement
VLAN_INFO = struct.Struct('=HH')        # bridge_vlan_info: flags, vid

OPERSTATES = ('UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP')

# name -> (attribute type, format); formats: u8 u16 u32 u64 i32 be16 str mac state, and nested ones
LINK_ATTRS = {
    'IFLA_ADDRESS': (1, 'mac'),
    'IFLA_BROADCAST': (2, 'mac'),
    'IFLA_IFNAME': (3, 'str'),
    'IFLA_MTU': (4, 'u32'),
    'IFLA_LINK': (5, 'u32'),
    'IFLA_QDISC': (6, 'str'),
    'IFLA_MASTER': (10, 'u32'),
    'IFLA_TXQLEN': (13, 'u32'),
    'IFLA_OPERSTATE': (16, 'state'),
    'IFLA_LINKMODE': (17, 'u8'),
    'IFLA_LINKINFO': (18, 'linkinfo'),
    'IFLA_IFALIAS': (20, 'str'),
    'IFLA_GROUP': (27, 'u32'),
    'IFLA_EXT_MASK': (IFLA_EXT_MASK, 'u32'),    # sent in requests, never in a link
    'IFLA_PROMISCUITY': (30, 'u32'),
    'IFLA_NUM_TX_QUEUES': (31, 'u32'),
    'IFLA_NUM_RX_QUEUES': (32, 'u32'),
    'IFLA_CARRIER': (33, 'u8'),
    'IFLA_LINK_NETNSID': (37, 'i32'),
    'IFLA_MIN_MTU': (50, 'u32'),
    'IFLA_MAX_MTU': (51, 'u32'),
    'IFLA_PERM_ADDRESS': (54, 'mac'),
}

LINKINFO_ATTRS = {
    'IFLA_INFO_KIND': (1, 'str'),
    'IFLA_INFO_DATA': (2, 'info_data'),
    'IFLA_INFO_SLAVE_KIND': (4, 'str'),
    'IFLA_INFO_SLAVE_DATA': (5, 'info_slave_data'),
}

BRIDGE_DATA_ATTRS = {
    'IFLA_BR_FORWARD_DELAY': (1, 'u32'),
    'IFLA_BR_HELLO_TIME': (2, 'u32'),
    'IFLA_BR_MAX_AGE': (3, 'u32'),
    'IFLA_BR_AGEING_TIME': (4, 'u32'),
    'IFLA_BR_STP_STATE': (5, 'u32'),
    'IFLA_BR_PRIORITY': (6, 'u16'),
    'IFLA_BR_VLAN_FILTERING': (7, 'u8'),
    'IFLA_BR_VLAN_PROTOCOL': (8, 'be16'),
    'IFLA_BR_GROUP_FWD_MASK': (9, 'u16'),
    'IFLA_BR_MCAST_ROUTER': (22, 'u8'),
    'IFLA_BR_MCAST_SNOOPING': (23, 'u8'),
    'IFLA_BR_MCAST_QUERIER': (25, 'u8'),
    'IFLA_BR_NF_CALL_IPTABLES': (36, 'u8'),
    'IFLA_BR_NF_CALL_IP6TABLES': (37, 'u8'),
    'IFLA_BR_NF_CALL_ARPTABLES': (38, 'u8'),
    'IFLA_BR_VLAN_DEFAULT_PVID': (39, 'u16'),
    'IFLA_BR_VLAN_STATS_ENABLED': (41, 'u8'),
    'IFLA_BR_MCAST_STATS_ENABLED': (42, 'u8'),
}

TUN_DATA_ATTRS = {
    'IFLA_TUN_OWNER': (1, 'u32'),
    'IFLA_TUN_GROUP': (2, 'u32'),
    'IFLA_TUN_TYPE': (3, 'u8'),
    'IFLA_TUN_PI': (4, 'u8'),
    'IFLA_TUN_VNET_HDR': (5, 'u8'),
    'IFLA_TUN_PERSIST': (6, 'u8'),
    'IFLA_TUN_MULTI_QUEUE': (7, 'u8'),
    'IFLA_TUN_NUM_QUEUES': (8, 'u32'),
    'IFLA_TUN_NUM_DISABLED_QUEUES': (9, 'u32'),
}

VLAN_DATA_ATTRS = {
    'IFLA_VLAN_ID': (1, 'u16'),
    'IFLA_VLAN_PROTOCOL': (5, 'be16'),
}

VETH_DATA_ATTRS = {}

BRIDGE_PORT_ATTRS = {
    'IFLA_BRPORT_STATE': (1, 'u8'),
    'IFLA_BRPORT_PRIORITY': (2, 'u16'),
    'IFLA_BRPORT_COST': (3, 'u32'),
    'IFLA_BRPORT_MODE': (4, 'u8'),
    'IFLA_BRPORT_GUARD': (5, 'u8'),
    'IFLA_BRPORT_PROTECT': (6, 'u8'),
    'IFLA_BRPORT_FAST_LEAVE': (7, 'u8'),
    'IFLA_BRPORT_LEARNING': (8, 'u8'),
    'IFLA_BRPORT_UNICAST_FLOOD': (9, 'u8'),
    'IFLA_BRPORT_PROXYARP': (10, 'u8'),
    'IFLA_BRPORT_MCAST_FLOOD': (27, 'u8'),
    'IFLA_BRPORT_MCAST_TO_UCAST': (28, 'u8'),
    'IFLA_BRPORT_BCAST_FLOOD': (30, 'u8'),
    'IFLA_BRPORT_NEIGH_SUPPRESS': (32, 'u8'),
    'IFLA_BRPORT_ISOLATED': (33, 'u8'),
}

# IFLA_INFO_DATA by IFLA_INFO_KIND, IFLA_INFO_SLAVE_DATA by IFLA_INFO_SLAVE_KIND
DATA_ATTRS = {'bridge': BRIDGE_DATA_ATTRS, 'tun': TUN_DATA_ATTRS, 'vlan': VLAN_DATA_ATTRS, 'veth': VETH_DATA_ATTRS}
SLAVE_DATA_ATTRS = {'bridge': BRIDGE_PORT_ATTRS}

# IFLA_AF_SPEC of an AF_BRIDGE message (bridge VLANs); IFLA_BRIDGE_VLAN_INFO repeats, once per entry
BRIDGE_AF_SPEC_ATTRS = {
    'IFLA_BRIDGE_FLAGS': (0, 'u16'),
    'IFLA_BRIDGE_MODE': (1, 'u16'),
    'IFLA_BRIDGE_VLAN_INFO': (2, 'vlan_info'),
}

# The messages of an AF_BRIDGE dump (every bridge port, and bridges): the link attributes plus
# the port settings (IFLA_PROTINFO) and the bridge VLANs (IFLA_AF_SPEC).
BRIDGE_LINK_ATTRS = dict(LINK_ATTRS, IFLA_PROTINFO=(12, 'protinfo'), IFLA_AF_SPEC=(26, 'bridge_af_spec'))

# struct of each scalar format, for decoding here and encoding in rtnl_socket
SCALARS = {
    'u8': struct.Struct('=B'),
    'u16': struct.Struct('=H'),
    'u32': struct.Struct('=I'),
    'u64': struct.Struct('=Q'),
    'i32': struct.Struct('=i'),
    'be16': struct.Struct('>H'),
}


def _each_attribute(buffer, start, end):
    """``(type, payload start, payload end)`` of every rtattr in buffer[start:end], in order, repeats included."""
    unpack = RTATTR.unpack_from
    offset = start
    while offset + 4 <= end:
        length, kind = unpack(buffer, offset)
        if length < 4:
            break
        yield kind & NLA_TYPE_MASK, offset + 4, offset + length
        offset += (length + 3) & ~3


def _string(buffer, start, end):
    return bytes(buffer[start:end]).split(b'\0', 1)[0].decode('utf-8', 'replace')


_KNOWN = {}    # id(table) -> the attribute types the table names


class Attributes(object):
    """A set of netlink attributes decoded on demand, with pyroute2's ``get_attr``.

    The attributes are walked only as far as the one asked for (a TAP's message has about 50,
    its bridge-port data 40 more), and each is decoded once, when first asked for.
    """

    __slots__ = ('_buffer', '_offset', '_end', '_spans', '_table', '_decoded')

    def __init__(self, buffer, start, end, table):
        self._buffer = buffer
        self._offset = start
        self._end = end
        self._spans = {}
        self._table = table
        self._decoded = {}

    def _span(self, kind):
        """``(start, end)`` of the payload of the first attribute of type ``kind``, or ``None``.

        Walks on from where the last look-up stopped, remembering the attributes of the table
        that it passes (a dump of a thousand TAPs is walked about 40 000 times: this loop is
        most of what reading them costs).
        """
        spans = self._spans
        span = spans.get(kind)
        if span is not None:
            return span
        offset = self._offset
        if offset is None:
            return None
        known = _KNOWN.get(id(self._table))
        if known is None:
            known = _KNOWN[id(self._table)] = frozenset(number for number, dummy in self._table.values())
        buffer, end, unpack = self._buffer, self._end, RTATTR.unpack_from
        while offset + 4 <= end:
            length, found = unpack(buffer, offset)
            if length < 4:
                break
            found &= NLA_TYPE_MASK
            if found == kind:
                span = spans[found] = (offset + 4, offset + length)
                self._offset = offset + ((length + 3) & ~3)
                return span
            if found in known and found not in spans:
                spans[found] = (offset + 4, offset + length)
            offset += (length + 3) & ~3
        self._offset = None
        return None

    def get_attr(self, name, default=None):
        """The decoded value of attribute ``name`` (``KeyError`` for a name this reader does not know)."""
        if name in self._decoded:
            return self._decoded[name]
        kind, fmt = self._table[name]
        span = self._span(kind)
        value = default if span is None else self._decode(fmt, span[0], span[1])
        self._decoded[name] = value
        return value

    def _decode(self, fmt, start, end):
        buffer = self._buffer
        scalar = SCALARS.get(fmt)
        if scalar is not None:
            if end - start < scalar.size:
                return None
            return scalar.unpack_from(buffer, start)[0]
        if fmt == 'str':
            return _string(buffer, start, end)
        if fmt == 'mac':
            return ':'.join('%02x' % octet for octet in bytes(buffer[start:end]))
        if fmt == 'state':
            code = buffer[start] if end > start else 0
            return OPERSTATES[code] if code < len(OPERSTATES) else 'UNKNOWN'
        if fmt == 'linkinfo':
            return LinkInfo(buffer, start, end)
        if fmt == 'protinfo':
            return Attributes(buffer, start, end, BRIDGE_PORT_ATTRS)
        if fmt == 'bridge_af_spec':
            return {'attrs': _bridge_af_spec(buffer, start, end)}
        raise ValueError('unknown attribute format %r' % (fmt,))


def _bridge_af_spec(buffer, start, end):
    """The attributes of an ``AF_BRIDGE`` ``IFLA_AF_SPEC`` in order, as pyroute2 lists them: ``[(name, value)]``."""
    names = dict((kind, (name, fmt)) for name, (kind, fmt) in BRIDGE_AF_SPEC_ATTRS.items())
    found = []
    for kind, first, last in _each_attribute(buffer, start, end):
        entry = names.get(kind)
        if entry is None:
            continue
        name, fmt = entry
        if fmt == 'vlan_info':
            if last - first < VLAN_INFO.size:
                continue
            flags, vid = VLAN_INFO.unpack_from(buffer, first)
            found.append((name, {'flags': flags, 'vid': vid}))
        elif last - first >= SCALARS[fmt].size:
            found.append((name, SCALARS[fmt].unpack_from(buffer, first)[0]))
    return found


class LinkInfo(Attributes):
    """``IFLA_LINKINFO``: its data attributes are read with the table of the link's kind."""

    __slots__ = ()

    def __init__(self, buffer, start, end):
        super(LinkInfo, self).__init__(buffer, start, end, LINKINFO_ATTRS)

    def _decode(self, fmt, start, end):
        if fmt == 'info_data':
            return Attributes(self._buffer, start, end, DATA_ATTRS.get(self.get_attr('IFLA_INFO_KIND'), {}))
        if fmt == 'info_slave_data':
            return Attributes(self._buffer, start, end, SLAVE_DATA_ATTRS.get(self.get_attr('IFLA_INFO_SLAVE_KIND'), {}))
        return super(LinkInfo, self)._decode(fmt, start, end)


class LinkMessage(Attributes):
    """One ``RTM_NEWLINK`` message of a dump: header fields by item, attributes by ``get_attr``.

    Messages of an ``AF_BRIDGE`` dump also know ``IFLA_PROTINFO`` and ``IFLA_AF_SPEC``
    (``BRIDGE_LINK_ATTRS``).
    """

    __slots__ = ('_header',)

    def __init__(self, buffer, start, end):
        family, ifi_type, index, flags, change = IFINFOMSG.unpack_from(buffer, start)
        table = BRIDGE_LINK_ATTRS if family == AF_BRIDGE else LINK_ATTRS
        super(LinkMessage, self).__init__(buffer, start + IFINFOMSG.size, end, table)
        self._header = {'family': family, 'ifi_type': ifi_type, 'index': index, 'flags': flags, 'change': change}

    def __getitem__(self, key):
        return self._header[key]

    def get(self, key, default=None):
        """Header field ``key`` (as pyroute2 messages answer ``msg.get``)."""
        return self._header.get(key, default)

    @property
    def index(self):
        """The ifindex (as a ``netlink.Link`` has it), for callers that only need that."""
        return self._header['index']


class DumpInterrupted(Exception):
    """The kernel flagged the dump as inconsistent (links changed while it ran)."""


def messages(data):
    """``(type, flags, sequence, start, end)`` of every netlink message in ``data``; ``start:end`` is its payload.

    Raises ``OSError(EPROTO)`` for a header whose length does not fit the data.
    """
    offset = 0
    size = len(data)
    while offset + NLMSGHDR.size <= size:
        length, kind, flags, sequence, _port = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > size:
            raise OSError(errno.EPROTO, 'malformed netlink message (length %d at offset %d of %d)' % (length, offset, size))
        yield kind, flags, sequence, offset + NLMSGHDR.size, offset + length
        offset += (length + 3) & ~3


def error_of(data, start, end, flags=0):
    """``(errno, text)`` of the ``NLMSG_ERROR`` payload ``data[start:end]``: errno 0 is an acknowledgement.

    The kernel sends a negative errno; it is returned positive. ``text`` is the kernel's own
    explanation (extended ack, e.g. "Port does not support isolation") or ``None``.
    """
    code = -ERRMSG.unpack_from(data, start)[0]
    text = None
    if flags & NLM_F_ACK_TLVS:
        offset = start + ERRMSG.size
        if flags & NLM_F_CAPPED:
            offset += NLMSGHDR.size
        else:
            offset += (NLMSGHDR.unpack_from(data, offset)[0] + 3) & ~3
        for kind, first, last in _each_attribute(data, offset, end):
            if kind == NLMSGERR_ATTR_MSG:
                text = _string(data, first, last) or None
                break
    return code, text


def _request(sequence, family=AF_UNSPEC, ext_mask=RTEXT_FILTER_SKIP_STATS):
    attr = RTATTR.pack(8, IFLA_EXT_MASK) + struct.pack('=I', ext_mask)
    body = IFINFOMSG.pack(family, 0, 0, 0, 0) + attr
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, sequence, 0) + body


def _read_dump(sock, sequence):
    found = []
    interrupted = False
    while True:
        data = memoryview(sock.recv(1 << 20))
        for kind, flags, seq, start, end in messages(data):
            if seq != sequence:
                continue
            if flags & NLM_F_DUMP_INTR:
                interrupted = True
            if kind == NLMSG_DONE:
                if interrupted:
                    raise DumpInterrupted()
                return found
            if kind == NLMSG_ERROR:
                code, text = error_of(data, start, end, flags)
                if code:
                    raise OSError(code, os.strerror(code) + (' (%s)' % text if text else ''))
                return found
            if kind == RTM_NEWLINK:
                found.append(LinkMessage(data, start, end))


def dump_links(attempts=5, sock=None, family=AF_UNSPEC, ext_mask=RTEXT_FILTER_SKIP_STATS, sequence=1):
    """All links of the current network namespace as ``LinkMessage`` objects (one dump).

    ``sock``: a bound ``NETLINK_ROUTE`` socket to use (default: one opened and closed here);
    ``family=AF_BRIDGE`` with ``ext_mask=RTEXT_FILTER_BRVLAN_COMPRESSED`` dumps the bridge ports
    and bridges with their VLANs. A dump the kernel flags as interrupted (links changed
    meanwhile) is repeated, up to ``attempts`` times, with sequence numbers from ``sequence``
    on. Errors are raised as ``OSError`` with the kernel's errno.
    """
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        if own:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, 0))
        for attempt in range(attempts):
            sock.send(_request(sequence + attempt, family, ext_mask))
            try:
                return _read_dump(sock, sequence + attempt)
            except DumpInterrupted:
                if attempt == attempts - 1:
                    raise OSError(errno.EAGAIN, 'the link dump was interrupted %d times by concurrent changes' % attempts)
        return []
    finally:
        if own:
            sock.close()
