# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import errno
import socket

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import netlink
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    Address,
    Link,
    NetlinkOperationError,
    NetlinkSession,
    OWNER_MARKER,
    address_from_msg,
    explain_errno,
    is_ours,
    link_from_msg,
    netlink_operation,
    owner_alias,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.netlink_fakes import (
    FakeIPRoute,
    addr_msg,
    link_msg,
)


# --------------------------------------------------------------------------- errno mapping

@pytest.mark.parametrize('code, words', [
    (errno.EPERM, 'needs root or the CAP_NET_ADMIN capability'),
    (errno.EACCES, 'CAP_NET_ADMIN'),
    (errno.EEXIST, 'already exists'),
    (errno.ENODEV, 'no such device'),
    (errno.EBUSY, 'busy'),
    (errno.EOPNOTSUPP, 'kernel lacks this feature or its module is not loaded'),
    (errno.ERANGE, 'MTU'),
    (errno.EINVAL, 'MTU below the minimum'),
    (errno.EADDRNOTAVAIL, 'address not available'),
    (-errno.EPERM, 'CAP_NET_ADMIN'),
])
def test_explain_errno(code, words):
    assert words in explain_errno(code)


def test_explain_unknown_errno_falls_back_to_strerror():
    assert explain_errno(errno.EXDEV) == 'Invalid cross-device link'
    assert explain_errno(None) == 'unknown error'


@pytest.mark.parametrize('code, name', [(errno.EPERM, 'EPERM'), (errno.EOPNOTSUPP, 'EOPNOTSUPP'), (9999, 'errno 9999')])
def test_operation_error_message_names_operation_object_and_errno(code, name):
    exc = NetlinkOperationError("creating tap 'tap0'", code)
    text = str(exc)
    assert text.startswith("creating tap 'tap0': ")
    assert text.endswith('[%s]' % name)
    assert exc.code == code


def test_operation_error_without_errno():
    exc = NetlinkOperationError("creating bridge 'br0'", detail='vanished')
    assert str(exc) == "creating bridge 'br0': vanished"


def test_netlink_operation_translates_netlink_and_os_errors():
    with pytest.raises(NetlinkOperationError) as info:
        with netlink_operation("creating tap 'tap0'"):
            raise netlink.NetlinkError(errno.EPERM, 'Operation not permitted')
    assert str(info.value).startswith("creating tap 'tap0': operation not permitted: changing network links needs root")
    assert info.value.code == errno.EPERM
    with pytest.raises(NetlinkOperationError) as info:
        with netlink_operation("creating tap 'tap0'"):
            raise OSError(errno.EBUSY, 'busy')
    assert info.value.code == errno.EBUSY
    with pytest.raises(ValueError):
        with netlink_operation('anything'):
            raise ValueError('not a netlink error')


# --------------------------------------------------------------------------- marker

def test_owner_marker_and_is_ours():
    assert OWNER_MARKER == 'nqrust.microvm'
    assert owner_alias() == 'nqrust.microvm'
    assert owner_alias('vm=42') == 'nqrust.microvm:vm=42'
    assert is_ours('nqrust.microvm')
    assert is_ours('nqrust.microvm:vm=42')
    assert not is_ours('nqrust.microvmx')
    assert not is_ours('other nqrust.microvm')
    assert not is_ours(None)
    assert not is_ours('')
    assert is_ours(Link(index=1, name='a', alias='nqrust.microvm'))
    assert not Link(index=1, name='a').managed


# --------------------------------------------------------------------------- records from fake messages

def test_link_from_minimal_fake_messages():
    links = dict((rec.name, rec) for rec in (link_from_msg(msg) for msg in FakeIPRoute().get_links()))
    bridge = links['fcbr0']
    assert bridge.is_bridge and bridge.kind == 'bridge' and bridge.managed
    assert bridge.vlan_filtering is False
    assert bridge.up and not bridge.lower_up
    tap = links['tap-vm1']
    assert tap.is_tap and tap.kind == 'tun' and tap.tun_type == 'tap'
    assert tap.master_index == 3 and tap.slave_kind == 'bridge'
    assert tap.kind_label == 'tap' and tap.managed
    assert links['tun0'].tun_type == 'tun' and not links['tun0'].is_tap and links['tun0'].mac is None
    assert links['tap-foreign'].is_tap and not links['tap-foreign'].managed and not links['tap-foreign'].up
    assert links['eth0'].kind is None and links['eth0'].mac == '52:54:00:aa:bb:cc'
    assert links['veth-up'].link_index == 6
    assert links['lo'].up and links['lo'].lower_up and links['lo'].mtu == 65536


