# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import dnsmasq_service
from ansible_collections.nqrust.microvm.plugins.module_utils.dnsmasq_config import Paths


def fake_proc(root, processes):
    """A /proc-like tree: {pid: (argv, state letter)}; 'self' has no ns entry (netns check skipped)."""
    root.mkdir()
    for pid, (argv, state) in processes.items():
        directory = root / str(pid)
        directory.mkdir()
        (directory / 'cmdline').write_bytes(b'\0'.join(part.encode() for part in argv) + b'\0')
        (directory / 'stat').write_text('%d (%s) %s 1 1 1' % (pid, os.path.basename(argv[0]) if argv else 'x', state))
    return str(root)


@pytest.fixture(name='paths')
def paths_fixture(tmp_path):
    (tmp_path / 'run').mkdir()
    return Paths.of('fcbr0', str(tmp_path / 'etc'), str(tmp_path / 'lib'), str(tmp_path / 'run'), str(tmp_path / 'units'))


def ours(paths):
    return ['/usr/sbin/dnsmasq', '--conf-file=%s' % paths.config]


def test_is_instance_checks_program_config_and_liveness(tmp_path, paths):
    proc = fake_proc(tmp_path / 'proc-a', {
        100: (ours(paths), 'S'),
        101: (['/usr/sbin/dnsmasq', '--conf-file=/etc/other.conf'], 'S'),
        102: (['/usr/bin/python3', '--conf-file=%s' % paths.config], 'S'),
        103: (ours(paths), 'Z'),
    })
    assert dnsmasq_service.is_instance(100, paths.config, proc)
    assert not dnsmasq_service.is_instance(101, paths.config, proc)
    assert not dnsmasq_service.is_instance(102, paths.config, proc)
    assert not dnsmasq_service.is_instance(103, paths.config, proc)
    assert not dnsmasq_service.is_instance(104, paths.config, proc)
    assert not dnsmasq_service.is_instance(1, paths.config, proc)


def test_find_daemon_by_pidfile_scan_and_stale_pidfile(tmp_path, paths):
    proc = fake_proc(tmp_path / 'proc', {200: (ours(paths), 'S'), 201: (['/bin/sleep', '100'], 'S')})
    assert dnsmasq_service.find_daemon(paths, proc) == dnsmasq_service.Daemon(pid=200, pidfile_pid=None)
    with open(paths.pidfile, 'w', encoding='ascii') as handle:
        handle.write('200\n')
    found = dnsmasq_service.find_daemon(paths, proc)
    assert found.pid == 200 and found.running and not found.stale_pidfile
    with open(paths.pidfile, 'w', encoding='ascii') as handle:
        handle.write('201\n')   # a recycled pid: never taken for ours
    found = dnsmasq_service.find_daemon(paths, proc)
    assert found.pid == 200 and found.pidfile_pid == 201 and found.stale_pidfile


def test_a_stale_pidfile_is_never_signalled(tmp_path, paths, monkeypatch):
    proc = fake_proc(tmp_path / 'proc', {201: (['/bin/sleep', '100'], 'S')})
    sent = []
    monkeypatch.setattr(os, 'kill', lambda pid, sig: sent.append((pid, sig)))
    supervisor = dnsmasq_service.PidfileSupervisor('/usr/sbin/dnsmasq', paths, proc)
    supervisor.stop(201)
    with pytest.raises(dnsmasq_service.ServiceError, match='is no longer the dnsmasq'):
        supervisor.reload(201)
    assert sent == []


def test_start_reports_dnsmasqs_own_message(tmp_path, paths):
    script = tmp_path / 'dnsmasq'
    script.write_text('#!/bin/sh\necho "dnsmasq: failed to create listening socket: Address in use" >&2\nexit 2\n')
    script.chmod(0o755)
    supervisor = dnsmasq_service.PidfileSupervisor(str(script), paths)
    with pytest.raises(dnsmasq_service.ServiceError) as caught:
        supervisor.start()
    assert str(caught.value) == 'dnsmasq did not start (exit status 2): dnsmasq: failed to create listening socket: Address in use'


def test_resolve_supervisor(tmp_path):
    assert dnsmasq_service.resolve_supervisor('auto', systemd=True) == 'systemd'
    assert dnsmasq_service.resolve_supervisor('auto', systemd=False) == 'pidfile'
    assert dnsmasq_service.resolve_supervisor('pidfile', systemd=True) == 'pidfile'
    assert dnsmasq_service.systemd_running(str(tmp_path)) is True
    assert dnsmasq_service.systemd_running(str(tmp_path / 'missing')) is False


def test_systemd_supervisor_drives_systemctl(paths):
    calls = []
    answers = {'show': 'LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\nUnitFileState=enabled\n'}

    def run_command(argv):
        calls.append(argv[1:])
        return 0, answers.get(argv[1], ''), ''

    supervisor = dnsmasq_service.SystemdSupervisor(run_command, paths, '/bin/systemctl')
    assert supervisor.show() == {'loaded': True, 'active': True, 'enabled': True, 'main_pid': 4242}
    assert supervisor.restart(1) == 4242
    supervisor.reload(4242)
    supervisor.stop()
    supervisor.disable()
    supervisor.daemon_reload()
    unit = 'nqrust-dnsmasq-fcbr0.service'
    assert calls == [
        ['show', unit, '--property=LoadState,ActiveState,SubState,MainPID,UnitFileState'],
        ['restart', unit], ['show', unit, '--property=LoadState,ActiveState,SubState,MainPID,UnitFileState'],
        ['reload', unit], ['stop', unit], ['disable', unit], ['daemon-reload'],
    ]


def test_systemctl_failures_say_what_failed(paths):
    supervisor = dnsmasq_service.SystemdSupervisor(lambda argv: (1, '', 'Job failed. See journalctl -xe.'), paths)
    with pytest.raises(dnsmasq_service.ServiceError) as caught:
        supervisor.start()
    assert str(caught.value) == 'systemctl start nqrust-dnsmasq-fcbr0.service failed (exit status 1): Job failed. See journalctl -xe.'


def test_parse_show_of_an_unknown_unit():
    state = dnsmasq_service.parse_show('LoadState=not-found\nActiveState=inactive\nMainPID=0\nUnitFileState=\n')
    assert state == {'LoadState': 'not-found', 'ActiveState': 'inactive', 'MainPID': '0', 'UnitFileState': ''}
