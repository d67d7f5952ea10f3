"""Named network namespaces (``ip netns``) and running commands in them."""

import errno
import os
import subprocess

from lab.errors import LabCommandError, LabError
from lab.state import RUN_NETNS


def path(name):
    return os.path.join(RUN_NETNS, name)


def exists(name):
    return os.path.exists(path(name))


def names(prefix=''):
    """Names of the named namespaces (what ``ip netns list`` shows) that start with prefix."""
    try:
        entries = os.listdir(RUN_NETNS)
    except OSError:
        return []
    return sorted(entry for entry in entries if entry.startswith(prefix))


def add(name):
    """Create a named namespace with its loopback up."""
    run(['ip', 'netns', 'add', name])
    run(['ip', '-n', name, 'link', 'set', 'lo', 'up'])


def delete(name):
    """Remove a named namespace; True when it existed."""
    if not exists(name):
        return False
    result = subprocess.run(['ip', 'netns', 'delete', name], capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0 and exists(name):
        raise LabCommandError(result.returncode, result.args, result.stdout, result.stderr)
    return True


def exec_argv(name, argv):
    return ['ip', 'netns', 'exec', name] + [str(arg) for arg in argv]


def timeout_scale():
    """Factor for every time limit of the lab (NQRUST_LAB_TIMEOUT_SCALE; e.g. 10 under qemu TCG)."""
    try:
        return max(1.0, float(os.environ.get('NQRUST_LAB_TIMEOUT_SCALE', '1')))
    except ValueError:
        return 1.0


def run(argv, check=True, input=None, timeout=30, env=None, where=None):  # pylint: disable=redefined-builtin
    """subprocess.run with text output captured and a LabCommandError that shows stderr.

    timeout (seconds) is multiplied by timeout_scale().
    """
    argv = [str(arg) for arg in argv]
    timeout = timeout * timeout_scale() if timeout else timeout
    try:
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError('command %r timed out after %ss%s' % (' '.join(argv), timeout, ' in %s' % where if where else '')) from exc
    if check and result.returncode != 0:
        raise LabCommandError(result.returncode, argv, result.stdout, result.stderr, where=where)
    return result


def ensure_etc_dir(name):
    """``/etc/netns/<name>`` (``ip netns exec`` bind-mounts its entries over ``/etc``)."""
    directory = os.path.join('/etc/netns', name)
    for attempt in range(5):
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            return directory
        except FileNotFoundError:
            if attempt == 4:
                raise
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    return directory