def test_link_tun_type_falls_back_to_arp_type():
    old_tap = link_from_msg(link_msg(3, 'tap0', kind='tun', ifi_type=1))
    old_tun = link_from_msg(link_msg(4, 'tun0', kind='tun', ifi_type=0xFFFE))
    assert old_tap.tun_type == 'tap' and old_tun.tun_type == 'tun'


def test_link_nested_attributes_as_plain_dicts():
    msg = link_msg(3, 'br0')
    msg.attrs.append(('IFLA_LINKINFO', {'attrs': [('IFLA_INFO_KIND', 'bridge')]}))
    assert link_from_msg(msg).kind == 'bridge'


def test_link_records_are_immutable_plain_data():
    rec = link_from_msg(link_msg(3, 'br0', kind='bridge'))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.mtu = 9000
    data = rec.to_dict()
    assert data['name'] == 'br0' and data['kind'] == 'bridge' and data['index'] == 3


def test_address_from_fake_messages():
    v4 = address_from_msg(addr_msg(3, '10.0.0.1', 24, label='br0'))
    assert v4 == Address(index=3, family=socket.AF_INET, address='10.0.0.1', prefixlen=24, scope=0, label='br0')
    assert v4.cidr == '10.0.0.1/24' and v4.version == 4 and not v4.is_link_local
    v6 = address_from_msg(addr_msg(3, 'fe80::1', 64, family=socket.AF_INET6, scope=253))
    assert v6.version == 6 and v6.is_link_local
    assert v6.to_dict()['cidr'] == 'fe80::1/64'


def test_ipv4_point_to_point_uses_local_address():
    msg = addr_msg(3, '10.0.0.1', 32)
    msg.attrs = [('IFA_ADDRESS', '10.0.0.2'), ('IFA_LOCAL', '10.0.0.1')]
    assert address_from_msg(msg).address == '10.0.0.1'


# --------------------------------------------------------------------------- records from real pyroute2 messages

def _roundtrip(cls, fields, attrs):
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg['attrs'] = attrs
    msg.encode()
    decoded = cls(msg.data)
    decoded.decode()
    return decoded


def test_link_from_real_ifinfmsg():
    ifinfmsg = pytest.importorskip('pyroute2.netlink.rtnl.ifinfmsg').ifinfmsg
    tap = _roundtrip(ifinfmsg, {'index': 7, 'flags': 0x1003, 'ifi_type': 1}, [
        ('IFLA_IFNAME', 'tap9'), ('IFLA_MTU', 1400), ('IFLA_ADDRESS', '02:00:00:00:00:01'),
        ('IFLA_IFALIAS', 'nqrust.microvm'), ('IFLA_MASTER', 3), ('IFLA_TXQLEN', 1000), ('IFLA_OPERSTATE', 'UP'),
        ('IFLA_LINKINFO', {'attrs': [('IFLA_INFO_KIND', 'tun'), ('IFLA_INFO_DATA', {'attrs': [('IFLA_TUN_TYPE', 2)]})]}),
    ])
    rec = link_from_msg(tap)
    assert rec == Link(index=7, name='tap9', kind='tun', tun_type='tap', master_index=3, mtu=1400,
                       mac='02:00:00:00:00:01', up=True, lower_up=False, operstate='UP', alias='nqrust.microvm',
                       txqlen=1000, flags=0x1003)
    assert rec.is_tap and rec.managed

    bridge = _roundtrip(ifinfmsg, {'index': 3, 'flags': 0x1}, [
        ('IFLA_IFNAME', 'br0'),
        ('IFLA_LINKINFO', {'attrs': [('IFLA_INFO_KIND', 'bridge'), ('IFLA_INFO_DATA', {'attrs': [('IFLA_BR_VLAN_FILTERING', 1)]})]}),
    ])
    rec = link_from_msg(bridge)
    assert rec.is_bridge and rec.vlan_filtering is True and rec.master_index is None and not rec.managed

    vlan = _roundtrip(ifinfmsg, {'index': 5, 'flags': 0}, [
        ('IFLA_IFNAME', 'eth0.5'), ('IFLA_LINK', 2),
        ('IFLA_LINKINFO', {'attrs': [('IFLA_INFO_KIND', 'vlan'), ('IFLA_INFO_DATA', {'attrs': [('IFLA_VLAN_ID', 5)]})]}),
    ])
    rec = link_from_msg(vlan)
    assert rec.is_vlan and rec.vlan_id == 5 and rec.link_index == 2 and not rec.up


