"""Run one of the collection's modules inside a lab host, the way Ansible would, in ~0.3 s.

A full ``ansible-playbook`` run costs seconds; the module tests call modules directly instead:
``python -m ansible_collections.nqrust.microvm.plugins.modules.NAME ARGS.json`` inside the host's
network namespace (``ip netns exec``), with the arguments Ansible passes (check mode, diff).
The result is the module's JSON output as a dict; a failed module returns its dict too
(``failed: True``, ``msg``), so tests assert on messages.

The interpreter defaults to this Python; ``NQRUST_TARGET_PYTHON`` selects another one (the
integration lane runs the module tests a second time with pyroute2 0.7, as Debian 12 ships it).
"""

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_PATH = os.path.join(REPO, 'build', 'module-path')
TARGET_PYTHON_ENV = 'NQRUST_TARGET_PYTHON'


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


def run_module(netns, name, args, check_mode=False, diff=False, python=None, timeout=300, env=None):
    """Run module NAME in network namespace NETNS (a name, or an object with ``.netns``).

    NETNS ``None`` runs the module in this process's own namespace (modules that only talk to
    a database, such as the registry modules, with ``env`` added to the environment).
    Returns the module's result dict. Raises ModuleRunError when no JSON result came back.
    """
    netns = getattr(netns, 'netns', netns)
    payload = dict(args)
    payload.update({'_ansible_check_mode': bool(check_mode), '_ansible_diff': bool(diff)})
    extra_env = env
    env = dict(os.environ)
    env.update(extra_env or {})
    env['PYTHONPATH'] = os.pathsep.join([module_path()] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    with tempfile.NamedTemporaryFile('w', prefix='nqrust-module-', suffix='.json') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
        handle.flush()
        argv = (['ip', 'netns', 'exec', netns] if netns is not None else []) + module_argv(name, handle.name, python)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise ModuleRunError('module %s in %s exited %d without a JSON result\nstdout: %s\nstderr: %s'
                             % (name, netns, proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    result.setdefault('rc', proc.returncode)
    return result
