"""fc_tap on lab hosts: check mode vs real run, idempotence, refusals, rollback, purge and real traffic.

Every test builds its own hosts (network namespaces) and runs the module inside them with
lab.module_run, as Ansible does (the integration lane runs these again with pyroute2 0.7,
NQRUST_TARGET_PYTHON). State is read back from the kernel with ``ip -j -d`` and compared with
``lab.snapshot``. VLAN behaviour needs bridge VLAN filtering: test_fc_tap_vlan.py, in the
kernel lane.
"""

import grp
import json
import pwd

import pytest

from fc_tap_testing import converge_twice, descriptions, warnings_of
from lab import kernel
from lab.module_run import run_module
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module

VM_A = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'
VM_B = '0b9d6a4e-2f3c-4d5e-8a7b-1c2d3e4f5a6b'
TAP_A = 'tap-a29c028a4ef'                  # nqrust.microvm.tap_name of VM_A, eth0
MAC_A = 'aa:fc:a2:9c:02:8a'                # nqrust.microvm.guest_mac of VM_A, eth0
BRIDGE_PORTS_MAX = 1023                    # port numbers a Linux bridge hands out


# --------------------------------------------------------------------------- helpers

def fc_tap(host, check_mode=False, **args):
    return run_module(host, 'fc_tap', args, check_mode=check_mode, diff=True)


def tap_info(host, name):
    """``ip -j -d link show NAME`` of a link that must exist."""
    link = host.link(name)
    assert link is not None, '%s is missing' % name
    return link


def tun_data(host, name):
    return tap_info(host, name)['linkinfo']['info_data']


def hypervisor(lab, name='hv1', bridges=(('br0', None),)):
    host = lab.add_host(name)
    for bridge, mtu in bridges:
        host.ip('link', 'add', bridge, 'type', 'bridge')
        if mtu:
            host.ip('link', 'set', bridge, 'mtu', str(mtu))
        host.set_up(bridge)
    return host


def fill_bridge(host, bridge, free=0):
    """Attach TAPs (made by fc_tap) to ``bridge`` until ``free`` port numbers are left; their names."""
    names = ['fill%04d' % number for number in range(BRIDGE_PORTS_MAX - free)]
    result = fc_tap(host, bridge=bridge, taps=[{'name': name} for name in names])
    assert not result.get('failed'), result.get('msg')
    return names


# --------------------------------------------------------------------------- converging

def test_one_tap_named_after_its_vm(lab):
    hv = hypervisor(lab)
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, vm_id=VM_A.upper(), bridge='br0', owner='nobody', group=65534)
    assert descriptions(applied) == ["create tap '%s'" % TAP_A]
    assert applied['changes'][0]['details']['bridge'] == 'br0'
    assert applied['network_interfaces'] == [{'iface_id': 'eth0', 'host_dev_name': TAP_A, 'guest_mac': MAC_A}]
    info = tap_info(hv, TAP_A)
    data = info['linkinfo']['info_data']
    assert (data['type'], data['persist'], data['pi'], data['vnet_hdr'], data['multi_queue']) == ('tap', True, False, False, False)
    assert (data['user'], data['group']) == ('nobody', 'nogroup')
    assert info['master'] == 'br0' and 'UP' in info['flags'] and info['mtu'] == 1500
    assert info['ifalias'] == 'nqrust.microvm:vm=%s,if=eth0' % VM_A


