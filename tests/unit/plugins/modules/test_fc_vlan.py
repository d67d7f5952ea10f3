# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fc_vlan end to end against a fake kernel: validation, check/real parity, idempotence, rollback."""

from __future__ import annotations

import errno
import functools

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import converge as converge_module
from ansible_collections.nqrust.microvm.plugins.module_utils import kernel_features, netlink
from ansible_collections.nqrust.microvm.plugins.module_utils.converge import ConvergeFailure
from ansible_collections.nqrust.microvm.plugins.module_utils.host_lock import HostLock
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkSession
from ansible_collections.nqrust.microvm.plugins.modules import fc_vlan
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.vlan_fakes import FakeVlanKernel, writes


def host(vlan_support=True):
    kernel = FakeVlanKernel(vlan_support=vlan_support)
    kernel.add('eth0')
    kernel.add('br0', kind='bridge')
    kernel.add('brplain', kind='bridge', vlan_filtering=False)
    for tap in ('tap0', 'tap1'):
        kernel.add(tap, kind='tun', tun_type='tap', master='br0')
    kernel.add('trunk0', kind='veth', master='br0')
    kernel.add('plain0', kind='veth', master='brplain')
    return kernel


def with_defaults(params):
    """Module parameters as AnsibleModule hands them over (every option present)."""
    full = {'ports': [], 'subinterfaces': []}
    for key, spec in (('ports', fc_vlan.PORT_OPTIONS), ('subinterfaces', fc_vlan.SUBINTERFACE_OPTIONS)):
        for item in params.get(key, []):
            entry = dict((name, option.get('default')) for name, option in spec.items())
            entry.update(item)
            full[key].append(entry)
    return full


def run(kernel, params, check_mode=False, probe=(True, 'module 8021q is loaded')):
    original = fc_vlan.probe_8021q
    fc_vlan.probe_8021q = lambda links: probe
    try:
        return fc_vlan.run(None, with_defaults(params), check_mode=check_mode,
                           session_factory=lambda: NetlinkSession(ipr=kernel), lock=False)
    finally:
        fc_vlan.probe_8021q = original


def failure(kernel, params, **kwargs):
    with pytest.raises(ConvergeFailure) as info:
        run(kernel, params, **kwargs)
    return info.value


TASK = {
    'ports': [
        {'port': 'tap0', 'bridge': 'br0', 'pvid': 100, 'untagged': [100]},
        {'port': 'tap1', 'vlans': [{'vid': 200, 'pvid': True, 'untagged': True}]},
        {'port': 'trunk0', 'vlans': [100, '200-210']},
        {'port': 'br0', 'vlans': [300], 'mode': 'additive'},
    ],
    'subinterfaces': [
        {'name': 'eth0.100', 'link': 'eth0', 'id': 100, 'mtu': 1400},
    ],
}


