"""A throwaway PostgreSQL server: initdb + pg_ctl in a temp dir, run as the ``postgres`` OS user.

It listens on 127.0.0.1 on a free port (root namespace only) and on a private unix-socket
directory (unix sockets work across network namespaces). A login role (scram-sha-256 password)
owns the database. The server is recorded in a lab's state so that ``down``/``sweep`` stop it
even when the process that started it was killed.
"""

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from lab import processes, state
from lab.errors import LabCommandError, LabError

OS_USER = 'postgres'
ADMIN_USER = 'postgres'
NAME_RE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')


def bin_dir():
    """The directory of the PostgreSQL server binaries (NQRUST_PG_BIN, else the newest Debian one)."""
    configured = os.environ.get('NQRUST_PG_BIN')
    if configured:
        return configured
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'), key=lambda p: [int(x) for x in re.findall(r'\d+', p)])
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which('initdb')
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise LabError('PostgreSQL server binaries not found (install postgresql or set NQRUST_PG_BIN)')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def quote_conninfo(value):
    value = str(value)
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"


def postmaster_pid(datadir):
    """The pid in ``postmaster.pid`` when that process is still running, else None."""
    try:
        with open(os.path.join(datadir, 'postmaster.pid'), encoding='utf-8') as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if processes.is_running(pid) and 'postgres' in processes.cmdline(pid) else None


def stop_record(record, grace=10.0):
    """Stop the server of a state record (fast shutdown, then immediate, then SIGKILL) and remove its files.

    Returns True when a server was running.
    """
    datadir = record.get('datadir') or ''
    pid = postmaster_pid(datadir) if datadir else None
    running = pid is not None
    if running:
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        while processes.is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if processes.is_running(pid):
            processes.stop({pid: None}, grace=2.0, sig=signal.SIGQUIT)
        children = {p: processes.start_time(p) for p, lab_id in processes.marked_pids().items()
                    if lab_id == record.get('lab_id') and 'postgres' in processes.cmdline(p)}
        processes.stop(children, grace=2.0, sig=signal.SIGQUIT)
    tmpdir = record.get('tmpdir')
    if tmpdir and os.path.dirname(os.path.dirname(tmpdir)) == state.STATE_ROOT:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return running


def running(lab):
    """The running ThrowawayPostgres that belongs to a lab, or None."""
    for record in lab.state.read().get('postgres', []):
        if postmaster_pid(record.get('datadir') or ''):
            return ThrowawayPostgres.from_record(record, lab=lab)
    return None


