"""Bridge VLAN membership read through pyroute2 (a bridge VLAN dump; works with pyroute2 0.7 and 0.9).

    python -m lab.bridge_vlans      run inside a namespace: prints {ifname: [{vid, pvid, untagged}]} as JSON

``Host.run`` puts it inside a lab host, so pyroute2 opens a plain ``IPRoute()`` in that namespace
(no ``NetNS``, which would create a missing namespace).
"""

import json
import sys

BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4


def dump():
    """{ifname: [{'vid': int, 'pvid': bool, 'untagged': bool}]} of every bridge port (and bridge) here."""
    from pyroute2 import IPRoute  # pylint: disable=import-outside-toplevel
    found = {}
    with IPRoute() as ipr:
        for msg in ipr.get_vlans():
            ifname = msg.get_attr('IFLA_IFNAME')
            spec = msg.get_attr('IFLA_AF_SPEC')
            if not ifname or spec is None:
                continue
            entries = found.setdefault(ifname, [])
            for info in spec.get_attrs('IFLA_BRIDGE_VLAN_INFO'):
                entries.append({
                    'vid': int(info['vid']),
                    'pvid': bool(info['flags'] & BRIDGE_VLAN_INFO_PVID),
                    'untagged': bool(info['flags'] & BRIDGE_VLAN_INFO_UNTAGGED),
                })
    return found


def access(vid):
    """What read() reports for an access port of VLAN vid (pvid, untagged, nothing else)."""
    return [{'vid': vid, 'pvid': True, 'untagged': True}]


def tagged(*vids):
    """What read() reports for a trunk of the VLANs vids (tagged, no pvid)."""
    return [{'vid': vid, 'pvid': False, 'untagged': False} for vid in vids]


def read(host):
    """The bridge VLAN membership of a lab host (runs dump() inside its namespace)."""
    result = host.run([sys.executable, '-m', 'lab.bridge_vlans'], timeout=120)
    return json.loads(result.stdout)


def main():
    json.dump(dump(), sys.stdout, sort_keys=True)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
