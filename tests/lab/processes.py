"""Finding and stopping the processes a lab started (also from another process than the lab's)."""

import os
import signal
import subprocess
import time

MARKER_ENV = 'NQRUST_LAB_ID'


def start_time(pid):
    """The kernel's start time of a process (clock ticks since boot), None when it is gone.

    Recorded next to every pid so that a recycled pid is never mistaken for a lab process.
    """
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b')') + 2:].split()
    return int(fields[19])


def state_letter(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(b')') + 2:].split()[0].decode()


def is_running(pid, start=None):
    """True while the process exists, is not a zombie, and (given start) is the same process."""
    letter = state_letter(pid)
    if letter is None or letter in ('Z', 'X'):
        return False
    return start is None or start_time(pid) == start


def protected_pids():
    """This process and its ancestors: never killed by a sweep."""
    pids = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open('/proc/%d/stat' % pid, 'rb') as handle:
                stat = handle.read()
        except OSError:
            break
        pid = int(stat[stat.rindex(b')') + 2:].split()[1])
    pids.add(1)
    return pids


def cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return ''


def all_pids():
    return [int(name) for name in os.listdir('/proc') if name.isdigit()]


def marked_pids(lab_ids=None):
    """Pids whose environment carries ``NQRUST_LAB_ID`` (of one of lab_ids, or any) -> lab id.

    Every process the lab starts gets that variable, and daemons keep it after forking.
    """
    found = {}
    needle = MARKER_ENV.encode() + b'='
    for pid in all_pids():
        try:
            with open('/proc/%d/environ' % pid, 'rb') as handle:
                environ = handle.read()
        except OSError:
            continue
        for entry in environ.split(b'\0'):
            if entry.startswith(needle):
                lab_id = entry[len(needle):].decode(errors='replace')
                if lab_ids is None or lab_id in lab_ids:
                    found[pid] = lab_id
                break
    return found


def netns_pids(netns):
    """Pids of the processes inside a named network namespace (``ip netns pids``)."""
    try:
        result = subprocess.run(['ip', 'netns', 'pids', netns], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def stop(pids, grace=2.0, sig=signal.SIGTERM):
    """Signal processes (dict pid -> start time or None), wait up to grace seconds, then SIGKILL.

    Returns the pids that were running. Processes that are our children are reaped.
    """
    protected = protected_pids()
    targets = {pid: start for pid, start in pids.items() if pid not in protected and is_running(pid, start)}
    for pid in targets:
        _signal(pid, sig)
    deadline = time.monotonic() + grace
    remaining = dict(targets)
    while remaining and time.monotonic() < deadline:
        _reap(remaining)
        remaining = {pid: start for pid, start in remaining.items() if is_running(pid, start)}
        if remaining:
            time.sleep(0.02)
    for pid in remaining:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while remaining and time.monotonic() < deadline:
        _reap(remaining)
        remaining = {pid: start for pid, start in remaining.items() if is_running(pid, start)}
        if remaining:
            time.sleep(0.02)
    _reap(targets)
    return sorted(targets)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _reap(pids):
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        except OSError:
            pass