def test_many_taps_in_one_call_with_every_option(lab):
    hv = hypervisor(lab, bridges=(('br0', 9000), ('br1', None)))
    args = {
        'bridge': 'br0',
        'owner': 65534,
        'taps': [
            {'vm_id': VM_A},
            {'vm_id': VM_A, 'iface_id': 'eth1', 'bridge': 'br1', 'guest_mac': '02:00:00:00:00:09'},
            {'name': 'tap-mq', 'multi_queue': True, 'vnet_hdr': True, 'group': 'nogroup'},
            {'name': 'tap-iso', 'isolated': True, 'mtu': 8000},
        ],
    }
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, **args)
    nics = applied['network_interfaces']
    assert nics[0] == {'iface_id': 'eth0', 'host_dev_name': TAP_A, 'guest_mac': MAC_A, 'mtu': 9000}
    assert nics[1]['iface_id'] == 'eth1' and nics[1]['guest_mac'] == '02:00:00:00:00:09' and 'mtu' not in nics[1]
    assert nics[3] == {'iface_id': 'eth0', 'host_dev_name': 'tap-iso', 'mtu': 8000}
    assert tap_info(hv, nics[1]['host_dev_name'])['master'] == 'br1'
    mq = tun_data(hv, 'tap-mq')
    assert mq['multi_queue'] and mq['vnet_hdr'] and mq['group'] == 'nogroup' and mq['user'] == 'nobody'
    iso = tap_info(hv, 'tap-iso')
    assert iso['mtu'] == 8000 and iso['linkinfo']['info_slave_data']['isolated'] is True
    assert tap_info(hv, TAP_A)['linkinfo']['info_slave_data']['isolated'] is False
    assert any('below the MTU 9000' in warning for warning in warnings_of(applied))


def test_the_mtu_defaults_to_the_bridges(lab):
    hv = hypervisor(lab, bridges=(('br0', 9000), ('br1', 1400)))
    taps = [{'name': 'tap0', 'bridge': 'br0'}, {'name': 'tap1', 'bridge': 'br1'}, {'name': 'tap2'}]
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, taps=taps)
    assert [tap_info(hv, name)['mtu'] for name in ('tap0', 'tap1', 'tap2')] == [9000, 1400, 1500]
    assert [nic.get('mtu') for nic in applied['network_interfaces']] == [9000, 1400, None]
    assert 'master' not in tap_info(hv, 'tap2')
    # the bridge's MTU follows when the TAP moves
    dummy, moved, dummy2 = converge_twice(fc_tap, hv, name='tap0', bridge='br1')
    assert descriptions(moved) == ["update tap 'tap0' (mtu: 9000 -> 1400)", "attach tap 'tap0' (bridge: br0 -> br1)"]


def test_existing_taps_are_changed_in_place(lab):
    hv = hypervisor(lab, bridges=(('br0', None), ('br1', None)))
    converge_twice(fc_tap, hv, name='tap0', bridge='br0', owner=1)
    before_index = tap_info(hv, 'tap0')['ifindex']
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='tap0', bridge='br1', owner=2, group=3, mtu=1400, isolated=True, vnet_hdr=True)
    assert descriptions(applied) == [
        "update tap 'tap0' (group: null -> 3, mtu: 1500 -> 1400, owner: 1 -> 2, vnet_hdr: false -> true)",
        "attach tap 'tap0' (bridge: br0 -> br1)",
        "update port 'tap0' (isolated: false -> true)"]
    info = tap_info(hv, 'tap0')
    assert info['ifindex'] == before_index and info['master'] == 'br1' and info['mtu'] == 1400
    data = info['linkinfo']['info_data']
    assert data['vnet_hdr'] is True and (data['user'], data['group']) == (pwd.getpwuid(2).pw_name, grp.getgrgid(3).gr_name)
    assert info['linkinfo']['info_slave_data']['isolated'] is True
    hv.ip('link', 'set', 'tap0', 'down')
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='tap0', bridge='br1', isolated=False)
    assert descriptions(applied) == ["update port 'tap0' (isolated: true -> false)", "up tap 'tap0'"]
    hv.ip('link', 'set', 'tap0', 'down')
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='tap0', bridge='br0', mtu=1400)
    assert descriptions(applied) == ["attach tap 'tap0' (bridge: br1 -> br0, up: false -> true)"]
    assert 'UP' in tap_info(hv, 'tap0')['flags'] and tap_info(hv, 'tap0')['master'] == 'br0'
    assert tap_info(hv, 'tap0')['linkinfo']['info_slave_data']['isolated'] is False


