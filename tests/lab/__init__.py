"""The nqrust.microvm test lab: hosts in network namespaces, veth links, an upstream "internet",
simulated guests on TAPs, dnsmasq and a throwaway PostgreSQL; used by pytest, molecule and the demo.

    with lab.Lab() as lb:
        hv = lb.add_host('hv1')
        up = lb.upstream(hv)                       # 'upstream' host: 203.0.113.1, "internet" 192.0.2.1
        hv.ip('link', 'add', 'br0', 'type', 'bridge')
        ...
        guest = lb.add_guest('vm1', hv, 'tap0')    # attaches to the existing TAP like a VMM
        lease = guest.dhcp()
        assert guest.ping(lease['router'])

Every resource is named with the ``nql-`` prefix and recorded under ``/run/nqrust-lab/<labid>/``;
``lab.sweep()`` removes whatever a killed process left behind.
"""

from lab import kernel
from lab.errors import LabCommandError, LabError, LabLeakError
from lab.guest import Guest, stable_mac
from lab.lifecycle import Interrupted, handle_signals
from lab.postgres import ThrowawayPostgres
from lab.state import ETC_NETNS, PREFIX, STATE_ROOT
from lab.sweep import leftovers, present_lab_ids, sweep, teardown_lab
from lab.topology import INTERNET_ADDRESS, UPSTREAM_GATEWAY, UPSTREAM_SUBNET, Host, Lab, TcpListener

__all__ = [
    'ETC_NETNS', 'INTERNET_ADDRESS', 'PREFIX', 'STATE_ROOT', 'UPSTREAM_GATEWAY', 'UPSTREAM_SUBNET',
    'Guest', 'Host', 'Interrupted', 'Lab', 'LabCommandError', 'LabError', 'LabLeakError', 'TcpListener', 'ThrowawayPostgres',
    'handle_signals', 'kernel', 'leftovers', 'present_lab_ids', 'stable_mac', 'sweep', 'teardown_lab',
]
