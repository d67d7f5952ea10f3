# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the running kernel can do for VLANs, found out without changing anything.

* Bridge VLAN filtering: a kernel built with ``CONFIG_BRIDGE_VLAN_FILTERING``
  reports ``IFLA_BR_VLAN_DEFAULT_PVID`` in every bridge's link info (the
  ``vlan_default_pvid`` of a ``netlink.Link``); one built without it does not
  (it still reports ``IFLA_BR_VLAN_FILTERING``, always 0).
* 802.1Q VLAN links: the ``8021q`` module is loaded or built in
  (``/sys/module/8021q``), or installed for the running kernel (listed in
  ``/lib/modules/<release>/modules.dep`` or ``modules.builtin``, so the
  kernel loads it on the first VLAN link), or a VLAN link already exists.

Modules check these during planning, so a kernel without the feature fails
the task before anything is changed, in check mode too, with
``KernelFeatureMissing`` saying what is missing.

Standard library only.
"""

from __future__ import annotations

import os

MODULE_8021Q = '8021q'
SYS_MODULE = '/sys/module'
LIB_MODULES = '/lib/modules'


class KernelFeatureMissing(Exception):
    """The running kernel lacks a feature the task needs; the message says which and what it was needed for."""

    def __init__(self, feature, needed_for, detail=None):
        self.feature = feature
        self.needed_for = needed_for
        self.detail = detail
        text = 'the running kernel (%s) lacks %s, needed for %s' % (kernel_release(), feature, needed_for)
        if detail:
            text += ': %s' % detail
        super(KernelFeatureMissing, self).__init__(text)


def kernel_release():
    """``os.uname().release``, e.g. ``'6.1.0-56-amd64'``."""
    try:
        return os.uname().release
    except (AttributeError, OSError):
        return 'unknown'


def bridge_vlan_filtering_supported(bridge):
    """True if the kernel can filter VLANs on ``bridge`` (a ``netlink.Link`` of kind bridge)."""
    return getattr(bridge, 'vlan_default_pvid', None) is not None


def require_bridge_vlan_filtering(bridge, needed_for):
    """Raise ``KernelFeatureMissing`` unless the kernel supports VLAN filtering on ``bridge``."""
    if not bridge_vlan_filtering_supported(bridge):
        raise KernelFeatureMissing(
            'bridge VLAN filtering', needed_for,
            "it reports no VLAN settings for bridge '%s' (a kernel built without CONFIG_BRIDGE_VLAN_FILTERING); "
            'use a kernel with bridge VLAN filtering, such as the distribution kernels of Debian or Ubuntu' % bridge.name)


def _module_listed(path, module):
    suffix = '/%s.ko' % module
    try:
        with open(path, 'r') as handle:  # pylint: disable=unspecified-encoding
            for line in handle:
                name = line.split(':', 1)[0].strip()
                for ending in ('', '.xz', '.gz', '.zst'):
                    if name.endswith(suffix + ending):
                        return True
    except (IOError, OSError, UnicodeDecodeError):
        return False
    return False


def probe_8021q(links=(), release=None, sys_module=SYS_MODULE, lib_modules=LIB_MODULES):
    """``(available, how)``: whether 802.1Q VLAN links can be made, and how that was found out (or what is missing)."""
    if any(getattr(link, 'kind', None) == 'vlan' for link in links):
        return True, 'a VLAN link exists'
    if os.path.isdir(os.path.join(sys_module, MODULE_8021Q)):
        return True, 'module %s is loaded' % MODULE_8021Q
    release = release or kernel_release()
    base = os.path.join(lib_modules, release)
    for listing in ('modules.builtin', 'modules.dep'):
        if _module_listed(os.path.join(base, listing), MODULE_8021Q):
            return True, 'module %s is installed (%s)' % (MODULE_8021Q, os.path.join(base, listing))
    if os.path.isdir(base):
        where = 'not installed in %s' % base
    else:
        where = 'no modules are installed for this kernel (no %s)' % base
    return False, 'module %s is not loaded (no %s) and %s' % (MODULE_8021Q, os.path.join(sys_module, MODULE_8021Q), where)


def require_8021q(needed_for, links=(), probe=None):
    """Raise ``KernelFeatureMissing`` unless 802.1Q VLAN links can be made (``probe`` is a ``probe_8021q`` result)."""
    available, how = probe if probe is not None else probe_8021q(links)
    if not available:
        raise KernelFeatureMissing('802.1Q VLAN support (8021q)', needed_for, how)
