# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_config, dnsmasq_plan, dnsmasq_service, managed_files
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import PlanApplyError, apply_changes, order_changes
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator

LEASE = {'mac': 'aa:fc:00:00:00:05', 'ip': '10.0.0.5', 'hostname': 'db1'}


def make_spec(tmp_path, **params):
    base = {'bridge': 'fcbr0', 'cidr': '10.0.0.1/24', 'config_dir': str(tmp_path / 'etc'), 'state_dir': str(tmp_path / 'lib'),
            'run_dir': str(tmp_path / 'run'), 'unit_dir': str(tmp_path / 'units')}
    base.update(params)
    v = Validator()
    spec = dnsmasq_config.spec_from_params(v, base)
    assert v.ok, v.messages
    return spec


def host_state(spec, files=None, pid=None, supervisor='pidfile', systemd=None):
    all_files = dict((path, None) for path in dnsmasq_plan.role_paths(spec.paths).values())
    all_files.update(files or {})
    return dnsmasq_plan.HostState(files=all_files, times=dict((path, None) for path in all_files),
                                  daemon=dnsmasq_service.Daemon(pid=pid, pidfile_pid=pid), supervisor=supervisor, systemd=systemd)


def summary_of(changes):
    return [(change.action, change.kind, change.details.get('file') or change.target) for change in order_changes(changes)]


def test_a_new_instance_writes_its_files_then_starts(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec)
    changes = dnsmasq_plan.plan_instance(spec, host_state(spec), wanted)
    assert summary_of(changes) == [('write', 'file', 'config'), ('write', 'file', 'dhcp_hosts'),
                                   ('write', 'file', 'addn_hosts'), ('start', 'dnsmasq', 'fcbr0')]
    assert dnsmasq_plan.action_of(changes) == 'started'


def test_in_its_settings_nothing_happens(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec)
    assert dnsmasq_plan.plan_instance(spec, host_state(spec, wanted, pid=77), wanted) == []
    assert dnsmasq_plan.action_of([]) == 'none'


def test_a_static_lease_change_reloads_and_a_config_change_restarts(tmp_path):
    old = make_spec(tmp_path)
    current = host_state(old, dnsmasq_config.desired_files(old), pid=77)
    new = make_spec(tmp_path, dhcp={'static_leases': [LEASE]})
    changes = dnsmasq_plan.plan_instance(new, current, dnsmasq_config.desired_files(new))
    assert summary_of(changes) == [('write', 'file', 'dhcp_hosts'), ('write', 'file', 'addn_hosts'), ('reload', 'dnsmasq', 'fcbr0')]
    assert changes[-1].details['pid'] == 77 and dnsmasq_plan.action_of(changes) == 'reloaded'
    longer = make_spec(tmp_path, dhcp={'static_leases': [LEASE], 'lease_time': '2h'})
    changes = dnsmasq_plan.plan_instance(longer, current, dnsmasq_config.desired_files(longer))
    assert summary_of(changes)[-1] == ('restart', 'dnsmasq', 'fcbr0') and dnsmasq_plan.action_of(changes) == 'restarted'
    assert changes[-1].description == "restart dnsmasq 'fcbr0' (pidfile, configuration changed)"


def test_a_stopped_daemon_is_started_even_when_the_files_are_right(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec)
    assert summary_of(dnsmasq_plan.plan_instance(spec, host_state(spec, wanted), wanted)) == [('start', 'dnsmasq', 'fcbr0')]


def test_absent_stops_first_then_deletes_exactly_the_files_that_exist(tmp_path):
    spec = make_spec(tmp_path, state='absent')
    paths = spec.paths
    current = host_state(spec, {paths.config: 'x', paths.leases: 'y', paths.pidfile: '77\n'}, pid=77)
    changes = dnsmasq_plan.plan_instance(spec, current, {})
    assert summary_of(changes) == [('stop', 'dnsmasq', 'fcbr0'), ('delete', 'file', 'config'), ('delete', 'file', 'leases'),
                                   ('delete', 'file', 'pidfile')]
    assert dnsmasq_plan.action_of(changes) == 'stopped'
    assert dnsmasq_plan.plan_instance(spec, host_state(spec), {}) == []


