"""Benchmark of fc_tap: 1000 TAPs in one call against ``ip -batch``, the no-op re-run, and bulk vs an Ansible loop.

Run as root with the lab importable (``make bench`` does: PYTHONPATH=tests)::

    python tests/bench/bench_fc_tap.py [--taps 1000] [--loop 200] [--rounds 3]

Every measurement runs in its own fresh lab namespace (a network namespace with one bridge),
and everything is removed afterwards.  Measurements are repeated ``--rounds`` times and the
best (lowest) time of each kind is used, because this machine is shared and other work only
ever adds time.

1. ``ip -batch`` (plus ``bridge -batch`` for the access VLAN when the kernel has bridge VLAN
   filtering) creates the TAPs and sets alias, MTU, master and up: the same work fc_tap does.
   ``create_vs_ip_batch`` is the best fc_tap call against the best ``ip -batch``.
2. One fc_tap call converges the same TAPs in a fresh namespace, as Ansible runs a module
   (``python -m ...fc_tap args.json`` inside the namespace: interpreter start, Ansible's argument
   parsing and result output included).  Then the same call again: the no-op re-run, ``--repeat``
   times, each after a run of the Ansible floor in the same host.
3. The Ansible floor: a module that takes the same arguments with the same argument spec and
   does nothing (it imports fc_tap for its argument spec, so the same code is loaded).  Every
   module call pays it (interpreter, ``import ansible``, checking 1000 argument entries, echoing
   them back), and it is about as long as the whole no-op: measured end to end, no no-op could
   come within 20 % of a create that takes twice ``ip -batch``.  ``noop_vs_create`` therefore
   compares what fc_tap itself does, ``(no-op - floor) / (create - floor)`` with the best no-op
   and floor times of each round, and is the median of the rounds; the end-to-end ratio is
   printed too.
4. The same ``--loop`` TAPs with a real ``ansible-playbook`` over the collection's netns
   connection: one task with ``taps:`` against a ``loop:`` of single-TAP tasks (pipelining on,
   as a tuned Ansible would run it).  The times are those of the task alone (timestamps taken
   by the play around it); whole playbook times are printed as well.

Targets (the script exits 1 when one is missed): create <= 2 x ip -batch, no-op <= 20 % of
create, bulk >= 20 x faster than the loop.  The last line is machine-readable::

    RESULT taps=1000 create_vs_ip_batch=... noop_vs_create=... loop_vs_bulk=...
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import lab
from lab import kernel
from lab.module_run import module_argv, module_path, run_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_CREATE = 2.0
TARGET_NOOP = 0.2
TARGET_LOOP = 20.0
VLAN = 100

FLOOR_MODULE = '''
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.nqrust.microvm.plugins.modules.fc_tap import ARGUMENT_SPEC
AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True).exit_json(changed=False)
'''


def say(text):
    sys.stdout.write(text + '\n')
    sys.stdout.flush()


def names(count):
    return ['bt%05d' % number for number in range(count)]


def hypervisor(lb, name, vlans):
    host = lb.add_host(name)
    host.ip('link', 'add', 'br0', 'type', 'bridge', *(('vlan_filtering', '1') if vlans else ()))
    host.set_up('br0')
    return host


def settle():
    """Give the kernel time to finish tearing down the last namespace (it does so in the background)."""
    time.sleep(3.0)


def timed(argv, env=None):
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure_ip_batch(count, vlans):
    with lab.Lab() as lb:
        host = hypervisor(lb, 'ipbatch', vlans)
        lines = []
        for name in names(count):
            lines.append('tuntap add dev %s mode tap' % name)
            lines.append('link set dev %s alias nqrust.microvm mtu 1500 master br0 up' % name)
        ip_file = os.path.join(lb.tmpdir, 'ip.batch')
        with open(ip_file, 'w', encoding='ascii') as handle:
            handle.write('\n'.join(lines) + '\n')
        elapsed = timed(['ip', '-n', host.netns, '-batch', ip_file])
        if vlans:
            bridge_file = os.path.join(lb.tmpdir, 'bridge.batch')
            with open(bridge_file, 'w', encoding='ascii') as handle:
                for name in names(count):
                    handle.write('vlan del dev %s vid 1\nvlan add dev %s vid %d pvid untagged\n' % (name, name, VLAN))
            elapsed += timed(['ip', 'netns', 'exec', host.netns, 'bridge', '-batch', bridge_file])
        made = sum(1 for link in host.ip_json('link', 'show', 'master', 'br0'))
        if made != count:
            raise SystemExit('ip -batch made %d TAPs, not %d' % (made, count))
    settle()
    return elapsed


def fc_tap_args(count, vlans):
    args = {'bridge': 'br0', 'taps': [{'name': name} for name in names(count)]}
    if vlans:
        args['vlan'] = VLAN
    return args


def timed_result(argv, env):
    """Seconds of a module process and its JSON result."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    try:
        return elapsed, json.loads(proc.stdout)
    except ValueError:
        raise SystemExit('%s gave no JSON result (exit %d): %s' % (argv[-1], proc.returncode, proc.stderr[-2000:])) from None


