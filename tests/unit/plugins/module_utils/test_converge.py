# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import contextlib
import errno

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils.converge import ConvergeFailure, converge
from ansible_collections.nqrust.microvm.plugins.module_utils.host_lock import HostLock, lock_path
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkOperationError
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import interface_name, vlan_id


class FakeModule(object):
    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


class Host(object):
    """A pretend host: a set of bridge names, changed by the handlers."""

    def __init__(self, bridges=(), fail_on=None):
        self.bridges = set(bridges)
        self.fail_on = fail_on
        self.sessions = 0

    @contextlib.contextmanager
    def session(self):
        self.sessions += 1
        yield self

    def do(self, change):
        if change.target == self.fail_on:
            raise NetlinkOperationError("creating bridge '%s'" % change.target, errno.EPERM)
        if change.action == 'create':
            self.bridges.add(change.target)
        else:
            self.bridges.discard(change.target)

    def undo(self, change, result):
        if change.action == 'create':
            self.bridges.discard(change.target)
        else:
            self.bridges.add(change.target)


def validate_names(names):
    def validate(validator):
        return set(filter(None, (validator.check(interface_name, 'bridges[%d]' % n, name) for n, name in enumerate(names))))
    return validate


def read(session):
    return set(session.bridges)


def plan(desired, current):
    changes = [Change('create', 'bridge', name, Phase.CREATE) for name in sorted(desired - current)]
    changes += [Change('delete', 'bridge', name, Phase.CREATE) for name in sorted(current - desired)]
    return changes


def view(state):
    return {'bridges': sorted(state)}


def run(host, names, module, tmp_path, **kwargs):
    return converge(module, validate_names(names), read, plan, lambda session: (session.do, session.undo),
                    view=view, session_factory=host.session, lock_directory=str(tmp_path), lock_timeout=1, **kwargs)


def test_check_mode_predicts_exactly_what_the_real_run_does(tmp_path):
    checked_host = Host(['old'])
    checked = run(checked_host, ['br0', 'br1'], FakeModule(check_mode=True), tmp_path)
    assert checked_host.bridges == {'old'}  # nothing changed
    real_host = Host(['old'])
    real = run(real_host, ['br0', 'br1'], FakeModule(), tmp_path)
    assert real_host.bridges == {'br0', 'br1'}
    assert checked == real
    assert real['changed'] is True
    assert [c['description'] for c in real['changes']] == ["delete bridge 'old'", "create bridge 'br0'", "create bridge 'br1'"]
    assert real['diff'] == {'before': 'bridges:\n  - old\n', 'after': 'bridges:\n  - br0\n  - br1\n'}


def test_second_run_changes_nothing(tmp_path):
    host = Host()
    run(host, ['br0'], FakeModule(), tmp_path)
    again = run(host, ['br0'], FakeModule(), tmp_path)
    assert again['changed'] is False and again['changes'] == []


def test_every_validation_problem_is_reported_before_anything_runs(tmp_path):
    host = Host()
    module = FakeModule()
    with pytest.raises(SystemExit):
        run(host, ['ok0', 'bad name', 'x' * 16], module, tmp_path)
    assert host.sessions == 0
    assert module.failed['msg'].startswith('2 invalid parameters: ')
    assert len(module.failed['validation_errors']) == 2
    assert "parameter 'bridges[1]' (value 'bad name')" in module.failed['msg']


def test_failed_step_rolls_back_and_fails_the_module(tmp_path):
    host = Host(fail_on='br1')
    module = FakeModule()
    with pytest.raises(SystemExit):
        run(host, ['br0', 'br1'], module, tmp_path)
    assert host.bridges == set()
    failed = module.failed
    assert failed['msg'].startswith("step 2 of 2 (create bridge 'br1') failed: creating bridge 'br1': operation not permitted")
    assert failed['rolled_back'] is True and failed['changed'] is False
    assert failed['failed_change']['target'] == 'br1'


def test_held_lock_fails_with_the_lock_message(tmp_path):
    module = FakeModule()
    with HostLock(path=lock_path(directory=str(tmp_path))):
        with pytest.raises(SystemExit):
            converge(module, validate_names(['br0']), read, plan, lambda s: (s.do, s.undo),
                     session_factory=Host().session, lock_directory=str(tmp_path), lock_timeout=0.1)
    assert module.failed['msg'].startswith('could not take the host lock ')


def test_operational_errors_while_reading_fail_cleanly(tmp_path):
    def broken_read(session):
        raise NetlinkOperationError('reading the links', errno.EPERM)

    module = FakeModule()
    with pytest.raises(SystemExit):
        converge(module, validate_names(['br0']), broken_read, plan, lambda s: (s.do, s.undo),
                 session_factory=Host().session, lock_directory=str(tmp_path),
                 operational_errors=(NetlinkOperationError,))
    assert module.failed['msg'].startswith('reading the links: operation not permitted')


def test_without_module_failures_raise(tmp_path):
    with pytest.raises(ConvergeFailure) as info:
        converge(None, validate_names(['a/b']), read, plan, lambda s: (s.do, s.undo), lock=False)
    assert info.value.result['validation_errors']


def test_report_and_after_hooks(tmp_path):
    def validate(validator):
        return validator.check(vlan_id, 'vlan', '10')

    def after(desired, current, changes):
        return {'vlan': desired}

    def report(session, changes, check_mode):
        return {'vlan': 10, 'check_mode_seen': check_mode}

    result = converge(FakeModule(check_mode=True), validate, lambda s: {'vlan': None},
                      lambda d, c: [Change('add', 'vlan', str(d), 'vlan')], lambda s: (lambda c: None, None),
                      after=after, report=report, lock_directory=str(tmp_path))
    assert result['diff'] == {'before': 'vlan: null\n', 'after': 'vlan: 10\n'}
    assert result['vlan'] == 10 and result['check_mode_seen'] is True
