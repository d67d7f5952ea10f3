# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """The attributes (check mode, diff mode, platform) of the collection's modules, one set per kind of module.

    Use together with C(ansible.builtin.action_common_attributes), which describes the attributes;
    for example ``extends_documentation_fragment: [ansible.builtin.action_common_attributes,
    nqrust.microvm.attributes.host_changes]``.
    """

    DOCUMENTATION = r"""
options: {}
"""

    # changes a Linux host (links, nftables, dnsmasq, sysctls, files): check and diff mode fully
    HOST_CHANGES = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: linux
"""

    # reads (or guards) a Linux host: the same in check mode, nothing to diff
    HOST_READS = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
"""

    # changes the registry database from wherever it is reachable: check mode rolls the transaction back
    REGISTRY_CHANGES = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

    # reads or checks data only, on any POSIX controller or host
    READS = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""
