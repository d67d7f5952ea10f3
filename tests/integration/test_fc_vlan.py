"""Kernel lane: nqrust.microvm.fc_vlan on lab hosts, with real traffic between simulated guests.

Every converging task runs three times: in check mode, for real, and again. Check mode must
predict exactly what the real run does (changed, changes, diff), the state read back after the
real run must be the diff's ``after``, and the second real run must change nothing. Port VLANs
are also read independently, with iproute2's ``bridge -c vlan show``, and compared.

Needs bridge VLAN filtering (and 8021q for sub-interfaces): skips elsewhere with the probe's
reason; in the kernel lane a skip fails the run. The lane runs these tests twice, the second time
with the module under pyroute2 0.7 (NQRUST_TARGET_PYTHON).

Under qemu TCG starting Python and importing ansible and pyroute2 costs minutes, so the modules
run through the lab's fork server (``lab.module_run.module_runner``), which imports them once;
``NQRUST_MODULE_FRESH_PROCESS=1`` runs each in a fresh process instead.
"""

import json

import pytest

from lab import kernel
from lab.module_run import module_runner

pytestmark = [pytest.mark.kernel, pytest.mark.module, pytest.mark.timeout(1200)]

# --------------------------------------------------------------------------- running the module


@pytest.fixture(name='fc_vlan', scope='module')
def fc_vlan_fixture():
    """``fc_vlan(host, args, check_mode=False)`` -> the module's result dict (diff mode on)."""
    with module_runner() as run:
        yield lambda host, args, check_mode=False: run(host, 'fc_vlan', args, check_mode=check_mode, diff=True)


# --------------------------------------------------------------------------- helpers

