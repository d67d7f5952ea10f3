"""fc_host_kernel on a lab host: net.* parameters of the host's namespace, module checks, persistence files.

Only modules the running kernel already has are requested (the tests never load a module on the
machine that runs them); the persistence files go to a temp directory of the test.
"""

import os
import shutil
import tempfile

import pytest

from lab.module_run import run_module
from lab.snapshot import assert_unchanged, snapshot

pytestmark = pytest.mark.module


def _proc_sys(host, name):
    return ' '.join(host.run(['cat', '/proc/sys/' + name.replace('.', '/')]).stdout.split())


@pytest.fixture(name='files')
def files_fixture():
    directory = tempfile.mkdtemp(prefix='nql-hostkernel-')
    yield {'modules_load_file': os.path.join(directory, 'modules-load.d', 'nqrust-microvm.conf'),
           'sysctl_file': os.path.join(directory, 'sysctl.d', '60-nqrust-microvm.conf')}
    shutil.rmtree(directory)


@pytest.fixture(name='hv')
def hv_fixture(lab):
    return lab.add_host('hv1')


def test_sets_parameters_exactly_as_check_mode_predicts_and_persists_them(hv, files):
    args = dict(files, modules=['tun', 'bridge'], optional_modules=['no_such_module_x'],
                sysctls={'net.core.somaxconn': 8192, 'net.ipv4.ip_local_port_range': '20000   60999'})
    before_somaxconn = _proc_sys(hv, 'net.core.somaxconn')
    assert before_somaxconn != '8192'

    check = run_module(hv, 'fc_host_kernel', args, check_mode=True, diff=True)
    assert not check.get('failed'), check
    assert check['changed'] is True
    assert _proc_sys(hv, 'net.core.somaxconn') == before_somaxconn
    assert not os.path.exists(files['sysctl_file'])

    real = run_module(hv, 'fc_host_kernel', args, diff=True)
    assert not real.get('failed'), real
    for key in ('changed', 'changes', 'diff', 'set_sysctls', 'loaded_modules', 'kernel_modules', 'sysctls'):
        assert real[key] == check[key], key
    assert real['set_sysctls'] == ['net.core.somaxconn', 'net.ipv4.ip_local_port_range']
    assert real['loaded_modules'] == []
    assert real['unavailable_modules'] == ['no_such_module_x']
    assert real['kernel_modules']['tun'] in ('builtin', 'loaded')
    assert _proc_sys(hv, 'net.core.somaxconn') == '8192'
    assert _proc_sys(hv, 'net.ipv4.ip_local_port_range') == '20000 60999'
    with open(files['sysctl_file']) as handle:
        lines = [line for line in handle.read().splitlines() if not line.startswith('#')]
    assert lines == ['net.core.somaxconn = 8192', 'net.ipv4.ip_local_port_range = 20000 60999']
    with open(files['modules_load_file']) as handle:
        content = handle.read()
    # built-in or already loaded modules are listed only when the kernel can load them from disk
    assert 'no_such_module_x' not in content

    again = run_module(hv, 'fc_host_kernel', args, diff=True)
    assert again['changed'] is False and again['changes'] == []


def test_parameters_belong_to_the_hosts_namespace(lab, files):
    one, two = lab.add_host('hv1'), lab.add_host('hv2')
    untouched = _proc_sys(two, 'net.core.somaxconn')
    result = run_module(one, 'fc_host_kernel', dict(files, sysctls={'net.core.somaxconn': 4321}))
    assert result['changed'] is True, result
    assert _proc_sys(one, 'net.core.somaxconn') == '4321'
    assert _proc_sys(two, 'net.core.somaxconn') == untouched


@pytest.mark.parametrize('args, names', [
    ({'modules': ['no_such_module_x']}, ["'modules'", 'no_such_module_x', 'optional_modules']),
    ({'modules': ['../tun']}, ["'modules'", '../tun', 'kernel module name']),
    ({'sysctls': {'net.core.no_such_knob': 1}}, ["'sysctls'", 'net.core.no_such_knob', 'this kernel has']),
    ({'sysctls': {'net core': 1}}, ["'sysctls'", 'net core', 'separated by dots']),
    ({'sysctls': {'net.core.somaxconn': 'a\nb'}}, ["'sysctls.net.core.somaxconn'", 'one line']),
    ({'modules_load_file': 'relative.conf'}, ["'modules_load_file'", 'relative.conf', 'absolute path']),
])
def test_rejected_input_names_the_problem_and_changes_nothing(hv, files, args, names):
    before = snapshot(hv)
    somaxconn = _proc_sys(hv, 'net.core.somaxconn')
    full = dict(files, sysctls={'net.core.somaxconn': 777})
    full.update(args)
    result = run_module(hv, 'fc_host_kernel', full)
    assert result.get('failed'), result
    for text in names:
        assert text in result['msg'], (text, result['msg'])
    assert _proc_sys(hv, 'net.core.somaxconn') == somaxconn
    assert not os.path.exists(os.path.dirname(os.path.dirname(files['sysctl_file'])) + '/sysctl.d')
    assert_unchanged(before, snapshot(hv))
