# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stable TAP names and guest MACs derived from a VM id and a NIC (iface) id.

``tap-{vm-uuid}`` does not fit the kernel's 15-byte interface names, so the
name is derived from a hash instead, and the guest MAC from the same hash:

* ``key = SHA-256(UTF-8(vm_id) + b'\\0' + UTF-8(iface_id))`` where a VM id
  that is a UUID is first written in its canonical form (lower case, with
  hyphens), so ``'1A2B...'``, ``'{1a2b...}'`` and ``'urn:uuid:1a2b...'``
  all name the same VM;
* TAP name: ``prefix`` (default ``'tap-'``) + the first ``15 - len(prefix)``
  hex digits of the key, e.g. ``tap-3f9c0a1b2c4``;
* guest MAC: ``aa:fc:`` + the first 4 bytes of the key, e.g.
  ``aa:fc:3f:9c:0a:1b`` -- unicast and locally administered (``0xaa`` has bit
  0x01 clear and bit 0x02 set), in the ``AA:FC:...`` style of the NQRust
  manager.  The MAC's last 8 hex digits are the first 8 of the default TAP
  name, so either one finds the other.

The registry records both (``host_dev_name``, ``guest_mac``) and checks that
MACs are unique; with 32 bits of hash two VMs share a MAC with probability
about n^2 / 2^33 (1 in 8,600 for a thousand NICs), which the registry's
unique index turns into an error rather than a silent clash.

Pure Python, standard library only: used by the ``tap_name`` and
``guest_mac`` filters and by the ``fc_tap`` module.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    IFNAME_MAX_BYTES,
    ValidationError,
    interface_name,
)

DEFAULT_PREFIX = 'tap-'
DEFAULT_IFACE_ID = 'eth0'
MAC_PREFIX = 'aa:fc'
MIN_HASH_DIGITS = 8
PREFIX_MAX_BYTES = IFNAME_MAX_BYTES - MIN_HASH_DIGITS
VM_ID_MAX_BYTES = 128
IFACE_ID_MAX_BYTES = 64

ALLOWED_VM_ID = ('VM id must be a non-empty string of at most %d bytes without whitespace or control characters '
                 '(normally the VM UUID)' % VM_ID_MAX_BYTES)
ALLOWED_IFACE_ID = ('iface id must be 1 to %d characters: letters, digits, "_", "-" and "." (Firecracker\'s iface_id, '
                    'e.g. eth0)' % IFACE_ID_MAX_BYTES)
ALLOWED_PREFIX = ('TAP name prefix must be 0 to %d bytes that are valid in an interface name (no "/", ":" or '
                  'whitespace), leaving at least %d hex digits of the 15-byte name' % (PREFIX_MAX_BYTES, MIN_HASH_DIGITS))

_IFACE_ID_RE = re.compile(r'^[A-Za-z0-9_.-]+$')


def vm_id(param, value):
    """A VM id: UUIDs in canonical form (lower case, hyphens), other ids as given."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise ValidationError(param, value, ALLOWED_VM_ID, 'not a string')
    if not value:
        raise ValidationError(param, value, ALLOWED_VM_ID, 'empty')
    if len(value.encode('utf-8')) > VM_ID_MAX_BYTES:
        raise ValidationError(param, value, ALLOWED_VM_ID, 'is %d bytes long' % len(value.encode('utf-8')))
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValidationError(param, value, ALLOWED_VM_ID, 'contains whitespace or a control character')
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def iface_id(param, value):
    """A Firecracker iface id such as ``eth0``."""
    if not isinstance(value, str):
        raise ValidationError(param, value, ALLOWED_IFACE_ID, 'not a string')
    if not value or len(value) > IFACE_ID_MAX_BYTES or not _IFACE_ID_RE.match(value):
        raise ValidationError(param, value, ALLOWED_IFACE_ID)
    return value


def name_prefix(param, value):
    """A TAP name prefix of 0-7 bytes."""
    if not isinstance(value, str):
        raise ValidationError(param, value, ALLOWED_PREFIX, 'not a string')
    if len(value.encode('utf-8')) > PREFIX_MAX_BYTES:
        raise ValidationError(param, value, ALLOWED_PREFIX, 'is %d bytes long' % len(value.encode('utf-8')))
    if value:
        try:
            interface_name(param, value)
        except ValidationError as exc:
            raise ValidationError(param, value, ALLOWED_PREFIX, exc.problem) from None
    return value


def identity_key(vm, iface=DEFAULT_IFACE_ID):
    """The 32-byte SHA-256 key of (VM id, iface id); ``vm`` is normalised like ``vm_id()``."""
    normalised = vm_id('vm_id', vm)
    checked = iface_id('iface_id', iface)
    return hashlib.sha256(normalised.encode('utf-8') + b'\0' + checked.encode('utf-8')).digest()


def tap_name(vm, iface=DEFAULT_IFACE_ID, prefix=DEFAULT_PREFIX):
    """The stable TAP name of a VM NIC: ``prefix`` + hex digits of the key, exactly 15 bytes."""
    prefix = name_prefix('prefix', prefix)
    digits = IFNAME_MAX_BYTES - len(prefix.encode('utf-8'))
    return prefix + identity_key(vm, iface).hex()[:digits]


def guest_mac(vm, iface=DEFAULT_IFACE_ID):
    """The stable guest MAC of a VM NIC: ``aa:fc:`` + the first 4 bytes of the key (lower case)."""
    key = identity_key(vm, iface)
    return MAC_PREFIX + ':' + ':'.join('%02x' % byte for byte in key[:4])