def converge(fc_vlan, host, args, changed=True):
    """Check run, real run, second run: check predicts the real run, the second changes nothing."""
    check = fc_vlan(host, args, check_mode=True)
    assert not check.get('failed'), check.get('msg')
    real = fc_vlan(host, args)
    assert not real.get('failed'), real.get('msg')
    for key in ('changed', 'changes', 'diff'):
        assert check[key] == real[key], key
    assert real['changed'] is changed, real['changes']
    assert check['ports'] == real['ports']
    assert ([dict(item, ifindex=None) for item in check['subinterfaces']] ==
            [dict(item, ifindex=None) for item in real['subinterfaces']])
    again = fc_vlan(host, args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False and again['changes'] == [], again['changes']
    assert again['diff']['before'] == real['diff']['after'], 'the state read back is the predicted one'
    assert again['diff']['before'] == again['diff']['after']
    assert again['ports'] == real['ports']
    assert again['subinterfaces'] == real['subinterfaces']
    return real


def descriptions(result):
    return [change['description'] for change in result['changes']]


def entries(*vids, **flags):
    return [{'vid': vid, 'pvid': flags.get('pvid', False), 'untagged': flags.get('untagged', False)} for vid in vids]


def vlan_table(host):
    """Port VLANs as iproute2 reads them (``bridge -c vlan show``, ranges expanded): {ifname: [{vid, pvid, untagged}]}."""
    out = host.run(['bridge', '-j', '-c', 'vlan', 'show']).stdout.strip()
    found = {}
    for port in json.loads(out) if out else []:
        rows = []
        for item in port.get('vlans', []):
            flags = item.get('flags', [])
            for vid in range(item['vlan'], item.get('vlanEnd', item['vlan']) + 1):
                rows.append({'vid': vid, 'pvid': 'PVID' in flags, 'untagged': 'Egress Untagged' in flags})
        if rows:
            found[port['ifname']] = rows
    return found


def link_table(host):
    """The parts of every link a refused task must not have touched."""
    table = {}
    for name, item in host.links().items():
        info = item.get('linkinfo', {})
        table[name] = (item.get('ifindex'), item.get('mtu'), tuple(item.get('flags', ())), item.get('master'),
                       item.get('ifalias'), info.get('info_kind'), (info.get('info_data') or {}).get('id'))
    return table


def filtering_bridge(host, name='br0', filtering=True):
    host.ip('link', 'add', name, 'type', 'bridge', 'vlan_filtering', '1' if filtering else '0')
    host.set_up(name)


def tap_port(host, tap, bridge='br0'):
    host.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap')
    host.ip('link', 'set', 'dev', tap, 'master', bridge)
    host.set_up(tap)


def access(port, vid, bridge='br0'):
    return {'port': port, 'bridge': bridge, 'pvid': vid, 'untagged': [vid]}


# --------------------------------------------------------------------------- tests

def test_access_ports_isolate_guests_and_moving_a_port_joins_it(lab, fc_vlan):
    kernel.require('tun', 'vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    ports = {'tap100a': 100, 'tap100b': 100, 'tap200': 200}
    for tap in ports:
        tap_port(hv, tap)
    assert all(vlan_table(hv)[tap] == entries(1, pvid=True, untagged=True) for tap in ports)

    real = converge(fc_vlan, hv, {'ports': [access(tap, vid) for tap, vid in sorted(ports.items())]})
    assert descriptions(real) == [
        "remove VLAN 1 from port 'tap100a' of bridge 'br0'",
        "remove VLAN 1 from port 'tap100b' of bridge 'br0'",
        "remove VLAN 1 from port 'tap200' of bridge 'br0'",
        "add VLAN 100 (pvid, untagged) to port 'tap100a' of bridge 'br0'",
        "add VLAN 100 (pvid, untagged) to port 'tap100b' of bridge 'br0'",
        "add VLAN 200 (pvid, untagged) to port 'tap200' of bridge 'br0'",
    ]
    assert real['diff']['before'].startswith('ports:\n  tap100a:\n    bridge: br0\n    pvid: 1\n')
    assert real['ports'][2] == {'port': 'tap200', 'bridge': 'br0', 'self': False, 'pvid': 200,
                                'tagged': [], 'untagged': [200]}
    table = vlan_table(hv)
    for tap, vid in ports.items():
        assert table[tap] == entries(vid, pvid=True, untagged=True), table

    guests = {}
    for number, tap in enumerate(sorted(ports), start=1):
        guest = lab.add_guest('vm-' + tap[3:], hv, tap)
        guest.add_address('eth0', '10.70.0.%d/24' % number)
        guests[tap] = (guest, '10.70.0.%d' % number)
    vm100a, ip100a = guests['tap100a']
    vm100b, ip100b = guests['tap100b']
    vm200, ip200 = guests['tap200']
    assert vm100a.ping(ip100b, count=2), 'guests on VLAN 100 reach each other'
    assert vm100b.ping(ip100a)
    assert not vm200.ping(ip100a, timeout=1), 'VLAN 200 does not reach VLAN 100'
    assert not vm100b.ping(ip200, timeout=1)

    # one subnet on both VLANs: only the VLAN kept them apart, so moving the port joins the guest
    moved = converge(fc_vlan, hv, {'ports': [access('tap200', 100)]})
    assert descriptions(moved) == ["remove VLAN 200 from port 'tap200' of bridge 'br0'",
                                   "add VLAN 100 (pvid, untagged) to port 'tap200' of bridge 'br0'"]
    assert vlan_table(hv)['tap200'] == entries(100, pvid=True, untagged=True)
    assert vm200.ping(ip100a, count=2)


def test_trunk_carries_both_vlans_to_subinterfaces_made_by_fc_vlan(lab, fc_vlan):
    kernel.require('tun', 'vlan_filtering', '8021q')
    hv = lab.add_host('hv1')
    router = lab.add_host('router')
    filtering_bridge(hv)
    lab.connect(hv, 'trunk0', router, 'trunk0')
    hv.ip('link', 'set', 'dev', 'trunk0', 'master', 'br0')
    tap_port(hv, 'tap100')
    tap_port(hv, 'tap200')

    real = converge(fc_vlan, hv, {'ports': [{'port': 'trunk0', 'bridge': 'br0', 'vlans': [100, 200]},
                                            access('tap100', 100), access('tap200', 200)]})
    assert "add VLAN 100 (tagged) to port 'trunk0' of bridge 'br0'" in descriptions(real)
    assert vlan_table(hv)['trunk0'] == entries(100, 200)

    made = converge(fc_vlan, router, {'subinterfaces': [
        {'name': 'trunk0.100', 'link': 'trunk0', 'id': 100},
        {'name': 'trunk0.200', 'link': 'trunk0', 'id': 200, 'mtu': 1400}]})
    assert descriptions(made) == [
        "create VLAN link 'trunk0.100' (VLAN 100 on 'trunk0')",
        "create VLAN link 'trunk0.200' (VLAN 200 on 'trunk0', mtu 1400)",
        "bring VLAN link 'trunk0.100' up",
        "bring VLAN link 'trunk0.200' up",
    ]
    assert made['diff']['before'] == 'subinterfaces: {}\n'
    assert [(item['name'], item['id'], item['mtu'], item['up'], item['managed']) for item in made['subinterfaces']] == [
        ('trunk0.100', 100, 1500, True, True), ('trunk0.200', 200, 1400, True, True)]
    for vid in (100, 200):
        link = router.link('trunk0.%d' % vid)
        assert link['linkinfo']['info_kind'] == 'vlan' and link['linkinfo']['info_data']['id'] == vid
        assert link['ifalias'] == 'nqrust.microvm'
        router.add_address('trunk0.%d' % vid, '10.%d.0.254/24' % (70 + vid // 100))

    vm100 = lab.add_guest('vm100', hv, 'tap100')
    vm200 = lab.add_guest('vm200', hv, 'tap200')
    vm100.add_address('eth0', '10.71.0.1/24')
    vm200.add_address('eth0', '10.72.0.1/24')
    assert vm100.ping('10.71.0.254', count=2), 'VLAN 100 crosses the trunk tagged to trunk0.100'
    assert vm200.ping('10.72.0.254', count=2), 'VLAN 200 crosses the trunk tagged to trunk0.200'

    # additive on the trunk, absent on an access port, MTU changed in place on the router
    step = converge(fc_vlan, hv, {'ports': [{'port': 'trunk0', 'vlans': [300], 'mode': 'additive'},
                                            {'port': 'tap200', 'vlans': [200], 'state': 'absent'}]})
    assert descriptions(step) == ["remove VLAN 200 from port 'tap200' of bridge 'br0'",
                                  "add VLAN 300 (tagged) to port 'trunk0' of bridge 'br0'"]
    table = vlan_table(hv)
    assert table['trunk0'] == entries(100, 200, 300) and 'tap200' not in table
    assert not vm200.ping('10.72.0.254', timeout=1), 'a port without VLANs forwards nothing'
    assert vm100.ping('10.71.0.254')
    mtu = converge(fc_vlan, router, {'subinterfaces': [{'name': 'trunk0.200', 'link': 'trunk0', 'id': 200, 'mtu': 1300}]})
    assert descriptions(mtu) == ["update VLAN link 'trunk0.200' (mtu: 1400 -> 1300)"]
    assert router.link('trunk0.200')['mtu'] == 1300


def test_bridge_self_ranges_flag_updates_and_a_full_trunk(lab, fc_vlan):
    kernel.require('vlan_filtering')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    lab.connect(hv, 'v0', hv, 'v0peer')
    lab.connect(hv, 'v1', hv, 'v1peer')
    hv.ip('link', 'set', 'dev', 'v0', 'master', 'br0')
    hv.ip('link', 'set', 'dev', 'v1', 'master', 'br0')

    # the bridge itself ("bridge vlan ... self") and ranges: one change per run of ids
    first = converge(fc_vlan, hv, {'ports': [
        {'port': 'br0', 'vlans': [{'vid': 100, 'pvid': True, 'untagged': True}]},
        {'port': 'v0', 'vlans': ['200-299', 1000], 'untagged': [1000], 'pvid': 1000}]})
    assert descriptions(first) == ["remove VLAN 1 from bridge 'br0' itself",
                                   "remove VLAN 1 from port 'v0' of bridge 'br0'",
                                   "add VLAN 100 (pvid, untagged) to bridge 'br0' itself",
                                   "add VLANs 200-299 (tagged) to port 'v0' of bridge 'br0'",
                                   "add VLAN 1000 (pvid, untagged) to port 'v0' of bridge 'br0'"]
    assert first['ports'][0] == {'port': 'br0', 'bridge': 'br0', 'self': True, 'pvid': 100, 'tagged': [], 'untagged': [100]}
    assert first['ports'][1]['tagged'] == ['200-299'] and first['ports'][1]['untagged'] == [1000]
    table = vlan_table(hv)
    assert table['br0'] == entries(100, pvid=True, untagged=True)
    assert table['v0'] == entries(*range(200, 300)) + entries(1000, pvid=True, untagged=True)

    # flags change in place (update), and a pvid given additively takes over the port's pvid
    flags = converge(fc_vlan, hv, {'ports': [{'port': 'v0', 'untagged': ['250-259'], 'pvid': 250, 'mode': 'additive'}]})
    assert descriptions(flags) == [
        "update VLAN 250 on port 'v0' of bridge 'br0' (tagged -> pvid, untagged)",
        "update VLANs 251-259 on port 'v0' of bridge 'br0' (tagged -> untagged)",
        "update VLAN 1000 on port 'v0' of bridge 'br0' (pvid, untagged -> untagged)",
    ]
    read = dict((item['vid'], item) for item in vlan_table(hv)['v0'])
    assert read[250] == {'vid': 250, 'pvid': True, 'untagged': True}
    assert read[255] == {'vid': 255, 'pvid': False, 'untagged': True} and not read[249]['untagged']
    assert read[1000] == {'vid': 1000, 'pvid': False, 'untagged': True}
    assert flags['ports'][0]['tagged'] == ['200-249', '260-299'] and flags['ports'][0]['untagged'] == ['250-259', 1000]

    # every VLAN id on one port, nothing on the other (exact with no VLANs)
    full = converge(fc_vlan, hv, {'ports': [{'port': 'v0', 'vlans': ['1-4094']}, {'port': 'v1', 'vlans': []}]})
    assert full['ports'] == [
        {'port': 'v0', 'bridge': 'br0', 'self': False, 'pvid': None, 'tagged': ['1-4094'], 'untagged': []},
        {'port': 'v1', 'bridge': 'br0', 'self': False, 'pvid': None, 'tagged': [], 'untagged': []}]
    table = vlan_table(hv)
    assert table['v0'] == entries(*range(1, 4095)) and 'v1' not in table


def test_subinterface_lifecycle(lab, fc_vlan):
    kernel.require('8021q')
    host = lab.add_host('h1')
    lab.connect(host, 'eth0', host, 'peer0')
    host.ip('link', 'set', 'dev', 'eth0', 'mtu', '9000')

    converge(fc_vlan, host, {'subinterfaces': [{'name': 'eth0.100', 'link': 'eth0', 'id': 100}]})
    assert host.link('eth0.100')['mtu'] == 9000, 'a new VLAN link takes the MTU of its parent'

    # a VLAN link this collection made is replaced when its id changes
    index = host.link('eth0.100')['ifindex']
    moved = converge(fc_vlan, host, {'subinterfaces': [{'name': 'eth0.100', 'link': 'eth0', 'id': 101, 'mtu': 1500,
                                                        'up': False}]})
    assert descriptions(moved) == [
        "delete VLAN link 'eth0.100' (VLAN 100 on 'eth0') (to make it again with VLAN 101 on eth0)",
        "create VLAN link 'eth0.100' (VLAN 101 on 'eth0', mtu 1500)"]
    link = host.link('eth0.100')
    assert link['linkinfo']['info_data']['id'] == 101 and link['ifindex'] != index
    assert link['mtu'] == 1500 and 'UP' not in link['flags']

    # one made by someone else is neither replaced nor deleted when its id differs
    host.ip('link', 'add', 'link', 'eth0', 'name', 'foreign', 'type', 'vlan', 'id', '300')
    before = link_table(host)
    refused = fc_vlan(host, {'subinterfaces': [{'name': 'foreign', 'link': 'eth0', 'id': 301},
                                               {'name': 'eth0.100', 'id': 999, 'state': 'absent'}]})
    assert refused['failed']
    assert "parameter 'subinterfaces[0].name' (value 'foreign')" in refused['msg']
    assert 'made outside this collection; refusing to replace it' in refused['msg']
    assert "parameter 'subinterfaces[1].id' (value 999): 'eth0.100' is VLAN 101; refusing to delete it" in refused['msg']
    assert link_table(host) == before

    # it is taken as it is when it matches, and deleted when asked by name
    kept = fc_vlan(host, {'subinterfaces': [{'name': 'foreign', 'link': 'eth0', 'id': 300, 'up': False}]})
    assert kept['changed'] is False and kept['subinterfaces'][0]['managed'] is False
    gone = converge(fc_vlan, host, {'subinterfaces': [{'name': 'foreign', 'state': 'absent'},
                                                      {'name': 'eth0.100', 'link': 'eth0', 'id': 101, 'state': 'absent'}]})
    assert descriptions(gone) == ["delete VLAN link 'foreign' (VLAN 300 on 'eth0')",
                                  "delete VLAN link 'eth0.100' (VLAN 101 on 'eth0')"]
    assert gone['subinterfaces'][0] == {'name': 'foreign', 'state': 'absent', 'link': None, 'id': None, 'mtu': None,
                                        'up': None, 'ifindex': None, 'managed': None}
    assert host.link('foreign') is None and host.link('eth0.100') is None


# (task, words the message must contain: parameter, value, what is allowed)
BAD_VALUES = ({
    'ports': [{'port': 'tap0', 'vlans': [0]},
              {'port': 'tap1', 'pvid': 4095},
              {'port': 'loose0', 'vlans': ['100-200', 150]},
              {'port': 'plain0', 'vlans': [{'vid': 100, 'pvid': True}, {'vid': 200, 'pvid': True}]},
              {'port': 'tap/0', 'vlans': [100]}],
    'subinterfaces': [{'name': 'averyverylongname', 'link': 'trunk0', 'id': 100},
                      {'name': 'trunk0.0', 'link': 'trunk0', 'id': 0}],
}, [
    "parameter 'ports[0].vlans[0]' (value 0): 0 is not a VLAN id from 1 to 4094",
    "parameter 'ports[1].pvid' (value 4095): VLAN id must be an integer from 1 to 4094",
    "parameter 'ports[2].vlans' (value ['100-200', 150]): 100-200 and 150 overlap",
    "parameter 'ports[3]' (value {'vlans': [{'vid': 100, 'pvid': True}, {'vid': 200, 'pvid': True}], 'pvid': None}): "
    'two pvids: 100 (ports[3].vlans) and 200 (ports[3].vlans); a port has at most one pvid',
    "parameter 'ports[4].port' (value 'tap/0'): contains '/'; interface name must be 1 to 15 bytes",
    "parameter 'subinterfaces[0].name' (value 'averyverylongname'): is 17 bytes long; interface name must be 1 to 15 bytes",
    "parameter 'subinterfaces[1].id' (value 0): VLAN id must be an integer from 1 to 4094",
])

HOST_PROBLEMS = ({
    'ports': [access('tap1', 100),  # valid: not made either
              {'port': 'nosuch0', 'vlans': [100]},
              {'port': 'loose0', 'vlans': [100]},
              {'port': 'plain0', 'vlans': [100]},
              {'port': 'tap0', 'bridge': 'brplain', 'vlans': [100]}],
    'subinterfaces': [{'name': 'trunk0.100', 'link': 'trunk0', 'id': 100},  # valid: not made either
                      {'name': 'br0', 'link': 'trunk0', 'id': 101},
                      {'name': 'tap0', 'state': 'absent'},
                      {'name': 'x.100', 'link': 'nosuch0', 'id': 100},
                      {'name': 'trunk0.5', 'link': 'trunk0', 'id': 5, 'mtu': 9000},
                      {'name': 'lo.5', 'link': 'lo', 'id': 5}],
}, [
    "parameter 'ports[1].port' (value 'nosuch0'): no such link on this host; an existing link that is a port of a bridge",
    "parameter 'ports[2].port' (value 'loose0'): is a veth not attached to any bridge",
    "parameter 'ports[4].bridge' (value 'brplain'): port 'tap0' is on bridge 'br0'",
    "parameter 'ports[3].port' (value 'plain0'): its bridge 'brplain' has VLAN filtering off; a port of a bridge with "
    'VLAN filtering on (set vlan_filtering: true',
    "parameter 'subinterfaces[1].name' (value 'br0'): is a bridge, not a VLAN link; a name that is free or already a VLAN link",
    "parameter 'subinterfaces[2].name' (value 'tap0'): is a tap, not a VLAN link",
    "parameter 'subinterfaces[3].link' (value 'nosuch0'): no such link on this host; an existing link that is not loopback",
    "parameter 'subinterfaces[4].mtu' (value 9000): above the MTU of 'trunk0' (1500); MTU must be an integer from 68",
    "parameter 'subinterfaces[5].link' (value 'lo'): is the loopback device",
])


def test_rejected_tasks_change_nothing(lab, fc_vlan):
    kernel.require('tun', 'vlan_filtering', '8021q')
    hv = lab.add_host('hv1')
    filtering_bridge(hv)
    filtering_bridge(hv, 'brplain', filtering=False)
    tap_port(hv, 'tap0')
    tap_port(hv, 'tap1')
    lab.connect(hv, 'plain0', hv, 'loose0')
    hv.ip('link', 'set', 'dev', 'plain0', 'master', 'brplain')
    lab.connect(hv, 'trunk0', hv, 'trunk0peer')
    links, vlans = link_table(hv), vlan_table(hv)
    assert vlans['tap0'] == vlans['tap1'] == vlans['plain0'] == entries(1, pvid=True, untagged=True)
    for (task, words), check_mode in ((BAD_VALUES, False), (HOST_PROBLEMS, True), (HOST_PROBLEMS, False)):
        result = fc_vlan(hv, task, check_mode=check_mode)
        assert result.get('failed') and result.get('changed') is not True, result
        assert result['msg'].startswith('%d invalid parameters: ' % len(words)), result['msg']
        for word in words:
            assert word in result['msg'], (word, result['msg'])
        assert link_table(hv) == links
        assert vlan_table(hv) == vlans