def test_a_tap_made_by_someone_else_is_adopted_but_not_marked(lab):
    hv = hypervisor(lab)
    hv.ip('tuntap', 'add', 'dev', 'agent0', 'mode', 'tap')
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='agent0', bridge='br0')
    assert 'managed: false' in applied['diff']['after']
    assert 'ifalias' not in tap_info(hv, 'agent0')
    assert fc_tap(hv, taps=[], purge=True)['changed'] is False
    assert tap_info(hv, 'agent0')['master'] == 'br0'


def test_multi_queue_change_re_creates_a_free_tap_but_not_one_in_use(lab):
    hv = hypervisor(lab)
    converge_twice(fc_tap, hv, name='tap0', bridge='br0', owner=0, isolated=True)
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='tap0', bridge='br0', multi_queue=True)
    # made again with the settings it had, its port isolation included
    assert descriptions(applied) == ["delete tap 'tap0'", "create tap 'tap0'", "update port 'tap0' (isolated: false -> true)"]
    data = tun_data(hv, 'tap0')
    assert data['multi_queue'] is True and data['user'] == 'root'
    assert tap_info(hv, 'tap0')['linkinfo']['info_slave_data']['isolated'] is True
    assert applied['removed'] == []

    fc_tap(hv, name='tap1', bridge='br0')
    lab.add_guest('vm1', hv, 'tap1')
    busy = fc_tap(hv, name='tap1', bridge='br0', multi_queue=True, owner=5)
    assert busy['changed'] is False
    assert any('multi_queue stays false' in warning for warning in warnings_of(busy))
    assert any('owner stays unset' in warning for warning in warnings_of(busy))
    assert tun_data(hv, 'tap1')['multi_queue'] is False


def test_state_absent_removes_a_tap_and_then_changes_nothing(lab):
    hv = hypervisor(lab)
    fc_tap(hv, bridge='br0', taps=[{'name': 'tap0'}, {'name': 'tap1'}])
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, name='tap0', state='absent')
    assert descriptions(applied) == ["delete tap 'tap0'"] and applied['removed'] == ['tap0']
    assert applied['network_interfaces'] == []
    assert hv.link('tap0') is None and hv.link('tap1') is not None


def test_purge_removes_only_marked_taps(lab):
    hv = hypervisor(lab)
    hv.ip('tuntap', 'add', 'dev', 'theirs0', 'mode', 'tap')        # a TAP made by someone else: never purged
    hv.ip('tuntap', 'add', 'dev', 'foreign0', 'mode', 'tap')
    hv.ip('tuntap', 'add', 'dev', 'tun0', 'mode', 'tun')
    hv.ip('link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1')
    hv.ip('link', 'set', 'veth0', 'alias', 'nqrust.microvm')      # marked, but not a TAP: never purged either
    fc_tap(hv, bridge='br0', taps=[{'name': 'keep0'}, {'name': 'stale0'}, {'name': 'stale1'}, {'name': 'gone0'}])
    before = set(hv.links())
    dummy, applied, dummy2 = converge_twice(fc_tap, hv, bridge='br0', purge=True, taps=[
        {'name': 'keep0'}, {'name': 'gone0', 'state': 'absent'}, {'name': 'foreign0', 'state': 'absent'}])
    assert applied['removed'] == ['gone0', 'foreign0', 'stale0', 'stale1']
    assert [change['details']['reason'] for change in applied['changes']] == ['state=absent', 'state=absent', 'purge', 'purge']
    assert set(hv.links()) == before - {'gone0', 'foreign0', 'stale0', 'stale1'}
    assert {'theirs0', 'tun0', 'veth0', 'veth1', 'br0', 'keep0'} <= set(hv.links())
    dummy, emptied, dummy2 = converge_twice(fc_tap, hv, taps=[], purge=True)
    assert emptied['removed'] == ['keep0']
    assert {'theirs0', 'tun0', 'veth0', 'veth1', 'br0'} <= set(hv.links()) and hv.link('keep0') is None


