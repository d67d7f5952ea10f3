# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_persist
short_description: Keep the host's Firecracker networks across reboots
version_added: 1.0.0
description:
  - Writes what the collection built on the host as boot-time replay files, and a systemd unit that
    replays them before the network comes up, so a host that reboots comes back with the same networks.
  - C(links.batch) is an C(ip -batch) file with every bridge the collection created (its interface alias
    marks it) - MAC, MTU, queue length, STP, forward delay, multicast snooping and VLAN settings, its
    addresses, the ports that are not TAPs (a bridged network's uplink) and the routes through it that
    are not the kernel's own. TAPs are left out; they belong to VMs.
  - C(nftables.json) is one C(nft -j -f) transaction re-creating the collection's nftables tables
    exactly as they are now; C(sysctl.conf) turns IP forwarding on where it is on now.
  - The unit C(nqrust-microvm-networks.service) runs the three in that order. Where systemd runs, it is
    enabled; elsewhere only the files are written.
  - Reads the host once (netlink, C(nft -j list ruleset), C(/proc/sys)); check mode and diff show the
    files exactly as the real run writes them; a second run changes nothing.
  - The nqrust.microvm.network role runs it after the networks converge.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - pyroute2 (0.7 or later) on the managed host
  - the nft command (nftables)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  state:
    description:
      - V(present) writes the files and the unit; V(absent) removes them (and disables the unit).
    type: str
    choices: [present, absent]
    default: present
  directory:
    description: Where the replay files go.
    type: path
    default: /etc/nqrust-microvm/boot
  unit_dir:
    description: Where the systemd unit goes.
    type: path
    default: /etc/systemd/system
notes:
  - In bridged mode the uplink's addresses live on the bridge; if the distribution's own network
    configuration also gives them to the uplink at boot, remove them there (the replay runs before it,
    so the distribution's configuration would otherwise add them back to the uplink).
"""

EXAMPLES = r"""
- name: Keep the networks across reboots
  nqrust.microvm.fc_network_persist: {}

- name: Forget them (the networks stay up until the next reboot)
  nqrust.microvm.fc_network_persist:
    state: absent
"""

RETURN = r"""
changed:
  description: Whether a file was written or removed (or the unit enabled).
  returned: always
  type: bool
changes:
  description: The changes, in order.
  returned: always
  type: list
  elements: dict
files:
  description: The replay files and the unit, path to content, as they are after the run.
  returned: always
  type: dict
bridges:
  description: The bridges the replay rebuilds.
  returned: always
  type: list
  elements: str
  sample: [fcbr0, fcbr1]
tables:
  description: The nftables tables the replay rebuilds (family and name).
  returned: always
  type: list
  elements: str
  sample: [inet nqrust_microvm_fw_fcbr0]
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils import boot_replay
from ansible_collections.nqrust.microvm.plugins.module_utils.converge import converge
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall import FirewallSession
from ansible_collections.nqrust.microvm.plugins.module_utils.ip_forwarding import read_forwarding
from ansible_collections.nqrust.microvm.plugins.module_utils.managed_files import read_text, remove_file, write_file
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import COLLECTION_PREFIX, NftCli, NftError
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Handlers, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.sysctl import SysctlError

SYSTEMD_RUN_DIR = '/run/systemd/system'


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            directory=dict(type='path', default='/etc/nqrust-microvm/boot'),
            unit_dir=dict(type='path', default='/etc/systemd/system'),
        ),
        supports_check_mode=True,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)
    params = module.params
    nft_path = module.get_bin_path('nft', required=True)
    systemd = os.path.isdir(SYSTEMD_RUN_DIR)
    state = {}

    def validate(v):
        for param in ('directory', 'unit_dir'):
            if not os.path.isabs(params[param]):
                v.add(param, params[param], 'an absolute path')
        directory = params['directory']
        state['paths'] = {
            'links': os.path.join(directory, 'links.batch'),
            'nftables': os.path.join(directory, 'nftables.json'),
            'sysctl': os.path.join(directory, 'sysctl.conf'),
            'unit': os.path.join(params['unit_dir'], boot_replay.UNIT_NAME),
        }
        return params['state']

    def read(session):
        paths = state['paths']
        current = state['current'] = dict((path, read_text(path)) for path in paths.values())
        if params['state'] == 'present':
            links = session.netlink.links()
            bridges = [link for link in links if link.is_bridge and link.managed]
            ruleset = session.nft.list_ruleset()
            contents = [ruleset.content(table.family, table.name) for table in ruleset.tables
                        if table.name.startswith(COLLECTION_PREFIX)]
            state['bridges'] = sorted(link.name for link in bridges)
            state['tables'] = sorted('%s %s' % (item.table.family, item.table.name) for item in contents)
            state['wanted'] = {
                paths['links']: boot_replay.render_links(bridges, links, session.netlink.addresses(),
                                                         session.netlink.routes()),
                paths['nftables']: boot_replay.render_nftables(contents),
                paths['sysctl']: boot_replay.render_sysctl(read_forwarding(session.procsys)),
                paths['unit']: boot_replay.render_unit(params['directory'], module.get_bin_path('ip') or '/usr/sbin/ip',
                                                       nft_path, module.get_bin_path('sysctl') or '/usr/sbin/sysctl'),
            }
        else:
            state.update(bridges=[], tables=[], wanted=dict((path, None) for path in paths.values()))
        return current

    def plan(_desired, current):
        changes = []
        for path, content in sorted(state['wanted'].items()):
            if current.get(path) != content:
                action = 'write' if content is not None else 'delete'
                changes.append(Change(action, 'file', path, Phase.CREATE, details={'content': content}))
        unit_changed = any(change.target == state['paths']['unit'] for change in changes)
        if systemd and unit_changed:
            # disable runs before the unit file goes (removals run first, in reverse phase order)
            present = params['state'] == 'present'
            changes.append(Change('enable' if present else 'disable', 'unit', boot_replay.UNIT_NAME, Phase.UP,
                                  removal=not present))
        return changes

    def after(_desired, current, changes):
        final = dict(current)
        for change in changes:
            if change.kind == 'file':
                final[change.target] = change.details['content']
        return final

    def handlers(_session):
        previous = {}

        def write(change):
            previous[change.target] = read_text(change.target)
            write_file(change.target, change.details['content'])

        def delete(change):
            previous[change.target] = read_text(change.target)
            remove_file(change.target)

        def restore(change, _result):
            if previous.get(change.target) is None:
                remove_file(change.target)
            else:
                write_file(change.target, previous[change.target])

        def systemctl(change):
            verb = 'disable' if change.action == 'disable' else 'enable'
            argv = [module.get_bin_path('systemctl', required=True), 'daemon-reload']
            module.run_command(argv, check_rc=True)
            module.run_command(argv[:1] + [verb, boot_replay.UNIT_NAME], check_rc=True)

        return (Handlers()
                .register('write', 'file', write, restore)
                .register('delete', 'file', delete, restore)
                .register('enable', 'unit', systemctl)
                .register('disable', 'unit', systemctl))

    def report(_session, changes, _check_mode):
        final = after(None, state['current'], changes)
        return {'files': dict((path, text) for path, text in final.items() if text is not None),
                'bridges': state['bridges'], 'tables': state['tables']}

    result = converge(module, validate, read, plan, handlers, after=after, report=report,
                      session_factory=lambda: FirewallSession(NftCli(nft_path)),
                      operational_errors=(NetlinkOperationError, NftError, SysctlError, OSError))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
