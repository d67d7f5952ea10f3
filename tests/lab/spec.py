"""Lab topologies described in YAML (or JSON) for ``python -m lab up --spec FILE``.

    hosts:                      # a mapping (or a list of names)
      hv1:
        etc_files: {hosts: "127.0.0.1 localhost\\n"}
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.20.0.0/24, via: 10.1.0.2}]
      hv2: {}
    links:
      - {a: hv1, ifname_a: eth1, addr_a: 10.1.0.1/24, b: hv2, ifname_b: eth1, addr_b: 10.1.0.2/24}
    upstream:                   # true, a list of hosts, or a mapping
      hosts: [hv1, hv2]
      ifname: uplink0
      default_route: true
    postgres: false             # true: also start a throwaway PostgreSQL that belongs to the lab

Applying a spec is idempotent: hosts, links, addresses and routes that exist are kept.
"""

import json

from lab.errors import LabError
from lab.postgres import running as running_postgres

HOST_KEYS = {'etc_files', 'sysctls', 'routes'}
LINK_KEYS = {'a', 'ifname_a', 'addr_a', 'b', 'ifname_b', 'addr_b'}
UPSTREAM_KEYS = {'hosts', 'ifname', 'default_route'}
TOP_KEYS = {'hosts', 'links', 'upstream', 'postgres'}


def load(path):
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    if path.endswith('.json'):
        data = json.loads(text)
    else:
        import yaml  # pylint: disable=import-outside-toplevel
        data = yaml.safe_load(text)
    return normalize(data or {}, path)


def _unknown(what, data, allowed, source):
    extra = sorted(set(data) - allowed)
    if extra:
        raise LabError('%s: unknown key(s) %s in %s (allowed: %s)' % (source, ', '.join(extra), what, ', '.join(sorted(allowed))))


def normalize(data, source='spec'):
    """Check a spec and bring it into one canonical shape."""
    if not isinstance(data, dict):
        raise LabError('%s: a lab spec must be a mapping' % source)
    _unknown('the spec', data, TOP_KEYS, source)
    hosts = data.get('hosts') or {}
    if isinstance(hosts, list):
        hosts = {name: {} for name in hosts}
    if not isinstance(hosts, dict):
        raise LabError('%s: hosts must be a mapping or a list of names' % source)
    for name, entry in list(hosts.items()):
        entry = entry or {}
        if not isinstance(entry, dict):
            raise LabError('%s: host %s must be a mapping' % (source, name))
        _unknown('host %s' % name, entry, HOST_KEYS, source)
        hosts[name] = entry
    links = data.get('links') or []
    for link in links:
        if not isinstance(link, dict):
            raise LabError('%s: each link must be a mapping' % source)
        _unknown('a link', link, LINK_KEYS, source)
        for key in ('a', 'ifname_a', 'b', 'ifname_b'):
            if not link.get(key):
                raise LabError('%s: link %r needs %s' % (source, link, key))
    upstream = data.get('upstream')
    if upstream is True:
        upstream = {'hosts': []}
    elif isinstance(upstream, list):
        upstream = {'hosts': upstream}
    elif upstream in (None, False):
        upstream = None
    elif isinstance(upstream, dict):
        _unknown('upstream', upstream, UPSTREAM_KEYS, source)
    else:
        raise LabError('%s: upstream must be true, a list of hosts or a mapping' % source)
    return {'hosts': hosts, 'links': links, 'upstream': upstream, 'postgres': bool(data.get('postgres'))}


def apply(lab, spec):
    """Build (or complete) the lab described by a normalized spec."""
    for name, entry in spec['hosts'].items():
        lab.add_host(name, etc_files=entry.get('etc_files'), exist_ok=True)
    for link in spec['links']:
        lab.connect(link['a'], link['ifname_a'], link['b'], link['ifname_b'], link.get('addr_a'), link.get('addr_b'), exist_ok=True)
    upstream = spec['upstream']
    if upstream is not None:
        lab.upstream(*upstream.get('hosts', []), ifname=upstream.get('ifname', 'uplink0'),
                     default_route=upstream.get('default_route', True))
    for name, entry in spec['hosts'].items():
        host = lab.host(name)
        for key, value in sorted((entry.get('sysctls') or {}).items()):
            host.sysctl(key, value)
        for route in entry.get('routes') or []:
            args = ['route', 'replace', route.get('to', 'default')]
            for key in ('via', 'dev', 'metric', 'table'):
                if route.get(key) is not None:
                    args += [key, str(route[key])]
            host.ip(*args)
    if spec['postgres'] and not running_postgres(lab):
        lab.postgres()
    return lab
