"""``python -m lab``: the lab for make, molecule and the demo (a thin layer over the library).

    python -m lab up --lab-id ID --spec FILE.yml    build (or complete) a lab; prints it as JSON
    python -m lab info --lab-id ID                  prints the lab as JSON
    python -m lab down --lab-id ID                  removes everything of the lab
    python -m lab pg-up --lab-id ID                 a throwaway PostgreSQL of the lab; prints its connection data
    python -m lab pg-info --lab-id ID               prints the connection data of the lab's PostgreSQL
    python -m lab guest --lab-id ID --name G --host H --tap TAP [--mac MAC] [--dhcp]
    python -m lab exec --lab-id ID HOST -- COMMAND...  runs a command inside a lab host or guest
    python -m lab probe                             kernel features (802.1Q, VLAN filtering, TUN) as JSON
    python -m lab sweep [--check] [--lab-id ID ...] removes every nql-* lab; --check: exit 1 if there was any

Labs made by ``up``/``pg-up``/``guest`` outlive the command; when a command fails or is
interrupted, a lab it had just created is removed again.
"""

import argparse
import json
import os
import subprocess
import sys

from lab import kernel, netns, spec as lab_spec, state
from lab.errors import LabError, LabLeakError, format_report
from lab.lifecycle import handle_signals
from lab.postgres import running as running_postgres
from lab.sweep import sweep, teardown_lab
from lab.topology import Lab


def _print(data):
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')
    sys.stdout.flush()


def _existing(lab_id):
    if not state.LabState(lab_id).exists():
        raise LabError('there is no lab %r (no %s)' % (lab_id, state.state_file(lab_id)))
    return Lab(lab_id)


def _build(lab_id, work):
    """Open or create a lab, run work(lab), keep the lab; a lab this call created is removed on failure."""
    existed = state.LabState(lab_id).exists()
    lab = Lab(lab_id)
    try:
        result = work(lab)
    except BaseException:
        if existed:
            lab.detach()
        else:
            lab.teardown()
        raise
    lab.detach()
    return result


def cmd_up(args):
    spec = lab_spec.load(args.spec)
    _print(_build(args.lab_id, lambda lab: lab_spec.apply(lab, spec).describe()))


def cmd_info(args):
    lab = _existing(args.lab_id)
    lab.detach()
    _print(lab.describe())


def cmd_down(args):
    _print(teardown_lab(args.lab_id))


def cmd_pg_up(args):
    def work(lab):
        server = running_postgres(lab) or lab.postgres()
        return server.info()
    _print(_build(args.lab_id, work))


def cmd_pg_info(args):
    lab = _existing(args.lab_id)
    lab.detach()
    server = running_postgres(lab)
    if server is None:
        raise LabError('lab %s has no running PostgreSQL (python -m lab pg-up --lab-id %s)' % (args.lab_id, args.lab_id))
    _print(server.info())


def cmd_guest(args):
    def work(lab):
        guest = lab.add_guest(args.name, args.host, args.tap, mac=args.mac)
        if args.dhcp:
            guest.dhcp(timeout=args.timeout)
        return guest.describe()
    _print(_build(args.lab_id, work))


def cmd_exec(args):
    lab = _existing(args.lab_id)
    lab.detach()
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    if not argv:
        raise LabError('exec: no command given')
    host = lab.host(args.host)
    return subprocess.run(netns.exec_argv(host.netns, argv), env=lab.child_env(), check=False).returncode


def cmd_probe(args):  # pylint: disable=unused-argument
    _print({name: dict(zip(('available', 'reason'), probe())) for name, probe in sorted(kernel.FEATURES.items())})


def cmd_sweep(args):
    try:
        report = sweep(check=args.check, lab_ids=args.lab_id or None)
    except LabLeakError as exc:
        sys.stderr.write('lab sweep: leftovers found and removed: %s\n' % format_report(exc.report))
        return 1
    if any(report.values()):
        sys.stderr.write('lab sweep: removed %s\n' % format_report(report))
    return 0


def parser():
    top = argparse.ArgumentParser(prog='python -m lab', description='Network-namespace test lab of nqrust.microvm.',
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = top.add_subparsers(dest='command', required=True)

    def command(name, func, help_text, lab_id=True):
        cmd = sub.add_parser(name, help=help_text)
        cmd.set_defaults(func=func)
        if lab_id:
            cmd.add_argument('--lab-id', required=True, type=state.check_lab_id)
        return cmd

    command('up', cmd_up, 'build or complete a lab from a spec').add_argument('--spec', required=True)
    command('info', cmd_info, 'print a lab as JSON')
    command('down', cmd_down, 'remove a lab')
    command('pg-up', cmd_pg_up, 'start (or show) the throwaway PostgreSQL of a lab')
    command('pg-info', cmd_pg_info, "print the connection data of a lab's PostgreSQL")
    guest = command('guest', cmd_guest, 'attach a simulated guest to an existing TAP')
    guest.add_argument('--name', required=True)
    guest.add_argument('--host', required=True)
    guest.add_argument('--tap', required=True)
    guest.add_argument('--mac')
    guest.add_argument('--dhcp', action='store_true', help='also get a DHCP lease')
    guest.add_argument('--timeout', type=float, default=10)
    run = command('exec', cmd_exec, 'run a command inside a lab host or guest')
    run.add_argument('host')
    run.add_argument('argv', nargs=argparse.REMAINDER)
    command('probe', cmd_probe, 'probe kernel features', lab_id=False)
    clean = command('sweep', cmd_sweep, 'remove every nql-* lab', lab_id=False)
    clean.add_argument('--check', action='store_true', help='exit 1 when anything was left')
    clean.add_argument('--lab-id', action='append', type=state.check_lab_id, help='only this lab (repeatable)')
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    handle_signals()
    if os.geteuid() != 0:
        sys.stderr.write('python -m lab: must run as root (network namespaces, /run, /etc/netns)\n')
        return 1
    try:
        return args.func(args) or 0
    except LabError as exc:
        sys.stderr.write('python -m lab %s: %s\n' % (args.command, exc))
        return 1
    except KeyboardInterrupt as exc:
        sys.stderr.write('python -m lab %s: interrupted (%s)\n' % (args.command, exc or 'SIGINT'))
        return 130
