# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One dnsmasq per network: the desired network from module parameters, and the files it is run from.

* ``spec_from_params`` validates the parameters into a ``DnsmasqSpec`` (every
  problem recorded on a ``validation.Validator``); nothing here reads the host.
* ``render_config`` makes the main configuration file (dnsmasq reads it only at
  start: a change needs a restart), ``render_dhcp_hosts`` the static leases
  (``dhcp-hostsfile``) and ``render_addn_hosts`` the static host names
  (``addn-hosts``), which dnsmasq re-reads on SIGHUP, so leases come and go
  without a restart.  ``render_unit`` is the systemd unit where systemd runs.
* ``parse_leases`` reads dnsmasq's lease file (a data file, one lease a line).

The names of the settings are those of ``fc_networks`` (docs/network-model.md):
``cidr``, ``gateway``, ``dhcp.range_start``/``range_end``, ``lease_time``,
``static_leases``, ``dns.upstream``, ``dns.domain``.

Pure Python, standard library only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils import dhcp_ranges
from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import DHCP_MODES
from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import hostname as dns_name
from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import lease_time as check_lease_time
from ansible_collections.nqrust.microvm.plugins.module_utils.network_settings import split_cidr
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    gateway as check_gateway,
    interface_name,
    ip_address,
    mac_address,
)

SUPERVISORS = ('auto', 'systemd', 'pidfile')

DEFAULT_CONFIG_DIR = '/etc/nqrust-microvm/dnsmasq'
DEFAULT_STATE_DIR = '/var/lib/nqrust-microvm/dnsmasq'
DEFAULT_RUN_DIR = '/run/nqrust-microvm/dnsmasq'
DEFAULT_UNIT_DIR = '/etc/systemd/system'
DEFAULT_LEASE_TIME = '1h'
UNIT_PREFIX = 'nqrust-dnsmasq-'
MARKER = 'Managed by nqrust.microvm (fc_dnsmasq)'

ALLOWED_DIR = 'must be an absolute path of a directory'
ALLOWED_STATIC_HOSTNAME = ("a static lease's hostname must be one DNS label (letters, digits, '-'), "
                           'or that label followed by the network\'s dns.domain')
ALLOWED_UNIQUE = 'every static lease needs its own mac, ip and hostname'
ALLOWED_NEEDS_CIDR = 'cidr is required with state=present while DHCP or DNS is enabled, e.g. 192.168.18.0/24'
ALLOWED_NEEDS_GATEWAY = ('gateway is required with a cidr that is a network (give it, or give cidr as '
                         'the gateway with its prefix length, e.g. 192.168.18.240/24)')
ALLOWED_RANGE_FORMS = 'give either dhcp.range_start with dhcp.range_end, or dhcp.ranges, not both'


