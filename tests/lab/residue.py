"""Independent leftover checks for tests: what the machine shows, not what the lab recorded.

Reads ``ip -j netns list``, ``ip -j link`` of the calling process's namespace, the ``/etc/netns``,
``/run/nqrust-lab`` and ``/tmp`` directories, ``pgrep -f`` and the lab marker in ``/proc/*/environ``.
"""

import json
import os
import subprocess

from lab import processes, state


def _ip_json(*args):
    result = subprocess.run(['ip', '-j'] + list(args), capture_output=True, text=True, timeout=30, check=True)
    out = result.stdout.strip()
    return json.loads(out) if out else []


def netns_list():
    """Names from ``ip -j netns list``."""
    return sorted(item['name'] for item in _ip_json('netns', 'list'))


def root_links():
    """{ifname: kind} of the links in this process's network namespace (``ip -j -d link show``)."""
    return {item['ifname']: item.get('linkinfo', {}).get('info_kind', '') for item in _ip_json('-d', 'link', 'show')}


def pgrep(pattern):
    """Pids of running (non-zombie) processes whose command line contains pattern, this one excluded."""
    result = subprocess.run(['pgrep', '-f', pattern], capture_output=True, text=True, timeout=30, check=False)
    mine = processes.protected_pids()
    return sorted(int(pid) for pid in result.stdout.split() if int(pid) not in mine and processes.is_running(int(pid)))


def residue(lab_id, root_links_before=None):
    """Everything that is still there of lab_id; empty lists when the lab left nothing.

    root_links_before: a root_links() snapshot; links that appeared since are reported.
    """
    prefix = state.netns_name(lab_id, '')
    found = {
        'netns': [name for name in netns_list() if name.startswith(prefix)],
        'etc_netns': sorted(name for name in _listdir(state.ETC_NETNS) if name.startswith(prefix)),
        'state_dir': [lab_id] if lab_id in _listdir(state.STATE_ROOT) else [],
        'tmpdirs': sorted(name for name in _listdir(state.TMP_ROOT) if name.startswith(prefix) and os.path.isdir(os.path.join(state.TMP_ROOT, name))),
        'processes': sorted(set(pgrep(prefix)) | set(processes.marked_pids({lab_id}))),
        'root_links': [],
    }
    if root_links_before is not None:
        found['root_links'] = sorted(set(root_links()) - set(root_links_before))
    found['process_cmdlines'] = [processes.cmdline(pid) for pid in found['processes']]
    return found


def is_clean(found):
    return not any(value for key, value in found.items() if key != 'process_cmdlines')


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