# --------------------------------------------------------------------------- refusals

ALLOWED_NAME = "interface name must be 1 to 15 bytes of UTF-8, not '.' or '..', without '/', ':', whitespace or NUL"
ALLOWED_VLAN = 'VLAN id must be an integer from 1 to 4094'
ALLOWED_BRIDGE = 'the name of an existing Linux bridge (create it first, for instance with nqrust.microvm.fc_bridge)'
ALLOWED_TAP_NAME = 'a name that is free or belongs to a TAP (TUN/TAP device in tap mode)'
ALLOWED_UNIQUE = 'every TAP name at most once per call'

REJECTED = [
    ('bad name', {'name': 'bad/name', 'bridge': 'br0'}, "parameter 'name' (value 'bad/name'): contains '/'", ALLOWED_NAME),
    ('name with a space', {'bridge': 'br0', 'taps': [{'name': 'tap 1'}]}, "parameter 'taps[0].name' (value 'tap 1')", ALLOWED_NAME),
    ('too long name', {'name': 'muchtoolongname1'}, "parameter 'name' (value 'muchtoolongname1'): is 16 bytes long", ALLOWED_NAME),
    ('VLAN 0', {'name': 'tap0', 'bridge': 'br0', 'vlan': 0}, "parameter 'vlan' (value 0)", ALLOWED_VLAN),
    ('VLAN 4095', {'name': 'tap0', 'bridge': 'br0', 'vlan': 4095}, "parameter 'vlan' (value 4095)", ALLOWED_VLAN),
    ('trunk VLAN 4095', {'name': 'tap0', 'bridge': 'br0', 'trunk_vlans': [100, '4000-4095']},
     "parameter 'trunk_vlans[1]' (value '4000-4095')", 'ids from 1 to 4094'),
    ('trunk VLAN 0', {'bridge': 'br0', 'taps': [{'name': 'tap0', 'trunk_vlans': [0]}]}, "parameter 'taps[0].trunk_vlans[0]' (value 0)",
     'ids from 1 to 4094'),
    ('missing bridge', {'name': 'tap0', 'bridge': 'nope0'}, "parameter 'bridge' (value 'nope0'): no such link on the host",
     ALLOWED_BRIDGE),
    ('bridge is a veth', {'name': 'tap0', 'bridge': 'veth0'}, "parameter 'bridge' (value 'veth0'): 'veth0' is a veth, not a bridge",
     ALLOWED_BRIDGE),
    ('name is a veth', {'name': 'veth0', 'bridge': 'br0'}, "parameter 'name' (value 'veth0'): a veth named 'veth0' exists on the host",
     ALLOWED_TAP_NAME),
    ('name is a bridge', {'name': 'br0', 'state': 'absent'}, "parameter 'name' (value 'br0'): a bridge named 'br0' exists on the host",
     ALLOWED_TAP_NAME),
    ('name is a TUN', {'taps': [{'name': 'tun0'}], 'purge': True}, "parameter 'taps[0].name' (value 'tun0'): a tun named 'tun0'",
     ALLOWED_TAP_NAME),
    ('duplicate names', {'bridge': 'br0', 'taps': [{'name': 'tap0'}, {'name': 'tap1'}, {'name': 'tap0'}]},
     "parameter 'taps[2].name' (value 'tap0'): TAP tap0 is also given by taps[0]", ALLOWED_UNIQUE),
    ('duplicate derived names', {'bridge': 'br0', 'taps': [{'vm_id': VM_A}, {'name': TAP_A}]},
     "parameter 'taps[1].name' (value '%s'): TAP %s is also given by taps[0] (derived from vm_id and iface_id)" % (TAP_A, TAP_A),
     ALLOWED_UNIQUE),
    ('MTU too small', {'name': 'tap0', 'mtu': 20}, "parameter 'mtu' (value 20)", 'MTU must be an integer from 68 to 65521'),
    ('MTU above a TAP maximum', {'name': 'tap0', 'mtu': 65535}, "parameter 'mtu' (value 65535)", 'from 68 to 65521'),
    ('unknown owner', {'name': 'tap0', 'owner': 'no-such-user-here'}, "parameter 'owner' (value 'no-such-user-here'): no such user",
     'a user name that exists on the host or a uid'),
    ('bad guest MAC', {'vm_id': VM_A, 'guest_mac': '01:00:5e:00:00:01'}, "parameter 'guest_mac' (value '01:00:5e:00:00:01')", 'unicast'),
]


