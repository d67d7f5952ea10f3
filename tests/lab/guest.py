"""The guest simulator: a namespace whose ``eth0`` is wired to a host's TAP the way a VMM wires a VM."""

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys

from lab import netns
from lab.errors import LabError
from lab.topology import Host, check_ifname, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK = os.path.join(HERE, 'udhcpc_hook.sh')
RELAY = os.path.join(HERE, 'tap_relay.py')
MAC_RE = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')


def stable_mac(lab_id, name):
    """A locally administered unicast MAC derived from (lab id, guest name)."""
    digest = hashlib.sha256(('%s/%s' % (lab_id, name)).encode()).hexdigest()
    return '02:' + ':'.join(digest[i:i + 2] for i in range(0, 10, 2))


def check_mac(mac):
    value = str(mac).lower()
    if not MAC_RE.match(value) or int(value[:2], 16) & 1 or value == '00:00:00:00:00:00':
        raise LabError('invalid guest MAC %r: six colon-separated hex bytes, unicast' % (mac,))
    return value


class Guest(Host):
    """A simulated VM: its own namespace ``nql-<labid>-<name>`` with ``eth0`` relayed to a host's TAP."""

    kind = 'guest'

    def __init__(self, lab, name, ns, host, tap, mac, ifname='eth0'):
        Host.__init__(self, lab, name, ns)
        self.host = host
        self.tap = tap
        self.mac = mac
        self.ifname = ifname
        self.relay = None
        self.relay_pid = None
        self.lease = None

    def describe(self):
        data = Host.describe(self)
        data.update(host=self.host.name, tap=self.tap, mac=self.mac, ifname=self.ifname, relay_pid=self.relay_pid)
        if self.lease:
            data['lease'] = self.lease
        return data

    @property
    def lease_ip(self):
        """The address of the last DHCP lease (None before dhcp())."""
        return self.lease['ip'] if self.lease else None

    def _hook(self):
        if os.access(HOOK, os.X_OK):
            return HOOK
        copy = os.path.join(self.lab.tmpdir, 'udhcpc_hook.sh')
        shutil.copyfile(HOOK, copy)
        os.chmod(copy, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        return copy

    def dhcp(self, timeout=10):
        """Get a DHCP lease with ``busybox udhcpc`` and apply it (address, default route, resolv.conf).

        Returns dict(ip, prefixlen, netmask, router, routers, dns, domain, server, lease_time,
        broadcast, mtu, interface, hostname, resolv_conf); raises LabError when no lease comes within
        timeout s. resolv.conf goes to ``/etc/netns/<netns>/resolv.conf``, seen as /etc/resolv.conf
        by commands run in the guest.
        """
        lease_file = os.path.join(self.lab.tmpdir, 'udhcpc-%s.lease' % self.name)
        for path in (lease_file, lease_file + '.leasefail', lease_file + '.nak'):
            if os.path.exists(path):
                os.unlink(path)
        resolv = os.path.join(self.etc_dir, 'resolv.conf')
        if not os.path.exists(resolv):
            try:
                self.write_etc('resolv.conf', '')
            except OSError:
                resolv = ''  # /etc is read-only here: the lease is applied without a resolv.conf
        tries = max(1, int(round(timeout * netns.timeout_scale())))
        argv = ['busybox', 'udhcpc', '-f', '-q', '-n', '-i', self.ifname, '-s', self._hook(), '-t', tries, '-T', 1,
                '-p', os.path.join(self.lab.tmpdir, 'udhcpc-%s.pid' % self.name), '-x', 'hostname:%s' % self.name]
        env = {'NQL_LEASE_FILE': lease_file, 'NQL_RESOLV_CONF': resolv}
        result = self.run(argv, check=False, timeout=tries + 10, env=env)
        if result.returncode != 0 or not os.path.exists(lease_file):
            raise LabError('%s got no DHCP lease on %s within %ss (udhcpc exit %s): %s' % (
                self.where, self.ifname, timeout, result.returncode, (result.stderr + result.stdout).strip()))
        self.lease = parse_lease(lease_file)
        self.lease['resolv_conf'] = resolv or None
        return dict(self.lease)

    def stop(self):
        """Stop the relay: the guest's eth0 disappears, the host TAP loses its carrier."""
        if self.relay is not None:
            self.lab.stop_process(self.relay)
            self.relay = None
        elif self.relay_pid:
            self.lab.stop_process(self.relay_pid)
        self.relay_pid = None


def parse_lease(path):
    raw = {}
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            key, sep, value = line.rstrip('\n').partition('=')
            if sep:
                raw[key] = value
    routers = raw.get('router', '').split()
    return {
        'ip': raw.get('ip') or None,
        'prefixlen': int(raw['mask']) if raw.get('mask', '').isdigit() else None,
        'netmask': raw.get('subnet') or None,
        'broadcast': raw.get('broadcast') or None,
        'router': routers[0] if routers else None,
        'routers': routers,
        'dns': raw.get('dns', '').split(),
        'domain': raw.get('domain') or None,
        'server': raw.get('serverid') or None,
        'lease_time': int(raw['lease']) if raw.get('lease', '').isdigit() else None,
        'mtu': int(raw['mtu']) if raw.get('mtu', '').isdigit() else None,
        'interface': raw.get('interface'),
        'hostname': raw.get('hostname') or None,
    }


def attach(lab, name, host, tap, mac=None, ifname='eth0', timeout=10):
    """Make the guest namespace and start its relay; on any failure nothing is left behind."""
    check_ifname(tap)
    check_ifname(ifname)
    mac = check_mac(mac) if mac else stable_mac(lab.lab_id, name)
    link = host.link(tap)
    if link is None:
        raise LabError('cannot attach guest %s: TAP %s does not exist in %s; a VMM attaches to an existing TAP, create it first'
                       % (name, tap, host.where))
    info = link.get('linkinfo', {})
    if info.get('info_kind') != 'tun' or info.get('info_data', {}).get('type') != 'tap':
        raise LabError('cannot attach guest %s: %s in %s is a %s link, not a TAP' % (name, tap, host.where, info.get('info_kind', 'plain')))
    ns = lab._add_namespace(name, {'kind': 'guest', 'host': host.name, 'tap': tap, 'mac': mac, 'ifname': ifname})  # pylint: disable=protected-access
    guest = Guest(lab, name, ns, host, tap, mac, ifname)
    try:
        log = os.path.join(lab.tmpdir, 'relay-%s.log' % name)
        argv = [sys.executable, '-I', '-S', RELAY, '--host-netns', host.netns, '--tap', tap,
                '--guest-netns', ns, '--ifname', ifname, '--mac', mac]
        with open(log, 'wb') as errors:
            guest.relay = lab.spawn(argv, stdout=subprocess.PIPE, stderr=errors)
        guest.relay_pid = guest.relay.pid
        wait_ready(guest.relay, timeout, 'the TAP relay of guest %s (%s:%s)' % (name, host.name, tap), log)
        with lab.state.update() as data:
            data['hosts'][name]['relay_pid'] = guest.relay_pid
    except BaseException:
        guest.stop()
        lab._forget_namespace(name)  # pylint: disable=protected-access
        raise
    return guest
