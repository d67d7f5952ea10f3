"""host_kernel: reading the kernel's module files, and the pure plan."""

from __future__ import annotations

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import host_kernel, sysctl
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError


def _files(tmp_path, proc=None, builtin=None, dep=None):
    modules_dir = tmp_path / 'lib-modules'
    modules_dir.mkdir()
    if builtin is not None:
        (modules_dir / 'modules.builtin').write_text(builtin)
    if dep is not None:
        (modules_dir / 'modules.dep').write_text(dep)
    proc_modules = tmp_path / 'modules'
    if proc is not None:
        proc_modules.write_text(proc)
    return str(proc_modules), str(modules_dir)


def test_module_states_from_the_kernels_files(tmp_path):
    proc, modules_dir = _files(
        tmp_path,
        proc='bridge 311296 0 - Live 0x0000000000000000\nstp 16384 1 bridge, Live 0x0\n',
        builtin='kernel/drivers/net/tun.ko\n',
        dep='kernel/drivers/vhost/vhost_net.ko.xz: kernel/drivers/vhost/vhost.ko.xz\n'
            'kernel/net/8021q/8021q.ko.zst: kernel/net/802/garp.ko.zst\n')
    kernel = host_kernel.read_modules(['tun'], proc_modules=proc, modules_dir=modules_dir, exists=lambda path: False)
    assert kernel.state('tun') == 'builtin'
    assert kernel.state('bridge') == 'loaded'
    assert kernel.state('vhost-net') == 'loadable'      # - and _ are the same to the kernel
    assert kernel.state('8021q') == 'loadable'
    assert kernel.state('ipvlan') == 'missing'


def test_a_kernel_without_module_support_shows_built_in_features_by_their_evidence(tmp_path):
    proc, modules_dir = _files(tmp_path)
    seen = {'/sys/class/misc/tun', '/sys/module/bridge'}
    kernel = host_kernel.read_modules(['tun', 'bridge', '8021q'], proc_modules=proc, modules_dir=modules_dir,
                                      exists=seen.__contains__)
    assert (kernel.state('tun'), kernel.state('bridge'), kernel.state('8021q')) == ('builtin', 'builtin', 'missing')


def _desired(**overrides):
    values = dict(modules=('tun', 'vhost_net'), optional_modules=('8021q',),
                  sysctls=(('net.core.somaxconn', '8192'),), persist=True,
                  modules_load_file='/etc/modules-load.d/x.conf', sysctl_file='/etc/sysctl.d/x.conf')
    values.update(overrides)
    return host_kernel.Desired(**values)


def test_plan_loads_what_is_loadable_sets_what_differs_and_writes_the_files():
    desired = _desired()
    current = host_kernel.Current(modules={'tun': 'builtin', 'vhost_net': 'loadable', '8021q': 'missing'},
                                  sysctls={'net.core.somaxconn': '4096'}, modules_load_file=None, sysctl_file=None)
    changes = host_kernel.plan(desired, current)
    assert [(c.action, c.kind, c.target) for c in changes] == [
        ('load', 'kernel_module', 'vhost_net'), ('set', 'sysctl', 'net.core.somaxconn'),
        ('write', 'file', '/etc/modules-load.d/x.conf'), ('write', 'file', '/etc/sysctl.d/x.conf')]
    assert changes[2].details['content'].endswith('vhost_net\n')
    assert 'tun' not in changes[2].details['content']
    assert changes[3].details['content'].endswith('net.core.somaxconn = 8192\n')

    final = host_kernel.after(desired, current, changes)
    assert final.modules['vhost_net'] == 'loaded' and final.sysctls['net.core.somaxconn'] == '8192'
    # once there, the plan is empty (the files keep listing the modules loaded from disk)
    assert host_kernel.plan(desired, final) == []


def test_no_files_without_persist():
    desired = _desired(persist=False, sysctls=())
    current = host_kernel.Current(modules={'tun': 'builtin', 'vhost_net': 'loaded', '8021q': 'missing'},
                                  sysctls={}, modules_load_file=None, sysctl_file=None)
    assert host_kernel.plan(desired, current) == []
    assert 'files' not in host_kernel.view(desired, current)


@pytest.mark.parametrize('value', ['tun', 'vhost-net', '8021q', 'nf_tables'])
def test_module_names_accepted(value):
    assert host_kernel.module_name('modules', value) == value


@pytest.mark.parametrize('value', ['', '../tun', 'tun opt=1', 'a' * 56])
def test_module_names_rejected(value):
    with pytest.raises(ValidationError, match="parameter 'modules'"):
        host_kernel.module_name('modules', value)


def test_sysctl_names_and_values(tmp_path):
    (tmp_path / 'net' / 'core').mkdir(parents=True)
    (tmp_path / 'net' / 'core' / 'somaxconn').write_text('4096\n')
    assert sysctl.sysctl_name('sysctls', 'net.core.somaxconn', root=str(tmp_path)) == 'net.core.somaxconn'
    with pytest.raises(ValidationError, match='this kernel has'):
        sysctl.sysctl_name('sysctls', 'net.core.nothing', root=str(tmp_path))
    with pytest.raises(ValidationError, match='separated by dots'):
        sysctl.sysctl_name('sysctls', 'net/core/somaxconn', root=str(tmp_path))
    assert sysctl.sysctl_value('v', '4096\t87380   6291456') == '4096 87380 6291456'
    assert sysctl.sysctl_value('v', True) == '1'
    for bad in (None, '', 'a\nb', [1]):
        with pytest.raises(ValidationError):
            sysctl.sysctl_value('v', bad)
    procsys = sysctl.ProcSys(str(tmp_path))
    procsys.write('net.core.somaxconn', '4096  87380')
    assert procsys.read('net.core.somaxconn') == '4096 87380'
    assert procsys.read('net.core.nothing') is None
