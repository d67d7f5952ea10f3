# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A plain rtnetlink socket that writes links without pyroute2: encode a request, send it, read its answer.

Importing pyroute2 costs 0.25-0.3 s at every module start and its messages tens of
microseconds each; ``fc_tap``, which converges a thousand TAPs in about the time ``ip -batch``
takes, writes through this socket instead. It is the encoding half of the collection's
rtnetlink codec; ``rtnl_dump`` is the decoding half, and its attribute tables give the
numbers and formats here, so each attribute is defined once for both directions.

* ``attribute(table, name, value)`` encodes one attribute of an ``rtnl_dump`` table (scalars,
  strings, and nested attributes given as bytes); ``link_request()`` a whole message.
* ``RtnlSocket.request()`` sends one link request and reads its acknowledgement; a refusal is
  an ``RtnlError`` naming the operation, explaining the errno and quoting the kernel's own text.
  ``pipeline()`` sends many, a chunk per system call, and returns each one's outcome.
* ``RtnlSocket.dump_links()`` / ``dump_port_vlans()`` run ``rtnl_dump``'s reader on this socket.
* ``fetch_link()``, ``add_port_vlans()`` and ``delete_port_vlans()`` take the arguments of
  ``netlink.NetlinkSession``'s methods of the same names, so ``port_vlan.PortVlanApplier``
  (fc_vlan's VLAN apply and undo) runs over this socket unchanged.

A request sent alone costs two system calls more than a pipelined one (measured: 1000
``RTM_SETLINK`` one by one 30-75 ms, pipelined 20-40 ms); pipelining pays off where thousands
go at once (``fc_tap`` making TAPs), single requests keep every outcome known before the next.
"""

from __future__ import annotations

import errno
import os
import socket

from ansible_collections.nqrust.microvm.plugins.module_utils import rtnl_dump
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_dump import (
    AF_BRIDGE,
    AF_UNSPEC,
    BRIDGE_AF_SPEC_ATTRS,
    BRIDGE_LINK_ATTRS,
    BRIDGE_PORT_ATTRS,
    IFINFOMSG,
    LINK_ATTRS,
    NLM_F_REQUEST,
    NLMSGHDR,
    RTATTR,
    RTM_GETLINK,
    SCALARS,
    VLAN_INFO,
)

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
BUFFER_BYTES = 4 * 1024 * 1024

NLM_F_ACK = 0x4
NLA_F_NESTED = 0x8000
RTM_DELLINK = 17
RTM_SETLINK = 19
IFF_UP = 0x1
BRIDGE_FLAGS_MASTER = 0x1
BRIDGE_FLAGS_SELF = 0x2
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
BRIDGE_VLAN_INFO_RANGE_BEGIN = 0x8
BRIDGE_VLAN_INFO_RANGE_END = 0x10
DUMP_ATTEMPTS = 5
# requests per system call when pipelining: each answer takes about 1 KiB of the receive buffer
PIPELINE_CHUNK = 128
_NESTED_FORMATS = frozenset(['linkinfo', 'info_data', 'info_slave_data', 'protinfo', 'bridge_af_spec'])


# what an errno means in link work, where the collection's table in ``netlink`` has nothing to say
_MORE = {
    errno.EXFULL: 'exchange full: the bridge has no free port number (a Linux bridge takes at most 1023 ports)',
}


def explain(code):
    """Plain-English meaning of an errno with its name, from the collection's table in ``netlink``.

    Imported here, on a failure only: ``netlink`` imports pyroute2, which a run that goes well
    does not need.
    """
    from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import errno_name, explain_errno
    return '%s [%s]' % (_MORE.get(code) or explain_errno(code), errno_name(code))


class RtnlError(OSError):
    """The kernel refused a request or a dump: ``code`` (errno), ``operation`` (what was being done), ``extack`` (its text)."""

    def __init__(self, code, operation, extack=None):
        super(RtnlError, self).__init__(code, os.strerror(code) if code else 'netlink error')
        self.code = code
        self.operation = str(operation)
        self.extack = extack

    def __str__(self):
        text = '%s: %s' % (self.operation, explain(self.code))
        if self.extack:
            text += ' (kernel: %s)' % self.extack
        return text


# --------------------------------------------------------------------------- encoding

def attribute(table, name, value):
    """Attribute ``name`` of an ``rtnl_dump`` table with ``value``: an int, a str, or the bytes of nested attributes."""
    number, fmt = table[name]
    if fmt in _NESTED_FORMATS:
        payload = bytes(value)
        number |= NLA_F_NESTED
    elif fmt == 'str':
        payload = value.encode('utf-8') + b'\0'
    elif fmt == 'vlan_info':
        payload = VLAN_INFO.pack(*value)
    else:
        payload = SCALARS[fmt].pack(value)
    length = RTATTR.size + len(payload)
    return RTATTR.pack(length, number) + payload + b'\0' * (-length % 4)


def link_request(msg_type, sequence, index=0, attrs=b'', family=AF_UNSPEC, ifi_flags=0, ifi_change=0,
                 flags=NLM_F_REQUEST | NLM_F_ACK):
    """A complete link message: netlink header, ``ifinfomsg`` and ``attrs``."""
    body = IFINFOMSG.pack(family, 0, index, ifi_flags, ifi_change) + attrs
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, sequence, 0) + body


def vlan_entries(vlans):
    """``IFLA_BRIDGE_VLAN_INFO`` attributes of ``netlink.PortVlan``-like entries (``start``, ``end``, ``flags``)."""
    parts = []
    for vlan in vlans:
        flags = vlan.flags
        if vlan.start == vlan.end:
            parts.append(attribute(BRIDGE_AF_SPEC_ATTRS, 'IFLA_BRIDGE_VLAN_INFO', (flags, vlan.start)))
        else:
            parts.append(attribute(BRIDGE_AF_SPEC_ATTRS, 'IFLA_BRIDGE_VLAN_INFO', (flags | BRIDGE_VLAN_INFO_RANGE_BEGIN, vlan.start)))
            parts.append(attribute(BRIDGE_AF_SPEC_ATTRS, 'IFLA_BRIDGE_VLAN_INFO', (flags | BRIDGE_VLAN_INFO_RANGE_END, vlan.end)))
    return b''.join(parts)


def show_vlans(vlans):
    """``VLAN 100 (pvid, untagged)`` / ``VLANs 200-210``: entries in words, for messages."""
    texts = [str(vlan.start) if vlan.start == vlan.end else '%d-%d' % (vlan.start, vlan.end) for vlan in vlans]
    words = 'VLAN' if len(texts) == 1 and '-' not in texts[0] else 'VLANs'
    names = (('pvid', BRIDGE_VLAN_INFO_PVID), ('untagged', BRIDGE_VLAN_INFO_UNTAGGED))
    flags = sorted(set(word for vlan in vlans for word, flag in names if vlan.flags & flag))
    return '%s %s%s' % (words, ','.join(texts), ' (%s)' % ', '.join(flags) if flags else '')


def _index_of(link):
    index = getattr(link, 'index', link)
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError('links are changed by index: pass a link record or an ifindex, not %r' % (link,))
    return index


# --------------------------------------------------------------------------- the socket

class RtnlSocket(object):
    """One ``NETLINK_ROUTE`` socket (a context manager); ``requests`` and ``dumps`` count what it did."""

    def __init__(self):
        self._sock = None
        self._sequence = 0
        self._answer = bytearray(1 << 16)
        self.requests = 0
        self.dumps = {'links': 0, 'port_vlans': 0}

    def open(self):
        """Open and bind the socket (done on first use too); returns the ``RtnlSocket``."""
        if self._sock is not None:
            return self
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, rtnl_dump.NETLINK_ROUTE)
        except OSError as exc:
            raise RtnlError(exc.errno or errno.EPROTONOSUPPORT, 'opening a netlink socket') from exc
        try:
            for forced, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, forced, BUFFER_BYTES)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER_BYTES)
            for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                try:
                    sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:
                    pass  # kernels before 4.12 have no extended acks; errors still come
            sock.bind((0, 0))
        except OSError as exc:
            sock.close()
            raise RtnlError(exc.errno or errno.EIO, 'setting up a netlink socket') from exc
        self._sock = sock
        return self

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    __enter__ = open

    def __exit__(self, *exc_info):
        self.close()

    @property
    def sock(self):
        if self._sock is None:
            self.open()
        return self._sock

    def _next_sequence(self, count=1):
        first = self._sequence + 1
        self._sequence += count
        return first

    # ----------------------------------------------------------- reading
    def _dump(self, operation, family, ext_mask):
        try:
            return rtnl_dump.dump_links(DUMP_ATTEMPTS, sock=self.sock, family=family, ext_mask=ext_mask,
                                        sequence=self._next_sequence(DUMP_ATTEMPTS))
        except OSError as exc:
            raise RtnlError(exc.errno or errno.EIO, operation) from exc

    def dump_links(self):
        """Every link of this network namespace: ``rtnl_dump.LinkMessage`` objects of one dump."""
        messages = self._dump('reading the links', AF_UNSPEC, rtnl_dump.RTEXT_FILTER_SKIP_STATS)
        self.dumps['links'] += 1
        return messages

    def dump_port_vlans(self):
        """Every bridge port and bridge with its VLANs: the messages of one ``AF_BRIDGE`` dump (ranges compressed)."""
        mask = rtnl_dump.RTEXT_FILTER_BRVLAN_COMPRESSED | rtnl_dump.RTEXT_FILTER_SKIP_STATS
        messages = self._dump('reading the bridge port VLANs', AF_BRIDGE, mask)
        self.dumps['port_vlans'] += 1
        return messages

    def fetch_link(self, link):
        """One link read afresh (by ifindex, record or name): its ``rtnl_dump.LinkMessage``, or ``None`` if there is none."""
        if isinstance(link, str):
            index, attrs = 0, attribute(LINK_ATTRS, 'IFLA_IFNAME', link)
        else:
            index, attrs = _index_of(link), b''
        attrs += attribute(LINK_ATTRS, 'IFLA_EXT_MASK', rtnl_dump.RTEXT_FILTER_SKIP_STATS)
        try:
            return self._exchange('reading link %s' % (link,), RTM_GETLINK, index, attrs, flags=NLM_F_REQUEST)
        except RtnlError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise

    # ----------------------------------------------------------- writing
    def _send(self, messages, operation):
        try:
            self.sock.send(b''.join(messages))
        except OSError as exc:
            raise RtnlError(exc.errno or errno.EIO, operation) from exc
        self.requests += len(messages)

    def _answers(self, sequences, operation):
        """``(sequence, type, flags, data, start, end)`` of the answer to each request in ``sequences`` (a set).

        The answer buffer is reused: each answer must be used before the next one is asked for.
        """
        buffer = self._answer
        while sequences:
            try:
                size = self.sock.recv_into(buffer)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    operation = '%s (answers of the kernel were lost)' % (operation,)
                raise RtnlError(exc.errno or errno.EIO, operation) from exc
            data = memoryview(buffer)[:size]
            for kind, flags, sequence, start, end in rtnl_dump.messages(data):
                if sequence in sequences and kind in (rtnl_dump.RTM_NEWLINK, rtnl_dump.NLMSG_ERROR):
                    sequences.discard(sequence)
                    yield sequence, kind, flags, data, start, end

    def _exchange(self, operation, msg_type, index, attrs=b'', family=AF_UNSPEC, ifi_flags=0, ifi_change=0,
                  flags=NLM_F_REQUEST | NLM_F_ACK):
        """Send one link request and read its answer.

        Returns the ``LinkMessage`` the kernel answered with (for ``RTM_GETLINK``) or ``None``
        for an acknowledgement; raises ``RtnlError(operation)`` when the kernel refused.
        """
        sequence = self._next_sequence()
        self._send([link_request(msg_type, sequence, index, attrs, family, ifi_flags, ifi_change, flags)], operation)
        for dummy, kind, msg_flags, data, start, end in self._answers({sequence}, operation):
            if kind == rtnl_dump.RTM_NEWLINK:
                # the answer buffer is reused: the message keeps a copy
                return rtnl_dump.LinkMessage(bytes(data[start:end]), 0, end - start)
            code, text = rtnl_dump.error_of(data, start, end, msg_flags)
            if code:
                raise RtnlError(code, operation, text)
        return None

    def pipeline(self, requests, operation, chunk=PIPELINE_CHUNK):
        """Send many link requests, ``chunk`` per system call, and collect their outcomes in order.

        ``requests``: ``(msg_type, index, attrs, ifi_flags, ifi_change)`` tuples (``RTM_GETLINK``
        reads are answered with the link, which is dropped). Returns ``(errno, text)`` per
        request: errno 0 for done, ``None`` for a request not sent because the kernel refused
        one of an earlier chunk. The kernel handles every request of a chunk, also after one it
        refused. Raises ``RtnlError`` when answers were lost (their outcome is unknown).
        """
        outcomes = [None] * len(requests)
        for first in range(0, len(requests), chunk):
            part = requests[first:first + chunk]
            base = self._next_sequence(len(part))
            positions = {}
            messages = []
            for offset, (msg_type, index, attrs, ifi_flags, ifi_change) in enumerate(part):
                flags = NLM_F_REQUEST if msg_type == RTM_GETLINK else NLM_F_REQUEST | NLM_F_ACK
                positions[base + offset] = first + offset
                messages.append(link_request(msg_type, base + offset, index, attrs, AF_UNSPEC, ifi_flags, ifi_change, flags))
            self._send(messages, operation)
            refused = False
            for sequence, kind, flags, data, start, end in self._answers(set(positions), operation):
                outcome = (0, None) if kind == rtnl_dump.RTM_NEWLINK else rtnl_dump.error_of(data, start, end, flags)
                outcomes[positions[sequence]] = outcome
                refused = refused or bool(outcome[0])
            if refused:
                break
        return outcomes

    def request(self, msg_type, index, attrs=b'', operation='a netlink request', family=AF_UNSPEC, ifi_flags=0,
                ifi_change=0):
        """Send one link request and wait for its acknowledgement; ``RtnlError(operation)`` if the kernel refuses it."""
        self._exchange(operation, msg_type, index, attrs, family, ifi_flags, ifi_change)

    def set_link(self, index, operation, attrs=b'', up=None):
        """``RTM_SETLINK`` of ``attrs`` on link ``index``; ``up`` ``True``/``False`` also sets the administrative state."""
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        self.request(RTM_SETLINK, index, attrs, operation, ifi_flags=flags, ifi_change=change)

    def delete_link(self, index, operation):
        self.request(RTM_DELLINK, index, operation=operation)

    def set_port(self, index, operation, **settings):
        """Bridge-port settings of port ``index`` (``isolated=True``...; names from ``rtnl_dump.BRIDGE_PORT_ATTRS``)."""
        inner = b''.join(attribute(BRIDGE_PORT_ATTRS, 'IFLA_BRPORT_' + key.upper(), int(value))
                         for key, value in sorted(settings.items()))
        self.request(RTM_SETLINK, index, attribute(BRIDGE_LINK_ATTRS, 'IFLA_PROTINFO', inner), operation, family=AF_BRIDGE)

    # ----------------------------------------------------------- NetlinkSession's port VLAN interface
    def add_port_vlans(self, link, vlans, bridge_self=False, display=None):
        """As ``NetlinkSession.add_port_vlans``: add (or re-flag) ``netlink.PortVlan`` entries on a port or a bridge."""
        self._port_vlans(RTM_SETLINK, 'adding %s to %s', link, vlans, bridge_self, display)

    def delete_port_vlans(self, link, vlans, bridge_self=False, display=None):
        """As ``NetlinkSession.delete_port_vlans``: remove entries from a port or, with ``bridge_self``, a bridge."""
        self._port_vlans(RTM_DELLINK, 'removing %s from %s', link, vlans, bridge_self, display)

    def _port_vlans(self, msg_type, words, link, vlans, bridge_self, display):
        vlans = list(vlans)
        name = display or getattr(link, 'name', None) or '#%s' % _index_of(link)
        where = "bridge '%s' itself" % name if bridge_self else "port '%s'" % name
        spec = attribute(BRIDGE_AF_SPEC_ATTRS, 'IFLA_BRIDGE_FLAGS', BRIDGE_FLAGS_SELF if bridge_self else BRIDGE_FLAGS_MASTER)
        spec += vlan_entries(vlans)
        self.request(msg_type, _index_of(link), attribute(BRIDGE_LINK_ATTRS, 'IFLA_AF_SPEC', spec),
                     words % (show_vlans(vlans), where), family=AF_BRIDGE)
