# Copyright (c) 2026 NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the nqrust.microvm.netns connection plugin; they need no root.

A stand-in ``ip`` script drops ``netns exec NAME`` and runs the rest of the command line,
and logs its arguments, so that the real transfer and pipelining code paths run without
creating namespaces.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

from ansible_collections.nqrust.microvm.plugins.connection import netns as netns_plugin

FAKE_IP = """#!/bin/sh
# stand-in for "ip netns exec NAME CMD...": log the arguments, then run CMD...
log="$(dirname "$0")/ip.log"
for arg in "$@"; do printf '%s\\0' "$arg" >> "$log"; done
printf '\\n' >> "$log"
[ "$1" = netns ] && [ "$2" = exec ] || { echo "fake ip: unexpected arguments: $*" >&2; exit 99; }
if [ "$3" = gone ]; then echo "Cannot open network namespace \\"gone\\": No such file or directory" >&2; exit 255; fi
shift 3
command -v "$1" > /dev/null || { echo "exec of \\"$1\\" failed: No such file or directory" >&2; exit 1; }
exec "$@"
"""

CAPS_ROOT = 'Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n'
CAPS_NONE = 'Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t0000000000000000\n'


@pytest.fixture
def tmp_dir():
    """A temporary directory that is removed afterwards (pytest's tmp_path keeps old ones)."""
    path = Path(tempfile.mkdtemp(prefix='netns-unit-'))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(tmp_dir, monkeypatch):
    """A fake ip in tmp/bin, a fake /run/netns with namespace 'hv1', and root capabilities."""
    tmp_path = tmp_dir
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    fake_ip = bindir / 'ip'
    fake_ip.write_text(FAKE_IP)
    fake_ip.chmod(0o755)

    run_dir = tmp_path / 'run-netns'
    run_dir.mkdir()
    (run_dir / 'hv1').touch()

    status = tmp_path / 'status'
    status.write_text(CAPS_ROOT)

    monkeypatch.setattr(netns_plugin.Connection, 'netns_run_dir', str(run_dir))
    monkeypatch.setattr(netns_plugin.Connection, 'proc_status_path', str(status))
    monkeypatch.setattr(netns_plugin.Connection, 'ip_fallback_dirs', ())
    monkeypatch.setenv('PATH', '%s:%s' % (bindir, os.environ.get('PATH', '/usr/bin:/bin')))
    monkeypatch.delenv('ANSIBLE_NETNS_IP_EXECUTABLE', raising=False)
    monkeypatch.delenv('ANSIBLE_NETNS_EXECUTABLE', raising=False)

    class Env:
        tmp = tmp_path
        ip = str(fake_ip)
        log = bindir / 'ip.log'
        run = run_dir
        proc_status = status

        def calls(self):
            """Argument lists the fake ip was started with, oldest first."""
            if not self.log.exists():
                return []
            return [line.split(b'\0')[:-1] for line in self.log.read_bytes().splitlines()]

    return Env()


def make_conn(**var_options):
    """A netns connection with the given variables, as the task executor would set them."""
    var_options.setdefault('inventory_hostname', 'hv1')
    conn = connection_loader.get('nqrust.microvm.netns', PlayContext(), '/dev/null')
    conn.set_options(var_options=var_options)
    return conn


# --------------------------------------------------------------------------- documentation

def test_documentation_is_complete():
    doc = yaml.safe_load(netns_plugin.DOCUMENTATION)
    assert doc['name'] == 'netns'
    assert re.match(r'^[^()]+ \(@[\w-]+\)$', doc['author'])
    assert doc['short_description'] and doc['description'] and doc['notes']
    assert set(doc['options']) == {'remote_addr', 'ip_executable', 'executable'}
    for name, option in doc['options'].items():
        assert option.get('description'), name
        assert option.get('type') == 'string', name
    assert 'connection_pipelining' in doc['extends_documentation_fragment']
    examples = yaml.safe_load(netns_plugin.EXAMPLES)
    hypervisors = examples['all']['children']['hypervisors']
    assert hypervisors['vars']['ansible_connection'] == 'nqrust.microvm.netns'


def test_loader_finds_plugin_with_pipelining():
    conn = make_conn()
    assert isinstance(conn, netns_plugin.Connection)
    assert conn.has_pipelining
    assert conn.transport == 'nqrust.microvm.netns'


