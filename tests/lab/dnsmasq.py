"""A throwaway dnsmasq inside a lab host: own config, pid, lease and log files in the lab's temp dir.

It never reads /etc/dnsmasq.conf, /etc/hosts or /etc/resolv.conf, binds only to its interface and
answers DHCP without the ping check (``no-ping``: leases in ~0.1 s instead of ~3 s).
"""

import ipaddress
import os
import time

from lab.errors import LabError
from lab.netns import timeout_scale


class Dnsmasq:
    """dnsmasq -k on one interface of a lab host; started by Host.dnsmasq()."""

    def __init__(self, host, interface, dhcp_range, router=None, dns_servers=None, domain=None, port=0,
                 lease_time='1h', extra_options=(), name=None):
        if isinstance(dhcp_range, str):
            dhcp_range = tuple(part.strip() for part in dhcp_range.split(','))
        if len(dhcp_range) != 2:
            raise LabError('dhcp_range must be (first, last), got %r' % (dhcp_range,))
        first, last = (str(ipaddress.ip_address(addr)) for addr in dhcp_range)
        self.host = host
        self.interface = interface
        self.first, self.last = first, last
        self.router = router
        self.dns_servers = list(dns_servers or [])
        self.domain = domain
        self.port = int(port)
        self.lease_time = lease_time
        self.extra_options = list(extra_options)
        self.name = name or '%s-%s' % (host.name, interface)
        base = os.path.join(host.lab.tmpdir, 'dnsmasq-%s' % self.name)
        self.conf_file = base + '.conf'
        self.lease_file = base + '.leases'
        self.pid_file = base + '.pid'
        self.log_file = base + '.log'
        self.process = None

    def config(self):
        lines = [
            'interface=%s' % self.interface,
            'bind-interfaces',
            'port=%d' % self.port,
            'no-resolv',
            'no-hosts',
            'no-poll',
            'no-ping',
            'dhcp-authoritative',
            'dhcp-range=%s,%s,%s' % (self.first, self.last, self.lease_time),
            'dhcp-leasefile=%s' % self.lease_file,
            'pid-file=%s' % self.pid_file,
            'log-facility=%s' % self.log_file,
            'log-dhcp',
            'user=root',
            'group=root',
        ]
        if self.router:
            lines.append('dhcp-option=option:router,%s' % self.router)
        if self.dns_servers:
            lines.append('dhcp-option=option:dns-server,%s' % ','.join(self.dns_servers))
        if self.domain:
            lines.append('domain=%s' % self.domain)
        lines.extend(self.extra_options)
        return '\n'.join(lines) + '\n'

    def start(self, timeout=10):
        for path in (self.pid_file, self.lease_file, self.log_file):
            if os.path.exists(path):
                os.unlink(path)
        with open(self.conf_file, 'w', encoding='utf-8') as handle:
            handle.write(self.config())
        stderr_path = self.log_file + '.stderr'
        with open(stderr_path, 'wb') as errors:
            self.process = self.host.spawn(['dnsmasq', '--keep-in-foreground', '--conf-file=%s' % self.conf_file], stderr=errors)
        deadline = time.monotonic() + timeout * timeout_scale()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if _read(self.pid_file).endswith('\n'):
                return self
            time.sleep(0.01)
        self.stop()
        raise LabError('dnsmasq on %s of %s did not start: %s %s' % (
            self.interface, self.host.where, _read(stderr_path).strip(), _read(self.log_file).strip()))

    def leases(self):
        """The leases dnsmasq handed out: [{'expires', 'mac', 'ip', 'hostname', 'client_id'}]."""
        found = []
        for line in _read(self.lease_file).splitlines():
            parts = line.split()
            if len(parts) >= 5:
                found.append({'expires': int(parts[0]), 'mac': parts[1], 'ip': parts[2],
                              'hostname': None if parts[3] == '*' else parts[3], 'client_id': parts[4]})
        return found

    def log(self):
        return _read(self.log_file)

    def stop(self):
        if self.process is not None:
            self.host.lab.stop_process(self.process)
            self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _read(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return ''