class ThrowawayPostgres:
    """initdb + pg_ctl in a temp dir; a context manager. See the module docstring.

    Attributes: host ('127.0.0.1'), port, socket_dir, user, password, dbname, admin_user,
    admin_password, datadir, tmpdir, lab_id.
    """

    def __init__(self, lab=None, user='nqrust', dbname='nqrust', port=None, lab_id=None):
        for what, value in (('user', user), ('dbname', dbname)):
            if not NAME_RE.match(value):
                raise LabError('invalid PostgreSQL %s %r: lower-case letters, digits and "_"' % (what, value))
        self.lab = lab
        self.lab_id = lab.lab_id if lab is not None else (lab_id or 'pg' + secrets.token_hex(4))
        self._own_state = lab is None
        self.state = lab.state if lab is not None else state.LabState(self.lab_id)
        self.host = '127.0.0.1'
        self.port = port
        self.user = user
        self.dbname = dbname
        self.password = secrets.token_hex(16)
        self.admin_user = ADMIN_USER
        self.admin_password = secrets.token_hex(16)
        self.tmpdir = None
        self.datadir = None
        self.socket_dir = None
        self.log_file = None
        self.pid = None
        self.started = False

    def __repr__(self):
        return '<ThrowawayPostgres %s port=%s socket_dir=%s>' % (self.lab_id, self.port, self.socket_dir)

    def __enter__(self):
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ connection data
    def record(self):
        return {
            'lab_id': self.lab_id, 'tmpdir': self.tmpdir, 'datadir': self.datadir, 'socket_dir': self.socket_dir,
            'host': self.host, 'port': self.port, 'user': self.user, 'password': self.password, 'dbname': self.dbname,
            'admin_user': self.admin_user, 'admin_password': self.admin_password, 'pid': self.pid, 'log_file': self.log_file,
        }

    @classmethod
    def from_record(cls, record, lab=None):
        """Re-open the handle of a running server recorded in a lab's state (``python -m lab pg-info``)."""
        server = cls(lab=lab, user=record['user'], dbname=record['dbname'], port=record['port'], lab_id=record.get('lab_id'))
        for key in ('tmpdir', 'datadir', 'socket_dir', 'host', 'password', 'admin_user', 'admin_password', 'pid', 'log_file'):
            setattr(server, key, record.get(key))
        server.started = postmaster_pid(server.datadir or '') is not None
        return server

    def dsn(self, unix=False, admin=False, **overrides):
        """A libpq connection string (TCP on 127.0.0.1, or the unix socket when unix=True)."""
        params = {
            'host': self.socket_dir if unix else self.host,
            'port': self.port,
            'user': self.admin_user if admin else self.user,
            'password': self.admin_password if admin else self.password,
            'dbname': 'postgres' if admin else self.dbname,
        }
        params.update(overrides)
        return ' '.join('%s=%s' % (key, quote_conninfo(value)) for key, value in params.items() if value is not None)

    def env(self, unix=False):
        """PG* environment variables for libpq clients."""
        return {
            'PGHOST': self.socket_dir if unix else self.host,
            'PGPORT': str(self.port),
            'PGUSER': self.user,
            'PGPASSWORD': self.password,
            'PGDATABASE': self.dbname,
        }

    def info(self):
        """Connection data as a JSON-serialisable dict (includes the role's password)."""
        return {
            'lab_id': self.lab_id, 'host': self.host, 'port': self.port, 'socket_dir': self.socket_dir, 'user': self.user,
            'password': self.password, 'dbname': self.dbname, 'dsn': self.dsn(), 'dsn_unix': self.dsn(unix=True),
            'env': self.env(), 'datadir': self.datadir, 'log_file': self.log_file, 'pid': self.pid,
        }

    # ------------------------------------------------------------ lifecycle
    def _as_postgres(self, argv, check=True, timeout=120, input_text=None):
        env = {
            'PATH': '%s:/usr/sbin:/usr/bin:/sbin:/bin' % bin_dir(), 'LC_ALL': 'C', 'LANG': 'C', 'HOME': self.tmpdir,
            'PGPASSWORD': self.admin_password, processes.MARKER_ENV: self.lab_id,
        }
        result = subprocess.run([str(arg) for arg in argv], user=OS_USER, group=OS_USER, extra_groups=[], cwd=self.tmpdir, env=env,
                                capture_output=True, text=True, timeout=timeout, input=input_text, check=False)
        if check and result.returncode != 0:
            raise LabCommandError(result.returncode, result.args, result.stdout, result.stderr, where='PostgreSQL %s' % self.lab_id)
        return result

    def start(self):
        """initdb, start the server, create the login role and its database."""
        if self.started:
            return self
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            raise LabError('the %r OS user does not exist (install postgresql)' % OS_USER) from None
        if self._own_state:
            self.state.create(kind='postgres')
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.tmpdir = tempfile.mkdtemp(prefix='pg-', dir=self.state.dir)
        with self.state.update() as data:
            data.setdefault('postgres', []).append(self.record())
        pw_entry = pwd.getpwnam(OS_USER)
        os.chmod(self.tmpdir, 0o755)
        os.chown(self.tmpdir, pw_entry.pw_uid, pw_entry.pw_gid)
        self.datadir = os.path.join(self.tmpdir, 'data')
        self.socket_dir = os.path.join(self.tmpdir, 'sock')
        self.log_file = os.path.join(self.tmpdir, 'postgres.log')
        os.mkdir(self.socket_dir, 0o755)
        os.chown(self.socket_dir, pw_entry.pw_uid, pw_entry.pw_gid)
        pwfile = os.path.join(self.tmpdir, 'pwfile')
        with open(pwfile, 'w', encoding='utf-8') as handle:
            handle.write(self.admin_password + '\n')
        os.chown(pwfile, pw_entry.pw_uid, pw_entry.pw_gid)
        os.chmod(pwfile, 0o600)
        bindir = bin_dir()
        self._as_postgres([os.path.join(bindir, 'initdb'), '-D', self.datadir, '-U', self.admin_user, '--pwfile', pwfile,
                           '--auth', 'scram-sha-256', '-E', 'UTF8', '--locale', 'C', '--no-sync'])
        os.unlink(pwfile)
        for attempt in range(4):
            port = self.port or free_port()
            conf = [
                "listen_addresses = '127.0.0.1'", 'port = %d' % port, "unix_socket_directories = '%s'" % self.socket_dir,
                'unix_socket_permissions = 0777', 'max_connections = 50', "shared_buffers = '16MB'", 'fsync = off',
                'synchronous_commit = off', 'full_page_writes = off', "password_encryption = 'scram-sha-256'",
                'logging_collector = off', "log_min_messages = 'warning'",
            ]
            with open(os.path.join(self.datadir, 'postgresql.auto.conf'), 'w', encoding='utf-8') as handle:
                handle.write('\n'.join(conf) + '\n')
            result = self._as_postgres([os.path.join(bindir, 'pg_ctl'), '-D', self.datadir, '-l', self.log_file, '-w', '-t', '60',
                                        'start'], check=False)
            if result.returncode == 0:
                self.port = port
                break
            log = _tail(self.log_file)
            if self.port or attempt == 3 or 'could not bind' not in log and 'already in use' not in log:
                raise LabError('PostgreSQL did not start: %s %s %s' % (result.stdout.strip(), result.stderr.strip(), log))
        self.pid = postmaster_pid(self.datadir)
        self._save()
        sql = 'CREATE ROLE "%s" LOGIN PASSWORD \'%s\';\nCREATE DATABASE "%s" OWNER "%s";\n' % (self.user, self.password, self.dbname, self.user)
        self._as_postgres([os.path.join(bindir, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', self.socket_dir, '-p', self.port,
                           '-U', self.admin_user, '-d', 'postgres', '-f', '-'], input_text=sql)
        self.started = True

    def _save(self):
        with self.state.update() as data:
            entries = data.setdefault('postgres', [])
            for index, item in enumerate(entries):
                if item.get('tmpdir') == self.tmpdir:
                    entries[index] = self.record()

    def stop(self):
        """Stop the server and remove its directory and its record. Idempotent."""
        if self.tmpdir:
            stop_record(self.record())
            if self.state.exists():
                with self.state.update() as data:
                    data['postgres'] = [item for item in data.get('postgres', []) if item.get('tmpdir') != self.tmpdir]
        self.started = False
        self.tmpdir = None
        if self._own_state:
            shutil.rmtree(self.state.dir, ignore_errors=True)
            state.remove_empty_dir(state.STATE_ROOT)


def _tail(path, size=4000):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()[-size:].strip()
    except OSError:
        return ''