# --------------------------------------------------------------------------- options

@pytest.mark.parametrize('var_options, expected', [
    ({'inventory_hostname': 'hv1'}, 'hv1'),
    ({'inventory_hostname': 'hv1', 'ansible_host': 'ns-a'}, 'ns-a'),
    ({'inventory_hostname': 'hv1', 'ansible_netns_name': 'ns-b'}, 'ns-b'),
    ({'inventory_hostname': 'hv1', 'ansible_host': '10.0.0.2', 'ansible_netns_name': 'ns-c'}, 'ns-c'),
])
def test_namespace_name_precedence(var_options, expected):
    assert make_conn(**var_options).netns_name == expected


def test_defaults():
    conn = make_conn()
    assert conn.get_option('ip_executable') == 'ip'
    assert conn.get_option('executable') == '/bin/sh'
    assert conn.get_option('pipelining') is False


def test_ip_found_on_path(env):
    assert make_conn()._ip_executable() == env.ip


def test_ip_fallback_dirs(env, monkeypatch):
    monkeypatch.setenv('PATH', str(env.tmp / 'nowhere'))
    monkeypatch.setattr(netns_plugin.Connection, 'ip_fallback_dirs', (str(env.tmp / 'empty'), os.path.dirname(env.ip)))
    assert make_conn()._ip_executable() == env.ip


def test_ip_not_searched_in_working_directory(env, monkeypatch):
    monkeypatch.setenv('PATH', ':relative/bin')
    monkeypatch.chdir(os.path.dirname(env.ip))
    with pytest.raises(AnsibleError, match="Cannot find the 'ip' program"):
        make_conn()._ip_executable()


def test_ip_not_found(env, monkeypatch):
    monkeypatch.setenv('PATH', str(env.tmp / 'nowhere'))
    with pytest.raises(AnsibleError, match=r"Cannot find the 'ip' program .*ansible_netns_ip_executable"):
        make_conn()._ip_executable()


def test_ip_executable_from_var(env):
    custom = env.tmp / 'iproute2-ip'
    custom.write_text(FAKE_IP)
    custom.chmod(0o755)
    assert make_conn(ansible_netns_ip_executable=str(custom))._ip_executable() == str(custom)


def test_ip_executable_from_env(env, monkeypatch):
    monkeypatch.setenv('ANSIBLE_NETNS_IP_EXECUTABLE', env.ip)
    conn = make_conn()
    assert conn.get_option('ip_executable') == env.ip


def test_ip_executable_missing_path(env):
    conn = make_conn(ansible_netns_ip_executable=str(env.tmp / 'no-such-ip'))
    with pytest.raises(AnsibleError, match='does not exist or is not executable'):
        conn._ip_executable()


def test_executable_from_var():
    conn = make_conn(ansible_netns_executable='/bin/bash')
    cmd = conn._build_command('/sbin/ip', 'hv1', 'echo hi')
    assert cmd == [b'/sbin/ip', b'netns', b'exec', b'hv1', b'/bin/bash', b'-c', b'echo hi']


# --------------------------------------------------------------------------- command construction

def test_build_command_without_arguments():
    cmd = make_conn()._build_command('/usr/sbin/ip', 'hv1', "/bin/sh -c 'echo ~'")
    assert cmd == [b'/usr/sbin/ip', b'netns', b'exec', b'hv1', b'/bin/sh', b'-c', b"/bin/sh -c 'echo ~'"]


def test_build_command_passes_paths_as_arguments():
    cmd = make_conn()._build_command('/usr/sbin/ip', 'hv1', 'cat > "$1"', '/tmp/a b$(x)')
    # the path is never pasted into the script: it arrives as $1
    assert cmd == [b'/usr/sbin/ip', b'netns', b'exec', b'hv1', b'/bin/sh', b'-c', b'cat > "$1"', b'netns-sh', b'/tmp/a b$(x)']


def test_exec_command_runs_through_ip_netns_exec(env):
    conn = make_conn()
    rc, out, err = conn.exec_command("/bin/sh -c 'echo out; echo err >&2; exit 3'")
    assert (rc, out, err) == (3, b'out\n', b'err\n')
    assert env.calls() == [[b'netns', b'exec', b'hv1', b'/bin/sh', b'-c', b"/bin/sh -c 'echo out; echo err >&2; exit 3'"]]


