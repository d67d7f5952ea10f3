"""fc_network_info on a lab host: what it reports is what the kernel has."""

import pytest

from lab.module_run import run_module
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module


@pytest.fixture(name='hv')
def hv_fixture(lab):
    """A host with a bridge (address, one TAP port), a loose TAP and a veth uplink."""
    host = lab.add_host('hv1')
    lab.upstream(host)
    host.ip('link', 'add', 'fcbr0', 'type', 'bridge')
    host.ip('address', 'add', '10.0.0.1/24', 'dev', 'fcbr0')
    host.ip('link', 'set', 'fcbr0', 'up')
    host.ip('tuntap', 'add', 'tap-a', 'mode', 'tap')
    host.ip('link', 'set', 'tap-a', 'master', 'fcbr0')
    host.ip('link', 'set', 'tap-a', 'alias', 'nqrust.microvm')
    host.ip('tuntap', 'add', 'tap-b', 'mode', 'tap')
    host.ip('link', 'set', 'tap-b', 'mtu', '1400')
    return host


def test_reports_bridges_and_taps_as_the_kernel_has_them(hv):
    result = run_module(hv, 'fc_network_info', {})
    assert not result.get('failed'), result
    assert result['changed'] is False
    kernel = hv.links()

    (bridge,) = result['bridges']
    assert bridge['name'] == 'fcbr0'
    assert bridge['ifindex'] == kernel['fcbr0']['ifindex']
    assert bridge['mac'] == kernel['fcbr0']['address']
    assert bridge['up'] is True
    assert bridge['addresses'] == ['10.0.0.1/24']
    assert bridge['ports'] == ['tap-a']
    assert bridge['managed'] is False

    taps = {tap['name']: tap for tap in result['taps']}
    assert set(taps) == {'tap-a', 'tap-b'}
    assert taps['tap-a']['master'] == 'fcbr0' and taps['tap-a']['managed'] is True
    assert taps['tap-b']['master'] is None and taps['tap-b']['mtu'] == 1400
    assert 'links' not in result or not result['links']


def test_filters_and_reports_missing_bridges(hv):
    result = run_module(hv, 'fc_network_info', {'bridges': ['fcbr0', 'fcbr9'], 'include_all_links': True})
    assert [b['name'] for b in result['bridges']] == ['fcbr0']
    assert result['missing_bridges'] == ['fcbr9']
    names = {link['name'] for link in result['links']}
    assert {'lo', 'uplink0', 'fcbr0', 'tap-a', 'tap-b'} <= names


def test_managed_only_and_check_mode_change_nothing(hv):
    before = snapshot(hv)
    result = run_module(hv, 'fc_network_info', {'managed_only': True}, check_mode=True)
    assert [tap['name'] for tap in result['taps']] == ['tap-a']
    assert result['changed'] is False
    assert_unchanged(before, snapshot(hv))


def test_rejects_bad_input_naming_the_parameter(hv):
    before = snapshot(hv)
    result = run_module(hv, 'fc_network_info', {'bridges': ['way-too-long-bridge-name']})
    assert result.get('failed'), result
    assert "'bridges" in result['msg'] and 'way-too-long-bridge-name' in result['msg'] and '15' in result['msg']
    assert_unchanged(before, snapshot(hv))
