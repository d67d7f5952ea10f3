# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One network's dnsmasq under the module contract: read, plan, apply with undo, report.

* ``read_host`` reads the instance's files, finds its daemon (pid file, or a
  scan of ``/proc``) and, where systemd runs, its unit's state; ``check_host``
  refuses what the host makes impossible (no such bridge, no address of the
  network on it, systemd asked for where it does not run).
* ``plan_instance`` is pure: (spec, host, wanted files) -> ``Change`` list.
  Files are written in the ``create`` phase; the daemon is started,
  restarted (the main configuration or unit changed: dnsmasq reads it only at
  start), or reloaded with SIGHUP (only the static leases or host names
  changed: dnsmasq re-reads those files, keeping its pid and its leases) in
  the ``up`` phase.  ``state=absent`` stops the daemon, then deletes exactly the
  instance's files (configuration, static leases, host names, leases, pid
  file, unit).
* ``InstanceHandlers`` applies the changes: files atomically (temporary file
  and rename), each with an undo that puts the previous content and times
  back.  A restart that fails puts the previous files back and starts dnsmasq
  with them again before failing.
* ``DnsmasqTask`` hands the pieces to ``converge``; its ``report`` returns the
  action taken, the daemon's pid, the rendered network, the leases, and the
  diff as one entry per file.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_config, dnsmasq_service
from ansible_collections.nqrust.microvm.plugins.module_utils.managed_files import remove_file, write_file
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase, render_state
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError, ValidationErrors

FILE_ROLES = ('config', 'dhcp_hosts', 'addn_hosts', 'unit', 'leases', 'pidfile')
DIFF_ROLES = ('config', 'dhcp_hosts', 'addn_hosts', 'unit')
RESTART_ROLES = ('config', 'unit')
SERVICE_KIND = 'dnsmasq'
ACTIONS = {'start': 'started', 'restart': 'restarted', 'reload': 'reloaded'}

ALLOWED_BRIDGE = ('bridge must be an existing Linux bridge carrying an IPv4 address inside cidr '
                  '(create it first, e.g. with nqrust.microvm.fc_bridge)')
ALLOWED_SYSTEMD = "supervisor 'systemd' needs systemd running as PID 1 (/run/systemd/system); use auto or pidfile"


class DnsmasqError(Exception):
    """The host cannot run the instance (e.g. dnsmasq is not installed)."""


# --------------------------------------------------------------------------- reading

@dataclasses.dataclass(frozen=True)
class HostState(object):
    """What one run read: file contents and times (``None``: missing), the daemon, the unit's state."""

    files: dict
    times: dict
    daemon: dnsmasq_service.Daemon
    supervisor: str
    systemd: Optional[dict] = None

    @property
    def systemd_pid(self):
        if self.systemd and self.systemd['active']:
            return self.systemd['main_pid']
        return None

    @property
    def loose_pid(self):
        """The pid of a dnsmasq of this network that systemd does not run (a pid file daemon)."""
        if self.daemon.pid is not None and self.daemon.pid != self.systemd_pid:
            return self.daemon.pid
        return None

    @property
    def running(self):
        return self.loose_pid is not None or bool(self.systemd and self.systemd['active'])


def role_paths(paths):
    return dict((role, getattr(paths, role)) for role in FILE_ROLES)


