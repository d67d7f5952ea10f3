# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_dnsmasq
short_description: Run one dnsmasq per network for DHCP and DNS on a Firecracker host
version_added: 1.0.0
description:
  - Runs a dnsmasq for one network (one bridge) of a Firecracker host, as libvirt does for each of its virtual networks -
    DHCP with dynamic ranges and static leases, and DNS with the static hosts' names and, optionally, forwarding upstream.
  - The dnsmasq listens on that bridge only (C(interface), C(bind-dynamic), C(except-interface=lo)) and reads nothing but
    its own files (C(dnsmasq --conf-file=<config_dir>/<bridge>.conf), never C(/etc/dnsmasq.conf), C(/etc/hosts) or
    C(/etc/dnsmasq.d)); it has its own pid file and lease file.
  - Static leases and host names live in files that dnsmasq re-reads on SIGHUP, so adding or removing a static lease is
    applied live (same process, existing leases kept). A change to anything else rewrites the main configuration and
    restarts dnsmasq (the lease file keeps the leases across the restart). RV(action) says which happened.
  - Where systemd is PID 1 the dnsmasq runs as the unit C(nqrust-dnsmasq-<bridge>.service); elsewhere (containers,
    test machines) the module starts it as a daemon and tracks it by its pid file, checking by C(/proc/<pid>/cmdline)
    that the pid is this network's dnsmasq before it signals it.
  - Validates every parameter before touching the host; check mode reports exactly the changes and diff of the real run.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - dnsmasq on the managed host (Debian and Ubuntu package C(dnsmasq-base))
  - pyroute2 (0.7 or later) on the managed host
  - root
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_changes
options:
  bridge:
    description:
      - The network's Linux bridge, such as V(fcbr0). It names the instance and its files.
      - With O(state=present) it must exist and carry an IPv4 address inside O(cidr) (see M(nqrust.microvm.fc_bridge)).
    type: str
    required: true
  name:
    description:
      - The network's display name (C(fc_networks[].name)), used in the files' comments and the unit's description.
      - Defaults to O(bridge).
    type: str
  state:
    description:
      - V(present) writes the files and runs dnsmasq. With both O(dhcp.enabled) and O(dns.enabled) false it is the same
        as V(absent).
      - V(absent) stops the dnsmasq and deletes exactly its files (configuration, static leases, host names, lease file,
        pid file, unit). Directories are left.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description:
      - The network's mode (C(fc_networks[].mode)). It sets defaults only.
      - V(isolated) hands out no default route (O(dhcp.router)) and forwards no DNS upstream (O(dns.upstream)).
      - V(bridged) and V(open) have DHCP off by default (the LAN has its own DHCP server).
    type: str
    choices: [nat, routed, isolated, bridged, open]
    default: nat
  cidr:
    description:
      - The network, such as V(192.168.18.0/24), or the gateway with the prefix length (V(192.168.18.240/24)), which
        also sets O(gateway). IPv4 only.
      - Required with O(state=present) while DHCP or DNS is enabled.
    type: str
  gateway:
    description:
      - The network's gateway, inside O(cidr), such as V(192.168.18.240). DHCP hands it out as the default route.
        The dynamic ranges never contain it.
      - Required unless O(cidr) is given as the gateway with its prefix length.
    type: str
  dhcp:
    description:
      - DHCP settings (C(fc_networks[].dhcp)). A key left out or null takes its default.
    type: dict
    suboptions:
      enabled:
        description:
          - Whether dnsmasq serves DHCP. Default V(true) in modes V(nat), V(routed) and V(isolated), V(false) otherwise.
        type: bool
      range_start:
        description:
          - First address of the dynamic range; goes with O(dhcp.range_end).
          - Without a range the seed's convention applies, as libvirt documents it - the low half of O(cidr) is kept for
            static assignment and the high half is dynamic, without the gateway (V(192.168.18.0/24) with gateway
            V(192.168.18.240) gives V(192.168.18.128-239) and V(192.168.18.241-254)).
        type: str
      range_end:
        description:
          - Last address of the dynamic range; goes with O(dhcp.range_start).
        type: str
      ranges:
        description:
          - Several dynamic ranges instead of O(dhcp.range_start) and O(dhcp.range_end). Each inside O(cidr), clear of
            the gateway and of the others.
          - An empty list serves static leases only.
        type: list
        elements: dict
        suboptions:
          start:
            description: First address.
            type: str
            required: true
          end:
            description: Last address.
            type: str
            required: true
      lease_time:
        description:
          - Lease time; seconds (at least 120), a number with a unit V(s), V(m), V(h), V(d) or V(w) (V(12h)), or
            V(infinite). Default V(1h).
        type: raw
      static_leases:
        description:
          - Fixed addresses by MAC. Each address inside O(cidr), not the gateway, outside the dynamic ranges;
            MACs, addresses and host names unique.
          - Applied live (SIGHUP), without restarting dnsmasq.
        type: list
        elements: dict
        default: []
        suboptions:
          mac:
            description: The guest's MAC (unicast), such as V(aa:fc:00:00:00:05).
            type: str
            required: true
          ip:
            description: The address it always gets.
            type: str
            required: true
          hostname:
            description:
              - The guest's host name (one DNS label, or that label followed by O(dns.domain)). It is handed out
                with the lease and resolves through the network's DNS, as V(NAME) and V(NAME.DOMAIN).
            type: str
      router:
        description:
          - Whether DHCP hands out O(gateway) as the default route. Default V(false) in mode V(isolated), else V(true).
        type: bool
      dns_servers:
        description:
          - The DNS servers DHCP hands out (IPv4 addresses); V([]) hands out none.
          - By default dnsmasq hands out its own address when O(dns.enabled), none otherwise.
        type: list
        elements: str
      ping_check:
        description:
          - Whether dnsmasq pings an address before offering it (conflict detection; delays each new lease by about
            3 seconds). V(false) writes C(no-ping).
        type: bool
        default: true
  dns:
    description:
      - DNS settings (C(fc_networks[].dns)). A key left out or null takes its default.
    type: dict
    suboptions:
      enabled:
        description:
          - Whether dnsmasq answers DNS on the bridge. Default - the same as O(dhcp.enabled).
        type: bool
      upstream:
        description:
          - Where names dnsmasq does not know are forwarded, in order (C(no-resolv) plus one C(server=) each).
          - V([]) forwards nowhere (only the network's own names resolve).
          - Null (the default) uses the host's resolvers (C(/etc/resolv.conf)), except in mode V(isolated), where it
            means V([]).
        type: list
        elements: str
      domain:
        description:
          - The network's DNS domain, such as V(fc.internal). Handed out by DHCP; static hosts resolve as
            V(NAME.DOMAIN) too, and names in it are never forwarded upstream.
        type: str
  supervisor:
    description:
      - How dnsmasq is kept running. V(systemd) - the unit C(nqrust-dnsmasq-<bridge>.service), enabled at boot.
        V(pidfile) - a daemon started by the module and tracked by its pid file (no restart at boot or after a crash).
        V(auto) - V(systemd) where systemd is PID 1 (C(/run/systemd/system) exists), else V(pidfile).
      - Switching stops the dnsmasq under the other supervisor, and removes its unit.
    type: str
    choices: [auto, systemd, pidfile]
    default: auto
  config_dir:
    description:
      - Directory of the configuration, static leases and host names files (C(<bridge>.conf), C(<bridge>.dhcp-hosts),
        C(<bridge>.hosts)). Must be readable by the user dnsmasq drops to (it re-reads the last two on SIGHUP).
    type: path
    default: /etc/nqrust-microvm/dnsmasq
  state_dir:
    description: Directory of the lease file (C(<bridge>.leases)).
    type: path
    default: /var/lib/nqrust-microvm/dnsmasq
  run_dir:
    description: Directory of the pid file (C(<bridge>.pid)).
    type: path
    default: /run/nqrust-microvm/dnsmasq
  unit_dir:
    description: Directory of the systemd unit (with O(supervisor=systemd)).
    type: path
    default: /etc/systemd/system
  bridge_pending:
    description:
      - Only has an effect in check mode. Says that an earlier task of the same run creates the bridge
        (or gives it its address), as the C(nqrust.microvm.network) role does, so the checks that need the
        bridge as it will be are skipped and the plan is made as the real run will make it.
      - Ignored in a real run, where a missing bridge always fails the task.
    type: bool
    default: false
notes:
  - DHCPv4 only; IPv6 (DHCPv6, router advertisements) is not configured.
  - dnsmasq drops its privileges after start (to C(nobody) by default); the files it re-reads on SIGHUP are written
    with mode 0644 in directories of mode 0755.
  - A lease handed out before a static lease for the same MAC was added is kept until the guest renews it.
seealso:
  - module: nqrust.microvm.fc_bridge
  - name: dnsmasq manual
    description: The options the rendered configuration uses.
    link: https://thekelleys.org.uk/dnsmasq/docs/dnsmasq-man.html
"""

EXAMPLES = r"""
- name: DHCP and DNS of the default NAT network (seed convention - .128-.254 dynamic, the low half static)
  nqrust.microvm.fc_dnsmasq:
    bridge: fcbr0
    cidr: 192.168.18.0/24
    gateway: 192.168.18.240
    dhcp:
      lease_time: 12h
      static_leases:
        - {mac: "aa:fc:00:00:00:05", ip: 192.168.18.5, hostname: db1}
    dns:
      domain: fc.internal

- name: An isolated network - no default route, no forwarding, faster leases
  nqrust.microvm.fc_dnsmasq:
    bridge: fcbr9
    mode: isolated
    cidr: 10.99.0.1/24
    dhcp:
      range_start: 10.99.0.100
      range_end: 10.99.0.199
      ping_check: false

- name: From the network role's input
  nqrust.microvm.fc_dnsmasq:
    bridge: "{{ item.bridge }}"
    name: "{{ item.name }}"
    mode: "{{ item.mode | default('nat', true) }}"
    cidr: "{{ item.cidr }}"
    gateway: "{{ item.gateway }}"
    dhcp: "{{ item.dhcp | default({}, true) }}"
    dns: "{{ item.dns | default({}, true) }}"
    state: "{{ item.state | default('present', true) }}"
  loop: "{{ fc_networks }}"
  register: dnsmasq

- name: Stop the network's dnsmasq and remove its files
  nqrust.microvm.fc_dnsmasq:
    bridge: fcbr9
    state: absent
"""

RETURN = r"""
action:
  description:
    - What happened to the dnsmasq (in check mode, what would happen). V(started), V(restarted) (the main
      configuration or the unit changed), V(reloaded) (SIGHUP - only static leases or host names changed; same
      process, leases kept), V(stopped), or V(none).
  returned: always
  type: str
  sample: reloaded
pid:
  description:
    - The dnsmasq's process id; null when it does not run, and in check mode when it would be started or restarted.
  returned: always
  type: int
  sample: 4242
supervisor:
  description: The supervisor in use, V(systemd) or V(pidfile).
  returned: always
  type: str
  sample: pidfile
network:
  description: The network as rendered, after defaults. C(dhcp) and C(dns) are null when no dnsmasq runs.
  returned: always
  type: dict
  contains:
    bridge:
      description: The bridge.
      type: str
    name:
      description: The display name.
      type: str
    state:
      description: V(present) when a dnsmasq runs for the network, else V(absent).
      type: str
    mode:
      description: The mode.
      type: str
    cidr:
      description: The network.
      type: str
    gateway:
      description: The gateway.
      type: str
    dhcp:
      description: C(enabled), C(ranges) (list of C(start)/C(end)), C(static_range) (the seed's static half when the
        ranges are the default), C(lease_time), C(lease_seconds) (null - infinite), C(static_leases), C(router) (the
        address handed out as default route, or null), C(dns_servers), C(ping_check).
      type: dict
    dns:
      description: C(enabled), C(upstream) (null - the host's resolvers), C(domain).
      type: dict
  sample:
    bridge: fcbr0
    name: fcbr0
    state: present
    mode: nat
    cidr: 192.168.18.0/24
    gateway: 192.168.18.240
    dhcp:
      enabled: true
      ranges: [{start: 192.168.18.128, end: 192.168.18.239}, {start: 192.168.18.241, end: 192.168.18.254}]
      static_range: {start: 192.168.18.1, end: 192.168.18.127}
      lease_time: 1h
      lease_seconds: 3600
      static_leases: [{mac: "aa:fc:00:00:00:05", ip: 192.168.18.5, hostname: db1}]
      router: 192.168.18.240
      dns_servers: null
      ping_check: true
    dns: {enabled: true, upstream: null, domain: fc.internal}
files:
  description: The instance's files by role (empty when no dnsmasq runs).
  returned: always
  type: dict
  sample:
    config: /etc/nqrust-microvm/dnsmasq/fcbr0.conf
    dhcp_hosts: /etc/nqrust-microvm/dnsmasq/fcbr0.dhcp-hosts
    addn_hosts: /etc/nqrust-microvm/dnsmasq/fcbr0.hosts
    leases: /var/lib/nqrust-microvm/dnsmasq/fcbr0.leases
    pidfile: /run/nqrust-microvm/dnsmasq/fcbr0.pid
leases:
  description: The leases in the lease file after the run.
  returned: always
  type: list
  elements: dict
  contains:
    expires:
      description: Expiry time (seconds since the epoch; 0 - never).
      type: int
    mac:
      description: The client's MAC.
      type: str
    ip:
      description: The leased address.
      type: str
    hostname:
      description: The client's host name, or null.
      type: str
    client_id:
      description: The client identifier, or null.
      type: str
changes:
  description: The changes made (in check mode, that would be made), in the order they run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: C(write), C(delete) (files), C(start), C(restart), C(reload), C(stop), C(enable), C(disable) (dnsmasq).
      type: str
      sample: reload
    kind:
      description: C(file) or C(dnsmasq).
      type: str
      sample: dnsmasq
    target:
      description: The file's path, or the bridge.
      type: str
      sample: fcbr0
    phase:
      description: The plan phase (C(create) for files, C(up) for dnsmasq).
      type: str
      sample: up
    details:
      description: C(file) (its role) for files; C(supervisor), C(pid) and C(reason) for dnsmasq.
      type: dict
      sample: {"supervisor": "pidfile", "pid": 4242, "reason": "static leases or host names changed"}
    description:
      description: The change in words.
      type: str
      sample: "reload dnsmasq 'fcbr0' (pidfile, static leases or host names changed)"
failed_change:
  description: The change that failed, when a step of the plan failed (the steps before it were undone).
  returned: failure of a plan step
  type: dict
rolled_back:
  description: Whether the steps applied before a failed step were undone.
  returned: failure of a plan step
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils.converge import converge
from ansible_collections.nqrust.microvm.plugins.module_utils.dnsmasq_plan import DnsmasqError, DnsmasqTask
from ansible_collections.nqrust.microvm.plugins.module_utils.dnsmasq_service import ServiceError
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
    NetlinkSession,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors


def argument_spec():
    return dict(
        bridge=dict(type='str', required=True),
        name=dict(type='str'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        mode=dict(type='str', choices=['nat', 'routed', 'isolated', 'bridged', 'open'], default='nat'),
        cidr=dict(type='str'),
        gateway=dict(type='str'),
        dhcp=dict(type='dict', options=dict(
            enabled=dict(type='bool'),
            range_start=dict(type='str'),
            range_end=dict(type='str'),
            ranges=dict(type='list', elements='dict', options=dict(
                start=dict(type='str', required=True),
                end=dict(type='str', required=True),
            )),
            lease_time=dict(type='raw'),
            static_leases=dict(type='list', elements='dict', default=[], options=dict(
                mac=dict(type='str', required=True),
                ip=dict(type='str', required=True),
                hostname=dict(type='str'),
            )),
            router=dict(type='bool'),
            dns_servers=dict(type='list', elements='str'),
            ping_check=dict(type='bool', default=True),
        )),
        dns=dict(type='dict', options=dict(
            enabled=dict(type='bool'),
            upstream=dict(type='list', elements='str'),
            domain=dict(type='str'),
        )),
        supervisor=dict(type='str', choices=['auto', 'systemd', 'pidfile'], default='auto'),
        config_dir=dict(type='path', default='/etc/nqrust-microvm/dnsmasq'),
        state_dir=dict(type='path', default='/var/lib/nqrust-microvm/dnsmasq'),
        run_dir=dict(type='path', default='/run/nqrust-microvm/dnsmasq'),
        unit_dir=dict(type='path', default='/etc/systemd/system'),
        bridge_pending=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)

    def run_command(argv):
        return module.run_command(argv)

    params = dict(module.params, bridge_pending=module.params['bridge_pending'] and module.check_mode)
    task = DnsmasqTask(params, lambda name: module.get_bin_path(name, opt_dirs=['/usr/sbin', '/sbin']), run_command)
    result = converge(module, task.validate, task.read, task.plan, task.handlers,
                      after=task.after, view=task.view, report=task.report, session_factory=NetlinkSession,
                      operational_errors=(NetlinkOperationError, ValidationErrors, DnsmasqError, ServiceError, OSError))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
