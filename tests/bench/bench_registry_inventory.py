"""Benchmark: the registry inventory plugin against a static YAML inventory of the same fleet.

A throwaway PostgreSQL gets 10,000 hosts with 50,000 networks (five per host: NAT with DHCP and DNS
settings, a tenant VLAN, isolated, bridged, open with a VLAN). ``ansible-inventory --list`` runs through
the nqrust.microvm.registry plugin, and on a static YAML inventory holding exactly what the plugin made
(the same hosts, variables and groups; checked equal). Runs alternate; the best of each is compared.

    PYTHONPATH=tests .venv/bin/python tests/bench/bench_registry_inventory.py [--hosts N] [--rounds R]

Last line: ``RESULT inventory_hosts=<N> registry_vs_static=<ratio>``; exits 1 when the ratio is above 1.5.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg
import yaml

import lab as lablib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_RATIO = 1.5
NETWORKS_PER_HOST = 5


def collection_imports():
    """Make ``ansible_collections.nqrust.microvm`` importable here (this checkout)."""
    from lab import module_run  # pylint: disable=import-outside-toplevel
    path = module_run.module_path()
    if path not in sys.path:
        sys.path.insert(0, path)


def migrate(dsn):
    collection_imports()
    from ansible_collections.nqrust.microvm.plugins.module_utils import registry_schema  # pylint: disable=import-outside-toplevel
    with psycopg.connect(dsn) as conn:
        registry_schema.migrate(conn)


def static_from_registry(dsn):
    """The static YAML inventory's content, shaped by the plugin's own code from the same rows."""
    collection_imports()
    from ansible_collections.nqrust.microvm.plugins.module_utils import registry_fleet  # pylint: disable=import-outside-toplevel
    with psycopg.connect(dsn) as conn:
        fleet = registry_fleet.build_fleet(registry_fleet.fetch_rows(conn))
    hosts, children = {}, {}
    for name, entry in fleet['hosts'].items():
        variables = {'fc_registry_host_id': entry['id'], 'fc_networks': entry['networks']}
        if entry['addr']:
            variables['ansible_host'] = entry['addr']
        hosts[name] = variables
        for item in entry['networks']:
            for group in registry_fleet.group_names(item):
                children.setdefault(group, {'hosts': {}})['hosts'][name] = None
    return {'all': {'hosts': hosts, 'children': children}}


def fill(dsn, hosts):
    """COPY the fleet in: hosts hv00000..., five networks each."""
    dhcp = json.dumps({'enabled': True, 'range_start': '192.168.18.128', 'range_end': '192.168.18.200', 'lease_time': '12h',
                       'static_leases': [{'mac': '02:fc:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}]})
    dns = json.dumps({'enabled': True, 'upstream': ['192.0.2.53'], 'domain': 'fc.internal'})
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            host_ids = [uuid.uuid4() for dummy in range(hosts)]
            with cur.copy('COPY host (id, name, addr) FROM STDIN') as copy:
                for number, host_id in enumerate(host_ids):
                    copy.write_row((host_id, 'hv%05d' % number, '10.%d.%d.%d' % (number >> 16, (number >> 8) & 255, number & 255)))
            columns = 'name, description, type, vlan_id, bridge_name, host_id, cidr, gateway, mode, uplink, mtu, dhcp, dns'
            with cur.copy('COPY network (%s) FROM STDIN' % columns) as copy:
                for number, host_id in enumerate(host_ids):
                    tenant = number % 20
                    copy.write_row(('fcbr0 Network', 'Default NAT network', 'bridge', None, 'fcbr0', host_id, '192.168.18.0/24',
                                    '192.168.18.240', 'nat', 'eth0', None, dhcp, dns))
                    copy.write_row(('tenant-%02d' % tenant, None, 'vlan', 100 + tenant, 'fcbr0', host_id, '10.%d.0.0/24' % tenant,
                                    '10.%d.0.1' % tenant, 'routed', None, 9000, None, None))
                    copy.write_row(('isolated', None, 'bridge', None, 'fcbr1', host_id, '172.16.0.0/24', '172.16.0.1',
                                    'isolated', None, None, json.dumps({'enabled': True}), json.dumps({'upstream': []})))
                    copy.write_row(('LAN', None, 'bridge', None, 'fcbr2', host_id, '192.168.1.0/24', '192.168.1.2', 'bridged',
                                    'eth1', None, json.dumps({'enabled': False}), None))
                    copy.write_row(('lab-%02d' % (number % 50), None, 'vlan', 1000 + number % 50, 'fcbr3', host_id, None, None,
                                    'open', None, None, None, None))
        conn.execute('ANALYZE')


def unwrap(value):
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((key, unwrap(item)) for key, item in value.items())
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def shape(listing):
    groups = dict((name, sorted(group.get('hosts', []))) for name, group in listing.items() if name not in ('_meta', 'all'))
    return unwrap(listing['_meta']['hostvars']), groups


def run_inventory(env, source, output):
    """``(wall seconds, cpu seconds)`` of ``ansible-inventory -i SOURCE --list --output OUTPUT``."""
    before = os.times()
    started = time.monotonic()
    proc = subprocess.run(['ansible-inventory', '-i', source, '--list', '--output', output], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=3600, check=False)
    elapsed = time.monotonic() - started
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError('ansible-inventory -i %s failed: %s' % (source, proc.stderr[-2000:]))
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return elapsed, cpu


def ansible_env(work, server):
    collections = os.path.join(work, 'collections')
    os.makedirs(os.path.join(collections, 'ansible_collections', 'nqrust'))
    os.symlink(REPO, os.path.join(collections, 'ansible_collections', 'nqrust', 'microvm'))
    env = dict(os.environ)
    env.update(server.env())
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections, 'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false', 'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_INVENTORY_UNPARSED_FAILED': 'true', 'ANSIBLE_LOCAL_TEMP': os.path.join(work, 'tmp'),
        'PATH': os.pathsep.join([os.path.dirname(sys.executable), env.get('PATH', '')]),
    })
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--rounds', type=int, default=1)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='nqrust-bench-inventory-')
    server = lablib.ThrowawayPostgres()
    try:
        server.start()
        started = time.monotonic()
        migrate(server.dsn())
        fill(server.dsn(), args.hosts)
        loaded = time.monotonic() - started
        print('fleet: %d hosts, %d networks loaded in %.1f s' % (args.hosts, args.hosts * NETWORKS_PER_HOST, loaded))
        env = ansible_env(work, server)
        registry_source = os.path.join(work, 'fleet.registry.yml')
        with open(registry_source, 'w', encoding='utf-8') as handle:
            handle.write('plugin: nqrust.microvm.registry\n')
        registry_out = os.path.join(work, 'registry.json')
        static_out = os.path.join(work, 'static.json')
        static_source = os.path.join(work, 'static.yml')
        with open(static_source, 'w', encoding='utf-8') as handle:
            yaml.dump(static_from_registry(server.dsn()), handle, Dumper=yaml.CSafeDumper, default_flow_style=False)
        print('static inventory: %.1f MB of YAML' % (os.path.getsize(static_source) / 1e6))
        timings = {'registry': [], 'static': []}
        for round_number in range(args.rounds):
            timings['registry'].append(run_inventory(env, registry_source, registry_out))
            timings['static'].append(run_inventory(env, static_source, static_out))
            print('round %d: registry %.2f s (cpu %.2f s), static %.2f s (cpu %.2f s)'
                  % (round_number + 1, timings['registry'][-1][0], timings['registry'][-1][1],
                     timings['static'][-1][0], timings['static'][-1][1]))
        with open(static_out, encoding='utf-8') as handle:
            static_listing = json.load(handle)
        with open(registry_out, encoding='utf-8') as handle:
            registry_listing = json.load(handle)
        same = shape(static_listing) == shape(registry_listing)
        hostvars = registry_listing['_meta']['hostvars']
        networks = sum(len(item['fc_networks']) for item in hostvars.values())
        print('both inventories: %d hosts, %d fc_networks items, %d groups, identical: %s'
              % (len(hostvars), networks, len(registry_listing) - 2, same))
        best = dict((kind, min(values)) for kind, values in timings.items())
        ratio = best['registry'][0] / best['static'][0]
        print('best: registry %.2f s wall, %.2f s cpu; static %.2f s wall, %.2f s cpu; cpu ratio %.2f'
              % (best['registry'] + best['static'] + (best['registry'][1] / best['static'][1],)))
        print('RESULT inventory_hosts=%d registry_vs_static=%.2f' % (len(hostvars), ratio))
        ok = same and len(hostvars) == args.hosts and networks == args.hosts * NETWORKS_PER_HOST and ratio <= TARGET_RATIO
        return 0 if ok else 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