def read_text(path):
    """``(content, (atime_ns, mtime_ns))`` of a file, or ``(None, None)`` when it is missing."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
            stat = os.fstat(handle.fileno())
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None, None
        raise DnsmasqError('cannot read %s: %s' % (path, exc.strerror or exc)) from exc
    return data.decode('utf-8', 'surrogateescape'), (stat.st_atime_ns, stat.st_mtime_ns)


def read_host(spec, supervisor, systemd=None, proc=dnsmasq_service.PROC):
    """The instance as it is: ``systemd`` is a ``SystemdSupervisor`` where systemd runs, else ``None``."""
    files, times = {}, {}
    for path in role_paths(spec.paths).values():
        files[path], times[path] = read_text(path)
    try:
        unit_state = systemd.show() if systemd is not None else None
    except dnsmasq_service.ServiceError as exc:
        raise DnsmasqError(str(exc)) from exc
    return HostState(files=files, times=times, daemon=dnsmasq_service.find_daemon(spec.paths, proc),
                     supervisor=supervisor, systemd=unit_state)


def check_host(spec, session, systemd_running):
    """Refuse a missing bridge, a bridge without an address of the network, and systemd where it does not run."""
    if not spec.active:
        return
    errors = []
    if spec.supervisor == 'systemd' and not systemd_running:
        errors.append(ValidationError('supervisor', 'systemd', ALLOWED_SYSTEMD, 'systemd is not running on this host'))
    link = session.link(spec.bridge)
    if link is None and spec.bridge_pending:
        pass
    elif link is None:
        errors.append(ValidationError('bridge', spec.bridge, ALLOWED_BRIDGE, 'no such link'))
    elif not link.is_bridge:
        errors.append(ValidationError('bridge', spec.bridge, ALLOWED_BRIDGE, 'is a %s, not a bridge' % link.kind_label))
    else:
        mine = [addr.cidr for addr in session.addresses(link) if addr.version == 4]
        inside = [text for text in mine if ipaddress.ip_interface(text).ip in spec.network]
        if not inside and not spec.bridge_pending:
            errors.append(ValidationError('bridge', spec.bridge, ALLOWED_BRIDGE.replace('cidr', 'cidr (%s)' % spec.network),
                                          'it has %s' % (', '.join(mine) or 'no IPv4 address')))
    if errors:
        raise ValidationErrors(errors)


# --------------------------------------------------------------------------- plan

def _service(action, spec, supervisor, pid=None, reason=None, removal=None):
    details = {'supervisor': supervisor, 'pid': pid}
    if reason:
        details['reason'] = reason
    text = "%s dnsmasq '%s' (%s%s)" % (action, spec.bridge, supervisor, ', ' + reason if reason else '')
    return Change(action, SERVICE_KIND, spec.bridge, Phase.UP, details=details, description=text, removal=removal)


def _file(action, role, path):
    return Change(action, 'file', path, Phase.CREATE, details={'file': role}, removal=action == 'delete')


def plan_instance(spec, host, wanted):
    """The changes that make ``host`` match ``spec``; ``wanted`` is ``{path: content}`` of the files to have."""
    changes = []
    paths = role_paths(spec.paths)
    systemd = host.systemd
    if not spec.active:
        if host.loose_pid is not None:
            changes.append(_service('stop', spec, 'pidfile', host.loose_pid, removal=True))
        if systemd and systemd['active']:
            changes.append(_service('stop', spec, 'systemd', systemd['main_pid'], removal=True))
        if systemd and systemd['enabled']:
            changes.append(_service('disable', spec, 'systemd', removal=True))
        for role in FILE_ROLES:
            if host.files[paths[role]] is not None:
                changes.append(_file('delete', role, paths[role]))
        return changes

    supervisor = host.supervisor
    if supervisor == 'systemd' and host.loose_pid is not None:
        changes.append(_service('stop', spec, 'pidfile', host.loose_pid, reason='systemd runs it now', removal=True))
    if supervisor == 'pidfile':
        if systemd and systemd['active']:
            changes.append(_service('stop', spec, 'systemd', systemd['main_pid'], reason='a pid file daemon runs it now', removal=True))
        if systemd and systemd['enabled']:
            changes.append(_service('disable', spec, 'systemd', removal=True))
        if host.files[paths['unit']] is not None:
            changes.append(_file('delete', 'unit', paths['unit']))
    written = []
    for role in DIFF_ROLES:
        path = paths[role]
        if path in wanted and host.files[path] != wanted[path]:
            changes.append(_file('write', role, path))
            written.append(role)
    if supervisor == 'systemd' and not systemd['enabled']:
        changes.append(_service('enable', spec, 'systemd'))
    pid = host.loose_pid if supervisor == 'pidfile' else host.systemd_pid
    running = pid is not None if supervisor == 'pidfile' else bool(systemd['active'])
    if not running:
        changes.append(_service('start', spec, supervisor))
    elif any(role in RESTART_ROLES for role in written):
        changes.append(_service('restart', spec, supervisor, pid, reason='%s changed' % (
            'configuration' if 'config' in written else 'unit')))
    elif written:
        changes.append(_service('reload', spec, supervisor, pid, reason='static leases or host names changed'))
    return changes


def action_of(changes):
    """``started``/``restarted``/``reloaded``/``stopped``/``none``: what happened to the daemon."""
    verbs = [change.action for change in changes if change.kind == SERVICE_KIND]
    for verb in ('start', 'restart', 'reload'):
        if verb in verbs:
            return ACTIONS[verb]
    return 'stopped' if 'stop' in verbs else 'none'


def predict_files(spec, host, changes, wanted):
    """``{path: content}`` after the changes."""
    after = dict(host.files)
    for change in changes:
        if change.kind != 'file':
            continue
        after[change.target] = wanted[change.target] if change.action == 'write' else None
    return after


def summary(spec, supervisor, running):
    return {'bridge': spec.bridge, 'state': 'present' if spec.active else 'absent', 'supervisor': supervisor,
            'dnsmasq': 'running' if running else 'stopped'}


def file_diffs(spec, before, after, summary_before, summary_after):
    """Ansible's list form of ``diff``: the instance in brief, then each file as its text."""
    diffs = [{'before_header': 'dnsmasq %s' % spec.bridge, 'after_header': 'dnsmasq %s' % spec.bridge,
              'before': render_state(summary_before), 'after': render_state(summary_after)}]
    paths = role_paths(spec.paths)
    for role in DIFF_ROLES:
        path = paths[role]
        if before.get(path) is None and after.get(path) is None:
            continue
        diffs.append({'before_header': path, 'after_header': path,
                      'before': before.get(path) or '', 'after': after.get(path) or ''})
    return diffs


