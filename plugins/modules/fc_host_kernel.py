# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_host_kernel
short_description: Load the kernel modules and set the kernel parameters a Firecracker host needs
version_added: 1.0.0
description:
  - Loads kernel modules (such as C(tun), C(vhost_net), C(bridge), C(8021q)) and sets kernel
    parameters (sysctls), and keeps both across reboots in a C(modules-load.d) and a C(sysctl.d)
    file of its own.
  - Reads the kernel's own data files (C(/proc/modules), C(modules.builtin), C(modules.dep),
    C(/proc/sys)); no command output is parsed. Modules are loaded with C(modprobe).
  - Every parameter is checked before anything changes; a module the kernel cannot load fails the
    task naming it, unless it is listed in O(optional_modules).
  - Check mode reports exactly the changes and diff of the real run; a second run changes nothing.
  - C(net.*) parameters belong to the network namespace the task runs in.
author:
  - NQRust MicroVM developers (@nqrust)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  modules:
    description:
      - Kernel modules that must be loaded or built in. A module the running kernel has neither
        built in nor on disk fails the task before anything changes.
    type: list
    elements: str
    default: [tun, bridge]
  optional_modules:
    description:
      - Kernel modules loaded when the kernel has them; those it lacks are returned in
        RV(unavailable_modules) with a warning instead of failing (for example C(8021q) on a kernel
        built without 802.1Q).
      - C(vhost_net) is optional by default; Firecracker's own virtio-net does not use it.
    type: list
    elements: str
    default: [vhost_net, 8021q]
  sysctls:
    description:
      - Kernel parameters and their values, such as C(net.core.rmem_max=16777216). Values with
        several fields are written space-separated.
      - Only the parameters listed here are touched.
    type: dict
    default: {}
  persist:
    description:
      - Write O(modules_load_file) and O(sysctl_file) so that the modules and parameters come back
        after a reboot (systemd-modules-load and systemd-sysctl read them).
    type: bool
    default: true
  modules_load_file:
    description: The C(modules-load.d) file this module owns.
    type: path
    default: /etc/modules-load.d/nqrust-microvm.conf
  sysctl_file:
    description: The C(sysctl.d) file this module owns.
    type: path
    default: /etc/sysctl.d/60-nqrust-microvm.conf
notes:
  - IP forwarding is not set here; the firewall module turns it on only for the network modes that
    need it.
"""

EXAMPLES = r"""
- name: The kernel pieces every Firecracker host needs
  nqrust.microvm.fc_host_kernel: {}

- name: Tuned for many VMs, with 802.1Q required
  nqrust.microvm.fc_host_kernel:
    modules: [tun, vhost_net, bridge, 8021q]
    optional_modules: []
    sysctls:
      net.core.rmem_max: 16777216
      net.core.wmem_max: 16777216
      net.ipv4.neigh.default.gc_thresh3: 16384
"""

RETURN = r"""
changed:
  description: Whether a module was loaded, a parameter set or a file written.
  returned: always
  type: bool
changes:
  description: The changes in the order they were (or, in check mode, would be) made.
  returned: always
  type: list
  elements: dict
  sample:
    - {action: load, kind: kernel_module, target: vhost_net, phase: create, details: {},
       description: "load kernel_module 'vhost_net'"}
loaded_modules:
  description: Modules this run loaded (would load, in check mode).
  returned: always
  type: list
  elements: str
  sample: [vhost_net]
set_sysctls:
  description: Parameters this run set (would set, in check mode).
  returned: always
  type: list
  elements: str
  sample: [net.core.rmem_max]
unavailable_modules:
  description: Names from O(optional_modules) that this kernel has neither built in nor on disk.
  returned: always
  type: list
  elements: str
  sample: [8021q]
kernel_modules:
  description: Every requested module and its state after the run (C(builtin), C(loaded), C(missing)).
  returned: always
  type: dict
  sample: {tun: builtin, vhost_net: loaded, bridge: loaded, 8021q: missing}
sysctls:
  description: Every requested parameter and its value after the run.
  returned: always
  type: dict
  sample: {net.core.rmem_max: "16777216"}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils import host_kernel, sysctl
from ansible_collections.nqrust.microvm.plugins.module_utils.converge import converge
from ansible_collections.nqrust.microvm.plugins.module_utils.managed_files import read_text, remove_file, write_file
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Handlers