def test_check_mode_predicts_the_real_run_and_the_second_run_changes_nothing():
    kernel = host()
    before = kernel.snapshot()
    check = run(kernel, TASK, check_mode=True)
    assert kernel.snapshot() == before and writes(kernel) == []
    real = run(kernel, TASK)
    assert kernel.snapshot() != before
    for key in ('changed', 'changes', 'diff'):
        assert check[key] == real[key]
    assert check['ports'] == real['ports']
    assert [dict(item, ifindex=None) for item in check['subinterfaces']] == [dict(item, ifindex=None) for item in real['subinterfaces']]
    again = run(kernel, TASK)
    assert again['changed'] is False and again['changes'] == []
    assert again['diff']['before'] == again['diff']['after'] == real['diff']['after']
    assert again['ports'] == real['ports'] and again['subinterfaces'] == real['subinterfaces']

    assert [change['description'] for change in real['changes']] == [
        "remove VLAN 1 from port 'tap0' of bridge 'br0'",
        "remove VLAN 1 from port 'tap1' of bridge 'br0'",
        "remove VLAN 1 from port 'trunk0' of bridge 'br0'",
        "add VLAN 100 (pvid, untagged) to port 'tap0' of bridge 'br0'",
        "add VLAN 200 (pvid, untagged) to port 'tap1' of bridge 'br0'",
        "add VLAN 100 (tagged) to port 'trunk0' of bridge 'br0'",
        "add VLANs 200-210 (tagged) to port 'trunk0' of bridge 'br0'",
        "add VLAN 300 (tagged) to bridge 'br0' itself",
        "create VLAN link 'eth0.100' (VLAN 100 on 'eth0', mtu 1400)",
        "bring VLAN link 'eth0.100' up",
    ]
    assert real['diff']['before'] == (
        'ports:\n'
        '  br0:\n    bridge: br0\n    pvid: 1\n    self: true\n    tagged: []\n    untagged:\n      - 1\n'
        '  tap0:\n    bridge: br0\n    pvid: 1\n    self: false\n    tagged: []\n    untagged:\n      - 1\n'
        '  tap1:\n    bridge: br0\n    pvid: 1\n    self: false\n    tagged: []\n    untagged:\n      - 1\n'
        '  trunk0:\n    bridge: br0\n    pvid: 1\n    self: false\n    tagged: []\n    untagged:\n      - 1\n'
        'subinterfaces: {}\n')
    assert '  trunk0:\n    bridge: br0\n    pvid: null\n    self: false\n    tagged:\n      - 100\n      - 200-210\n' \
           '    untagged: []\n' in real['diff']['after']
    assert 'subinterfaces:\n  eth0.100:\n    id: 100\n    link: eth0\n    mtu: 1400\n    up: true\n' in real['diff']['after']
    assert real['ports'] == [
        {'port': 'tap0', 'bridge': 'br0', 'self': False, 'pvid': 100, 'tagged': [], 'untagged': [100]},
        {'port': 'tap1', 'bridge': 'br0', 'self': False, 'pvid': 200, 'tagged': [], 'untagged': [200]},
        {'port': 'trunk0', 'bridge': 'br0', 'self': False, 'pvid': None, 'tagged': [100, '200-210'], 'untagged': []},
        {'port': 'br0', 'bridge': 'br0', 'self': True, 'pvid': 1, 'tagged': [300], 'untagged': [1]},
    ]
    assert real['subinterfaces'] == [{'name': 'eth0.100', 'state': 'present', 'link': 'eth0', 'id': 100, 'mtu': 1400,
                                      'up': True, 'ifindex': kernel.index('eth0.100'), 'managed': True}]
    assert kernel.membership('trunk0') == dict([(100, (False, False))] + [(vid, (False, False)) for vid in range(200, 211)])


def test_state_is_read_once_per_kind():
    kernel = host()
    run(kernel, TASK, check_mode=True)
    reads = [call[:2] for call in kernel.calls if call[0] == 'get_links' or call[:2] == ('link', 'dump')]
    assert reads == [('get_links',), ('link', 'dump')]


def test_only_ports_or_only_subinterfaces():
    kernel = host()
    result = run(kernel, {'subinterfaces': [{'name': 'eth0.5', 'state': 'absent'}]}, check_mode=True)
    assert result['changed'] is False and result['diff']['before'] == 'subinterfaces: {}\n'
    assert not [call for call in kernel.calls if call[:2] == ('link', 'dump')], 'no port VLAN dump when no ports'
    assert result['ports'] == [] and result['subinterfaces'][0]['state'] == 'absent'
    result = run(kernel, {'ports': [{'port': 'tap0', 'vlans': [1], 'state': 'absent'}]})
    assert result['diff']['after'] == ('ports:\n  tap0:\n    bridge: br0\n    pvid: null\n    self: false\n'
                                       '    tagged: []\n    untagged: []\n')
    assert kernel.membership('tap0') == {}
    assert run(kernel, {})['changed'] is False