def measure_module(count, vlans, repeat):
    """Seconds of one fc_tap call making ``count`` TAPs, then of ``repeat`` no-op re-runs and floor runs, alternating.

    The re-runs and the floor module run in the same host, one after the other, so that both
    see the same machine; the module runs as Ansible runs it (``python -m ...fc_tap ARGS``).
    """
    with lab.Lab() as lb:
        host = hypervisor(lb, 'fctap', vlans)
        args = fc_tap_args(count, vlans)
        start = time.perf_counter()
        created = run_module(host, 'fc_tap', args)
        create = time.perf_counter() - start
        if created.get('failed') or len(created['changes']) < count:
            raise SystemExit('fc_tap failed: %s' % created.get('msg'))
        made = sum(1 for link in host.ip_json('link', 'show', 'master', 'br0'))
        if made != count:
            raise SystemExit('fc_tap made %d TAPs, not %d' % (made, count))
        stub = os.path.join(lb.tmpdir, 'floor_module.py')
        with open(stub, 'w', encoding='ascii') as handle:
            handle.write(FLOOR_MODULE)
        args_file = os.path.join(lb.tmpdir, 'args.json')
        with open(args_file, 'w', encoding='ascii') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([module_path(), os.environ.get('PYTHONPATH', '')]))
        module = ['ip', 'netns', 'exec', host.netns] + module_argv('fc_tap', args_file)
        floor = list(module)
        floor[floor.index('-m'):floor.index('-m') + 2] = [stub]
        noops, floors = [], []
        for dummy in range(repeat):
            floors.append(timed_result(floor, env)[0])
            elapsed, again = timed_result(module, env)
            if again.get('failed') or again['changed']:
                raise SystemExit('the re-run of fc_tap was not a no-op: %s' % (again.get('msg') or again['changes'][:3]))
            noops.append(elapsed)
    settle()
    return create, noops, floors


# --------------------------------------------------------------------------- bulk vs loop

PLAY = '''
- hosts: hv
  gather_facts: false
  tasks:
    - name: Start
      ansible.builtin.set_fact:
        started: "{{ now().timestamp() }}"
%s
    - name: Report
      ansible.builtin.debug:
        msg: "TASK_SECONDS {{ now().timestamp() | float - started | float }}"
'''


def playbook_env(root):
    collections = os.path.join(root, 'collections')
    namespace_dir = os.path.join(collections, 'ansible_collections', 'nqrust')
    os.makedirs(namespace_dir)
    os.symlink(REPO, os.path.join(namespace_dir, 'microvm'))
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections,
        'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'ANSIBLE_PIPELINING': '1',
        'ANSIBLE_LOCAL_TEMP': os.path.join(root, 'tmp'),
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable,
        'PATH': os.pathsep.join([os.path.dirname(sys.executable), env.get('PATH', '')]),
    })
    return env


def run_playbook(count, loop):
    """(task seconds, playbook seconds) of creating ``count`` TAPs with a loop or with one bulk call."""
    root = tempfile.mkdtemp(prefix='nqrust-bench-')
    try:
        env = playbook_env(root)
        with lab.Lab() as lb:
            host = hypervisor(lb, 'loop' if loop else 'bulk', False)
            inventory = os.path.join(root, 'hosts.yml')
            with open(inventory, 'w', encoding='ascii') as handle:
                handle.write('all:\n  hosts:\n    hv:\n      ansible_connection: nqrust.microvm.netns\n'
                             '      ansible_netns_name: %s\n      ansible_python_interpreter: %s\n' % (host.netns, sys.executable))
            if loop:
                task = ('    - name: One TAP per loop item\n      nqrust.microvm.fc_tap:\n        name: "{{ item }}"\n'
                        '        bridge: br0\n      loop: "{{ tap_names }}"\n')
            else:
                task = ('    - name: All TAPs in one call\n      nqrust.microvm.fc_tap:\n        bridge: br0\n'
                        '        taps: "{{ tap_entries }}"\n')
            playbook = os.path.join(root, 'play.yml')
            with open(playbook, 'w', encoding='ascii') as handle:
                handle.write(PLAY % task)
            extra = os.path.join(root, 'vars.json')
            with open(extra, 'w', encoding='ascii') as handle:
                json.dump({'tap_names': names(count), 'tap_entries': [{'name': name} for name in names(count)]}, handle)
            start = time.perf_counter()
            result = subprocess.run(['ansible-playbook', '-i', inventory, '-e', '@' + extra, playbook], env=env, cwd=root,
                                    capture_output=True, text=True, timeout=3600, check=False)
            whole = time.perf_counter() - start
            if result.returncode != 0:
                raise SystemExit('ansible-playbook failed:\n%s\n%s' % (result.stdout[-3000:], result.stderr[-3000:]))
            seconds = None
            for line in result.stdout.splitlines():
                if 'TASK_SECONDS' in line:
                    seconds = float(line.split('TASK_SECONDS', 1)[1].strip().strip('"'))
            made = sum(1 for link in host.ip_json('link', 'show', 'master', 'br0'))
            if made != count or seconds is None:
                raise SystemExit('the playbook made %d TAPs, not %d (task time %s)' % (made, count, seconds))
        settle()
        return seconds, whole
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- main