@dataclasses.dataclass(frozen=True)
class StaticLease(object):
    mac: str
    ip: str
    hostname: Optional[str] = None

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Paths(object):
    """The files of one network's dnsmasq."""

    config: str
    dhcp_hosts: str
    addn_hosts: str
    leases: str
    pidfile: str
    unit: str
    unit_name: str

    @classmethod
    def of(cls, bridge, config_dir=DEFAULT_CONFIG_DIR, state_dir=DEFAULT_STATE_DIR, run_dir=DEFAULT_RUN_DIR,
           unit_dir=DEFAULT_UNIT_DIR):
        unit_name = unit_name_of(bridge)
        return cls(
            config=os.path.join(config_dir, '%s.conf' % bridge),
            dhcp_hosts=os.path.join(config_dir, '%s.dhcp-hosts' % bridge),
            addn_hosts=os.path.join(config_dir, '%s.hosts' % bridge),
            leases=os.path.join(state_dir, '%s.leases' % bridge),
            pidfile=os.path.join(run_dir, '%s.pid' % bridge),
            unit=os.path.join(unit_dir, unit_name),
            unit_name=unit_name,
        )

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DnsmasqSpec(object):
    """The validated parameters; ``network``/``gateway``/``pools`` are ``ipaddress`` objects."""

    bridge: str
    paths: Paths
    name: Optional[str] = None
    state: str = 'present'
    supervisor: str = 'auto'
    mode: str = 'nat'
    network: Optional[ipaddress.IPv4Network] = None
    gateway: Optional[ipaddress.IPv4Address] = None
    dhcp_enabled: bool = False
    pools: tuple = ()
    pools_given: bool = False
    lease_time: str = DEFAULT_LEASE_TIME
    static_leases: tuple = ()
    router: bool = True
    dns_servers: Optional[tuple] = None
    ping_check: bool = True
    dns_enabled: bool = False
    upstream: Optional[tuple] = None
    domain: Optional[str] = None
    bridge_pending: bool = False   # check mode only: an earlier task creates the bridge or its address

    @property
    def active(self):
        """Whether a dnsmasq should run: state present with DHCP or DNS enabled."""
        return self.state == 'present' and (self.dhcp_enabled or self.dns_enabled)

    @property
    def label(self):
        return self.name or self.bridge

    def settings(self):
        """The network as the module returns it (``network`` key of the result)."""
        data = {
            'bridge': self.bridge, 'name': self.label, 'state': 'present' if self.active else 'absent',
            'mode': self.mode, 'cidr': str(self.network) if self.network else None,
            'gateway': str(self.gateway) if self.gateway else None,
            'dhcp': None, 'dns': None,
        }
        if not self.active:
            return data
        static = dhcp_ranges.static_part(self.network, self.gateway) if self.network else None
        data['dhcp'] = {
            'enabled': self.dhcp_enabled,
            'ranges': [{'start': str(first), 'end': str(last)} for first, last in self.pools],
            'static_range': {'start': str(static[0]), 'end': str(static[1])} if static and not self.pools_given else None,
            'lease_time': self.lease_time,
            'lease_seconds': dhcp_ranges.lease_seconds(self.lease_time),
            'static_leases': [lease.to_dict() for lease in self.static_leases],
            'router': str(self.gateway) if self.router and self.gateway else None,
            'dns_servers': list(self.dns_servers) if self.dns_servers is not None else None,
            'ping_check': self.ping_check,
        }
        data['dns'] = {
            'enabled': self.dns_enabled,
            'upstream': list(self.upstream) if self.upstream is not None else None,
            'domain': self.domain,
        }
        return data


# --------------------------------------------------------------------------- names

_UNIT_SAFE = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-')


def unit_name_of(bridge):
    """``nqrust-dnsmasq-fcbr0.service``; bytes systemd does not allow in unit names become ``\\xNN``."""
    escaped = []
    for byte in bridge.encode('utf-8'):
        char = chr(byte)
        escaped.append(char if char in _UNIT_SAFE else '\\x%02x' % byte)
    return '%s%s.service' % (UNIT_PREFIX, ''.join(escaped))


# --------------------------------------------------------------------------- validation

def _directory(validator, param, value, default):
    if value is None:
        return default
    if not isinstance(value, str) or not os.path.isabs(value) or '\n' in value:
        validator.add(param, value, '%s %s' % (param, ALLOWED_DIR))
        return default
    return os.path.normpath(value)


def _network_and_gateway(validator, params):
    """``(network, gateway)`` from ``cidr`` (network, or gateway/prefix) and ``gateway``."""
    given = params.get('cidr')
    if given is None:
        validator.add('cidr', given, ALLOWED_NEEDS_CIDR, 'missing')
        return None, None
    split = validator.check(split_cidr, 'cidr', given)
    if split is None:
        return None, None
    network = ipaddress.ip_network(split[0])
    if network.version != 4:
        validator.add('cidr', given, 'cidr must be an IPv4 network: dnsmasq serves DHCPv4 here (IPv6 is not supported yet)',
                      'is an IPv6 network')
        return None, None
    from_cidr = ipaddress.ip_address(split[1]) if split[1] else None
    if params.get('gateway') is not None:
        gateway = validator.check(check_gateway, 'gateway', params['gateway'], network, cidr_param='cidr')
        if gateway is not None and from_cidr is not None and gateway != from_cidr:
            validator.add('gateway', params['gateway'], 'gateway must agree with the address given in cidr (%s)' % given,
                          'cidr says %s' % from_cidr)
            return network, None
        return network, gateway
    if from_cidr is None:
        validator.add('gateway', None, ALLOWED_NEEDS_GATEWAY, 'missing')
    return network, from_cidr