def test_bad_values_fail_before_the_host_is_read():
    kernel = host()
    failed = failure(kernel, {
        'ports': [{'port': 'tap0', 'vlans': [0]}, {'port': 'tap1', 'pvid': 4095},
                  {'port': 'trunk0', 'vlans': ['1-100', '50-60']}, {'port': 'br0', 'vlans': [{'vid': 1, 'pvid': True}], 'pvid': 2},
                  {'port': 'tap0', 'vlans': [5]}, {'port': 'eth0', 'state': 'absent'}],
        'subinterfaces': [{'name': 'averyverylongname', 'link': 'eth0', 'id': 5}, {'name': 'e.1', 'link': 'eth0', 'id': 4095}],
    })
    assert kernel.calls == [], 'nothing was read or written'
    assert failed.msg.startswith('8 invalid parameters: ')
    assert failed.result['validation_errors'] == [
        "parameter 'ports[0].vlans[0]' (value 0): 0 is not a VLAN id from 1 to 4094; VLANs must be a list of ids from "
        '1 to 4094 and ranges "START-END" with START <= END, none overlapping or repeated',
        "parameter 'ports[1].pvid' (value 4095): VLAN id must be an integer from 1 to 4094",
        "parameter 'ports[2].vlans' (value ['1-100', '50-60']): 1-100 and 50-60 overlap; VLANs must be a list of ids "
        'from 1 to 4094 and ranges "START-END" with START <= END, none overlapping or repeated',
        "parameter 'ports[3]' (value {'vlans': [{'vid': 1, 'pvid': True}], 'pvid': 2}): two pvids: 1 (ports[3].vlans) "
        'and 2 (ports[3].pvid); a port has at most one pvid (the VLAN that untagged frames arriving on the port join), '
        'given as pvid or as one entry {vid: ID, pvid: true} in vlans, a single id, not a range',
        "parameter 'ports[5]' (value {'vlans': None, 'untagged': None, 'pvid': None}): no VLANs given; state=absent "
        'needs the VLANs to remove in vlans, untagged or pvid (to remove every VLAN use state=present with mode=exact '
        'and no VLANs)',
        "parameter 'ports[4].port' (value 'tap0'): already listed as ports[0].port; each port may be listed once "
        '(merge its VLANs into one entry)',
        "parameter 'subinterfaces[0].name' (value 'averyverylongname'): is 17 bytes long; interface name must be 1 to "
        "15 bytes of UTF-8, not '.' or '..', without '/', ':', whitespace or NUL",
        "parameter 'subinterfaces[1].id' (value 4095): VLAN id must be an integer from 1 to 4094",
    ]


@pytest.mark.parametrize('params, words', [
    ({'ports': [{'port': 'nosuch0', 'vlans': [5]}]}, ["parameter 'ports[0].port' (value 'nosuch0'): no such link"]),
    ({'ports': [{'port': 'eth0', 'vlans': [5]}]}, ["(value 'eth0'): is a link not attached to any bridge"]),
    ({'ports': [{'port': 'plain0', 'vlans': [5]}]}, ["bridge 'brplain' has VLAN filtering off"]),
    ({'ports': [{'port': 'tap0', 'bridge': 'brplain', 'vlans': [5]}]}, ["parameter 'ports[0].bridge' (value 'brplain')"]),
    ({'subinterfaces': [{'name': 'tap0', 'link': 'eth0', 'id': 5}]}, ["(value 'tap0'): is a tap, not a VLAN link"]),
    ({'ports': [{'port': 'tap0', 'vlans': [5]}], 'subinterfaces': [{'name': 'e.5', 'link': 'eth0', 'id': 5, 'mtu': 1501}]},
     ["parameter 'subinterfaces[0].mtu' (value 1501): above the MTU of 'eth0' (1500)"]),
])
def test_host_problems_fail_before_any_change(params, words):
    kernel = host()
    before = kernel.snapshot()
    failed = failure(kernel, params)
    for word in words:
        assert word in failed.msg
    assert writes(kernel) == [] and kernel.snapshot() == before


