"""Benchmark: reading a host's link state with NetlinkSession versus ``ip -j``.

Every module starts by reading the host once (one netlink dump per object kind). This builds
1000 TAPs on a bridge in a fresh lab host (with ``ip -batch``, itself timed as the creation
reference), then, inside that host and in one process, times:

- NetlinkSession: ``links()`` and ``addresses()`` of a fresh session (one dump each), and
- the reference: ``ip -j -d link show`` and ``ip -j address show`` with their JSON decoded.

Each is repeated and the median taken. The last line is machine-readable:
``RESULT netlink_read_taps=1000 session_vs_ip_json=<ratio>`` (below 1 means faster than ip).
Run as root: PYTHONPATH=tests .venv/bin/python tests/bench/bench_netlink_read.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from lab import Lab
from lab.module_run import module_path

TAPS = 1000
ROUNDS = 7
# A session may take at most this multiple of the ip -j reference: ~1.0 on a quiet machine, up to
# 1.4 seen while qemu VMs loaded both cores; pyroute2 decoding was 11.
LIMIT = 2.0

INNER = r'''
import json, statistics, subprocess, sys, time
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkSession

def session_read():
    with NetlinkSession() as session:
        links = session.links()
        addresses = session.addresses()
    return len(links), len(addresses)

def ip_read():
    links = json.loads(subprocess.run(['ip', '-j', '-d', 'link', 'show'], capture_output=True, check=True).stdout)
    addresses = json.loads(subprocess.run(['ip', '-j', 'address', 'show'], capture_output=True, check=True).stdout)
    return len(links), len(addresses)

def median_time(func, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

rounds = int(sys.argv[1])
counted = session_read()
print(json.dumps({'links_seen': counted[0], 'session': median_time(session_read, rounds), 'ip_json': median_time(ip_read, rounds)}))
'''


def main():
    with Lab() as lab:
        host = lab.add_host('bench')
        with tempfile.NamedTemporaryFile('w', prefix='nql-bench-', suffix='.batch') as batch:
            batch.write('link add fcbr0 type bridge\nlink set fcbr0 up\n')
            for number in range(TAPS):
                batch.write('tuntap add tap%d mode tap\nlink set tap%d master fcbr0 up\n' % (number, number))
            batch.flush()
            start = time.perf_counter()
            host.run(['ip', '-batch', batch.name], timeout=300)
            created = time.perf_counter() - start
        env = dict(os.environ, PYTHONPATH=module_path())
        out = subprocess.run(['ip', 'netns', 'exec', host.netns, sys.executable, '-c', INNER, str(ROUNDS)],
                             env=env, capture_output=True, text=True, check=True, timeout=600).stdout
        numbers = json.loads(out)
    ratio = numbers['session'] / numbers['ip_json']
    print('created %d TAPs on a bridge with ip -batch: %.3f s' % (TAPS, created))
    print('read %d links: NetlinkSession %.1f ms, ip -j %.1f ms (median of %d)'
          % (numbers['links_seen'], numbers['session'] * 1000, numbers['ip_json'] * 1000, ROUNDS))
    print('RESULT netlink_read_taps=%d session_vs_ip_json=%.2f' % (TAPS, ratio))
    if numbers['links_seen'] < TAPS:
        print('FAILED: the session saw %d links, expected at least %d' % (numbers['links_seen'], TAPS))
        return 1
    if ratio > LIMIT:
        print('FAILED: reading took %.2f times as long as ip -j (limit %.1f)' % (ratio, LIMIT))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
