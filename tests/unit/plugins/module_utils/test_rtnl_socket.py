# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""RtnlSocket against a fake kernel: one request at a time, answers matched by sequence number, errors explained."""

from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink, rtnl_dump
from ansible_collections.nqrust.microvm.plugins.module_utils.rtnl_socket import RtnlError, RtnlSocket
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.tap_fakes import link_message


def header(kind, seq, length, flags=0):
    return rtnl_dump.NLMSGHDR.pack(16 + length, kind, flags, seq, 0)


def ack(seq, code=0, text=None):
    payload = struct.pack('=i', -code) + header(19, seq, 0)
    flags = rtnl_dump.NLM_F_CAPPED
    if text:
        flags |= rtnl_dump.NLM_F_ACK_TLVS
        payload += struct.pack('=HH', 5 + len(text), 1) + text.encode() + b'\0'
        payload += b'\0' * (-len(payload) % 4)
    return header(rtnl_dump.NLMSG_ERROR, seq, len(payload), flags) + payload


def newlink(seq, index, name, flags=0):
    raw = link_message(index, name)
    body = bytes(raw._buffer[16:])  # pylint: disable=protected-access
    return header(rtnl_dump.RTM_NEWLINK, seq, len(body), flags) + body


class FakeKernel(object):
    """Answers what is sent: ``answer(kind, seq, family, index, attrs) -> bytes``; a stale message comes first."""

    def __init__(self, answer):
        self.answer = answer
        self.sent = []
        self.pending = []

    def send(self, data):
        kind, seq = struct.unpack_from('=xxxxHxxI', data)
        family, dummy, index = rtnl_dump.IFINFOMSG.unpack_from(data, 16)[:3]
        self.sent.append((kind, seq, family, index, bytes(data[32:])))
        self.pending.append(ack(seq + 1000) + self.answer(kind, seq, family, index, bytes(data[32:])))

    def recv(self, size):
        return self.pending.pop(0)

    def recv_into(self, buffer):
        data = self.pending.pop(0)
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        pass


def socket_with(answer):
    rtnl = RtnlSocket()
    kernel = FakeKernel(answer)
    rtnl._sock = kernel  # pylint: disable=protected-access
    return rtnl, kernel


def test_a_request_waits_for_its_own_acknowledgement():
    rtnl, kernel = socket_with(lambda kind, seq, *rest: ack(seq))
    rtnl.set_link(7, 'setting tap0 up', up=True)
    rtnl.delete_link(8, 'deleting tap1')
    assert [(kind, family, index) for kind, dummy, family, index, dummy2 in kernel.sent] == [(19, 0, 7), (17, 0, 8)]
    assert kernel.sent[0][1] != kernel.sent[1][1] and rtnl.requests == 2


def test_a_refusal_names_the_operation_explains_the_errno_and_quotes_the_kernel():
    rtnl, dummy = socket_with(lambda kind, seq, *rest: ack(seq, errno.EINVAL, 'mtu greater than device maximum'))
    with pytest.raises(RtnlError) as caught:
        rtnl.set_link(7, "setting mtu 70000 of tap 'tap0'")
    assert caught.value.code == errno.EINVAL and caught.value.extack == 'mtu greater than device maximum'
    assert str(caught.value).startswith("setting mtu 70000 of tap 'tap0': invalid argument")
    assert str(caught.value).endswith('[EINVAL] (kernel: mtu greater than device maximum)')


def test_fetch_link_by_index_or_name_and_none_when_gone():
    def answer(kind, seq, family, index, attrs):
        if index == 5 or b'tap0\0' in attrs:
            return newlink(seq, 5, 'tap0')
        return ack(seq, errno.ENODEV)
    rtnl, kernel = socket_with(answer)
    assert rtnl.fetch_link(5).get_attr('IFLA_IFNAME') == 'tap0'
    assert rtnl.fetch_link('tap0').index == 5
    assert rtnl.fetch_link(6) is None
    assert [index for dummy, dummy2, dummy3, index, dummy4 in kernel.sent] == [5, 0, 6]


def test_port_settings_and_vlans_are_bridge_family_requests():
    rtnl, kernel = socket_with(lambda kind, seq, *rest: ack(seq))
    rtnl.set_port(3, 'isolating tap0', isolated=True)
    rtnl.delete_port_vlans(3, [netlink.PortVlan(1, 1)], display='tap0')
    rtnl.add_port_vlans(netlink.Link(index=4, name='br0'), [netlink.PortVlan(10, 10, True, True)], bridge_self=True)
    (port, remove, add) = kernel.sent
    assert port[:1] + port[2:4] == (19, 7, 3)
    assert port[4] == struct.pack('=HHHHB3x', 12, 12 | 0x8000, 5, 33, 1)   # IFLA_PROTINFO { IFLA_BRPORT_ISOLATED 1 }
    # RTM_DELLINK of AF_BRIDGE removes VLANs of the port (of AF_UNSPEC it would delete the link)
    assert remove[:1] + remove[2:4] == (17, 7, 3)
    assert remove[4] == struct.pack('=HHHHHxxHHHH', 20, 26 | 0x8000, 6, 0, 1, 8, 2, 0, 1)
    assert add[:1] + add[2:4] == (19, 7, 4)
    assert add[4] == struct.pack('=HHHHHxxHHHH', 20, 26 | 0x8000, 6, 0, 2, 8, 2, 6, 10)
    with pytest.raises(TypeError):
        rtnl.add_port_vlans('tap0', [netlink.PortVlan(10, 10)])


def test_port_vlan_errors_say_what_was_done_where():
    rtnl, dummy = socket_with(lambda kind, seq, *rest: ack(seq, errno.ENOENT))
    with pytest.raises(RtnlError) as caught:
        rtnl.delete_port_vlans(3, [netlink.PortVlan(20, 29)], display='tap0')
    assert str(caught.value).startswith("removing VLANs 20-29 from port 'tap0': not found")


def test_dumps_run_on_the_socket_and_are_counted():
    def answer(kind, seq, family, index, attrs):
        done = header(rtnl_dump.NLMSG_DONE, seq, 4, rtnl_dump.NLM_F_MULTI) + b'\0' * 4
        return newlink(seq, 1, 'lo', rtnl_dump.NLM_F_MULTI) + newlink(seq, 2, 'br0', rtnl_dump.NLM_F_MULTI) + done
    rtnl, kernel = socket_with(answer)
    assert [msg.get_attr('IFLA_IFNAME') for msg in rtnl.dump_links()] == ['lo', 'br0']
    rtnl.dump_port_vlans()
    assert rtnl.dumps == {'links': 1, 'port_vlans': 1}
    (links, bridges) = kernel.sent
    assert (links[0], links[2], bridges[0], bridges[2]) == (18, 0, 18, 7)
    assert bridges[4] == struct.pack('=HHI', 8, 29, 0xC)   # compressed VLAN ranges, no statistics
    assert bridges[1] > links[1]


def test_read_errors_carry_the_operation():
    def answer(kind, seq, *rest):
        return ack(seq, errno.EPERM)
    rtnl, dummy = socket_with(answer)
    with pytest.raises(RtnlError) as caught:
        rtnl.dump_links()
    assert str(caught.value).startswith('reading the links: operation not permitted')


def test_a_real_socket_opens_and_closes():
    with RtnlSocket() as rtnl:
        assert rtnl.sock is not None
    assert rtnl._sock is None  # pylint: disable=protected-access
