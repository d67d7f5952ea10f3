"""Benchmark: auto-registration throughput under 8 concurrent writers, and that it never duplicates.

8 processes, each with its own connection, register networks (host, bridge, VLAN) one transaction at a
time through ``registry_networks.auto_register`` (INSERT ... ON CONFLICT DO NOTHING on the network key).
All writers walk the same keys, each starting two keys after the previous one, so nearly every key is
registered by all 8 of them within milliseconds. Afterwards: no key has two rows, every key has its row, no writer saw
an error.

For reference, the same writers run the seed's ``ensure_network_registered`` way (look, then insert if
nothing was found) against a copy of the table without the unique key: the duplicates it leaves are the
race the key closes.

    PYTHONPATH=tests .venv/bin/python tests/bench/bench_registry_autoreg.py [--per-writer N]

Last line: ``RESULT autoreg_writers=8 per_second=<n> duplicates=<d>``; exits 1 on any duplicate or error.
"""

import argparse
import multiprocessing
import sys
import time

import psycopg

import lab as lablib

WRITERS = 8
HOSTS = 50
BRIDGES = ('fcbr0', 'fcbr1', 'fcbr2', 'fcbr3')
VLANS = (None,) + tuple(range(1, 21))
OFFSET = 2


def collection_imports():
    from lab import module_run  # pylint: disable=import-outside-toplevel
    path = module_run.module_path()
    if path not in sys.path:
        sys.path.insert(0, path)


def keys_for(host_ids):
    return [(host, bridge, vlan) for host in host_ids for bridge in BRIDGES for vlan in VLANS]


def writer(kind, dsn, keys, start, count, barrier, results):
    collection_imports()
    from ansible_collections.nqrust.microvm.plugins.module_utils import registry_networks  # pylint: disable=import-outside-toplevel
    errors, created = [], 0
    with psycopg.connect(dsn) as conn:
        barrier.wait(timeout=120)
        began = time.monotonic()
        for step in range(count):
            host, bridge, vlan = keys[(start + step) % len(keys)]
            try:
                with conn.cursor() as cur:
                    if kind == 'registry':
                        dummy, was_created = registry_networks.auto_register(cur, host, bridge, vlan)
                    else:
                        was_created = naive_register(cur, host, bridge, vlan)
                conn.commit()
                created += bool(was_created)
            except Exception as exc:  # pylint: disable=broad-except
                conn.rollback()
                errors.append(repr(exc))
        finished = time.monotonic()
    results.put({'began': began, 'finished': finished, 'created': created, 'errors': errors[:5], 'error_count': len(errors)})


def naive_register(cur, host, bridge, vlan):
    """The seed's way: look for the network, insert it when none was found (no key, no lock)."""
    cur.execute('SELECT id FROM network_naive WHERE host_id = %s AND bridge_name = %s AND COALESCE(vlan_id, 0) = %s',
                (host, bridge, vlan or 0))
    if cur.fetchone() is not None:
        return False
    cur.execute("INSERT INTO network_naive (name, description, type, vlan_id, bridge_name, host_id) "
                "VALUES (%s, 'Auto-registered from VM creation', %s, %s, %s, %s)",
                ('%s Network' % bridge, 'vlan' if vlan else 'bridge', vlan, bridge, host))
    return True


def run(kind, dsn, keys, per_writer):
    ctx = multiprocessing.get_context('spawn')
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    # writers start two keys apart: they meet on the same keys within milliseconds
    procs = [ctx.Process(target=writer, args=(kind, dsn, keys, number * OFFSET, per_writer, barrier, results))
             for number in range(WRITERS)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=600) for dummy in procs]
    for proc in procs:
        proc.join(timeout=60)
    elapsed = max(item['finished'] for item in outcomes) - min(item['began'] for item in outcomes)
    return {
        'registrations': WRITERS * per_writer,
        'elapsed': elapsed,
        'per_second': WRITERS * per_writer / elapsed,
        'created': sum(item['created'] for item in outcomes),
        'errors': sum(item['error_count'] for item in outcomes),
        'error_samples': [error for item in outcomes for error in item['errors']][:3],
    }


def duplicates(conn, table):
    return conn.execute('SELECT count(*) FROM (SELECT 1 FROM %s GROUP BY host_id, bridge_name, COALESCE(vlan_id, 0) '
                        'HAVING count(*) > 1) d' % table).fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--per-writer', type=int, default=1500, help='registrations per writer (default 1500)')
    args = parser.parse_args()
    server = lablib.ThrowawayPostgres()
    try:
        server.start()
        dsn = server.dsn()
        collection_imports()
        from ansible_collections.nqrust.microvm.plugins.module_utils import registry_schema  # pylint: disable=import-outside-toplevel
        with psycopg.connect(dsn) as conn:
            registry_schema.migrate(conn)
            host_ids = [row[0] for row in conn.execute(
                "INSERT INTO host (name, addr) SELECT 'hv' || n, '10.0.0.' || n FROM generate_series(1, %s) n RETURNING id",
                (HOSTS,)).fetchall()]
            conn.execute('CREATE TABLE network_naive (LIKE network INCLUDING DEFAULTS)')
            conn.commit()
        keys = keys_for(host_ids)
        # every key is visited by every writer (each writer walks all keys from its own start)
        per_writer = max(args.per_writer, 1)
        reached = min(len(keys), per_writer + (WRITERS - 1) * OFFSET)
        print('keys: %d (host, bridge, VLAN); %d writers x %d registrations, each key registered by up to %d writers'
              % (len(keys), WRITERS, per_writer, WRITERS))
        registry = run('registry', dsn, keys, per_writer)
        naive = run('naive', dsn, keys, per_writer)
        with psycopg.connect(dsn) as conn:
            registry_dupes = duplicates(conn, 'network')
            naive_dupes = duplicates(conn, 'network_naive')
            rows = conn.execute('SELECT count(*) FROM network').fetchone()[0]
            distinct = conn.execute('SELECT count(DISTINCT (host_id, bridge_name, COALESCE(vlan_id, 0))) FROM network').fetchone()[0]
        print('reference (seed-style look-then-insert, no key): %.0f registrations/s, %d duplicated keys, %d errors'
              % (naive['per_second'], naive_dupes, naive['errors']))
        print('auto_register (INSERT ... ON CONFLICT on the key): %d registrations in %.2f s, %d rows for %d keys, '
              '%d created, %d errors%s' % (registry['registrations'], registry['elapsed'], rows, distinct, registry['created'],
                                           registry['errors'], (': %s' % registry['error_samples']) if registry['errors'] else ''))
        print('auto_register vs look-then-insert throughput: %.2f' % (registry['per_second'] / naive['per_second']))
        print('RESULT autoreg_writers=%d per_second=%.0f duplicates=%d' % (WRITERS, registry['per_second'], registry_dupes))
        ok = registry_dupes == 0 and registry['errors'] == 0 and registry['created'] == rows == distinct and rows == reached
        return 0 if ok else 1
    finally:
        server.stop()


if __name__ == '__main__':
    sys.exit(main())
