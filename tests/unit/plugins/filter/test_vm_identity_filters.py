# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.nqrust.microvm.plugins.filter import vm_identity as filters
from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity

VM = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'


def test_filters_are_registered():
    assert filters.FilterModule().filters() == {'tap_name': filters.tap_name, 'guest_mac': filters.guest_mac}


def test_filters_match_the_module_derivation():
    assert filters.tap_name(VM) == vm_identity.tap_name(VM) == 'tap-a29c028a4ef'
    assert filters.tap_name(VM, 'eth1', prefix='fc') == vm_identity.tap_name(VM, 'eth1', 'fc')
    assert filters.guest_mac(VM) == 'aa:fc:a2:9c:02:8a'
    assert filters.guest_mac(VM, upper=True) == 'AA:FC:A2:9C:02:8A'


@pytest.mark.parametrize('call', [
    lambda: filters.tap_name(''),
    lambda: filters.tap_name(VM, 'bad iface'),
    lambda: filters.tap_name(VM, prefix='much-too-long'),
    lambda: filters.guest_mac(None),
])
def test_bad_input_is_a_filter_error_naming_the_parameter(call):
    with pytest.raises(AnsibleFilterError) as info:
        call()
    assert "parameter '" in str(info.value)


@pytest.mark.parametrize('name', ['tap_name', 'guest_mac'])
def test_every_filter_has_its_documentation(name):
    path = os.path.join(os.path.dirname(filters.__file__), name + '.yml')
    with open(path, encoding='utf-8') as handle:
        docs = yaml.safe_load(handle)
    assert docs['DOCUMENTATION']['name'] == name
    assert set(docs) == {'DOCUMENTATION', 'EXAMPLES', 'RETURN'}
    assert docs['RETURN']['_value']['sample'] == getattr(filters, name)(VM)
