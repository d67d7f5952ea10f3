"""What a host's network configuration is, for "the host is unchanged" assertions.

``snapshot(host)`` reads links (``ip -j -d link``), addresses, routes, bridge-port VLANs
(where the kernel has them) and nftables tables of a lab host and keeps only what
configuration decides, dropping what the kernel changes on its own (carrier, operstate,
counters, timers, link-local addresses of new links, etc.). Two snapshots compare equal when
nothing was configured in between:

    before = snapshot(hv)
    result = run_module(hv, 'fc_tap', bad_args)
    assert result['failed']
    assert_unchanged(before, snapshot(hv))
"""

import json

# Per-link fields that configuration sets; everything else in `ip -j -d link` is state.
LINK_FIELDS = ('ifindex', 'ifname', 'mtu', 'address', 'master', 'link', 'ifalias', 'txqlen', 'group')
LINKINFO_FIELDS = ('info_kind', 'info_slave_kind')
# Flags an operator sets (the rest, like LOWER_UP and NO-CARRIER, follow the carrier).
CONFIG_FLAGS = {'UP', 'NOARP', 'MULTICAST', 'PROMISC', 'ALLMULTI'}
# Bridge and tun settings that configuration decides.
INFO_DATA_FIELDS = (
    'stp_state', 'forward_delay', 'vlan_filtering', 'vlan_default_pvid', 'mcast_snooping',
    'vlan_protocol', 'ageing_time', 'type', 'pi', 'vnet_hdr', 'multi_queue', 'persist', 'user', 'group',
    'protocol', 'id',
)
SLAVE_DATA_FIELDS = ('isolated', 'learning', 'flood', 'mcast_flood', 'bcast_flood', 'neigh_suppress', 'cost', 'priority', 'guard', 'hairpin')


def _ip_json(host, *args):
    result = host.ip('-j', *args, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return json.loads(result.stdout)


def _link(item):
    entry = {key: item.get(key) for key in LINK_FIELDS if key in item}
    entry['flags'] = sorted(set(item.get('flags', [])) & CONFIG_FLAGS)
    info = item.get('linkinfo') or {}
    for key in LINKINFO_FIELDS:
        if key in info:
            entry[key] = info[key]
    data = info.get('info_data') or {}
    entry['info_data'] = {key: data[key] for key in INFO_DATA_FIELDS if key in data}
    slave = info.get('info_slave_data') or {}
    entry['info_slave_data'] = {key: slave[key] for key in SLAVE_DATA_FIELDS if key in slave}
    return entry


def links(host):
    """{ifname: configuration of the link}."""
    return {item['ifname']: _link(item) for item in _ip_json(host, '-d', 'link', 'show')}


def addresses(host):
    """Sorted 'ifname address/prefixlen' strings, IPv6 link-local addresses left out."""
    found = []
    for item in _ip_json(host, 'address', 'show'):
        for addr in item.get('addr_info', []):
            if addr.get('family') == 'inet6' and addr.get('scope') == 'link':
                continue
            found.append('%s %s/%s' % (item['ifname'], addr['local'], addr['prefixlen']))
    return sorted(found)


def routes(host):
    """Sorted routes of the main table (IPv4 and IPv6, kernel-made IPv6 link-local ones left out)."""
    found = []
    for family in ('-4', '-6'):
        for route in _ip_json(host, family, 'route', 'show', 'table', 'main'):
            if route.get('dst', '').startswith('fe80::') or route.get('dst', '').startswith('ff00::'):
                continue
            found.append(json.dumps({key: route.get(key) for key in ('dst', 'gateway', 'dev', 'metric', 'prefsrc', 'protocol', 'scope')},
                                    sort_keys=True))
    return sorted(found)


def bridge_vlans(host):
    """Sorted bridge VLAN entries ('port vid flags'), empty where the kernel has no VLAN filtering."""
    result = host.run(['bridge', '-j', 'vlan', 'show'], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    found = []
    for port in json.loads(result.stdout):
        for vlan in port.get('vlans', []):
            vids = '%s-%s' % (vlan['vlan'], vlan['vlanEnd']) if 'vlanEnd' in vlan else str(vlan['vlan'])
            found.append('%s %s %s' % (port['ifname'], vids, ','.join(sorted(vlan.get('flags', [])))))
    return sorted(found)


def nft_tables(host):
    """Sorted 'family name' of the nftables tables of the host."""
    result = host.run(['nft', '-j', 'list', 'tables'], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return sorted('%s %s' % (item['table']['family'], item['table']['name'])
                  for item in json.loads(result.stdout).get('nftables', []) if 'table' in item)


def snapshot(host):
    """The network configuration of a lab host (see the module docstring)."""
    return {
        'links': links(host),
        'addresses': addresses(host),
        'routes': routes(host),
        'bridge_vlans': bridge_vlans(host),
        'nft_tables': nft_tables(host),
    }


def assert_unchanged(before, after):
    """Fail with the differing parts when two snapshots differ."""
    if before == after:
        return
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append('%s before: %s' % (key, json.dumps(before.get(key), sort_keys=True)))
            lines.append('%s after:  %s' % (key, json.dumps(after.get(key), sort_keys=True)))
    raise AssertionError('the host changed:\n' + '\n'.join(lines))