def test_exec_command_feeds_in_data_for_pipelining(env):
    conn = make_conn(ansible_pipelining=True)
    data = bytes(range(256)) * 300
    rc, out, err = conn.exec_command('cat', in_data=data)
    assert rc == 0 and err == b''
    assert out == data


def test_exec_command_without_in_data_gets_eof(env):
    rc, out, err = make_conn().exec_command('cat; echo done')
    assert (rc, out, err) == (0, b'done\n', b'')


def test_exec_command_keeps_command_exit_255(env):
    rc, out, err = make_conn().exec_command('echo boom >&2; exit 255')
    assert (rc, err) == (255, b'boom\n')


def test_namespace_deleted_while_running(env):
    (env.run / 'gone').touch()  # the check passes, then ip cannot open it
    conn = make_conn(ansible_netns_name='gone')
    with pytest.raises(AnsibleConnectionFailure, match=r"Network namespace 'gone' does not exist .*ip netns list"):
        conn.exec_command('true')


@pytest.mark.parametrize('stderr, error, pattern', [
    (b'setting the network namespace "hv1" failed: Operation not permitted\n', AnsibleConnectionFailure, 'CAP_SYS_ADMIN'),
    (b'mount of /sys failed: Operation not permitted\n', AnsibleConnectionFailure, 'could not enter'),
    (b'setting the network namespace "hv1" failed: Invalid argument\n', AnsibleConnectionFailure,
     r"could not enter network namespace 'hv1': setting"),
])
def test_ip_failures_are_reported(stderr, error, pattern):
    with pytest.raises(error, match=pattern):
        make_conn()._raise_for_ip_failure('hv1', 255, stderr)


def test_shell_that_cannot_start_is_reported():
    conn = make_conn(ansible_netns_executable='/bin/nosh')
    with pytest.raises(AnsibleError, match=r"could not start the shell '/bin/nosh' .*executable option"):
        conn._raise_for_ip_failure('hv1', 1, b'exec of "/bin/nosh" failed: No such file or directory\n')


def test_missing_shell_end_to_end(env):
    conn = make_conn(ansible_netns_executable=str(env.tmp / 'nosh'))
    with pytest.raises(AnsibleError, match='could not start the shell'):
        conn.exec_command('true')


def test_other_failures_are_the_commands():
    conn = make_conn()
    conn._raise_for_ip_failure('hv1', 1, b'Cannot open network namespace "x": nope\n')
    conn._raise_for_ip_failure('hv1', 255, b'some error\n')
    conn._raise_for_ip_failure('hv1', 1, b'exec of "/bin/other" failed: No such file or directory\n')


# --------------------------------------------------------------------------- preflight checks

def test_missing_namespace_message(env):
    conn = make_conn(inventory_hostname='hv9')
    with pytest.raises(AnsibleConnectionFailure) as err:
        conn._connect()
    message = str(err.value)
    assert "Network namespace 'hv9' does not exist" in message
    assert os.path.join(str(env.run), 'hv9') in message
    assert 'ip netns list' in message
    assert 'ansible_netns_name' in message
    assert env.calls() == []  # nothing was run
    assert not conn.connected


def test_missing_namespace_fails_every_operation(env):
    conn = make_conn(ansible_netns_name='hv9')
    src = env.tmp / 'src'
    src.write_bytes(b'x')
    for call in (lambda: conn.exec_command('true'),
                 lambda: conn.put_file(str(src), '/tmp/dst'),
                 lambda: conn.fetch_file('/etc/hostname', str(env.tmp / 'dst'))):
        with pytest.raises(AnsibleConnectionFailure, match="'hv9' does not exist"):
            call()
    assert env.calls() == []


def test_existing_namespace_connects(env):
    conn = make_conn()
    assert conn._connect() is conn
    assert conn.connected
    conn.close()
    assert not conn.connected


@pytest.mark.parametrize('name', ['', 'a/b', '.', '..', '../etc'])
def test_invalid_namespace_names(env, name):
    conn = make_conn(inventory_hostname='hv1', ansible_netns_name=name)
    with pytest.raises(AnsibleConnectionFailure, match='not a valid network namespace name'):
        conn._connect()


def test_without_cap_sys_admin(env):
    env.proc_status.write_text(CAPS_NONE)
    conn = make_conn()
    with pytest.raises(AnsibleConnectionFailure, match=r'needs root \(CAP_SYS_ADMIN\)'):
        conn._connect()
    assert env.calls() == []