def test_address_from_real_ifaddrmsg():
    ifaddrmsg = pytest.importorskip('pyroute2.netlink.rtnl.ifaddrmsg').ifaddrmsg
    msg = _roundtrip(ifaddrmsg, {'family': socket.AF_INET, 'prefixlen': 24, 'index': 3},
                     [('IFA_ADDRESS', '10.0.0.1'), ('IFA_LOCAL', '10.0.0.1'), ('IFA_LABEL', 'br0')])
    assert address_from_msg(msg) == Address(index=3, family=socket.AF_INET, address='10.0.0.1', prefixlen=24, label='br0')
    msg = _roundtrip(ifaddrmsg, {'family': socket.AF_INET6, 'prefixlen': 64, 'index': 3}, [('IFA_ADDRESS', 'fd00::1')])
    assert address_from_msg(msg).cidr == 'fd00::1/64'


# --------------------------------------------------------------------------- session reads

def test_session_reads_each_kind_once_until_refresh():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        assert [rec.name for rec in nl.links()][:3] == ['lo', 'eth0', 'fcbr0']
        assert nl.link('fcbr0').index == 3
        assert nl.link_by_index(4).name == 'tap-vm1'
        assert nl.link('missing') is None
        assert [rec.name for rec in nl.ports('fcbr0')] == ['tap-vm1', 'veth-up']
        assert [rec.name for rec in nl.ports(nl.link('fcbr0'))] == ['tap-vm1', 'veth-up']
        assert nl.ports('missing') == ()
        assert len(nl.addresses()) == 8
        assert [rec.cidr for rec in nl.addresses('fcbr0') if rec.version == 4] == ['10.0.0.1/24', '10.0.0.10/24', '10.0.0.2/24']
        assert len(nl.addresses(3)) == 5
        assert nl.dumps == {'links': 1, 'addresses': 1}
        assert [call[0] for call in ipr.calls] == ['get_links', 'get_addr']
        nl.refresh()
        nl.links()
        nl.addresses()
        assert nl.dumps == {'links': 2, 'addresses': 2}
    assert not ipr.closed  # the session did not open it, so it does not close it


def test_session_records_are_tuples_of_immutable_records():
    with NetlinkSession(FakeIPRoute()) as nl:
        assert isinstance(nl.links(), tuple)
        assert isinstance(nl.addresses(), tuple)


def test_session_read_error_names_the_operation():
    with NetlinkSession(FakeIPRoute(fail={('get_links', None): errno.EPERM})) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.links()
    assert str(info.value).startswith('reading the links: operation not permitted')


def test_session_without_pyroute2(monkeypatch):
    monkeypatch.setattr(netlink, 'HAS_PYROUTE2', False)
    with pytest.raises(netlink.NetlinkUnavailable):
        NetlinkSession().open()


def test_session_opens_and_closes_its_own_socket(monkeypatch):
    made = []

    def factory():
        made.append(FakeIPRoute())
        return made[-1]

    monkeypatch.setattr(netlink, 'IPRoute', factory)
    monkeypatch.setattr(netlink, 'HAS_PYROUTE2', True)
    with NetlinkSession() as nl:
        nl.links()
    assert len(made) == 1 and made[0].closed


# --------------------------------------------------------------------------- session writes

def test_delete_link_goes_by_index():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        nl.delete_link(nl.link('tap-vm1'))
        nl.delete_link(7, display='tap-foreign')
    assert ipr.calls[-2:] == [('link', 'del', {'index': 4}), ('link', 'del', {'index': 7})]


