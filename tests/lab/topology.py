"""Lab and Host: hosts are named network namespaces, wired together with veth pairs."""

import ipaddress
import json
import math
import os
import select
import shutil
import subprocess
import sys
import time

from lab import lifecycle, netns, processes, state
from lab.errors import LabError
from lab.state import LabState, check_host_name, check_lab_id, netns_name

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

TCP_TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tcp.py')

UPSTREAM = 'upstream'
UPSTREAM_BRIDGE = 'inet0'
UPSTREAM_SUBNET = '203.0.113.0/24'
UPSTREAM_GATEWAY = '203.0.113.1'
INTERNET_ADDRESS = '192.0.2.1'


def check_ifname(ifname):
    if not isinstance(ifname, str) or not 1 <= len(ifname.encode()) <= 15 or any(c in ifname for c in '/: \t\n') or ifname in ('.', '..'):
        raise LabError('invalid interface name %r: 1-15 bytes, no "/", ":" or whitespace' % (ifname,))
    return ifname


def wait_ready(proc, timeout, what, log_path=None):
    """Read the first stdout line of proc (its ready signal) within timeout seconds.

    On EOF or timeout the process is stopped and a LabError carries its log.
    """
    timeout *= netns.timeout_scale()
    deadline = time.monotonic() + timeout
    buf = b''
    fd = proc.stdout.fileno()
    while b'\n' not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _unused_w, _unused_x = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    proc.stdout.close()
    if b'\n' in buf:
        return buf.split(b'\n', 1)[0].decode(errors='replace')
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    log = ''
    if log_path and os.path.exists(log_path):
        with open(log_path, encoding='utf-8', errors='replace') as handle:
            log = handle.read().strip()
    reason = 'exited with code %s' % proc.returncode if buf or proc.returncode not in (None, -9) else 'gave no ready signal within %ss' % timeout
    raise LabError('%s %s%s' % (what, reason, (': ' + log) if log else ''))


