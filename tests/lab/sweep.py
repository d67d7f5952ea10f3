"""Finding and removing lab resources from their state files and the ``nql-`` prefix.

``teardown_lab(id)`` is what ``Lab.teardown()`` and ``python -m lab down`` do; ``sweep()`` does it
for every lab it can find (also those of killed processes) and, with check=True, fails when
there was anything to remove.
"""

import glob
import os
import shutil

from lab import netns, postgres, processes, state
from lab.errors import LabLeakError

KINDS = ('processes', 'postgres', 'namespaces', 'etc_netns', 'tmpdirs', 'state_dirs')


def _empty_report():
    return {kind: [] for kind in KINDS}


def _merge(into, report):
    for kind, items in report.items():
        into.setdefault(kind, []).extend(items)
    return into


def _lab_prefix(lab_id):
    return state.netns_name(lab_id, '')


def _owned(path, parent, prefix):
    return os.path.dirname(path) == parent and os.path.basename(path).startswith(prefix)


def find(lab_id):
    """What exists of one lab, by its state record and by its prefix (nothing is changed)."""
    data = state.load(lab_id) or {}
    prefix = _lab_prefix(lab_id)
    namespaces = set(data.get('namespaces', [])) | set(netns.names(prefix))
    namespaces = sorted(ns for ns in namespaces if ns.startswith(prefix) and '/' not in ns and netns.exists(ns))
    # only ever remove paths of this lab's shape, whatever a state file says
    etc_dirs = set(data.get('etc_netns', [])) | set(glob.glob(os.path.join(state.ETC_NETNS, prefix + '*')))
    etc_dirs = sorted(path for path in etc_dirs if _owned(path, state.ETC_NETNS, prefix) and os.path.lexists(path))
    tmpdirs = set(data.get('tmpdirs', [])) | set(glob.glob(os.path.join(state.TMP_ROOT, prefix + '*')))
    tmpdirs = sorted(path for path in tmpdirs if _owned(path, state.TMP_ROOT, prefix) and os.path.isdir(path) and not os.path.islink(path))
    pids = {}
    for item in data.get('processes', []):
        if processes.is_running(item.get('pid', 0), item.get('start')):
            pids[item['pid']] = item.get('start')
    for pid in processes.marked_pids({lab_id}):
        pids[pid] = processes.start_time(pid)
    for ns in namespaces:
        for pid in processes.netns_pids(ns):
            pids[pid] = processes.start_time(pid)
    protected = processes.protected_pids()
    pids = {pid: start for pid, start in pids.items() if pid not in protected and processes.is_running(pid, start)}
    servers = [item for item in data.get('postgres', []) if postgres.postmaster_pid(item.get('datadir') or '')]
    return {
        'state': data,
        'state_dir': state.state_dir(lab_id) if os.path.isdir(state.state_dir(lab_id)) else None,
        'namespaces': namespaces,
        'etc_netns': etc_dirs,
        'tmpdirs': tmpdirs,
        'processes': pids,
        'postgres': servers,
    }


def teardown_lab(lab_id):
    """Remove everything of one lab; returns a report {kind: [what was removed]}."""
    found = find(lab_id)
    report = _empty_report()
    for record in found['postgres']:
        if postgres.stop_record(record):
            report['postgres'].append(record.get('datadir'))
    for record in found['state'].get('postgres', []):
        postgres.stop_record(record)
    described = {pid: '%d %s' % (pid, processes.cmdline(pid)) for pid in found['processes']}
    for pid in processes.stop(found['processes']):
        report['processes'].append(described.get(pid, str(pid)))
    # processes that a dying process started meanwhile
    late = {pid: processes.start_time(pid) for pid in processes.marked_pids({lab_id})}
    for ns in found['namespaces']:
        late.update({pid: processes.start_time(pid) for pid in processes.netns_pids(ns)})
    described = {pid: '%d %s' % (pid, processes.cmdline(pid)) for pid in late}
    for pid in processes.stop(late):
        report['processes'].append(described[pid])
    for ns in found['namespaces']:
        if netns.delete(ns):
            report['namespaces'].append(ns)
    for path in found['etc_netns']:
        shutil.rmtree(path, ignore_errors=True)
        report['etc_netns'].append(path)
    state.remove_empty_dir(state.ETC_NETNS)
    for path in found['tmpdirs']:
        shutil.rmtree(path, ignore_errors=True)
        report['tmpdirs'].append(path)
    if found['state_dir']:
        shutil.rmtree(found['state_dir'], ignore_errors=True)
        report['state_dirs'].append(found['state_dir'])
    state.remove_empty_dir(state.STATE_ROOT)
    return report


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def present_lab_ids():
    """Ids of every lab that has anything left: state, namespaces, /etc/netns, temp dirs, marked processes."""
    ids = set(state.recorded_lab_ids())
    for name in netns.names(state.PREFIX):
        ids.add(state.lab_id_of(name))
    for directory in (state.ETC_NETNS, state.TMP_ROOT):
        entries = _listdir(directory)
        # labs make directories only: a file such as /tmp/nql-module-*.json is not a lab's
        ids.update(state.lab_id_of(entry) for entry in entries
                   if entry.startswith(state.PREFIX) and os.path.isdir(os.path.join(directory, entry)))
    ids.update(processes.marked_pids().values())
    return sorted(lab_id for lab_id in ids if lab_id and state.LAB_ID_RE.match(lab_id))


def leftovers(lab_ids=None):
    """What is left of the given labs (default: all) as {kind: [names]}; nothing is changed."""
    report = _empty_report()
    for lab_id in (present_lab_ids() if lab_ids is None else lab_ids):
        found = find(lab_id)
        report['namespaces'].extend(found['namespaces'])
        report['etc_netns'].extend(found['etc_netns'])
        report['tmpdirs'].extend(found['tmpdirs'])
        report['processes'].extend('%d %s' % (pid, processes.cmdline(pid)) for pid in sorted(found['processes']))
        report['postgres'].extend(item.get('datadir') for item in found['postgres'])
        if found['state_dir']:
            report['state_dirs'].append(found['state_dir'])
    if lab_ids is None:
        report['namespaces'].extend(name for name in netns.names(state.PREFIX) if name not in report['namespaces'])
    return report


def sweep(check=False, lab_ids=None):
    """Remove every ``nql-*`` lab (or only the labs in lab_ids): processes first, then namespaces,
    /etc/netns dirs, PostgreSQL servers, temp dirs and state.

    Returns {kind: [what was removed]}; with check=True raises LabLeakError when anything was found.
    """
    report = _empty_report()
    for lab_id in (present_lab_ids() if lab_ids is None else list(lab_ids)):
        _merge(report, teardown_lab(lab_id))
    if lab_ids is None:
        # whatever has the prefix but no lab id of the usual shape
        for name in netns.names(state.PREFIX):
            for pid in processes.stop({pid: processes.start_time(pid) for pid in processes.netns_pids(name)}):
                report['processes'].append(str(pid))
            if netns.delete(name):
                report['namespaces'].append(name)
        for directory, kind in ((state.ETC_NETNS, 'etc_netns'), (state.STATE_ROOT, 'state_dirs')):
            for entry in _listdir(directory):
                path = os.path.join(directory, entry)
                if (entry.startswith(state.PREFIX) or directory == state.STATE_ROOT) and os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                    report[kind].append(path)
            state.remove_empty_dir(directory)
    if check and any(report.values()):
        raise LabLeakError(report)
    return report
