"""The lean link-dump reader: decoding, dump protocol, and agreement with pyroute2."""

from __future__ import annotations

import errno
import struct

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink, rtnl_dump


def attr(kind, payload):
    """One rtattr, padded to 4 bytes."""
    data = struct.pack('=HH', 4 + len(payload), kind) + payload
    return data + b'\0' * (-len(data) % 4)


def link_message(index, name, sequence=1, flags=0, kind=None, data=b'', slave_kind=None, extra=b'', msg_flags=rtnl_dump.NLM_F_MULTI):
    attrs = attr(3, name.encode() + b'\0') + attr(4, struct.pack('=I', 1500)) + attr(1, bytes.fromhex('aafc00000001'))
    attrs += attr(16, bytes([6]))
    if kind is not None:
        info = attr(1, kind.encode() + b'\0')
        if data:
            info += attr(2 | 0x8000, data)
        if slave_kind:
            info += attr(4, slave_kind.encode() + b'\0')
        attrs += attr(18 | 0x8000, info)
    body = rtnl_dump.IFINFOMSG.pack(0, 1, index, flags, 0) + attrs + extra
    return rtnl_dump.NLMSGHDR.pack(16 + len(body), rtnl_dump.RTM_NEWLINK, msg_flags, sequence, 0) + body


def done(sequence=1, msg_flags=rtnl_dump.NLM_F_MULTI):
    return rtnl_dump.NLMSGHDR.pack(20, rtnl_dump.NLMSG_DONE, msg_flags, sequence, 0) + b'\0' * 4


def error(code, sequence=1):
    return rtnl_dump.NLMSGHDR.pack(36, rtnl_dump.NLMSG_ERROR, 0, sequence, 0) + struct.pack('=i', -code) + b'\0' * 16


class FakeSocket(object):
    """Answers recv() with prepared chunks; records what was sent."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.sent = []

    def send(self, data):
        self.sent.append(data)

    def recv(self, size):
        return self.chunks.pop(0)


def test_decodes_header_and_attributes_lazily():
    bridge_data = attr(5, struct.pack('=I', 1)) + attr(7, b'\x01') + attr(23, b'\x00') + attr(39, struct.pack('=H', 10))
    raw = link_message(7, 'fcbr0', flags=1, kind='bridge', data=bridge_data)
    (msg,) = rtnl_dump._read_dump(FakeSocket([raw + done()]), 1)
    assert msg['index'] == 7 and msg['flags'] == 1 and msg['ifi_type'] == 1
    assert msg.get_attr('IFLA_IFNAME') == 'fcbr0'
    assert msg.get_attr('IFLA_ADDRESS') == 'aa:fc:00:00:00:01'
    assert msg.get_attr('IFLA_OPERSTATE') == 'UP'
    assert msg.get_attr('IFLA_MASTER') is None
    record = netlink.link_from_msg(msg)
    assert (record.name, record.kind, record.up, record.mtu) == ('fcbr0', 'bridge', True, 1500)
    assert (record.stp_state, record.vlan_filtering, record.mcast_snooping, record.vlan_default_pvid) == (1, True, False, 10)


def test_tap_and_bridge_port_records():
    raw = link_message(9, 'tap0', kind='tun', data=attr(3, b'\x02') + attr(5, b'\x01'), slave_kind='bridge')
    (msg,) = rtnl_dump._read_dump(FakeSocket([raw + done()]), 1)
    record = netlink.link_from_msg(msg)
    assert record.is_tap and record.slave_kind == 'bridge'
    data = msg.get_attr('IFLA_LINKINFO').get_attr('IFLA_INFO_DATA')
    assert data.get_attr('IFLA_TUN_VNET_HDR') == 1
    assert data.get_attr('IFLA_TUN_MULTI_QUEUE') is None


def test_unknown_attribute_name_is_an_error_not_a_silent_none():
    (msg,) = rtnl_dump._read_dump(FakeSocket([link_message(1, 'lo') + done()]), 1)
    with pytest.raises(KeyError):
        msg.get_attr('IFLA_NOT_A_THING')


def test_dump_spans_several_reads_and_skips_other_sequences():
    chunks = [link_message(1, 'lo') + link_message(5, 'stale', sequence=9), link_message(2, 'eth0') + done()]
    messages = rtnl_dump._read_dump(FakeSocket(chunks), 1)
    assert [m.get_attr('IFLA_IFNAME') for m in messages] == ['lo', 'eth0']


def test_interrupted_dump_is_reported():
    interrupted = rtnl_dump.NLM_F_MULTI | rtnl_dump.NLM_F_DUMP_INTR
    with pytest.raises(rtnl_dump.DumpInterrupted):
        rtnl_dump._read_dump(FakeSocket([link_message(1, 'lo', msg_flags=interrupted) + done(msg_flags=interrupted)]), 1)


def test_kernel_error_becomes_oserror_with_errno():
    with pytest.raises(OSError) as caught:
        rtnl_dump._read_dump(FakeSocket([error(errno.EPERM)]), 1)
    assert caught.value.errno == errno.EPERM


def test_request_asks_for_a_dump_without_statistics():
    request = rtnl_dump._request(3)
    length, kind, flags, sequence, _port = rtnl_dump.NLMSGHDR.unpack_from(request, 0)
    assert (length, kind, sequence) == (len(request), rtnl_dump.RTM_GETLINK, 3)
    assert flags & rtnl_dump.NLM_F_DUMP == rtnl_dump.NLM_F_DUMP
    assert request.endswith(struct.pack('=HHI', 8, rtnl_dump.IFLA_EXT_MASK, rtnl_dump.RTEXT_FILTER_SKIP_STATS))


@pytest.mark.skipif(not netlink.HAS_PYROUTE2, reason='pyroute2 is not installed')
def test_same_records_as_pyroute2_on_this_machine():
    """Both readers of the links of the namespace the tests run in give identical records."""
    from pyroute2 import IPRoute
    try:
        fast = sorted((netlink.link_from_msg(m) for m in rtnl_dump.dump_links()), key=lambda rec: rec.index)
    except OSError as exc:  # a sandbox without netlink
        pytest.skip('no rtnetlink here: %s' % exc)
    with IPRoute() as ipr:
        slow = sorted((netlink.link_from_msg(m) for m in ipr.get_links()), key=lambda rec: rec.index)
    assert [rec.name for rec in fast] == [rec.name for rec in slow]
    # carrier and operstate may change between the two dumps; everything else must agree
    strip = [('lower_up', False), ('operstate', None), ('flags', 0)]
    assert [rec.__class__(**dict(rec.__dict__, **dict(strip))) for rec in fast] == \
        [rec.__class__(**dict(rec.__dict__, **dict(strip))) for rec in slow]
