# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import uuid

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError, interface_name, mac_address

VM = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'


def test_golden_values_never_change():
    # these values are recorded in registries and VM configs: changing them would rename every TAP
    assert vm_identity.tap_name(VM) == 'tap-a29c028a4ef'
    assert vm_identity.guest_mac(VM) == 'aa:fc:a2:9c:02:8a'
    assert vm_identity.tap_name(VM, 'eth1', prefix='fc') == 'fcbdd1cd6fa786b'


def test_documented_algorithm():
    key = hashlib.sha256(VM.encode() + b'\0' + b'eth0').digest()
    assert vm_identity.tap_name(VM) == 'tap-' + key.hex()[:11]
    assert vm_identity.guest_mac(VM) == 'aa:fc:' + ':'.join('%02x' % byte for byte in key[:4])


@pytest.mark.parametrize('spelling', [VM.upper(), '{%s}' % VM, 'urn:uuid:%s' % VM, VM.replace('-', ''), uuid.UUID(VM)])
def test_uuid_spellings_name_the_same_vm(spelling):
    assert vm_identity.tap_name(spelling) == vm_identity.tap_name(VM)
    assert vm_identity.guest_mac(spelling) == vm_identity.guest_mac(VM)


def test_names_are_valid_interface_names_of_exactly_15_bytes():
    for number in range(200):
        for prefix in ('', 'tap-', 'fc', 'vm-tap-'):
            name = vm_identity.tap_name('vm-%d' % number, 'eth%d' % (number % 3), prefix)
            assert len(name.encode()) == 15
            assert interface_name('name', name) == name
            assert name.startswith(prefix)


def test_macs_are_unicast_locally_administered_and_share_digits_with_the_name():
    for number in range(200):
        mac = vm_identity.guest_mac('vm-%d' % number)
        assert mac_address('guest_mac', mac, require_local=True) == mac
        assert mac.startswith('aa:fc:')
        assert mac.replace(':', '')[4:] == vm_identity.tap_name('vm-%d' % number)[4:12]


def test_different_nics_and_vms_get_different_identities():
    names = set()
    macs = set()
    for number in range(500):
        for iface in ('eth0', 'eth1'):
            names.add(vm_identity.tap_name(str(uuid.UUID(int=number)), iface))
            macs.add(vm_identity.guest_mac(str(uuid.UUID(int=number)), iface))
    assert len(names) == 1000
    assert len(macs) == 1000


def test_separator_keeps_vm_and_iface_apart():
    assert vm_identity.tap_name('ab', 'c') != vm_identity.tap_name('a', 'bc')


@pytest.mark.parametrize('value, problem', [
    ('', 'empty'),
    ('has space', 'whitespace'),
    ('tab\there', 'whitespace'),
    ('x' * 129, '129 bytes'),
    (42, 'not a string'),
])
def test_bad_vm_ids(value, problem):
    with pytest.raises(ValidationError) as info:
        vm_identity.vm_id('vm_id', value)
    assert problem in str(info.value)
    assert "parameter 'vm_id'" in str(info.value)


@pytest.mark.parametrize('value', ['', 'eth 0', 'eth/0', 'x' * 65, None])
def test_bad_iface_ids(value):
    with pytest.raises(ValidationError) as info:
        vm_identity.iface_id('iface_id', value)
    assert 'iface id must be' in str(info.value)


@pytest.mark.parametrize('value', ['12345678', 'a/b', 'a b', 'x:'])
def test_bad_prefixes(value):
    with pytest.raises(ValidationError) as info:
        vm_identity.tap_name(VM, prefix=value)
    assert "parameter 'prefix'" in str(info.value)


def test_non_uuid_ids_are_kept_as_given():
    assert vm_identity.vm_id('vm_id', 'web-01') == 'web-01'
    assert vm_identity.vm_id('vm_id', VM.upper()) == VM
