# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a Firecracker host needs from its kernel: modules loaded, parameters set, both kept across boots.

Reading uses the kernel's own data files, never command output:

* loaded modules: ``/proc/modules``; built into the kernel: ``/lib/modules/<release>/modules.builtin``;
  loadable: ``/lib/modules/<release>/modules.dep``. Names compare with ``-`` and ``_`` alike, as
  the kernel does.
* a kernel built without module support (no ``/proc/modules``, no ``modules.builtin``) still shows
  what it has built in: ``/sys/module/<name>`` for code with parameters, and the device or proc
  entry a feature creates (``FEATURE_EVIDENCE``) for the rest.
* parameters: ``/proc/sys`` (see ``sysctl.py``).

``plan`` is pure: (desired, current) -> ``plan.Change`` list. The persistence files
(``modules-load.d`` and ``sysctl.d``) are rendered here so that check mode and diff show
exactly what the real run writes.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError

HEADER = '# Written by the nqrust.microvm collection (fc_host_kernel). Changes here are overwritten.\n'
_MODULE_RE = re.compile(r'^[A-Za-z0-9_-]{1,55}$')
_MODULE_FILE_RE = re.compile(r'\.ko(\.(xz|zst|gz))?$')

# What a feature leaves in /sys or /proc once its code runs, whether built in or loaded.
FEATURE_EVIDENCE = {
    'tun': ('/sys/class/misc/tun',),
    'vhost_net': ('/sys/class/misc/vhost-net',),
    'bridge': ('/sys/module/bridge', '/proc/sys/net/bridge'),
    '8021q': ('/proc/net/vlan',),
    'br_netfilter': ('/proc/sys/net/bridge/bridge-nf-call-iptables',),
    'nf_tables': ('/sys/module/nf_tables',),
}


def module_key(name):
    """The kernel's spelling of a module name: ``vhost-net`` and ``vhost_net`` are one module."""
    return name.replace('-', '_')


def module_name(param, value):
    """A kernel module name (letters, digits, ``_`` and ``-``; no paths, no options)."""
    text = str(value)
    if not _MODULE_RE.match(text):
        raise ValidationError(param, value, 'a kernel module name such as tun or vhost_net '
                                            '(letters, digits, _ and -, up to 55 characters)')
    return text


def _names_from_paths(lines):
    names = set()
    for line in lines:
        path = line.split(':', 1)[0].strip()
        if path:
            names.add(module_key(_MODULE_FILE_RE.sub('', os.path.basename(path))))
    return names


@dataclasses.dataclass(frozen=True)
class KernelModules(object):
    """The module picture of the running kernel."""

    loaded: frozenset
    builtin: frozenset
    loadable: frozenset
    present: frozenset = frozenset()   # names whose sysfs/procfs evidence exists

    def state(self, name):
        """``loaded``, ``builtin``, ``loadable`` (present on disk, not loaded) or ``missing``."""
        key = module_key(name)
        if key in self.loaded:
            return 'loaded'
        if key in self.builtin or key in self.present:
            return 'builtin'
        if key in self.loadable:
            return 'loadable'
        return 'missing'


def _read_lines(path):
    try:
        with open(path) as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def read_modules(names, proc_modules='/proc/modules', modules_dir=None, exists=os.path.exists):
    """Read ``/proc/modules``, the release's ``modules.builtin`` / ``modules.dep`` and the evidence of ``names``."""
    if modules_dir is None:
        modules_dir = os.path.join('/lib/modules', os.uname().release)
    loaded = frozenset(module_key(line.split()[0]) for line in _read_lines(proc_modules) if line.strip())
    builtin = frozenset(_names_from_paths(_read_lines(os.path.join(modules_dir, 'modules.builtin'))))
    loadable = frozenset(_names_from_paths(_read_lines(os.path.join(modules_dir, 'modules.dep'))))
    present = set()
    for name in names:
        key = module_key(name)
        paths = FEATURE_EVIDENCE.get(key, ()) + ('/sys/module/%s' % key,)
        if any(exists(path) for path in paths):
            present.add(key)
    return KernelModules(loaded=loaded, builtin=builtin, loadable=loadable, present=frozenset(present))


@dataclasses.dataclass(frozen=True)
class Desired(object):
    """What the module was asked for (validated)."""

    modules: Tuple[str, ...]
    optional_modules: Tuple[str, ...]
    sysctls: Tuple[Tuple[str, str], ...]
    persist: bool
    modules_load_file: str
    sysctl_file: str


@dataclasses.dataclass(frozen=True)
class Current(object):
    """What the host has now."""

    modules: Dict[str, str]            # requested name -> KernelModules.state()
    sysctls: Dict[str, str]            # requested name -> current value
    modules_load_file: Optional[str]   # file content, None when absent
    sysctl_file: Optional[str]


def render_modules_load(desired, current):
    """``modules-load.d`` content: every requested module the kernel can load (built-ins need no line)."""
    names = [name for name in desired.modules + desired.optional_modules
             if current.modules.get(name) in ('loaded', 'loadable')]
    return HEADER + ''.join('%s\n' % name for name in names)


def render_sysctl_file(desired):
    """``sysctl.d`` content for the requested parameters, in the order given."""
    return HEADER + ''.join('%s = %s\n' % item for item in desired.sysctls)


def plan(desired, current):
    """The changes, in order: load modules, set parameters, write the two persistence files."""
    changes = []
    for name in desired.modules + desired.optional_modules:
        if current.modules.get(name) == 'loadable':
            changes.append(Change('load', 'kernel_module', name, Phase.CREATE))
    for name, value in desired.sysctls:
        before = current.sysctls[name]
        if before != value:
            changes.append(Change('set', 'sysctl', name, Phase.CREATE,
                                  details={'before': {'value': before}, 'after': {'value': value}}))
    if desired.persist:
        files = ((desired.modules_load_file, current.modules_load_file, render_modules_load(desired, current)),
                 (desired.sysctl_file, current.sysctl_file, render_sysctl_file(desired)))
        for path, before, content in files:
            if before != content:
                changes.append(Change('write', 'file', path, Phase.UP, details={'content': content}))
    return changes


def after(desired, current, changes):
    """The state the changes lead to (the same for check mode and the real run)."""
    modules = dict(current.modules)
    sysctls = dict(current.sysctls)
    files = {desired.modules_load_file: current.modules_load_file, desired.sysctl_file: current.sysctl_file}
    for change in changes:
        if change.kind == 'kernel_module':
            modules[change.target] = 'loaded'
        elif change.kind == 'sysctl':
            sysctls[change.target] = change.details['after']['value']
        elif change.kind == 'file':
            files[change.target] = change.details['content']
    return Current(modules=modules, sysctls=sysctls, modules_load_file=files[desired.modules_load_file],
                   sysctl_file=files[desired.sysctl_file])


def view(desired, state):
    """What the diff shows of a state."""
    shown = {'kernel_modules': dict(state.modules), 'sysctls': dict(state.sysctls)}
    if desired.persist:
        shown['files'] = {desired.modules_load_file: state.modules_load_file,
                          desired.sysctl_file: state.sysctl_file}
    return shown


def changed_names(changes, kind):
    """Targets of the changes of one kind, in order."""
    return [change.target for change in changes if change.kind == kind]


def list_of(values):
    """A tuple without repeats, order kept."""
    seen: List[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return tuple(seen)
