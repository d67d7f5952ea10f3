"""The machine-wide ``python -m lab sweep --check``, run where it cannot touch anybody else's labs.

A global sweep removes every ``nql-*`` lab on the machine. To prove that without removing the
labs of other tests running at the same time, it runs inside ``unshare``: its own mount and pid
namespaces, a tmpfs on /run, /tmp and /etc/netns and an overlay on /etc. Everything there vanishes when the
shell exits, so this test cannot leak either.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUILD = textwrap.dedent('''
    import os, subprocess
    import lab

    left = lab.Lab('left1')
    hv = left.add_host('hv1', etc_files={'hosts': '127.0.0.1 localhost\\n'})
    hv.ip('link', 'add', 'br0', 'type', 'bridge')
    hv.add_address('br0', '10.90.0.1/24')
    hv.set_up('br0')
    hv.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap')
    hv.ip('link', 'set', 'dev', 'tap0', 'master', 'br0')
    hv.set_up('tap0')
    hv.dnsmasq('br0', ('10.90.0.10', '10.90.0.20'))
    left.add_guest('vm1', hv, 'tap0').dhcp()
    hv.spawn(['sleep', '600'])
    left.postgres()
    left.detach()

    other = lab.Lab()
    other.add_host('x')
    other.detach()

    subprocess.run(['ip', 'netns', 'add', 'nql-oddball'], check=True)
    os.makedirs('/etc/netns/nql-stray')
    os.makedirs('/run/nqrust-lab/not-a-lab-id')
    print('built', other.lab_id, flush=True)
''')

SHELL = r'''
set -eu
script=$1
mount -t tmpfs tmpfs /run
cp "$script" /run/build.py
mkdir /run/host-tmp
mount --bind /tmp /run/host-tmp
mount -t tmpfs tmpfs /tmp
# a checkout (and its venv) under /tmp stays visible
case "$REPO" in /tmp/*) mkdir -p "$REPO"; mount --bind "/run/host-tmp/${REPO#/tmp/}" "$REPO" ;; esac
mkdir /run/etc-upper /run/etc-work
mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/etc-upper,workdir=/run/etc-work /etc
# a tmpfs of its own: the machine's /etc/netns (the overlay's lower layer) changes meanwhile
mkdir -p /etc/netns
mount -t tmpfs tmpfs /etc/netns
"$PY" /run/build.py
echo "netns-before: $(ip -j netns list)"
echo "procs-before: $(ps -eo comm= | grep -E -x 'dnsmasq|sleep|postgres|python.*' | sort -u | tr '\n' ' ')"
set +e
"$PY" -m lab sweep --check; echo "first-rc=$?"
"$PY" -m lab sweep --check; echo "second-rc=$?"
echo "netns-after: $(ip -j netns list)"
echo "state-after: $(ls -A /run/nqrust-lab 2>&1)"
echo "etc-after: $(ls -A /etc/netns 2>&1)"
echo "procs-after: $(ps -eo comm= | grep -E -x 'dnsmasq|sleep|postgres|python.*' | tr '\n' ' ')"
'''


@pytest.mark.skipif(shutil.which('unshare') is None, reason='util-linux unshare is needed to isolate the global sweep')
def test_global_sweep_removes_every_lab_and_reports_it(tmp_path):
    script = tmp_path / 'build.py'
    script.write_text(BUILD)
    env = dict(os.environ, PY=sys.executable, PYTHONPATH=TESTS, REPO=os.path.dirname(TESTS))
    env.pop('NQRUST_LAB_SESSION', None)
    result = subprocess.run(['unshare', '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private',
                             'bash', '-c', SHELL, 'sweep-test', str(script)],
                            capture_output=True, text=True, env=env, timeout=240, check=False)
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, out + err
    lines = dict(line.split(': ', 1) if ': ' in line else (line, '') for line in out.splitlines())
    other = next(line.split()[1] for line in out.splitlines() if line.startswith('built '))
    assert 'nql-left1-vm1' in lines['netns-before'] and 'nql-oddball' in lines['netns-before']
    assert lines['procs-before'].split() == ['dnsmasq', 'postgres', 'python', 'sleep'], 'dnsmasq, the relay, sleep and PostgreSQL run'
    assert 'first-rc=1' in out and 'second-rc=0' in out, out + err
    report = err.split('leftovers found and removed: ', 1)[1]
    for needle in ('nql-left1-hv1', 'nql-left1-vm1', 'nql-%s-x' % other, 'nql-oddball', '/etc/netns/nql-left1-hv1', '/etc/netns/nql-stray',
                   '/run/nqrust-lab/left1', '/run/nqrust-lab/not-a-lab-id', 'dnsmasq', 'tap_relay.py', 'sleep 600', 'postgres'):
        assert needle in report, needle
    assert lines['netns-after'] in ('', '[]')
    assert 'No such file or directory' in lines['state-after']
    assert lines['etc-after'] == ''
    assert lines['procs-after'].strip() == ''