@pytest.mark.parametrize('args, named, allowed', [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED])
def test_rejected_input_fails_naming_parameter_value_and_allowed_and_changes_nothing(lab, args, named, allowed):
    hv = hypervisor(lab)
    hv.ip('link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1')
    hv.ip('tuntap', 'add', 'dev', 'tun0', 'mode', 'tun')
    fc_tap(hv, name='tap-existing', bridge='br0')
    fc_tap(hv, name='tap-stale', bridge='br0')  # what a purge would remove, had it run
    before = snapshot(hv)
    for check_mode in (True, False):
        result = fc_tap(hv, check_mode=check_mode, **args)
        assert result.get('failed') and result.get('changed', False) is False, result
        assert named in result['msg'] and allowed in result['msg'], result['msg']
    assert_unchanged(before, snapshot(hv))


def test_vlans_on_a_bridge_without_filtering_are_refused_clearly(lab):
    hv = hypervisor(lab)
    before = snapshot(hv)
    result = fc_tap(hv, name='tap0', bridge='br0', vlan=10)
    assert result.get('failed')
    available, dummy = kernel.check('vlan_filtering')
    if available:
        expected = "parameter 'vlan' (value 10): bridge 'br0' has VLAN filtering off"
    else:
        expected = "parameter 'vlan' (value 10): this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)"
    assert result['msg'].startswith(expected), result['msg']
    assert 'nqrust.microvm.fc_bridge vlan_filtering: true' in result['msg']
    assert_unchanged(before, snapshot(hv))


# --------------------------------------------------------------------------- rollback

def test_a_step_failing_midway_is_rolled_back_completely(lab):
    hv = hypervisor(lab, bridges=(('br0', None), ('full0', None)))
    fill_bridge(hv, 'full0')
    fc_tap(hv, bridge='br0', taps=[{'name': 'old%d' % number} for number in range(3)])
    hv.ip('link', 'set', 'old1', 'down')
    before = snapshot(hv)
    taps = [{'name': 'old%d' % number, 'mtu': 1400} for number in range(3)]
    taps += [{'name': 'new%02d' % number} for number in range(20)]
    taps[12]['bridge'] = 'full0'  # new09: the bridge has no free port left
    result = fc_tap(hv, bridge='br0', taps=taps)
    assert result.get('failed')
    assert result['msg'].startswith("step 13 of 24 (create tap 'new09') failed: setting alias nqrust.microvm, bridge full0, mtu 1500, "
                                    "up of new tap 'new09': exchange full: the bridge has no free port number"), result['msg']
    assert result['msg'].endswith('; rolled back the 12 steps applied before it'), result['msg']
    assert result['rolled_back'] is True and result['changed'] is False and result['rollback_errors'] == []
    assert result['failed_change']['target'] == 'new09'
    assert [change['target'] for change in result['applied_changes']] == ['old0', 'old1', 'old2'] + ['new%02d' % n for n in range(9)]
    assert_unchanged(before, snapshot(hv))


