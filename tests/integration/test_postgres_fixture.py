"""The throwaway PostgreSQL server: TCP and unix-socket logins, refused passwords, nothing left after stop."""

import os
import socket
import subprocess

import psycopg
import pytest

import lab as lablib
from lab import postgres as lab_postgres
from lab import processes
from lab import residue


def test_login_over_tcp_with_the_password(postgres):
    with psycopg.connect(postgres.dsn(), connect_timeout=10) as conn:
        user, database, server = conn.execute('SELECT current_user, current_database(), inet_server_addr()::text').fetchone()
    assert (user, database, server) == ('nqrust', 'nqrust', '127.0.0.1/32')
    assert postgres.host == '127.0.0.1' and isinstance(postgres.port, int)


def test_login_over_the_unix_socket(postgres):
    assert os.path.exists(os.path.join(postgres.socket_dir, '.s.PGSQL.%d' % postgres.port))
    with psycopg.connect(postgres.dsn(unix=True), connect_timeout=10) as conn:
        user, server = conn.execute('SELECT current_user, inet_server_addr()').fetchone()
    assert user == 'nqrust' and server is None, 'a unix-socket session has no server address'


def test_the_role_owns_its_database_and_is_not_superuser(postgres):
    with psycopg.connect(postgres.dsn(), connect_timeout=10) as conn:
        owner, = conn.execute('SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()').fetchone()
        superuser, = conn.execute('SELECT rolsuper FROM pg_roles WHERE rolname = current_user').fetchone()
        conn.execute('CREATE TABLE probe (id int PRIMARY KEY)')
        conn.execute('DROP TABLE probe')
    assert owner == 'nqrust' and superuser is False
    with psycopg.connect(postgres.dsn(admin=True), connect_timeout=10) as conn:
        stored, = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'nqrust'").fetchone()
    assert stored.startswith('SCRAM-SHA-256$')


@pytest.mark.parametrize('unix', [False, True], ids=['tcp', 'unix'])
def test_a_wrong_password_is_refused(postgres, unix):
    with pytest.raises(psycopg.OperationalError, match='password authentication failed'):
        psycopg.connect(postgres.dsn(unix=unix, password='not-' + postgres.password), connect_timeout=10)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres.dsn(unix=unix, password=None), connect_timeout=10)


def test_env_serves_libpq_clients(postgres):
    psql = os.path.join(lab_postgres.bin_dir(), 'psql')
    for unix in (False, True):
        env = dict(os.environ, **postgres.env(unix=unix))
        result = subprocess.run([psql, '-X', '-At', '-c', 'SELECT current_user'], env=env, capture_output=True, text=True, timeout=30, check=True)
        assert result.stdout.strip() == 'nqrust'


def test_the_unix_socket_reaches_across_network_namespaces(postgres, lab):
    host = lab.add_host('registry-client')
    psql = os.path.join(lab_postgres.bin_dir(), 'psql')
    result = host.run([psql, '-X', '-At', '-c', 'SELECT 42'], env=postgres.env(unix=True))
    assert result.stdout.strip() == '42'
    tcp = host.run([psql, '-X', '-At', '-c', 'SELECT 42'], env=postgres.env(), check=False, timeout=30)
    assert tcp.returncode != 0, "127.0.0.1 inside a lab host is the host's own loopback"


def test_stop_removes_everything():
    server = lablib.ThrowawayPostgres(user='registry', dbname='fleet')
    with server:
        with psycopg.connect(server.dsn(), connect_timeout=10) as conn:
            assert conn.execute('SELECT current_user, current_database()').fetchone() == ('registry', 'fleet')
        pid, tmpdir, port, lab_id = server.pid, server.tmpdir, server.port, server.lab_id
        assert os.path.isdir(tmpdir) and os.path.isdir(os.path.join(lablib.STATE_ROOT, lab_id))
        assert residue.pgrep(tmpdir)
    assert not residue.pgrep(tmpdir) and not processes.is_running(pid)
    assert not os.path.exists(tmpdir)
    assert not os.path.exists(os.path.join(lablib.STATE_ROOT, lab_id))
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    server.stop()


def test_a_lab_postgres_goes_with_the_lab():
    with lablib.Lab() as instance:
        server = instance.postgres()
        tmpdir = server.tmpdir
        assert instance.describe()['postgres'][0]['port'] == server.port
        with psycopg.connect(server.dsn(unix=True), connect_timeout=10):
            pass
    assert not residue.pgrep(tmpdir) and not os.path.exists(tmpdir)
    assert residue.is_clean(residue.residue(instance.lab_id))