def test_unreadable_capabilities_do_not_block(env):
    env.proc_status.unlink()
    assert make_conn()._connect().connected


def test_remote_user_is_the_controller_user(env):
    conn = make_conn()
    conn._connect()
    assert conn._play_context.remote_user == conn.default_user


# --------------------------------------------------------------------------- file transfer

def test_put_file_streams_bytes(env):
    data = os.urandom(300000) + b'\0\r\n\xff'
    src = env.tmp / 'src.bin'
    src.write_bytes(data)
    dst = env.tmp / 'dir with space' / "it's $dst"
    dst.parent.mkdir()
    make_conn().put_file(str(src), str(dst))
    assert dst.read_bytes() == data
    call = env.calls()[-1]
    assert call[:6] == [b'netns', b'exec', b'hv1', b'/bin/sh', b'-c', b'cat > "$1"']
    assert call[-1] == str(dst).encode()


def test_put_file_truncates_existing(env):
    src = env.tmp / 'src'
    src.write_bytes(b'short')
    dst = env.tmp / 'dst'
    dst.write_bytes(b'a much longer old content')
    make_conn().put_file(str(src), str(dst))
    assert dst.read_bytes() == b'short'


def test_put_file_empty(env):
    src = env.tmp / 'empty'
    src.write_bytes(b'')
    dst = env.tmp / 'dst'
    make_conn().put_file(str(src), str(dst))
    assert dst.read_bytes() == b''


def test_put_file_missing_source(env):
    with pytest.raises(AnsibleFileNotFound, match='does not exist: .*no-such-file'):
        make_conn().put_file(str(env.tmp / 'no-such-file'), str(env.tmp / 'dst'))
    assert env.calls() == []


def test_put_file_target_directory_missing(env):
    src = env.tmp / 'src'
    src.write_bytes(b'x')
    with pytest.raises(AnsibleError, match=r"failed to copy .* in network namespace 'hv1' \(exit status"):
        make_conn().put_file(str(src), str(env.tmp / 'missing-dir' / 'dst'))


def test_fetch_file_streams_bytes(env):
    data = os.urandom(200000) + b'\0\n'
    src = env.tmp / 'remote file $(x)'
    src.write_bytes(data)
    dst = env.tmp / 'fetched'
    make_conn().fetch_file(str(src), str(dst))
    assert dst.read_bytes() == data
    assert env.calls()[-1][-1] == str(src).encode()
    assert [p.name for p in env.tmp.iterdir() if p.name.startswith('.netns-fetch-')] == []


def test_fetch_file_new_file_mode_follows_umask(env):
    src = env.tmp / 'src'
    src.write_bytes(b'abc')
    dst = env.tmp / 'dst'
    old = os.umask(0o027)
    try:
        make_conn().fetch_file(str(src), str(dst))
    finally:
        os.umask(old)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o640


def test_fetch_file_keeps_mode_of_replaced_file(env):
    src = env.tmp / 'src'
    src.write_bytes(b'new')
    dst = env.tmp / 'dst'
    dst.write_bytes(b'old')
    dst.chmod(0o604)
    make_conn().fetch_file(str(src), str(dst))
    assert dst.read_bytes() == b'new'
    assert stat.S_IMODE(dst.stat().st_mode) == 0o604


def test_fetch_file_missing_source_leaves_destination_alone(env):
    dst = env.tmp / 'dst'
    dst.write_bytes(b'keep me')
    with pytest.raises(AnsibleFileNotFound, match=r"no-such-file does not exist in network namespace 'hv1'"):
        make_conn().fetch_file(str(env.tmp / 'no-such-file'), str(dst))
    assert dst.read_bytes() == b'keep me'
    assert sorted(p.name for p in env.tmp.iterdir() if p.name.startswith('.netns-fetch-')) == []


def test_fetch_file_directory_fails(env):
    with pytest.raises(AnsibleError, match=r"failed to fetch .* \(exit status"):
        make_conn().fetch_file(str(env.tmp), str(env.tmp / 'dst'))
    assert not (env.tmp / 'dst').exists()


def test_reset_is_harmless(env):
    conn = make_conn()
    conn._connect()
    conn.reset()
    assert conn.exec_command('echo ok')[1] == b'ok\n'
