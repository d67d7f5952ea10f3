"""Run one of the collection's modules inside a lab host, the way Ansible would, in ~0.3 s.

A full ``ansible-playbook`` run costs seconds; the module tests call modules directly instead:
``python -m ansible_collections.nqrust.microvm.plugins.modules.NAME ARGS.json`` inside the host's
network namespace (``ip netns exec``), with the arguments Ansible passes (check mode, diff).
The result is the module's JSON output as a dict; a failed module returns its dict too
(``failed: True``, ``msg``), so tests assert on messages.

The interpreter defaults to this Python; ``NQRUST_TARGET_PYTHON`` selects another one (the
integration lane runs the module tests a second time with pyroute2 0.7, as Debian 12 ships it).

Under qemu TCG (the kernel lane) starting Python and importing ansible and pyroute2 costs tens
of seconds per run, so tests that run modules many times use ``module_runner()``: a small fork
server (``ModuleServer``), one process of the target interpreter that imports those once, then
forks a child per run that enters the lab host's network namespace and runs the module as
``__main__`` with the arguments Ansible would pass, exactly as ``run_module`` does in a fresh
process. ``NQRUST_MODULE_FRESH_PROCESS=1`` makes ``module_runner()`` use ``run_module`` instead.
"""

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_PATH = os.path.join(REPO, 'build', 'module-path')
TARGET_PYTHON_ENV = 'NQRUST_TARGET_PYTHON'
FRESH_PROCESS_ENV = 'NQRUST_MODULE_FRESH_PROCESS'
PACKAGE = 'ansible_collections.nqrust.microvm.plugins.'
# imported once by the fork server, so that no module run pays for them
PRELOAD = ('ansible.module_utils.basic', PACKAGE + 'module_utils.netlink', PACKAGE + 'module_utils.converge',
           PACKAGE + 'module_utils.port_vlan', PACKAGE + 'module_utils.tap_apply')


class ModuleRunError(Exception):
    """The module produced no JSON result (crash, traceback, timeout)."""


def target_python():
    """The interpreter modules run with: $NQRUST_TARGET_PYTHON or this one."""
    return os.environ.get(TARGET_PYTHON_ENV) or sys.executable


def module_path():
    """A directory holding ``ansible_collections/nqrust/microvm`` as a link to this checkout."""
    link = os.path.join(MODULE_PATH, 'ansible_collections', 'nqrust', 'microvm')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass
    return MODULE_PATH


def module_argv(name, args_file, python=None):
    """The argv that runs module NAME (short name) with the JSON arguments in ARGS_FILE."""
    return [python or target_python(), '-m', 'ansible_collections.nqrust.microvm.plugins.modules.%s' % name, args_file]


def _module_env(extra=None):
    env = dict(os.environ)
    env.update(extra or {})
    env['PYTHONPATH'] = os.pathsep.join([module_path()] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    return env


def _result(name, netns, rc, stdout, stderr):
    try:
        result = json.loads(stdout)
    except ValueError:
        raise ModuleRunError('module %s in %s exited %d without a JSON result\nstdout: %s\nstderr: %s'
                             % (name, netns, rc, stdout[-4000:], stderr[-4000:])) from None
    result.setdefault('rc', rc)
    return result


def run_module(netns, name, args, check_mode=False, diff=False, python=None, timeout=300, env=None):
    """Run module NAME in network namespace NETNS (a name, or an object with ``.netns``).

    NETNS ``None`` runs the module in this process's own namespace (modules that only talk to
    a database, such as the registry modules, with ``env`` added to the environment).
    Returns the module's result dict. Raises ModuleRunError when no JSON result came back.
    """
    netns = getattr(netns, 'netns', netns)
    payload = dict(args)
    payload.update({'_ansible_check_mode': bool(check_mode), '_ansible_diff': bool(diff)})
    with tempfile.NamedTemporaryFile('w', prefix='nqrust-module-', suffix='.json') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
        handle.flush()
        argv = (['ip', 'netns', 'exec', netns] if netns is not None else []) + module_argv(name, handle.name, python)
        proc = subprocess.run(argv, env=_module_env(env), capture_output=True, text=True, timeout=timeout, check=False)
    return _result(name, netns, proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------- the fork server

SERVER = r'''
import ctypes, importlib, json, os, runpy, sys, tempfile, traceback
for name in sys.argv[1:]:
    importlib.import_module(name)
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
sys.stdout.write('ready\n')
sys.stdout.flush()
for line in sys.stdin:
    request = json.loads(line)
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    args = tempfile.NamedTemporaryFile('w', prefix='nqrust-module-', suffix='.json')
    json.dump({'ANSIBLE_MODULE_ARGS': request['args']}, args)
    args.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fd = os.open('/run/netns/' + request['netns'], os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), 'setns into %s failed' % request['netns'])
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.argv = [request['module'], args.name]
            runpy.run_module(request['module'], run_name='__main__', alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    args.close()
    out.seek(0)
    err.seek(0)
    reply = {'rc': os.waitstatus_to_exitcode(status), 'stdout': out.read().decode('utf-8', 'replace'),
             'stderr': err.read().decode('utf-8', 'replace')[-4000:]}
    sys.stdout.write(json.dumps(reply) + '\n')
    sys.stdout.flush()
'''


class ModuleServer:
    """A process of the target interpreter that runs modules in forked children (see the module docstring)."""

    def __init__(self, python=None, preload=PRELOAD, timeout=900):
        self.proc = subprocess.Popen([python or target_python(), '-c', SERVER] + list(preload), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=_module_env(), text=True)
        self.buffer = ''
        try:
            line = self._readline(timeout)
        except Exception:
            self.close()
            raise
        if line != 'ready':
            self.close()
            raise ModuleRunError('module server did not start: %r' % line)

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while '\n' not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ModuleRunError('module server: no answer in %d s' % timeout)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise ModuleRunError('module server exited (%s)' % self.proc.poll())
            self.buffer += chunk.decode('utf-8', 'replace')
        line, self.buffer = self.buffer.split('\n', 1)
        return line

    def run(self, netns, name, args, check_mode=False, diff=False, timeout=600):
        """As ``run_module`` (``netns`` a name or an object with ``.netns``), in a child of this server."""
        netns = getattr(netns, 'netns', netns)
        payload = dict(args, _ansible_check_mode=bool(check_mode), _ansible_diff=bool(diff))
        self.proc.stdin.write(json.dumps({'netns': netns, 'module': PACKAGE + 'modules.' + name, 'args': payload}) + '\n')
        self.proc.stdin.flush()
        reply = json.loads(self._readline(timeout))
        return _result(name, netns, reply['rc'], reply['stdout'], reply['stderr'])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


@contextlib.contextmanager
def module_runner(python=None):
    """Yields ``run(host, name, args, check_mode=False, diff=False)`` -> result dict, for many module runs.

    The runs go through one ``ModuleServer``, started on the first run and stopped at the end;
    with ``$NQRUST_MODULE_FRESH_PROCESS=1`` each is a fresh process (``run_module``).
    """
    if os.environ.get(FRESH_PROCESS_ENV) == '1':
        yield lambda host, name, args, check_mode=False, diff=False: run_module(
            host, name, args, check_mode=check_mode, diff=diff, python=python)
        return
    server = None

    def run(host, name, args, check_mode=False, diff=False):
        nonlocal server
        if server is None:
            server = ModuleServer(python)
        return server.run(host, name, args, check_mode=check_mode, diff=diff)

    try:
        yield run
    finally:
        if server is not None:
            server.close()