def test_systemd_instance_writes_the_unit_enables_and_starts(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec, '/usr/sbin/dnsmasq', with_unit=True)
    off = {'active': False, 'enabled': False, 'main_pid': None, 'loaded': False}
    changes = dnsmasq_plan.plan_instance(spec, host_state(spec, supervisor='systemd', systemd=off), wanted)
    assert summary_of(changes) == [('write', 'file', 'config'), ('write', 'file', 'dhcp_hosts'), ('write', 'file', 'addn_hosts'),
                                   ('write', 'file', 'unit'), ('enable', 'dnsmasq', 'fcbr0'), ('start', 'dnsmasq', 'fcbr0')]
    running = {'active': True, 'enabled': True, 'main_pid': 90, 'loaded': True}
    assert dnsmasq_plan.plan_instance(spec, host_state(spec, wanted, pid=90, supervisor='systemd', systemd=running), wanted) == []


def test_switching_from_a_pidfile_daemon_to_systemd_stops_the_loose_daemon(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec, '/usr/sbin/dnsmasq', with_unit=True)
    off = {'active': False, 'enabled': False, 'main_pid': None, 'loaded': True}
    files = dict((path, text) for path, text in wanted.items() if path != spec.paths.unit)
    changes = dnsmasq_plan.plan_instance(spec, host_state(spec, files, pid=55, supervisor='systemd', systemd=off), wanted)
    assert summary_of(changes) == [('stop', 'dnsmasq', 'fcbr0'), ('write', 'file', 'unit'), ('enable', 'dnsmasq', 'fcbr0'),
                                   ('start', 'dnsmasq', 'fcbr0')]
    assert order_changes(changes)[0].details == {'supervisor': 'pidfile', 'pid': 55, 'reason': 'systemd runs it now'}


def test_pidfile_supervision_removes_a_leftover_unit(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec)
    running = {'active': True, 'enabled': True, 'main_pid': 90, 'loaded': True}
    files = dict(wanted, **{spec.paths.unit: '[Unit]\n'})
    changes = dnsmasq_plan.plan_instance(spec, host_state(spec, files, pid=90, supervisor='pidfile', systemd=running), wanted)
    assert summary_of(changes) == [('stop', 'dnsmasq', 'fcbr0'), ('disable', 'dnsmasq', 'fcbr0'), ('delete', 'file', 'unit'),
                                   ('start', 'dnsmasq', 'fcbr0')]


def test_file_diffs_show_each_file_as_text(tmp_path):
    spec = make_spec(tmp_path, dhcp={'static_leases': [LEASE]})
    wanted = dnsmasq_config.desired_files(spec)
    before = host_state(spec)
    changes = dnsmasq_plan.plan_instance(spec, before, wanted)
    after = dnsmasq_plan.predict_files(spec, before, changes, wanted)
    diffs = dnsmasq_plan.file_diffs(spec, before.files, after, dnsmasq_plan.summary(spec, 'pidfile', False),
                                    dnsmasq_plan.summary(spec, 'pidfile', True))
    assert diffs[0]['before'] == 'bridge: fcbr0\ndnsmasq: stopped\nstate: present\nsupervisor: pidfile\n'
    assert diffs[0]['after'] == 'bridge: fcbr0\ndnsmasq: running\nstate: present\nsupervisor: pidfile\n'
    assert [item['after_header'] for item in diffs[1:]] == [spec.paths.config, spec.paths.dhcp_hosts, spec.paths.addn_hosts]
    assert diffs[2]['before'] == '' and 'aa:fc:00:00:00:05,10.0.0.5,db1\n' in diffs[2]['after']


# --------------------------------------------------------------------------- handlers

class FakeSupervisor(object):
    name = 'pidfile'

    def __init__(self, fail_start=0):
        self.calls = []
        self.fail_start = fail_start
        self.next_pid = 500

    def start(self):
        self.calls.append('start')
        if self.fail_start:
            self.fail_start -= 1
            raise dnsmasq_service.ServiceError('dnsmasq did not start (exit status 2): bad things')
        self.next_pid += 1
        return self.next_pid

    def stop(self, pid):
        self.calls.append(('stop', pid))

    def reload(self, pid):
        self.calls.append(('reload', pid))
        return pid

    def restart(self, pid):
        self.stop(pid)
        return self.start()


