"""The nqrust.microvm.host role through ansible-runner on a lab host: kernel pieces, netlink check, idempotence.

Packages are left out (``host_install_packages: false``): the test machine already has them and
installing packages is not something a test may do to it; the role's package task is a plain
``ansible.builtin.package``.
"""

import os
import shutil
import tempfile

import pytest

from lab.playbook import run_playbook

pytestmark = pytest.mark.module


@pytest.fixture(name='files')
def files_fixture():
    directory = tempfile.mkdtemp(prefix='nql-hostrole-')
    yield directory
    shutil.rmtree(directory)


def _play(files, **overrides):
    role_vars = {
        'host_install_packages': False,
        'host_kernel_modules': ['tun', 'bridge'],
        'host_optional_kernel_modules': ['no_such_module_x'],
        'host_sysctls': {'net.core.somaxconn': 2048},
        'host_modules_load_file': os.path.join(files, 'modules.conf'),
        'host_sysctl_file': os.path.join(files, 'sysctl.conf'),
    }
    role_vars.update(overrides)
    return [{'name': 'Prepare', 'hosts': 'hypervisors', 'gather_facts': False,
             'roles': [{'role': 'nqrust.microvm.host', 'vars': role_vars}]}]


def test_role_prepares_the_host_and_a_second_run_changes_nothing(lab, ansible_env, files):
    hv = lab.add_host('hv1')
    check = run_playbook(lab, _play(files), {'hv1': hv}, ansible_env, check=True)
    assert check.ok, check.failures()
    assert check.changed('hv1') == 1, check.changed_tasks()
    assert not os.path.exists(os.path.join(files, 'sysctl.conf'))

    first = run_playbook(lab, _play(files), {'hv1': hv}, ansible_env)
    assert first.ok, first.failures()
    assert first.changed('hv1') == 1, first.changed_tasks()
    (kernel,) = first.results('hv1', task='Load the kernel modules and set the kernel parameters')
    assert kernel['unavailable_modules'] == ['no_such_module_x']
    assert kernel['set_sysctls'] == ['net.core.somaxconn']
    assert hv.run(['cat', '/proc/sys/net/core/somaxconn']).stdout.strip() == '2048'

    second = run_playbook(lab, _play(files), {'hv1': hv}, ansible_env)
    assert second.ok, second.failures()
    assert second.changed('hv1') == 0, second.changed_tasks()


def test_argument_specs_reject_bad_input_before_any_task(lab, ansible_env, files):
    hv = lab.add_host('hv1')
    before = hv.run(['cat', '/proc/sys/net/core/somaxconn']).stdout
    run = run_playbook(lab, _play(files, host_install_packages='maybe'), {'hv1': hv}, ansible_env)
    assert not run.ok
    (failure,) = [item for item in run.results('hv1') if item['_event'] == 'runner_on_failed']
    assert 'host_install_packages' in failure['msg'] and 'maybe' in failure['msg'], failure['msg']
    assert hv.run(['cat', '/proc/sys/net/core/somaxconn']).stdout == before
    assert os.listdir(files) == []