def test_a_kernel_without_the_features_fails_cleanly():
    kernel = host(vlan_support=False)
    before = kernel.snapshot()
    for check_mode in (True, False):
        failed = failure(kernel, {'ports': [{'port': 'tap0', 'pvid': 100, 'untagged': [100]}]}, check_mode=check_mode)
        assert 'lacks bridge VLAN filtering, needed for the VLANs of port \'tap0\' of bridge \'br0\'' in failed.msg
        failed = failure(kernel, {'subinterfaces': [{'name': 'eth0.100', 'link': 'eth0', 'id': 100}]},
                         check_mode=check_mode, probe=(False, 'module 8021q is not loaded'))
        assert "lacks 802.1Q VLAN support (8021q), needed for VLAN link 'eth0.100'" in failed.msg
    assert writes(kernel) == [] and kernel.snapshot() == before


def test_a_failed_step_rolls_everything_back():
    kernel = host()
    before = kernel.snapshot()
    kernel.fail = lambda call: errno.ENOSPC if call[0] == 'vlan_filter' and call[2] == kernel.index('br0') else None
    failed = failure(kernel, TASK)
    assert failed.msg.startswith("step 8 of 10 (add VLAN 300 (tagged) to bridge 'br0' itself) failed: adding VLAN 300 "
                                 "to bridge 'br0' itself: no space left")
    assert 'rolled back the 7 steps applied before it' in failed.msg
    assert failed.result['rolled_back'] is True and failed.result['changed'] is False
    assert kernel.snapshot() == before


# --------------------------------------------------------------------------- main() through AnsibleModule

def run_main(monkeypatch, tmp_path, args, kernel, diff=False):
    monkeypatch.setattr(netlink, 'IPRoute', lambda: kernel)
    monkeypatch.setattr(netlink, 'HAS_PYROUTE2', True)
    if hasattr(netlink, 'dump_links'):
        monkeypatch.setattr(netlink, 'dump_links', kernel.get_links)
    monkeypatch.setattr(converge_module, 'HostLock', functools.partial(HostLock, directory=str(tmp_path)))
    monkeypatch.setattr(fc_vlan, 'probe_8021q', lambda links: (True, 'module 8021q is loaded'))
    monkeypatch.setattr(kernel_features, 'kernel_release', lambda: '6.1.0-test')
    return call_main(monkeypatch, fc_vlan.main, args, diff=diff)


def test_main_reports_diff_only_in_diff_mode(monkeypatch, tmp_path):
    kernel = host()
    args = {'ports': [{'port': 'tap0', 'pvid': 100, 'untagged': [100]}], '_check_mode': True}
    outcome, result = run_main(monkeypatch, tmp_path, args, kernel)
    assert outcome == 'exit', result
    assert result['changed'] is True and 'diff' not in result
    outcome, result = run_main(monkeypatch, tmp_path, args, kernel, diff=True)
    assert outcome == 'exit', result
    assert result['diff']['after'].startswith('ports:\n  tap0:\n    bridge: br0\n    pvid: 100\n')
    assert writes(kernel) == []


def test_main_argument_spec_refuses_unknown_options_and_bad_choices(monkeypatch, tmp_path):
    for args, words in (({'ports': [{'port': 'tap0', 'vlan': 5}]}, 'vlan'),
                        ({'ports': [{'port': 'tap0', 'mode': 'merge'}]}, 'mode'),
                        ({'subinterfaces': [{'name': 'e.5', 'id': 'five'}]}, 'id')):
        outcome, result = run_main(monkeypatch, tmp_path, args, host())
        assert outcome == 'fail', result
        assert words in result['msg']


def test_main_without_pyroute2(monkeypatch, tmp_path):
    monkeypatch.setattr(fc_vlan, 'HAS_PYROUTE2', False)
    outcome, result = run_main(monkeypatch, tmp_path, {}, host())
    assert outcome == 'fail', result
    assert 'pyroute2' in result['msg']