def _pools(validator, dhcp, network, gateway):
    """The dynamic pools: given (``range_start``/``range_end`` or ``ranges``) or the seed's default."""
    start, end, ranges = dhcp.get('range_start'), dhcp.get('range_end'), dhcp.get('ranges')
    if (start is None) != (end is None):
        missing = 'dhcp.range_end' if end is None else 'dhcp.range_start'
        validator.add(missing, None, 'dhcp.range_start and dhcp.range_end go together', 'missing')
        return None, True
    if start is not None and ranges is not None:
        validator.add('dhcp.ranges', ranges, ALLOWED_RANGE_FORMS, 'dhcp.range_start/range_end are given too')
        return None, True
    if start is not None:
        items = [('dhcp.range_start/range_end', start, end)]
    elif ranges is not None:
        items = [('dhcp.ranges[%d]' % position, item.get('start'), item.get('end')) for position, item in enumerate(ranges)]
    else:
        return tuple(dhcp_ranges.default_ranges(network, gateway)), False
    pools = dhcp_ranges.check_ranges(validator, 'dhcp.ranges', items, network, gateway)
    return (tuple(pools) if pools is not None else None), True


def _static_hostname(validator, param, value, domain):
    name = validator.check(dns_name, param, value)
    if name is None:
        return None
    if '.' in name:
        if domain and name.endswith('.' + domain) and '.' not in name[:-len(domain) - 1]:
            return name[:-len(domain) - 1]
        validator.add(param, value, ALLOWED_STATIC_HOSTNAME, 'has dots' if not domain else 'is not <label>.%s' % domain)
        return None
    return name


def _static_leases(validator, leases, network, gateway, pools, domain):
    result = []
    seen = {'mac': {}, 'ip': {}, 'hostname': {}}
    for position, lease in enumerate(leases or []):
        param = 'dhcp.static_leases[%d]' % position
        mac = validator.check(mac_address, param + '.mac', lease.get('mac'))
        address = None
        if network is not None and pools is not None:
            address = validator.check(dhcp_ranges.check_static_address, param + '.ip', lease.get('ip'), network, gateway, pools)
        host = None
        if lease.get('hostname') not in (None, ''):
            host = _static_hostname(validator, param + '.hostname', lease['hostname'], domain)
        item = {'mac': mac, 'ip': str(address) if address is not None else None, 'hostname': host}
        for key in ('mac', 'ip', 'hostname'):
            if item[key] is None:
                continue
            if item[key] in seen[key]:
                validator.add('%s.%s' % (param, key), lease.get(key), ALLOWED_UNIQUE,
                              'already used by dhcp.static_leases[%d]' % seen[key][item[key]])
            else:
                seen[key][item[key]] = position
        if mac is not None and address is not None:
            result.append(StaticLease(mac=mac, ip=str(address), hostname=host))
    return tuple(sorted(result, key=lambda lease: ipaddress.ip_address(lease.ip)))


def _address_list(validator, param, values, family=None):
    found = []
    for position, value in enumerate(values):
        address = validator.check(ip_address, '%s[%d]' % (param, position), value, family)
        if address is not None:
            found.append(str(address))
    return tuple(found)


