# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import kernel_features
from ansible_collections.nqrust.microvm.plugins.module_utils.kernel_features import (
    KernelFeatureMissing,
    bridge_vlan_filtering_supported,
    probe_8021q,
    require_8021q,
    require_bridge_vlan_filtering,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import Link


def test_bridge_vlan_filtering_is_told_by_the_default_pvid(monkeypatch):
    monkeypatch.setattr(kernel_features, 'kernel_release', lambda: '6.18.0-test')
    with_support = Link(index=3, name='br0', kind='bridge', vlan_filtering=False, vlan_default_pvid=1)
    without = Link(index=3, name='br0', kind='bridge', vlan_filtering=False)
    assert bridge_vlan_filtering_supported(with_support) and not bridge_vlan_filtering_supported(without)
    require_bridge_vlan_filtering(with_support, 'x')
    with pytest.raises(KernelFeatureMissing) as info:
        require_bridge_vlan_filtering(without, "the VLANs of port 'tap0'")
    assert str(info.value).startswith("the running kernel (6.18.0-test) lacks bridge VLAN filtering, needed for the "
                                      "VLANs of port 'tap0': it reports no VLAN settings for bridge 'br0'")
    assert info.value.feature == 'bridge VLAN filtering'


def make_tree(tmp_path, release, listing=None, content=''):
    sys_module = tmp_path / 'sys'
    sys_module.mkdir()
    lib = tmp_path / 'lib'
    lib.mkdir()
    if listing:
        (lib / release).mkdir()
        (lib / release / listing).write_text(content)
    return str(sys_module), str(lib)


def test_8021q_loaded(tmp_path):
    sys_module, lib = make_tree(tmp_path, 'r1')
    os.mkdir(os.path.join(sys_module, '8021q'))
    assert probe_8021q(release='r1', sys_module=sys_module, lib_modules=lib) == (True, 'module 8021q is loaded')


@pytest.mark.parametrize('listing, content', [
    ('modules.dep', 'kernel/net/8021q/8021q.ko.xz: kernel/net/802/garp.ko.xz\n'),
    ('modules.dep', 'kernel/net/8021q/8021q.ko: \n'),
    ('modules.builtin', 'kernel/net/8021q/8021q.ko\n'),
])
def test_8021q_installed(tmp_path, listing, content):
    sys_module, lib = make_tree(tmp_path, 'r1', listing, content)
    available, how = probe_8021q(release='r1', sys_module=sys_module, lib_modules=lib)
    assert available and how.startswith('module 8021q is installed (')


def test_8021q_missing(tmp_path):
    sys_module, lib = make_tree(tmp_path, 'r1', 'modules.dep', 'kernel/net/bridge/bridge.ko: \n')
    assert probe_8021q(release='r1', sys_module=sys_module, lib_modules=lib) == (
        False, 'module 8021q is not loaded (no %s/8021q) and not installed in %s/r1' % (sys_module, lib))
    available, how = probe_8021q(release='r2', sys_module=sys_module, lib_modules=lib)
    assert not available and how.endswith('no modules are installed for this kernel (no %s/r2)' % lib)


def test_an_existing_vlan_link_proves_support(tmp_path):
    sys_module, lib = make_tree(tmp_path, 'r1')
    links = [Link(index=5, name='eth0.5', kind='vlan', vlan_id=5)]
    assert probe_8021q(links, release='r1', sys_module=sys_module, lib_modules=lib) == (True, 'a VLAN link exists')


def test_require_8021q(monkeypatch):
    monkeypatch.setattr(kernel_features, 'kernel_release', lambda: 'r9')
    require_8021q('x', probe=(True, 'loaded'))
    with pytest.raises(KernelFeatureMissing) as info:
        require_8021q("VLAN link 'eth0.5'", probe=(False, 'module 8021q is not loaded'))
    assert str(info.value) == ("the running kernel (r9) lacks 802.1Q VLAN support (8021q), needed for VLAN link "
                               "'eth0.5': module 8021q is not loaded")