def configured(host, name):
    """What configuration decides about a TAP (not its ifindex, MAC or carrier, which a re-created TAP cannot keep)."""
    link = tap_info(host, name)
    data = link['linkinfo']['info_data']
    return {
        'mtu': link['mtu'], 'master': link.get('master'), 'alias': link.get('ifalias'), 'up': 'UP' in link['flags'],
        'tun': {key: data.get(key) for key in ('type', 'pi', 'vnet_hdr', 'multi_queue', 'persist', 'user', 'group')},
        'isolated': link['linkinfo'].get('info_slave_data', {}).get('isolated'),
    }


def test_a_failing_purge_is_rolled_back(lab):
    hv = hypervisor(lab, bridges=(('br0', None), ('full0', None)))
    fillers = fill_bridge(hv, 'full0')
    fc_tap(hv, bridge='br0', owner=3, taps=[{'name': 'stale0', 'isolated': True, 'mtu': 1400, 'vnet_hdr': True},
                                            {'name': 'stale1', 'multi_queue': True, 'group': 4}])
    hv.ip('link', 'set', 'stale1', 'down')
    lab.add_guest('vm0', hv, 'stale0')
    before = {name: configured(hv, name) for name in ('stale0', 'stale1')}
    # tap0 cannot join full0 (no free port) after the purge has removed stale0 and stale1
    result = fc_tap(hv, bridge='full0', purge=True, taps=[{'name': name} for name in fillers] + [{'name': 'tap0'}])
    assert result.get('failed') and result['rolled_back'] is True, result
    assert "step 3 of 3 (create tap 'tap0') failed" in result['msg']
    assert [change['description'] for change in result['applied_changes']] == ["delete tap 'stale0'", "delete tap 'stale1'"]
    assert any('stale0' in warning and 'in use' in warning for warning in warnings_of(result)), result.get('warnings')
    assert {name: configured(hv, name) for name in ('stale0', 'stale1')} == before
    assert hv.link('tap0') is None


# --------------------------------------------------------------------------- traffic

def test_guests_on_fc_tap_taps_reach_each_other_through_the_bridge(lab):
    hv = hypervisor(lab)
    hv.add_address('br0', '10.77.0.1/24')
    taps = [{'vm_id': VM_A}, {'vm_id': VM_B}, {'name': 'tap-iso1', 'isolated': True}, {'name': 'tap-iso2', 'isolated': True}]
    result = fc_tap(hv, bridge='br0', taps=taps)
    assert not result.get('failed'), result.get('msg')
    nics = result['network_interfaces']
    guests = {}
    for number, nic in enumerate(nics, start=2):
        guest = lab.add_guest('vm%d' % number, hv, nic['host_dev_name'], mac=nic.get('guest_mac'))
        guest.add_address('eth0', '10.77.0.%d/24' % number)
        guests[nic['host_dev_name']] = (guest, '10.77.0.%d' % number)
    vm_a, dummy = guests[nics[0]['host_dev_name']]
    vm_b, ip_b = guests[nics[1]['host_dev_name']]
    assert vm_a.ping(ip_b, count=2), 'two guests on one bridge reach each other'
    assert vm_b.ping('10.77.0.1')
    iso1, dummy = guests['tap-iso1']
    dummy, ip_iso2 = guests['tap-iso2']
    assert iso1.ping('10.77.0.1'), 'an isolated port still reaches the bridge (the host)'
    assert iso1.ping(ip_b), 'and non-isolated ports'
    assert not iso1.ping(ip_iso2, timeout=1), 'isolated ports do not reach each other'
    # the guest's MAC as the host's bridge learned it is the derived one
    fdb = json.loads(hv.run(['bridge', '-j', 'fdb', 'show', 'br', 'br0']).stdout)
    assert any(entry.get('mac') == MAC_A and entry.get('ifname') == nics[0]['host_dev_name'] for entry in fdb)
