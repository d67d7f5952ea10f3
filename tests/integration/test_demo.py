"""``make demo``: from nothing to VMs on networks, a second run that changes nothing, and a clean removal.

Runs tests/tooling/demo.sh as ``make demo`` / ``make demo-clean`` do, under a lab id and state
directory of its own (NQRUST_DEMO_LAB_ID / NQRUST_DEMO_STATE), so a demo the user has running is
not touched.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

import lab as lablib
from lab import kernel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, 'tests', 'tooling', 'demo.sh')

pytestmark = [pytest.mark.timeout(900)]


def demo(env, action):
    return subprocess.run([DEMO, action], env=env, capture_output=True, text=True, timeout=600, check=False)


def summary_of(output):
    return output[output.index('== summary'):].splitlines()[1:]


def test_demo_converges_reaches_as_each_mode_says_then_changes_nothing_and_cleans_up(ansible_env):
    lab_id = 'dm' + os.urandom(3).hex()
    parent = tempfile.mkdtemp(prefix='nql-demo-')
    os.chmod(parent, 0o755)  # dnsmasq reads its hosts files after dropping privileges
    state = os.path.join(parent, 'state')
    env = dict(ansible_env, NQRUST_DEMO_LAB_ID=lab_id, NQRUST_DEMO_STATE=state)
    try:
        first = demo(env, 'up')
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        lines = summary_of(first.stdout)
        # VLANs where the kernel allows: the NAT network VLAN 10, the isolated one VLAN 20
        vlans, reason = kernel.check('vlan_filtering')
        if vlans:
            assert 'VLANs: on: the kernel has bridge VLAN filtering' in lines, lines
        else:
            assert '  VLANs: off: %s (NQRUST_DEMO_VLANS=auto)' % reason in lines, lines
        # two networks on each of the two hosts, one VM each, with a lease from the network's dnsmasq
        networks = [line for line in lines if ' VMs: ' in line]
        assert len(networks) == 4, lines
        assert all('VMs: 1' in line and 'leases: none' not in line for line in networks), lines
        assert sum(' nat ' in line for line in networks) == 2 and sum(' isolated ' in line for line in networks) == 2
        assert all((' VLAN 10 ' in line if ' nat ' in line else ' VLAN 20 ' in line) if vlans else ' no VLAN ' in line
                   for line in networks), lines
        # NAT guests reach the upstream host, isolated guests do not (the script fails otherwise too)
        guests = [line for line in lines if line.strip().startswith('guest ')]
        assert len(guests) == 4 and all(line.endswith('as expected') for line in guests), lines
        assert sum('(nat,' in line and ' reaches ' in line for line in guests) == 2
        assert sum('(isolated,' in line and 'cannot reach' in line for line in guests) == 2
        assert '0 problems against the registry' in first.stdout

        second = demo(env, 'up')
        assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
        assert any(line.strip().startswith('tasks that changed something this run: 0 ')
                   for line in summary_of(second.stdout)), summary_of(second.stdout)
    finally:
        gone = demo(env, 'down')
        shutil.rmtree(parent, ignore_errors=True)
    assert gone.returncode == 0, gone.stderr
    assert not os.path.exists(state)
    left = lablib.leftovers([lab_id])
    assert not any(left.values()), left


def test_a_vlan_choice_the_demo_cannot_follow_is_refused_before_anything_is_made(ansible_env):
    parent = tempfile.mkdtemp(prefix='nql-demo-')
    state = os.path.join(parent, 'state')
    lab_id = 'dm' + os.urandom(3).hex()
    env = dict(ansible_env, NQRUST_DEMO_LAB_ID=lab_id, NQRUST_DEMO_STATE=state)
    try:
        bad = demo(dict(env, NQRUST_DEMO_VLANS='sometimes'), 'up')
        assert bad.returncode != 0
        assert "NQRUST_DEMO_VLANS is 'sometimes'; it is one of auto, on, off" in bad.stderr, bad.stderr
        assert not os.path.exists(state)
        vlans, reason = kernel.check('vlan_filtering')
        if not vlans:
            refused = demo(dict(env, NQRUST_DEMO_VLANS='on'), 'up')
            assert refused.returncode != 0
            assert 'NQRUST_DEMO_VLANS=on, but %s; nothing was changed' % reason in refused.stderr, refused.stderr
            assert not os.path.exists(state)
        assert not any(lablib.leftovers([lab_id]).values())
    finally:
        shutil.rmtree(parent, ignore_errors=True)