class KernelHandlers(object):
    """do/undo for each kind of change."""

    def __init__(self, module, desired, current, procsys):
        self.module = module
        self.procsys = procsys
        self.desired = desired
        self.current = current

    def _modprobe(self, *args):
        rc, _out, err = self.module.run_command(['modprobe'] + list(args))
        if rc != 0:
            raise OSError('modprobe %s failed (exit %d): %s' % (' '.join(args), rc, err.strip()))

    def load(self, change):
        self._modprobe(change.target)

    def unload(self, change, _result):
        self._modprobe('-r', change.target)

    def set_sysctl(self, change):
        self.procsys.write(change.target, change.details['after']['value'])

    def restore_sysctl(self, change, _result):
        self.procsys.write(change.target, change.details['before']['value'])

    def write(self, change):
        write_file(change.target, change.details['content'])

    def restore_file(self, change, _result):
        previous = {self.desired.modules_load_file: self.current.modules_load_file,
                    self.desired.sysctl_file: self.current.sysctl_file}[change.target]
        if previous is None:
            remove_file(change.target)
        else:
            write_file(change.target, previous)

    def table(self):
        return (Handlers()
                .register('load', 'kernel_module', self.load, self.unload)
                .register('set', 'sysctl', self.set_sysctl, self.restore_sysctl)
                .register('write', 'file', self.write, self.restore_file))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            modules=dict(type='list', elements='str', default=['tun', 'bridge']),
            optional_modules=dict(type='list', elements='str', default=['vhost_net', '8021q']),
            sysctls=dict(type='dict', default={}),
            persist=dict(type='bool', default=True),
            modules_load_file=dict(type='path', default='/etc/modules-load.d/nqrust-microvm.conf'),
            sysctl_file=dict(type='path', default='/etc/sysctl.d/60-nqrust-microvm.conf'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    state = {}
    procsys = sysctl.ProcSys()

    def validate(v):
        modules = host_kernel.list_of(
            name for name in (v.check(host_kernel.module_name, 'modules', item) for item in params['modules']) if name)
        optional = host_kernel.list_of(
            name for name in (v.check(host_kernel.module_name, 'optional_modules', item)
                              for item in params['optional_modules'])
            if name and name not in modules)
        sysctls = []
        for key in sorted(params['sysctls']):
            name = v.check(sysctl.sysctl_name, 'sysctls', key)
            value = v.check(sysctl.sysctl_value, 'sysctls.%s' % key, params['sysctls'][key])
            if name and value is not None:
                sysctls.append((name, value))
        for param in ('modules_load_file', 'sysctl_file'):
            if not os.path.isabs(params[param]):
                v.add(param, params[param], 'an absolute path')
        desired = host_kernel.Desired(modules=modules, optional_modules=optional, sysctls=tuple(sysctls),
                                      persist=params['persist'], modules_load_file=params['modules_load_file'],
                                      sysctl_file=params['sysctl_file'])
        # which modules the kernel has is part of checking the input: a missing one fails up front
        kernel = host_kernel.read_modules(modules + optional)
        module_states = {name: kernel.state(name) for name in modules + optional}
        missing = [name for name in modules if module_states[name] == 'missing']
        for name in missing:
            v.add('modules', name, 'a module built into the running kernel (%s) or installed in /lib/modules/%s; '
                  'list it in optional_modules if the host may lack it' % (os.uname().release, os.uname().release))
        state.update(desired=desired, modules=module_states,
                     skipped=[name for name in optional if module_states[name] == 'missing'])
        return desired

    def read(_session):
        desired = state['desired']
        state['current'] = host_kernel.Current(
            modules=state['modules'],
            sysctls={name: procsys.read(name) for name, _value in desired.sysctls},
            modules_load_file=read_text(desired.modules_load_file),
            sysctl_file=read_text(desired.sysctl_file))
        return state['current']

    def show(view_state):
        return host_kernel.view(state['desired'], view_state)

    def report(_session, changes, _check_mode):
        final = host_kernel.after(state['desired'], state['current'], changes)
        return {
            'loaded_modules': host_kernel.changed_names(changes, 'kernel_module'),
            'set_sysctls': host_kernel.changed_names(changes, 'sysctl'),
            'unavailable_modules': list(state['skipped']),
            'kernel_modules': dict((name, 'loaded' if value == 'loadable' else value)
                                   for name, value in final.modules.items()),
            'sysctls': dict(final.sysctls),
        }

    def make_handlers(_session):
        return KernelHandlers(module, state['desired'], state['current'], procsys).table()

    result = converge(module, validate, read, host_kernel.plan, make_handlers, after=host_kernel.after,
                      view=show, report=report, operational_errors=(OSError, sysctl.SysctlError))
    for name in result['unavailable_modules']:
        module.warn('kernel module %s is not available on this kernel (%s); features that need it will not work'
                    % (name, os.uname().release))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