def spec_from_params(validator, params):
    """A ``DnsmasqSpec`` from the module parameters; problems are recorded on ``validator``.

    ``params`` has the module's options (``dhcp``/``dns`` dictionaries with
    their sub-options, missing keys meaning null).
    """
    bridge = validator.check(interface_name, 'bridge', params.get('bridge'))
    paths = Paths.of(bridge or 'invalid',
                     _directory(validator, 'config_dir', params.get('config_dir'), DEFAULT_CONFIG_DIR),
                     _directory(validator, 'state_dir', params.get('state_dir'), DEFAULT_STATE_DIR),
                     _directory(validator, 'run_dir', params.get('run_dir'), DEFAULT_RUN_DIR),
                     _directory(validator, 'unit_dir', params.get('unit_dir'), DEFAULT_UNIT_DIR))
    state = params.get('state') or 'present'
    mode = params.get('mode') or 'nat'
    common = dict(bridge=bridge, paths=paths, name=params.get('name') or None, state=state,
                  supervisor=params.get('supervisor') or 'auto', mode=mode,
                  bridge_pending=bool(params.get('bridge_pending')))
    dhcp = dict(params.get('dhcp') or {})
    dns = dict(params.get('dns') or {})
    dhcp_enabled = dhcp.get('enabled')
    if dhcp_enabled is None:
        dhcp_enabled = mode in DHCP_MODES
    dns_enabled = dns.get('enabled')
    if dns_enabled is None:
        dns_enabled = dhcp_enabled
    if state == 'absent' or not (dhcp_enabled or dns_enabled):
        # nothing to run: only the instance's name and directories matter
        return DnsmasqSpec(dhcp_enabled=bool(dhcp_enabled), dns_enabled=bool(dns_enabled), **common)

    network, gateway = _network_and_gateway(validator, params)
    pools, pools_given = (None, False) if network is None else _pools(validator, dhcp, network, gateway)
    lease_time = DEFAULT_LEASE_TIME
    if dhcp.get('lease_time') not in (None, ''):
        lease_time = validator.check(check_lease_time, 'dhcp.lease_time', dhcp['lease_time']) or DEFAULT_LEASE_TIME
    domain = None
    if dns.get('domain') not in (None, ''):
        domain = validator.check(dns_name, 'dns.domain', dns['domain'])
    static_leases = _static_leases(validator, dhcp.get('static_leases'), network, gateway, pools, domain)
    router = dhcp.get('router')
    if router is None:
        router = mode != 'isolated'
    dns_servers = dhcp.get('dns_servers')
    if dns_servers is not None:
        dns_servers = _address_list(validator, 'dhcp.dns_servers', dns_servers, family='ipv4')
    upstream = dns.get('upstream')
    if upstream is None and mode == 'isolated':
        upstream = []
    if upstream is not None:
        upstream = _address_list(validator, 'dns.upstream', upstream)
    ping_check = dhcp.get('ping_check')
    return DnsmasqSpec(
        network=network, gateway=gateway, dhcp_enabled=bool(dhcp_enabled), pools=pools or (),
        pools_given=pools_given, lease_time=lease_time, static_leases=static_leases, router=bool(router),
        dns_servers=dns_servers, ping_check=True if ping_check is None else bool(ping_check),
        dns_enabled=bool(dns_enabled), upstream=upstream, domain=domain, **common)


# --------------------------------------------------------------------------- rendering

def _one_line(text):
    return ' '.join(str(text).split())


def _lease_value(spec):
    seconds = dhcp_ranges.lease_seconds(spec.lease_time)
    return 'infinite' if seconds is None else str(seconds)


def render_config(spec):
    """The main configuration file: read once at start (a change needs a restart)."""
    paths = spec.paths
    lines = [
        '# %s: DHCP and DNS of network %s on bridge %s.' % (MARKER, _one_line(spec.label), spec.bridge),
        '# Changes made here are overwritten. Run as: dnsmasq --conf-file=%s' % paths.config,
        '# Static leases: %s; host names: %s (both re-read on SIGHUP).' % (paths.dhcp_hosts, paths.addn_hosts),
        'interface=%s' % spec.bridge,
        'except-interface=lo',
        'bind-dynamic',
        'pid-file=%s' % paths.pidfile,
        'no-hosts',
    ]
    if spec.dns_enabled:
        lines.append('addn-hosts=%s' % paths.addn_hosts)
        lines.extend(['domain-needed', 'bogus-priv'])
        if spec.upstream is not None:
            lines.append('no-resolv')
            if spec.upstream:
                lines.append('strict-order')
            lines.extend('server=%s' % server for server in spec.upstream)
        if spec.domain:
            lines.append('local=/%s/' % spec.domain)
    else:
        lines.append('port=0')
    if spec.domain:
        lines.append('domain=%s' % spec.domain)
    if spec.dhcp_enabled:
        netmask = spec.network.netmask
        lease = _lease_value(spec)
        if spec.pools:
            lines.extend('dhcp-range=%s,%s,%s,%s' % (first, last, netmask, lease) for first, last in spec.pools)
        else:
            lines.append('dhcp-range=%s,static,%s,%s' % (spec.network.network_address, netmask, lease))
        lines.extend([
            # every address of the network (not the number of static leases: adding one must not restart dnsmasq)
            'dhcp-lease-max=%d' % dhcp_ranges.size([dhcp_ranges.usable(spec.network)]),
            'dhcp-leasefile=%s' % paths.leases,
            'dhcp-hostsfile=%s' % paths.dhcp_hosts,
            'dhcp-authoritative',
        ])
        if not spec.ping_check:
            lines.append('no-ping')
        lines.append('dhcp-option=option:router,%s' % spec.gateway if spec.router else 'dhcp-option=option:router')
        if spec.dns_servers is not None:
            lines.append('dhcp-option=option:dns-server%s' % ''.join(',' + server for server in spec.dns_servers))
    return '\n'.join(lines) + '\n'