class Host:
    """A lab host: a named network namespace ``nql-<labid>-<name>``."""

    kind = 'host'

    def __init__(self, lab, name, ns):
        self.lab = lab
        self.name = name
        self.netns = ns
        self.etc_dir = os.path.join(state.ETC_NETNS, ns)
        self.uplink = None

    def __repr__(self):
        return '<%s %s netns=%s>' % (type(self).__name__, self.name, self.netns)

    @property
    def where(self):
        return '%s %s (netns %s)' % (self.kind, self.name, self.netns)

    # ------------------------------------------------------------ commands
    def run(self, argv, check=True, input=None, timeout=30, env=None):  # pylint: disable=redefined-builtin
        """Run argv inside the namespace (``ip netns exec``); CompletedProcess with text output."""
        return netns.run(netns.exec_argv(self.netns, argv), check=check, input=input, timeout=timeout,
                         env=self.lab.child_env(env), where=self.where)

    def spawn(self, argv, **kwargs):
        """Start argv inside the namespace in the background; tracked and stopped at teardown."""
        return self.lab.spawn(netns.exec_argv(self.netns, argv), **kwargs)

    def ip(self, *args, check=True, timeout=30):
        """``ip -n <netns> args...``"""
        return netns.run(['ip', '-n', self.netns] + [str(arg) for arg in args], check=check, timeout=timeout, where=self.where)

    def ip_json(self, *args):
        """``ip -j -n <netns> args...`` parsed."""
        out = self.ip('-j', *args).stdout.strip()
        return json.loads(out) if out else []

    def link(self, ifname):
        """The ``ip -j -d link show`` object of ifname, None when there is no such link."""
        result = self.ip('-j', '-d', 'link', 'show', 'dev', ifname, check=False)
        if result.returncode != 0 or not result.stdout.strip():
            return None
        links = json.loads(result.stdout)
        return links[0] if links else None

    def links(self):
        """Every link of the host: {ifname: ``ip -j -d link`` object}."""
        return {item['ifname']: item for item in self.ip_json('-d', 'link', 'show')}

    def addresses(self, ifname=None, family='inet'):
        """Addresses as 'address/prefixlen' (family 'inet', 'inet6' or None for both)."""
        args = ['addr', 'show'] + (['dev', ifname] if ifname else [])
        found = []
        for item in self.ip_json(*args):
            for addr in item.get('addr_info', []):
                if family is None or addr.get('family') == family:
                    found.append('%s/%s' % (addr['local'], addr['prefixlen']))
        return found

    def add_address(self, ifname, cidr):
        ipaddress.ip_interface(cidr)
        self.ip('addr', 'replace', cidr, 'dev', ifname)

    def set_up(self, ifname):
        self.ip('link', 'set', 'dev', ifname, 'up')

    def sysctl(self, key, value):
        """Set a (per-namespace) sysctl such as net.ipv4.ip_forward."""
        self.run(['sysctl', '-q', '-w', '%s=%s' % (key, value)])

    def write_etc(self, filename, content, mode=0o644):
        """Place a file in ``/etc/netns/<netns>/`` (``ip netns exec`` shows it as ``/etc/<filename>``).

        Only names that exist in ``/etc`` are overlaid; a directory replaces the whole ``/etc`` one.
        """
        if os.path.isabs(filename) or '..' in filename.split('/'):
            raise LabError('etc file name %r must be relative to /etc' % (filename,))
        netns.ensure_etc_dir(self.netns)
        target = os.path.join(self.etc_dir, filename)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        with open(target, 'wb') as handle:
            handle.write(data)
        os.chmod(target, mode)
        return target

    # ------------------------------------------------------------ traffic
    def ping(self, address, count=1, timeout=2):
        """True when ``busybox ping`` gets a reply from address within timeout seconds per packet.

        timeout is scaled like every lab time limit (NQRUST_LAB_TIMEOUT_SCALE): a ping that must
        fail then just waits longer.
        """
        count = int(count)
        timeout = int(math.ceil(timeout * netns.timeout_scale()))
        argv = ['busybox', 'ping', '-c', count, '-W', timeout, '-w', count + timeout]
        if ':' in str(address):
            argv.insert(2, '-6')
        result = self.run(argv + [str(address)], check=False, timeout=count + timeout + 10)
        return result.returncode == 0

    def tcp_listen(self, port, address='0.0.0.0'):
        """Serve TCP on address:port inside the namespace (each connection gets a banner line)."""
        listener = TcpListener(self, port, address)
        listener.start()
        return listener

    def tcp_connect(self, address, port, timeout=2):
        """True when a TCP connection to address:port succeeds and the lab banner comes back (timeout scaled)."""
        timeout = float(timeout) * netns.timeout_scale()
        argv = [sys.executable, '-I', '-S', TCP_TOOL, 'connect', str(address), str(int(port)), str(timeout)]
        result = self.run(argv, check=False, timeout=timeout + 15)
        return result.returncode == 0

    def dnsmasq(self, interface, dhcp_range, **kwargs):
        """Start a dnsmasq bound to interface with its own config, leases and log in the lab's temp dir."""
        from lab.dnsmasq import Dnsmasq  # pylint: disable=import-outside-toplevel
        server = Dnsmasq(self, interface, dhcp_range, **kwargs)
        server.start()
        return server

    def describe(self):
        data = {'name': self.name, 'netns': self.netns, 'kind': self.kind, 'etc_dir': self.etc_dir}
        if self.uplink:
            data['uplink'] = self.uplink
        return data