# --------------------------------------------------------------------------- apply

class InstanceHandlers(object):
    """``do``/``undo`` for the plan's changes (``apply_changes``)."""

    def __init__(self, spec, host, wanted, supervisors):
        self.spec = spec
        self.host = host
        self.wanted = wanted
        self.supervisors = supervisors
        self.pid = host.loose_pid if host.supervisor == 'pidfile' else host.systemd_pid
        self.unit_path = spec.paths.unit

    def _supervisor(self, change):
        supervisor = self.supervisors.get(change.details['supervisor'])
        if supervisor is None:
            raise dnsmasq_service.ServiceError('%s supervision is not available on this host' % change.details['supervisor'])
        return supervisor

    def _unit_touched(self, path):
        systemd = self.supervisors.get('systemd')
        if path == self.unit_path and systemd is not None:
            systemd.daemon_reload()

    def _put_back(self, path):
        old = self.host.files.get(path)
        if old is None:
            remove_file(path)
        else:
            write_file(path, old, times=self.host.times.get(path))
        self._unit_touched(path)

    def do(self, change):
        if change.kind == 'file':
            if change.action == 'write':
                write_file(change.target, self.wanted[change.target])
            else:
                remove_file(change.target)
            self._unit_touched(change.target)
            return None
        supervisor = self._supervisor(change)
        action = change.action
        if action == 'start':
            self.pid = supervisor.start()
        elif action == 'restart':
            self.pid = self._restart(supervisor, change.details['pid'])
        elif action == 'reload':
            supervisor.reload(change.details['pid'])
        elif action == 'stop':
            supervisor.stop(change.details['pid'])
            self.pid = None
        elif action == 'enable':
            supervisor.enable()
        elif action == 'disable':
            supervisor.disable()
        else:
            raise LookupError('no handler for %s %s' % (action, change.kind))
        return self.pid

    def _restart(self, supervisor, pid):
        try:
            return supervisor.restart(pid)
        except dnsmasq_service.ServiceError as exc:
            written = [path for path in self.host.files if path in self.wanted and self.host.files[path] != self.wanted[path]]
            try:
                for path in written:
                    self._put_back(path)
                again = supervisor.start()
                note = 'the previous files are back and dnsmasq runs with them again (pid %s)' % again
            except (dnsmasq_service.ServiceError, OSError) as second:
                note = 'dnsmasq did not start with the previous files either: %s' % second
            raise dnsmasq_service.ServiceError('%s; %s' % (exc, note)) from exc

    def undo(self, change, result):
        if change.kind == 'file':
            self._put_back(change.target)
            return
        supervisor = self._supervisor(change)
        if change.action == 'start':
            supervisor.stop(result)
        elif change.action == 'stop':
            supervisor.start()
        elif change.action == 'enable':
            supervisor.disable()
        elif change.action == 'disable':
            supervisor.enable()
        # a restart or reload is not undone: the files' undo runs next and the daemon keeps running