def render_dhcp_hosts(spec):
    """The static leases, one ``MAC,IP[,HOSTNAME]`` a line (``dhcp-hostsfile``)."""
    lines = ['# %s: static leases of %s.' % (MARKER, spec.bridge)]
    if spec.dhcp_enabled:
        for lease in spec.static_leases:
            lines.append(','.join([lease.mac, lease.ip] + ([lease.hostname] if lease.hostname else [])))
    return '\n'.join(lines) + '\n'


def render_addn_hosts(spec):
    """The static hosts' names, ``IP FQDN NAME`` a line (``addn-hosts``)."""
    lines = ['# %s: host names of %s.' % (MARKER, spec.bridge)]
    if spec.dns_enabled:
        for lease in spec.static_leases:
            if not lease.hostname:
                continue
            names = ([lease.hostname + '.' + spec.domain] if spec.domain else []) + [lease.hostname]
            lines.append('%s %s' % (lease.ip, ' '.join(names)))
    return '\n'.join(lines) + '\n'


def render_unit(spec, dnsmasq_path, kill_path='/bin/kill'):
    """The systemd service of the network's dnsmasq (started where systemd is PID 1)."""
    description = _one_line(spec.label).replace('%', '%%')
    config = spec.paths.config
    return '\n'.join([
        '# %s: DHCP and DNS of network %s on bridge %s.' % (MARKER, description, spec.bridge),
        '[Unit]',
        'Description=nqrust.microvm DHCP and DNS (dnsmasq) for %s on %s' % (description, spec.bridge),
        'Documentation=man:dnsmasq(8)',
        'After=network.target nqrust-microvm-networks.service',
        '',
        '[Service]',
        'Type=forking',
        'PIDFile=%s' % spec.paths.pidfile,
        'ExecStartPre=%s --test --conf-file=%s' % (dnsmasq_path, config),
        'ExecStart=%s --conf-file=%s' % (dnsmasq_path, config),
        'ExecReload=%s -HUP $MAINPID' % kill_path,
        'Restart=on-failure',
        'RestartSec=2',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
    ]) + '\n'


def desired_files(spec, dnsmasq_path=None, kill_path='/bin/kill', with_unit=False):
    """``{path: content}`` of the files a running instance needs (the unit only with ``with_unit``)."""
    files = {
        spec.paths.config: render_config(spec),
        spec.paths.dhcp_hosts: render_dhcp_hosts(spec),
        spec.paths.addn_hosts: render_addn_hosts(spec),
    }
    if with_unit:
        files[spec.paths.unit] = render_unit(spec, dnsmasq_path or 'dnsmasq', kill_path)
    return files


# --------------------------------------------------------------------------- leases

def parse_leases(text):
    """dnsmasq's lease file -> ``[{expires, mac, ip, hostname, client_id}]`` (``expires`` 0: never)."""
    found = []
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].isdigit() or parts[0] == 'duid':
            continue
        found.append({
            'expires': int(parts[0]), 'mac': parts[1].lower(), 'ip': parts[2],
            'hostname': None if parts[3] == '*' else parts[3],
            'client_id': None if len(parts) < 5 or parts[4] == '*' else parts[4],
        })
    return found