class TcpListener:
    """A TCP server in a lab host, started by Host.tcp_listen()."""

    BANNER = 'nql-ok'

    def __init__(self, host, port, address='0.0.0.0'):
        self.host = host
        self.port = int(port)
        self.address = address
        self.process = None

    def start(self):
        argv = [sys.executable, '-I', '-S', TCP_TOOL, 'listen', self.address, str(self.port)]
        log = os.path.join(self.host.lab.tmpdir, 'tcp-%s-%s.log' % (self.host.name, self.port))
        with open(log, 'wb') as errors:
            self.process = self.host.spawn(argv, stdout=subprocess.PIPE, stderr=errors)
        wait_ready(self.process, 10, 'TCP listener on %s:%s in %s' % (self.address, self.port, self.host.where), log)
        return self

    def stop(self):
        if self.process is not None:
            self.host.lab.stop_process(self.process)
            self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Lab:
    """A set of lab hosts; a context manager that tears everything down at the end.

    ``Lab()`` makes a fresh lab with a random id; ``Lab('demo')`` makes or re-opens a named one.
    """

    def __init__(self, lab_id=None, handle_signals=True):
        self.lab_id = check_lab_id(lab_id) if lab_id is not None else state.new_lab_id()
        self.prefix = netns_name(self.lab_id, '')
        self.state = LabState(self.lab_id)
        self.hosts = {}
        self._procs = []
        self._detached = False
        self._torn_down = False
        if handle_signals:
            lifecycle.handle_signals()
        lifecycle.register(self)
        try:
            self.reused = not self.state.create()
            with self.state.update() as data:
                tmpdir = os.path.join(self.state.dir, 'tmp')
                if not os.path.isdir(tmpdir):
                    os.mkdir(tmpdir, 0o755)
                data['tmpdir'] = tmpdir
            self.tmpdir = tmpdir
            self._load(self.state.read())
        except BaseException:
            self.teardown()
            raise

    def __repr__(self):
        return '<Lab %s hosts=%s>' % (self.lab_id, sorted(self.hosts))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._detached:
            self.teardown()

    @property
    def state_dir(self):
        return self.state.dir

    def _load(self, data):
        """Re-create Host/Guest objects for a lab that another process made."""
        from lab.guest import Guest  # pylint: disable=import-outside-toplevel
        entries = data.get('hosts', {})
        for name, entry in sorted(entries.items()):
            if entry.get('kind', 'host') == 'host':
                host = Host(self, name, entry['netns'])
                host.uplink = entry.get('uplink')
                self.hosts[name] = host
        for name, entry in sorted(entries.items()):
            if entry.get('kind') == 'guest' and entry.get('host') in self.hosts:
                guest = Guest(self, name, entry['netns'], self.hosts[entry['host']], entry['tap'], entry['mac'],
                              entry.get('ifname', 'eth0'))
                guest.relay_pid = entry.get('relay_pid')
                self.hosts[name] = guest

    # ------------------------------------------------------------ processes
    def child_env(self, extra=None):
        """Environment of every process the lab starts: marked with NQRUST_LAB_ID, lab package importable."""
        env = dict(os.environ)
        env[processes.MARKER_ENV] = self.lab_id
        paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
        if PACKAGE_PARENT not in paths:
            paths.insert(0, PACKAGE_PARENT)
        env['PYTHONPATH'] = os.pathsep.join(paths)
        path = env.get('PATH', '').split(os.pathsep)
        env['PATH'] = os.pathsep.join([p for p in path if p] + [p for p in SYSTEM_PATH.split(':') if p not in path])
        if extra:
            env.update(extra)
        return env

    def spawn(self, argv, **kwargs):
        """Start a background process (in the root namespace unless argv enters one); tracked."""
        self._check_open()
        kwargs.setdefault('stdin', subprocess.DEVNULL)
        kwargs.setdefault('stdout', subprocess.DEVNULL)
        kwargs.setdefault('stderr', subprocess.DEVNULL)
        kwargs.setdefault('start_new_session', True)
        kwargs['env'] = self.child_env(kwargs.get('env'))
        proc = subprocess.Popen([str(arg) for arg in argv], **kwargs)  # pylint: disable=consider-using-with
        self._procs.append(proc)
        self.state.append('processes', {'pid': proc.pid, 'start': processes.start_time(proc.pid), 'argv': [str(arg) for arg in argv]})
        return proc

    def stop_process(self, proc, grace=2.0):
        """Stop one tracked process (a Popen, or a pid the lab recorded) and what it started in its session."""
        pid = proc.pid if hasattr(proc, 'pid') else int(proc)
        start = None
        if not hasattr(proc, 'pid'):
            recorded = [item for item in self.state.read().get('processes', []) if item.get('pid') == pid]
            if not recorded:
                raise LabError('process %d is not one of the processes of lab %s' % (pid, self.lab_id))
            start = recorded[0].get('start')
        targets = {pid: start}
        for other, lab_id in processes.marked_pids({self.lab_id}).items():
            if lab_id == self.lab_id and _session_of(other) == pid:
                targets[other] = processes.start_time(other)
        processes.stop(targets, grace=grace)
        if hasattr(proc, 'poll'):
            proc.poll()
        with self.state.update() as data:
            data['processes'] = [item for item in data.get('processes', []) if item.get('pid') != pid]

    # ------------------------------------------------------------ topology
    def host(self, name):
        try:
            return self.hosts[name]
        except KeyError:
            raise LabError('lab %s has no host %r (hosts: %s)' % (self.lab_id, name, ', '.join(sorted(self.hosts)) or 'none')) from None

    def _host(self, host):
        return host if isinstance(host, Host) else self.host(host)

    def _check_open(self):
        if self._torn_down:
            raise LabError('lab %s is torn down' % self.lab_id)

    def _add_namespace(self, name, entry):
        """Record, then create, the namespace of a host or guest; returns its name."""
        self._check_open()
        check_host_name(name)
        ns = netns_name(self.lab_id, name)
        with self.state.update() as data:
            if ns not in data.setdefault('namespaces', []):
                data['namespaces'].append(ns)
            etc = os.path.join(state.ETC_NETNS, ns)
            if etc not in data.setdefault('etc_netns', []):
                data['etc_netns'].append(etc)
            record = dict(entry, netns=ns)
            data.setdefault('hosts', {})[name] = dict(data['hosts'].get(name, {}), **record)
        if not netns.exists(ns):
            netns.add(ns)
        return ns

    def _forget_namespace(self, name):
        ns = netns_name(self.lab_id, name)
        netns.delete(ns)
        shutil.rmtree(os.path.join(state.ETC_NETNS, ns), ignore_errors=True)
        with self.state.update() as data:
            data.get('hosts', {}).pop(name, None)
            for key, value in (('namespaces', ns), ('etc_netns', os.path.join(state.ETC_NETNS, ns))):
                if value in data.get(key, []):
                    data[key].remove(value)
        self.hosts.pop(name, None)

    def add_host(self, name, etc_files=None, exist_ok=False):
        """A new host (network namespace ``nql-<labid>-<name>``, loopback up).

        etc_files: {filename: content} placed in ``/etc/netns/<netns>/`` so that commands run in
        the host see them in ``/etc``. exist_ok re-uses a host of a re-opened lab.
        """
        if name in self.hosts and not exist_ok:
            raise LabError('lab %s already has a host %r' % (self.lab_id, name))
        if name in self.hosts and self.hosts[name].kind != 'host':
            raise LabError('lab %s: %r is a %s, not a host' % (self.lab_id, name, self.hosts[name].kind))
        ns = self._add_namespace(name, {'kind': 'host'})
        host = self.hosts.get(name) or Host(self, name, ns)
        self.hosts[name] = host
        for filename, content in sorted((etc_files or {}).items()):
            host.write_etc(filename, content)
        return host

    def connect(self, host_a, ifname_a, host_b, ifname_b, addr_a=None, addr_b=None, exist_ok=False):
        """A veth pair made directly inside the two namespaces (nothing in the root namespace), both ends up.

        addr_a/addr_b: optional 'address/prefixlen'. Returns a dict describing the link.
        """
        a, b = self._host(host_a), self._host(host_b)
        check_ifname(ifname_a)
        check_ifname(ifname_b)
        for addr in (addr_a, addr_b):
            if addr is not None:
                try:
                    ipaddress.ip_interface(addr)
                except ValueError as exc:
                    raise LabError('invalid address %r: %s' % (addr, exc)) from None
        if a is b and ifname_a == ifname_b:
            raise LabError('a veth pair needs two different names in %s' % a.where)
        link = {'a': a.name, 'ifname_a': ifname_a, 'b': b.name, 'ifname_b': ifname_b, 'addr_a': addr_a, 'addr_b': addr_b}
        have_a, have_b = a.link(ifname_a), b.link(ifname_b)
        if have_a is None and have_b is None:
            argv = ['link', 'add', ifname_a, 'type', 'veth', 'peer', 'name', ifname_b]
            if a is not b:
                argv += ['netns', b.netns]
            a.ip(*argv)
        elif not (exist_ok and have_a is not None and have_b is not None):
            raise LabError('cannot connect %s:%s to %s:%s: %s exists' % (
                a.name, ifname_a, b.name, ifname_b,
                ' and '.join(what for what, have in (('%s:%s' % (a.name, ifname_a), have_a), ('%s:%s' % (b.name, ifname_b), have_b)) if have)))
        for host, ifname, addr in ((a, ifname_a, addr_a), (b, ifname_b, addr_b)):
            if addr:
                host.add_address(ifname, addr)
            host.set_up(ifname)
        with self.state.update() as data:
            links = data.setdefault('links', [])
            if link not in links:
                links.append(link)
        return link

    def upstream(self, *attach, ifname='uplink0', default_route=True):
        """The host named ``upstream`` that plays the internet.

        It has a bridge ``inet0`` with 203.0.113.1/24 and the "public server" address 192.0.2.1 on its
        loopback, and no route to any private network (so guests reach it only through NAT).
        Each host in attach gets a veth ``ifname`` on that bridge with the next 203.0.113.x/24 address
        and (default_route) a default route via 203.0.113.1; ``host.uplink`` describes it.
        """
        if UPSTREAM in self.hosts:
            up = self.hosts[UPSTREAM]
        else:
            up = self.add_host(UPSTREAM, exist_ok=True)
        if up.link(UPSTREAM_BRIDGE) is None:
            up.ip('link', 'add', UPSTREAM_BRIDGE, 'type', 'bridge')
        up.add_address(UPSTREAM_BRIDGE, '%s/24' % UPSTREAM_GATEWAY)
        up.set_up(UPSTREAM_BRIDGE)
        up.add_address('lo', '%s/32' % INTERNET_ADDRESS)
        network = ipaddress.ip_network(UPSTREAM_SUBNET)
        for item in attach:
            host = self._host(item)
            if host is up:
                raise LabError('the upstream host cannot be attached to itself')
            if host.uplink:
                continue
            taken = {entry.split('/')[0] for entry in up.addresses()}
            taken.update(h.uplink['address'].split('/')[0] for h in self.hosts.values() if h.uplink)
            address = next(str(ip) for ip in network.hosts() if str(ip) not in taken)
            port = 'port%s' % address.rsplit('.', 1)[1]
            self.connect(host, ifname, up, port, addr_a='%s/%s' % (address, network.prefixlen), exist_ok=True)
            up.ip('link', 'set', 'dev', port, 'master', UPSTREAM_BRIDGE)
            if default_route:
                host.ip('route', 'replace', 'default', 'via', UPSTREAM_GATEWAY, 'dev', ifname)
            host.uplink = {'ifname': ifname, 'address': '%s/%s' % (address, network.prefixlen), 'gateway': UPSTREAM_GATEWAY,
                           'upstream_port': port, 'default_route': bool(default_route)}
            with self.state.update() as data:
                data['hosts'][host.name]['uplink'] = host.uplink
        return up

    def add_guest(self, name, host, tap, mac=None, ifname='eth0', timeout=10):
        """A simulated VM attached to the EXISTING TAP ``tap`` of host, exactly as a VMM attaches.

        See lab.guest.Guest. Fails (leaving nothing behind) when the TAP does not exist.
        """
        from lab.guest import attach  # pylint: disable=import-outside-toplevel
        if name in self.hosts:
            raise LabError('lab %s already has a host or guest %r' % (self.lab_id, name))
        guest = attach(self, name, self._host(host), tap, mac=mac, ifname=ifname, timeout=timeout)
        self.hosts[name] = guest
        return guest

    def remove_guest(self, name):
        """Detach a guest: its relay stops, its namespace and TAP go away."""
        guest = self.host(name)
        if guest.kind != 'guest':
            raise LabError('%s is not a guest' % guest.where)
        guest.stop()
        self._forget_namespace(name)

    def postgres(self, **kwargs):
        """A ThrowawayPostgres that belongs to this lab (stopped by teardown/down/sweep)."""
        from lab.postgres import ThrowawayPostgres  # pylint: disable=import-outside-toplevel
        server = ThrowawayPostgres(lab=self, **kwargs)
        server.start()
        return server

    def describe(self):
        """The lab as a JSON-serialisable dict (PostgreSQL passwords only in the state file and pg-info)."""
        data = self.state.read()
        return {
            'lab_id': self.lab_id,
            'state_dir': self.state.dir,
            'tmpdir': self.tmpdir,
            'hosts': {name: host.describe() for name, host in sorted(self.hosts.items())},
            'links': data.get('links', []),
            'postgres': [{key: value for key, value in item.items() if key not in ('password', 'admin_password')}
                         for item in data.get('postgres', [])],
        }

    # ------------------------------------------------------------ lifecycle
    def detach(self):
        """Leave the lab running after this process exits (``python -m lab up``); ``down``/sweep remove it."""
        self._detached = True
        lifecycle.unregister(self)
        self._procs = []

    def teardown(self):
        """Remove every namespace, link, /etc/netns dir, process, file and server of the lab. Idempotent."""
        if self._torn_down:
            return {}
        from lab.sweep import teardown_lab  # pylint: disable=import-outside-toplevel
        with lifecycle.signals_blocked():
            self._torn_down = True
            lifecycle.unregister(self)
            procs = {proc.pid: None for proc in self._procs if proc.poll() is None}
            described = {pid: '%d %s' % (pid, processes.cmdline(pid)) for pid in procs}
            stopped = processes.stop(procs)
            for proc in self._procs:
                proc.poll()
            self._procs = []
            report = teardown_lab(self.lab_id)
            report['processes'][:0] = [described[pid] for pid in stopped]
            self.hosts = {}
        return report


def _session_of(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b')') + 2:].split()[3])