def test_handlers_write_atomically_and_undo_puts_the_old_content_and_times_back(tmp_path):
    spec = make_spec(tmp_path)
    os.makedirs(os.path.dirname(spec.paths.config))
    with open(spec.paths.config, 'w', encoding='utf-8') as handle:
        handle.write('old\n')
    os.utime(spec.paths.config, ns=(1_000_000_000, 2_000_000_000))
    content, times = dnsmasq_plan.read_text(spec.paths.config)
    current = host_state(spec, {spec.paths.config: content}, pid=77)
    current.times[spec.paths.config] = times
    wanted = dnsmasq_config.desired_files(spec)
    changes = dnsmasq_plan.plan_instance(spec, current, wanted)
    supervisor = FakeSupervisor(fail_start=2)
    handlers = dnsmasq_plan.InstanceHandlers(spec, current, wanted, {'pidfile': supervisor})
    with pytest.raises(PlanApplyError) as caught:
        apply_changes(changes, handlers.do, handlers.undo)
    message = str(caught.value)
    assert message.startswith("step 4 of 4 (restart dnsmasq 'fcbr0' (pidfile, configuration changed)) failed: "
                              'dnsmasq did not start (exit status 2): bad things; dnsmasq did not start with the previous files either')
    assert 'rolled back the 3 steps applied before it' in message
    assert supervisor.calls == [('stop', 77), 'start', 'start']
    with open(spec.paths.config, encoding='utf-8') as handle:
        assert handle.read() == 'old\n'
    assert os.stat(spec.paths.config).st_mtime_ns == 2_000_000_000
    assert not os.path.exists(spec.paths.dhcp_hosts) and not os.path.exists(spec.paths.addn_hosts)
    assert [name for name in os.listdir(os.path.dirname(spec.paths.config)) if name.startswith('.')] == []


def test_a_failed_restart_brings_the_previous_configuration_back(tmp_path):
    spec = make_spec(tmp_path)
    old = make_spec(tmp_path, dhcp={'lease_time': '2h'})
    current = host_state(spec, dnsmasq_config.desired_files(old), pid=77)
    for path, text in dnsmasq_config.desired_files(old).items():
        managed_files.write_file(path, text)
    wanted = dnsmasq_config.desired_files(spec)
    supervisor = FakeSupervisor(fail_start=1)
    handlers = dnsmasq_plan.InstanceHandlers(spec, current, wanted, {'pidfile': supervisor})
    with pytest.raises(PlanApplyError) as caught:
        apply_changes(dnsmasq_plan.plan_instance(spec, current, wanted), handlers.do, handlers.undo)
    assert 'the previous files are back and dnsmasq runs with them again (pid 501)' in str(caught.value)
    assert dnsmasq_plan.read_text(spec.paths.config)[0] == dnsmasq_config.render_config(old)


def test_reload_and_stop_handlers(tmp_path):
    spec = make_spec(tmp_path, dhcp={'static_leases': [LEASE]})
    base = make_spec(tmp_path)
    current = host_state(spec, dnsmasq_config.desired_files(base), pid=77)
    wanted = dnsmasq_config.desired_files(spec)
    supervisor = FakeSupervisor()
    handlers = dnsmasq_plan.InstanceHandlers(spec, current, wanted, {'pidfile': supervisor})
    apply_changes(dnsmasq_plan.plan_instance(spec, current, wanted), handlers.do, handlers.undo)
    assert supervisor.calls == [('reload', 77)]
    assert dnsmasq_plan.read_text(spec.paths.dhcp_hosts)[0] == wanted[spec.paths.dhcp_hosts]


def test_systemd_changes_without_systemd_fail_clearly(tmp_path):
    spec = make_spec(tmp_path)
    wanted = dnsmasq_config.desired_files(spec)
    handlers = dnsmasq_plan.InstanceHandlers(spec, host_state(spec, wanted), wanted, {})
    change = dnsmasq_plan._service('start', spec, 'systemd')  # pylint: disable=protected-access
    with pytest.raises(dnsmasq_service.ServiceError, match='systemd supervision is not available'):
        handlers.do(change)
