"""Teardown proofs: a failing test, SIGINT, SIGTERM and SIGKILL all leave the machine as it was."""

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import lab as lablib
from lab import residue

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)

# A lab with everything the library can make: hosts, a veth pair, upstream, a bridge with a TAP,
# dnsmasq, a guest with a lease (its relay), a TCP listener and a plain background process.
BUILD = textwrap.dedent('''
    def build(lb):
        hv = lb.add_host('hv1', etc_files={'hosts': '127.0.0.1 localhost\\n'})
        lb.upstream(hv)
        other = lb.add_host('hv2')
        lb.connect(hv, 'eth1', other, 'eth1', '198.51.100.1/24', '198.51.100.2/24')
        hv.ip('link', 'add', 'br0', 'type', 'bridge')
        hv.add_address('br0', '10.30.0.1/24')
        hv.set_up('br0')
        hv.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap')
        hv.ip('link', 'set', 'dev', 'tap0', 'master', 'br0')
        hv.set_up('tap0')
        hv.dnsmasq('br0', ('10.30.0.10', '10.30.0.20'), router='10.30.0.1')
        guest = lb.add_guest('vm1', hv, 'tap0')
        guest.dhcp()
        assert guest.ping('10.30.0.1')
        other.tcp_listen(8080)
        hv.spawn(['sleep', '600'])
''')

SCRIPT_PLAIN = BUILD + textwrap.dedent('''
    import sys, time
    import lab
    lb = lab.Lab()
    build(lb)
    print('ready', lb.lab_id, flush=True)
    time.sleep(600)
''')

SCRIPT_WITH = BUILD + textwrap.dedent('''
    import sys, time
    import lab
    with lab.Lab() as lb:
        build(lb)
        print('ready', lb.lab_id, flush=True)
        time.sleep(600)
''')


def default_signals():
    """In the child: the default handling of the signals under test, even when the test runner
    was started with some of them ignored (``nohup`` ignores SIGHUP, and children inherit that)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def start_script(tmp_path, source):
    script = tmp_path / 'build_lab.py'
    script.write_text(source)
    env = dict(os.environ, PYTHONPATH=TESTS)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,  # pylint: disable=consider-using-with
                            preexec_fn=default_signals)  # pylint: disable=subprocess-popen-preexec-fn
    ready, _unused_w, _unused_x = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline().decode() if ready else ''
    if not line.startswith('ready '):
        proc.kill()
        out, err = proc.communicate(timeout=30)
        pytest.fail('the lab script did not get ready: %r %s %s' % (line, out.decode(), err.decode()))
    return proc, line.split()[1]


def assert_lab_is_complete(lab_id):
    found = residue.residue(lab_id)
    names = sorted(found['netns'])
    assert names == sorted(lablib.PREFIX + lab_id + '-' + host for host in ('hv1', 'hv2', 'upstream', 'vm1'))
    assert sorted(found['etc_netns']) == [lablib.PREFIX + lab_id + '-hv1', lablib.PREFIX + lab_id + '-vm1']
    assert found['state_dir'] == [lab_id] and os.listdir(os.path.join(lablib.STATE_ROOT, lab_id, 'tmp'))
    cmdlines = ' | '.join(found['process_cmdlines'])
    for needle in ('dnsmasq', 'tap_relay.py', 'tcp.py listen', 'sleep 600'):
        assert needle in cmdlines, needle


def assert_clean(lab_id, root_links_before):
    found = residue.residue(lab_id, root_links_before)
    assert residue.is_clean(found), found
    assert lablib.leftovers([lab_id]) == {kind: [] for kind in lablib.leftovers([lab_id])}


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=['SIGINT', 'SIGTERM', 'SIGHUP'])
@pytest.mark.parametrize('source', [SCRIPT_PLAIN, SCRIPT_WITH], ids=['atexit', 'with-block'])
def test_signal_tears_the_lab_down(tmp_path, sig, source):
    root_links = residue.root_links()
    proc, lab_id = start_script(tmp_path, source)
    try:
        assert_lab_is_complete(lab_id)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert_clean(lab_id, root_links)


@pytest.mark.parametrize('how', ['library', 'cli'])
def test_sweep_removes_the_lab_of_a_killed_process(tmp_path, how):
    root_links = residue.root_links()
    proc, lab_id = start_script(tmp_path, SCRIPT_PLAIN)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    try:
        assert_lab_is_complete(lab_id)  # SIGKILL leaves everything behind ...
    finally:
        if how == 'library':
            with pytest.raises(lablib.LabLeakError) as info:
                lablib.sweep(check=True, lab_ids=[lab_id])
            report = info.value.report
            assert len(report['namespaces']) == 4 and report['state_dirs'] and report['processes']
            assert lablib.sweep(check=True, lab_ids=[lab_id]) == {kind: [] for kind in report}
        else:
            cli = [sys.executable, '-m', 'lab', 'sweep', '--check', '--lab-id', lab_id]
            env = dict(os.environ, PYTHONPATH=TESTS)
            first = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120, check=False)
            assert first.returncode == 1 and lab_id in first.stderr
            second = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120, check=False)
            assert second.returncode == 0, second.stderr
    assert_clean(lab_id, root_links)  # ... and sweep removes it all


def test_teardown_is_idempotent_and_final():
    root_links = residue.root_links()
    instance = lablib.Lab()
    host = instance.add_host('a')
    host.spawn(['sleep', '600'])
    first = instance.teardown()
    assert first['namespaces'] == [instance.prefix + 'a'] and first['processes']
    assert instance.teardown() == {}
    with pytest.raises(lablib.LabError, match='torn down'):
        instance.add_host('b')
    assert_clean(instance.lab_id, root_links)


def test_teardown_waits_for_processes_that_ignore_sigterm():
    started = time.monotonic()
    with lablib.Lab() as instance:
        host = instance.add_host('a')
        proc = host.spawn(['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b'ready\n'
        proc.stdout.close()
        lab_id = instance.lab_id
    assert time.monotonic() - started < 15
    assert_clean(lab_id, None)