# --------------------------------------------------------------------------- the module's pieces

class DnsmasqTask(object):
    """The five pieces for ``converge``, sharing what one run read and planned.

    ``find_binary(name)`` returns a program's path or ``None``;
    ``run_command(argv)`` returns ``(rc, stdout, stderr)`` (``AnsibleModule.run_command``).
    """

    def __init__(self, params, find_binary, run_command, systemd_dir=dnsmasq_service.SYSTEMD_RUN_DIR,
                 proc=dnsmasq_service.PROC):
        self.params = params
        self.find_binary = find_binary
        self.run_command = run_command
        self.systemd_dir = systemd_dir
        self.proc = proc
        self.spec = None
        self.host = None
        self.wanted = {}
        self.supervisors = {}
        self.summary_before = None
        self.summary_after = None
        self.files_after = None

    def validate(self, validator):
        self.spec = dnsmasq_config.spec_from_params(validator, self.params)
        return self.spec

    def read(self, session):
        spec = self.spec
        systemd_running = dnsmasq_service.systemd_running(self.systemd_dir)
        check_host(spec, session, systemd_running)
        supervisor = dnsmasq_service.resolve_supervisor(spec.supervisor, systemd_running)
        dnsmasq_path = self.find_binary('dnsmasq')
        if spec.active and dnsmasq_path is None:
            raise DnsmasqError('dnsmasq is not installed on this host (Debian and Ubuntu: package dnsmasq-base; '
                               'Fedora and RHEL: package dnsmasq)')
        self.supervisors = {'pidfile': dnsmasq_service.PidfileSupervisor(dnsmasq_path or 'dnsmasq', spec.paths, self.proc)}
        if systemd_running:
            self.supervisors['systemd'] = dnsmasq_service.SystemdSupervisor(
                self.run_command, spec.paths, self.find_binary('systemctl') or 'systemctl')
        self.host = read_host(spec, supervisor, self.supervisors.get('systemd'), self.proc)
        if spec.active:
            self.wanted = dnsmasq_config.desired_files(spec, dnsmasq_path, self.find_binary('kill') or '/bin/kill',
                                                       with_unit=supervisor == 'systemd')
        return self.host

    def plan(self, spec, host):
        return plan_instance(spec, host, self.wanted)

    def after(self, spec, host, changes):
        self.summary_before = summary(spec, host.supervisor, host.running)
        self.summary_after = summary(spec, host.supervisor, spec.active)
        self.files_after = predict_files(spec, host, changes, self.wanted)
        return self.summary_after

    def view(self, state):
        if isinstance(state, HostState):
            return self.summary_before
        return state

    def handlers(self, session):  # pylint: disable=unused-argument
        return InstanceHandlers(self.spec, self.host, self.wanted, self.supervisors)

    def report(self, session, changes, check_mode):  # pylint: disable=unused-argument
        spec, host = self.spec, self.host
        action = action_of(changes)
        pid = None
        if spec.active:
            if check_mode:
                keeps = action in ('none', 'reloaded')
                pid = (host.loose_pid if host.supervisor == 'pidfile' else host.systemd_pid) if keeps else None
            elif host.supervisor == 'systemd':
                pid = self.supervisors['systemd'].show()['main_pid']
            else:
                pid = dnsmasq_service.find_daemon(spec.paths, self.proc).pid
        leases = []
        if spec.active and spec.dhcp_enabled:
            leases = dnsmasq_config.parse_leases(read_text(spec.paths.leases)[0])
        files = dict((role, path) for role, path in role_paths(spec.paths).items()
                     if spec.active and (role != 'unit' or host.supervisor == 'systemd'))
        return {
            'action': action,
            'pid': pid,
            'supervisor': host.supervisor,
            'network': spec.settings(),
            'files': files,
            'leases': leases,
            'diff': file_diffs(spec, host.files, self.files_after, self.summary_before, self.summary_after),
        }
