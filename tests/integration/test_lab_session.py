"""The session rules of conftest.py, checked by running an inner pytest with the same conftest."""

import os
import subprocess
import sys
import textwrap

import lab as lablib
from lab import residue
from lab import state as lab_state

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)


def run_inner(tmp_path, source, extra_env=None):
    """Run source as a test file in a fresh pytest session that loads this directory's conftest."""
    (tmp_path / 'test_inner.py').write_text(textwrap.dedent(source))
    (tmp_path / 'pytest.ini').write_text('[pytest]\naddopts = -p conftest\n')
    env = {key: value for key, value in os.environ.items() if key not in (lab_state.SESSION_ENV, 'NQRUST_KERNEL_LANE', 'PYTEST_ADDOPTS')}
    env['PYTHONPATH'] = os.pathsep.join([TESTS, HERE])
    env.update(extra_env or {})
    result = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q', '-rs', str(tmp_path)],
                            capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=240, check=False)
    lab_id = (tmp_path / 'lab_id').read_text().strip() if (tmp_path / 'lab_id').exists() else None
    return result, lab_id


def test_a_failing_test_leaves_nothing_behind(tmp_path):
    root_links = residue.root_links()
    result, lab_id = run_inner(tmp_path, '''
        import pathlib

        def test_body_raises(lab):
            hv = lab.add_host('hv1')
            hv.ip('link', 'add', 'br0', 'type', 'bridge')
            hv.add_address('br0', '10.40.0.1/24')
            hv.set_up('br0')
            hv.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap')
            hv.ip('link', 'set', 'dev', 'tap0', 'master', 'br0')
            hv.set_up('tap0')
            hv.dnsmasq('br0', ('10.40.0.10', '10.40.0.20'))
            guest = lab.add_guest('vm1', hv, 'tap0')
            guest.dhcp()
            hv.spawn(['sleep', '600'])
            pathlib.Path(__file__).with_name('lab_id').write_text(lab.lab_id)
            raise RuntimeError('the test body fails on purpose')
    ''')
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert '1 failed' in output and 'the test body fails on purpose' in output
    assert 'left behind' not in output, 'the fixture finalizer, not the session check, cleaned up'
    assert lab_id
    found = residue.residue(lab_id, root_links)
    assert residue.is_clean(found), found


def test_the_session_fails_when_a_test_leaks_a_lab(tmp_path):
    result, lab_id = run_inner(tmp_path, '''
        import pathlib
        import lab as lablib

        def test_leaks_a_lab():
            leaked = lablib.Lab()
            leaked.add_host('forgotten').spawn(['sleep', '600'])
            pathlib.Path(__file__).with_name('lab_id').write_text(leaked.lab_id)
            leaked.detach()
    ''')
    output = result.stdout + result.stderr
    assert '1 passed' in output, output
    assert result.returncode == 1, output
    assert 'left behind by this session' in output and lablib.PREFIX + lab_id + '-forgotten' in output
    assert residue.is_clean(residue.residue(lab_id)), 'the session check removes what it reports'


SKIPPING_TEST = '''
    import pytest

    def test_runs():
        pass

    def test_needs_a_feature():
        pytest.skip('feature X is not available in this kernel')
'''


def test_a_skip_is_fine_outside_the_kernel_lane(tmp_path):
    result, _unused = run_inner(tmp_path, SKIPPING_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1 passed, 1 skipped' in result.stdout


def test_a_skip_fails_the_kernel_lane(tmp_path):
    result, _unused = run_inner(tmp_path, SKIPPING_TEST, {'NQRUST_KERNEL_LANE': '1'})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert 'in the kernel lane a skip is a failure' in output
    assert 'test_inner.py::test_needs_a_feature' in output and 'feature X is not available in this kernel' in output
