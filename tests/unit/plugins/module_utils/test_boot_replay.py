"""boot_replay: the replay files rendered from netlink and nftables records."""

from __future__ import annotations

import json
import socket

from ansible_collections.nqrust.microvm.plugins.module_utils import boot_replay
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import Address, Link, Route
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import Chain, Rule, Table, TableContent

BRIDGE = Link(index=5, name='fcbr0', kind='bridge', mac='02:aa:bb:cc:dd:ee', mtu=9000, txqlen=10000, stp_state=0,
              forward_delay=0, mcast_snooping=False, vlan_filtering=True, vlan_default_pvid=1, alias='nqrust.microvm')
UPLINK = Link(index=2, name='eth0', master_index=5)
TAP = Link(index=9, name='tap-vm1', kind='tun', tun_type='tap', master_index=5)


def test_links_rebuild_the_bridge_its_uplink_addresses_and_routes_but_not_taps():
    addresses = [Address(index=5, family=socket.AF_INET, address='10.0.0.1', prefixlen=24),
                 Address(index=5, family=socket.AF_INET6, address='fe80::1', prefixlen=64, scope=253),
                 Address(index=2, family=socket.AF_INET, address='192.0.2.9', prefixlen=24)]
    routes = [Route(family=socket.AF_INET, dst=None, dst_len=0, oif=5, gateway='10.0.0.254', proto=4),
              Route(family=socket.AF_INET, dst='10.0.0.0', dst_len=24, oif=5, proto=2)]   # the kernel's own
    text = boot_replay.render_links([BRIDGE], [BRIDGE, UPLINK, TAP], addresses, routes)
    lines = [line for line in text.splitlines() if not line.startswith('#') and line]
    assert lines == [
        'link add name fcbr0 address 02:aa:bb:cc:dd:ee mtu 9000 txqueuelen 10000 type bridge stp_state 0 '
        'forward_delay 0 mcast_snooping 0 vlan_filtering 1 vlan_default_pvid 1',
        'link set dev fcbr0 alias "nqrust.microvm"',
        'link set dev eth0 master fcbr0',
        'link set dev eth0 up',
        'address add 10.0.0.1/24 dev fcbr0',
        'link set dev fcbr0 up',
        'route replace default via 10.0.0.254 dev fcbr0 proto static',
    ]


def test_a_kernel_without_vlan_filtering_gets_no_vlan_words():
    bridge = Link(index=5, name='fcbr1', kind='bridge', vlan_filtering=None)
    assert 'vlan' not in boot_replay.render_links([bridge], [bridge], [], [])


def test_nftables_is_one_transaction_replacing_each_table():
    table = Table('inet', 'nqrust_microvm_fw_fcbr0')
    chain = Chain('inet', table.name, 'forward', 'filter', 'forward', 0, 'accept')
    rule = Rule('inet', table.name, 'forward', ({'counter': {'packets': 7, 'bytes': 420}}, {'accept': None}), 'nqrust.microvm x')
    document = json.loads(boot_replay.render_nftables([TableContent(table, (chain,), (rule,))]))
    commands = document['nftables']
    verbs = [next(iter(item)) for item in commands if 'metainfo' not in item]
    assert verbs == ['add', 'delete', 'add', 'add', 'add']
    # what was counted is not configuration: the file does not change with traffic
    assert commands[-1]['add']['rule']['expr'][0] == {'counter': {'packets': 0, 'bytes': 0}}


def test_sysctl_lists_only_what_is_on():
    lines = boot_replay.render_sysctl({4: True, 6: False}).splitlines()
    assert [line for line in lines if line and not line.startswith('#')] == ['net.ipv4.ip_forward = 1']


def test_unit_runs_the_three_files_in_order():
    unit = boot_replay.render_unit('/etc/x', '/usr/sbin/ip', '/usr/sbin/nft', '/usr/sbin/sysctl')
    starts = [line for line in unit.splitlines() if line.startswith('ExecStart=')]
    assert starts == ['ExecStart=/usr/sbin/ip -batch /etc/x/links.batch', 'ExecStart=/usr/sbin/nft -j -f /etc/x/nftables.json',
                      'ExecStart=/usr/sbin/sysctl -q -p /etc/x/sysctl.conf']