def test_writes_refuse_names():
    with NetlinkSession(FakeIPRoute()) as nl:
        with pytest.raises(TypeError):
            nl.delete_link('tap-vm1')
        with pytest.raises(TypeError):
            nl.set_link(True, mtu=1500)


def test_delete_error_names_kind_and_name():
    ipr = FakeIPRoute(fail={('link', 'del'): errno.EBUSY})
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.delete_link(nl.link('tap-vm1'))
    assert str(info.value).startswith("deleting tap 'tap-vm1': device or resource busy")
    assert str(info.value).endswith('[EBUSY]')


def test_set_link_error_names_attributes():
    ipr = FakeIPRoute(fail={('link', 'set'): errno.EINVAL})
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.set_link(nl.link('fcbr0'), mtu=10)
    assert str(info.value).startswith("changing bridge 'fcbr0' (mtu=10): invalid argument")


def test_create_tap_checks_existence_first():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.create_link('tuntap', 'tap-vm1', mode='tap')
    assert str(info.value).startswith("creating tap 'tap-vm1': it already exists")
    assert not [call for call in ipr.calls if call[:2] == ('link', 'add')]


def test_create_link_sets_marker_and_settings_and_returns_index():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        index = nl.create_link('tuntap', 'tap-new', mode='tap', settings={'mtu': 1400})
    assert index == 101
    writes = [call for call in ipr.calls if call[0] == 'link' and call[1] in ('add', 'set')]
    assert writes == [
        ('link', 'add', {'ifname': 'tap-new', 'kind': 'tuntap', 'mode': 'tap'}),
        ('link', 'set', {'index': 101, 'mtu': 1400, 'ifalias': 'nqrust.microvm'}),
    ]


def test_create_link_without_alias_or_settings_makes_no_set_call():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        nl.create_link('bridge', 'br-new', alias=None)
    assert not [call for call in ipr.calls if call[:2] == ('link', 'set')]


def test_create_link_is_atomic_when_settings_fail():
    ipr = FakeIPRoute(fail={('link', 'set'): errno.ERANGE})
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.create_link('bridge', 'br-new', settings={'mtu': 70000})
    assert "creating bridge 'br-new' (setting ifalias=nqrust.microvm, mtu=70000): value out of range" in str(info.value)
    assert ('link', 'del', {'index': 101}) in ipr.calls
    assert 'br-new' not in [msg.get_attr('IFLA_IFNAME') for msg in ipr.link_msgs]


def test_create_link_error_from_kernel():
    ipr = FakeIPRoute(fail={('link', 'add'): errno.EOPNOTSUPP})
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.create_link('vlan', 'eth0.5', link=2, vlan_id=5)
    assert str(info.value).startswith("creating vlan 'eth0.5': operation not supported: the kernel lacks this feature")


def test_address_writes():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        nl.add_address(nl.link('fcbr0'), '10.0.0.3', 24)
        nl.delete_address(3, '10.0.0.3', '24', display='fcbr0')
    assert ipr.calls[-2:] == [
        ('addr', 'add', {'index': 3, 'address': '10.0.0.3', 'prefixlen': 24}),
        ('addr', 'del', {'index': 3, 'address': '10.0.0.3', 'prefixlen': 24}),
    ]
    ipr = FakeIPRoute(fail={('addr', 'add'): errno.EEXIST})
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.add_address(nl.link('fcbr0'), '10.0.0.1', 24)
    assert str(info.value).startswith("adding address 10.0.0.1/24 to bridge 'fcbr0': it already exists")


def test_fetch_link_reads_one_link_and_reports_absence():
    ipr = FakeIPRoute()
    with NetlinkSession(ipr) as nl:
        assert nl.fetch_link('fcbr0').index == 3
        assert nl.fetch_link(4).name == 'tap-vm1'
        assert nl.fetch_link('nope') is None
    assert not [call for call in ipr.calls if call[0] == 'get_links']


def test_call_translates_errors():
    ipr = FakeIPRoute(fail={('link', 'set'): errno.EPERM})
    with NetlinkSession(ipr) as nl:
        with pytest.raises(NetlinkOperationError) as info:
            nl.call("attaching tap 'tap0' to bridge 'br0'", nl.ipr.link, 'set', index=4, master=3)
    assert str(info.value).startswith("attaching tap 'tap0' to bridge 'br0': operation not permitted")
