# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``tap_name`` and ``guest_mac`` filters: stable identities of a VM's network interface.

Both derive from ``module_utils/vm_identity``, as the ``fc_tap`` module does, so a name or MAC
computed in a playbook is the one the module gives the TAP. Their documentation is in
``tap_name.yml`` and ``guest_mac.yml`` beside this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError


def tap_name(vm_id, iface_id=vm_identity.DEFAULT_IFACE_ID, prefix=vm_identity.DEFAULT_PREFIX):
    """The stable TAP name of NIC ``iface_id`` of VM ``vm_id``."""
    try:
        return vm_identity.tap_name(vm_id, iface_id, prefix)
    except ValidationError as exc:
        raise AnsibleFilterError('nqrust.microvm.tap_name: %s' % exc) from None


def guest_mac(vm_id, iface_id=vm_identity.DEFAULT_IFACE_ID, upper=False):
    """The stable guest MAC of NIC ``iface_id`` of VM ``vm_id`` (``upper``: ``AA:FC:...``)."""
    try:
        mac = vm_identity.guest_mac(vm_id, iface_id)
    except ValidationError as exc:
        raise AnsibleFilterError('nqrust.microvm.guest_mac: %s' % exc) from None
    return mac.upper() if upper else mac


class FilterModule(object):
    """Stable TAP names and guest MACs of VM network interfaces."""

    def filters(self):
        return {'tap_name': tap_name, 'guest_mac': guest_mac}
