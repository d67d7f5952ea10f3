# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fc_network_registry's checks before any I/O: what each state needs, ids, derived MAC and TAP name."""

from __future__ import annotations

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors
from ansible_collections.nqrust.microvm.plugins.modules import fc_network_registry as module

VM = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'


def params(**given):
    result = dict((key, spec.get('default')) for key, spec in module.argument_spec().items())
    result.update(given)
    return result


def errors(**given):
    with pytest.raises(ValidationErrors) as caught:
        module.validate(params(**given))
    return caught.value.messages


@pytest.mark.parametrize('state', ['present', 'absent', 'attached'])
def test_a_network_needs_an_id_or_host_and_bridge(state):
    found = errors(state=state, host='hv1', vm_id=VM)
    assert any("parameter 'id' (value None): missing; give the network id, or host and bridge_name" in m for m in found)


def test_registration_needs_host_and_bridge():
    assert errors(state='registered', bridge_name='fcbr0') == [
        "parameter 'host' (value None): missing; auto-registration needs host and bridge_name (and vlan_id, if any)"]


def test_attaching_needs_a_vm_uuid():
    found = errors(state='attached', host='hv1', bridge_name='fcbr0', vm_id='vm-1')
    assert found == ["parameter 'vm_id' (value 'vm-1'): a VM id must be a UUID such as b1ed8ab4-cf82-4401-8393-6638cf978dd5"]
    assert errors(state='detached') == ["parameter 'vm_id' (value None): missing; attaching and detaching need the VM id (a UUID)"]


def test_attach_defaults_are_the_collection_stable_names():
    request = module.validate(params(state='attached', host='hv1', bridge_name='fcbr0', vm_id=VM.upper(), iface_id='eth1'))
    assert request.vm_id == VM and request.iface_id == 'eth1'
    assert request.guest_mac == vm_identity.guest_mac(VM, 'eth1')
    assert request.host_dev_name == vm_identity.tap_name(VM, 'eth1')


def test_attach_checks_given_mac_tap_and_iface():
    found = errors(state='attached', id='b1ed8ab4-cf82-4401-8393-6638cf978dd5', vm_id=VM, guest_mac='ff:ff:ff:ff:ff:ff',
                   host_dev_name='a-very-long-tap-name', iface_id='eth 0')
    assert len(found) == 3
    assert any(m.startswith("parameter 'guest_mac' (value 'ff:ff:ff:ff:ff:ff'): broadcast address") for m in found)
    assert any(m.startswith("parameter 'host_dev_name'") for m in found)
    assert any(m.startswith("parameter 'iface_id' (value 'eth 0')") for m in found)