def describe(values):
    return 'best %.3f s, median %.3f s (%s)' % (min(values), statistics.median(values), ', '.join('%.3f' % value for value in values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--taps', type=int, default=1000)
    parser.add_argument('--loop', type=int, default=200)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=5, help='no-op and floor runs per round (they are cheap)')
    options = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit('the benchmark needs root (network namespaces)')
    vlans, reason = kernel.check('vlan_filtering')
    say('fc_tap benchmark: %d TAPs, %d rounds; kernel %s; %s' % (
        options.taps, options.rounds, os.uname().release,
        'access VLAN %d on every TAP' % VLAN if vlans else 'no access VLAN (%s)' % reason))

    ip_times, create_times, noop_times, floor_times, noop_ratios = [], [], [], [], []
    for number in range(1, options.rounds + 1):
        ip_times.append(measure_ip_batch(options.taps, vlans))
        create, noops, floors = measure_module(options.taps, vlans, options.repeat)
        noop, floor = min(noops), min(floors)
        create_times.append(create)
        noop_times.append(noop)
        floor_times.append(floor)
        noop_ratios.append(max(noop - floor, 0.0) / max(create - floor, 1e-9))
        say('round %d: ip -batch %.3f s, fc_tap create %.3f s (%.2f x), no-op %.3f s, Ansible floor %.3f s (best of %d): '
            'no-op work %.3f s = %.3f of the create work' % (
                number, ip_times[-1], create, create / ip_times[-1], noop, floor, options.repeat, noop - floor, noop_ratios[-1]))
    ip_best, create_best = min(ip_times), min(create_times)
    create_vs_ip = create_best / ip_best
    noop_vs_create = statistics.median(noop_ratios)
    noop_end_to_end = statistics.median(noop / create for noop, create in zip(noop_times, create_times))
    say('ip -batch:      %s' % describe(ip_times))
    say('fc_tap create:  %s' % describe(create_times))
    say('fc_tap no-op:   %s' % describe(noop_times))
    say('Ansible floor:  %s (a do-nothing module with the same %d arguments)' % (describe(floor_times), options.taps))
    say('create / ip -batch = %.2f, best against best (target <= %.1f)' % (create_vs_ip, TARGET_CREATE))
    say('no-op / create = %.3f without the Ansible floor, median of the rounds (target <= %.2f); %.3f end to end' % (
        noop_vs_create, TARGET_NOOP, noop_end_to_end))

    loop_task, loop_whole = run_playbook(options.loop, loop=True)
    bulk_task, bulk_whole = run_playbook(options.loop, loop=False)
    loop_vs_bulk = loop_task / bulk_task
    say('ansible-playbook, %d TAPs: loop task %.2f s (playbook %.2f s), bulk task %.2f s (playbook %.2f s)' % (
        options.loop, loop_task, loop_whole, bulk_task, bulk_whole))
    say('loop / bulk = %.1f for the task (target >= %.0f); %.1f for the whole playbook' % (
        loop_vs_bulk, TARGET_LOOP, loop_whole / bulk_whole))

    missed = []
    if create_vs_ip > TARGET_CREATE:
        missed.append('create_vs_ip_batch %.2f > %.1f' % (create_vs_ip, TARGET_CREATE))
    if noop_vs_create > TARGET_NOOP:
        missed.append('noop_vs_create %.3f > %.2f' % (noop_vs_create, TARGET_NOOP))
    if loop_vs_bulk < TARGET_LOOP:
        missed.append('loop_vs_bulk %.1f < %.0f' % (loop_vs_bulk, TARGET_LOOP))
    if missed:
        say('MISSED: ' + '; '.join(missed))
    say('RESULT taps=%d create_vs_ip_batch=%.2f noop_vs_create=%.3f loop_vs_bulk=%.1f' % (
        options.taps, create_vs_ip, noop_vs_create, loop_vs_bulk))
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())
