"""fc_network_guard on a lab host: an unconfirmed uplink move is rolled back; a confirmed one stays.

The host reaches the lab's upstream over ``uplink0`` (its address and default route). fc_bridge moves
the uplink into a bridge exactly as bridged mode does; the guard is armed before and confirmed (or
not) after, as the network role does.
"""

import os
import shutil
import tempfile
import time

import pytest

from lab.module_run import run_module
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module

UPSTREAM = '203.0.113.1'


@pytest.fixture(name='state_dir')
def state_dir_fixture():
    directory = tempfile.mkdtemp(prefix='nql-guard-')
    yield os.path.join(directory, 'guard')
    shutil.rmtree(directory)


@pytest.fixture(name='hv')
def hv_fixture(lab):
    host = lab.add_host('hv1')
    lab.upstream(host)
    return host


def _ok(result):
    assert not result.get('failed'), result
    return result


def _arm(hv, state_dir, timeout, check_mode=False):
    args = {'state': 'armed', 'pairs': [{'bridge': 'br0', 'uplink': 'uplink0'}], 'timeout': timeout, 'state_dir': state_dir}
    return _ok(run_module(hv, 'fc_network_guard', args, check_mode=check_mode))


def _bridge(hv):
    return _ok(run_module(hv, 'fc_bridge', {'name': 'br0', 'uplink': 'uplink0'}))


def test_an_unconfirmed_move_is_rolled_back(hv, state_dir):
    before = snapshot(hv)
    armed = _arm(hv, state_dir, timeout=5)
    assert armed['armed'] is True and armed['changed'] is False
    assert _bridge(hv)['changed'] is True
    assert hv.link('uplink0')['master'] == 'br0'
    assert hv.addresses('br0') == [hv.uplink['address']]

    deadline = time.time() + 5 * 3 + 10
    while hv.link('br0') is not None and time.time() < deadline:
        time.sleep(0.5)
    assert hv.link('br0') is None, 'the watchdog did not roll back'
    assert_unchanged(before, snapshot(hv))
    assert hv.ping(UPSTREAM)

    confirmed = run_module(hv, 'fc_network_guard', {'state': 'confirmed', 'state_dir': state_dir})
    assert confirmed.get('failed'), confirmed
    assert 'rolled back' in confirmed['msg'] and 'deleted bridge br0' in confirmed['msg'], confirmed['msg']
    assert os.listdir(state_dir) == []


def test_a_confirmed_move_stays(hv, state_dir):
    _arm(hv, state_dir, timeout=5)
    _bridge(hv)
    confirmed = _ok(run_module(hv, 'fc_network_guard', {'state': 'confirmed', 'state_dir': state_dir}))
    assert confirmed['disarmed'] is True and confirmed['changed'] is False
    time.sleep(8)
    assert hv.link('uplink0')['master'] == 'br0'
    assert hv.ping(UPSTREAM)
    # nothing left to guard: arming again starts nothing, confirming stops nothing
    again = _arm(hv, state_dir, timeout=5)
    assert again['armed'] is False and again['guarded'] == []
    assert _ok(run_module(hv, 'fc_network_guard', {'state': 'confirmed', 'state_dir': state_dir}))['disarmed'] is False


def test_check_mode_starts_nothing(hv, state_dir):
    result = _arm(hv, state_dir, timeout=5, check_mode=True)
    assert result['armed'] is False and result['guarded'] == [{'bridge': 'br0', 'uplink': 'uplink0'}]
    assert not os.path.exists(state_dir)


@pytest.mark.parametrize('args, text', [
    ({'state': 'armed', 'pairs': [{'bridge': 'br0', 'uplink': 'uplink0'}], 'timeout': 1}, "parameter 'timeout' (value 1)"),
    ({'state': 'armed', 'pairs': [{'bridge': 'a-very-long-bridge', 'uplink': 'uplink0'}]}, "parameter 'pairs[0].bridge'"),
])
def test_bad_input_is_refused_and_starts_nothing(hv, state_dir, args, text):
    result = run_module(hv, 'fc_network_guard', dict(args, state_dir=state_dir))
    assert result.get('failed') and text in result['msg'], result
    assert not os.path.exists(state_dir)
