"""Helpers of the registry tests (test_registry_*.py): a fresh database per test, module runs, psycopg access.

Every test gets its own database in the session's throwaway PostgreSQL (``fresh_database``), owned by the
login role and dropped afterwards, so tests never see each other's rows. Modules run in this machine's
own network namespace (``lab.module_run.run_module(None, ...)``): they only talk to the database.
"""

import contextlib
import json
import os
import secrets
import subprocess

import psycopg

from lab import module_run
from lab import postgres as lab_postgres

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM1 = '6f1c2b9e-8d4a-4c7e-9f31-2a5b7c8d9e01'
VM2 = '0b7d4c1a-3e2f-4a5b-8c6d-7e8f9a0b1c2d'


class Registry:
    """One database of a throwaway server: connection options for modules, psycopg connections."""

    def __init__(self, server, dbname, user=None, password=None):
        self.server = server
        self.dbname = dbname
        self.user = user or server.user
        self.password = password or server.password

    def options(self, unix=False):
        """The module/inventory connection options (login_*) for this database."""
        return {
            'login_host': self.server.socket_dir if unix else self.server.host,
            'login_port': self.server.port,
            'login_user': self.user,
            'login_password': self.password,
            'login_db': self.dbname,
        }

    def dsn(self, unix=False):
        return self.server.dsn(unix=unix, user=self.user, password=self.password, dbname=self.dbname)

    def env(self, unix=False):
        return {
            'PGHOST': self.server.socket_dir if unix else self.server.host,
            'PGPORT': str(self.server.port),
            'PGUSER': self.user,
            'PGPASSWORD': self.password,
            'PGDATABASE': self.dbname,
        }

    def connect(self, **kwargs):
        return psycopg.connect(self.dsn(), connect_timeout=10, **kwargs)

    def query(self, sql, params=None):
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql, params=None):
        with self.connect() as conn:
            conn.execute(sql, params)

    def run(self, name, args, check_mode=False, diff=False, env=None, connection=True):
        """Run module NAME with this database's connection options (unless ``connection=False``)."""
        payload = dict(self.options()) if connection else {}
        payload.update(args)
        result = module_run.run_module(None, name, payload, check_mode=check_mode, diff=diff, env=env, timeout=120)
        result.pop('invocation', None)
        return result

    def dump(self):
        """Every row of the registry tables (for 'the database is unchanged' checks)."""
        tables = {}
        with self.connect() as conn:
            for table in ('host', 'vm', 'network', 'vm_network_interface', 'nqrust_microvm_schema_version'):
                exists = conn.execute('SELECT to_regclass(%s) IS NOT NULL', (table,)).fetchone()[0]
                if exists:
                    rows = conn.execute('SELECT to_jsonb(t)::text FROM %s t ORDER BY 1' % table).fetchall()
                    tables[table] = [row[0] for row in rows]
            columns = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
                'ORDER BY 1, 2').fetchall()
            indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1").fetchall()
        return {'tables': tables, 'columns': columns, 'indexes': indexes}


@contextlib.contextmanager
def fresh_database(server, migrate=True, prefix='reg'):
    """A new database owned by the server's login role; dropped afterwards. Yields a ``Registry``."""
    dbname = '%s_%s' % (prefix, secrets.token_hex(6))
    with psycopg.connect(server.dsn(admin=True), autocommit=True, connect_timeout=10) as admin:
        admin.execute('CREATE DATABASE "%s" OWNER "%s"' % (dbname, server.user))
    registry = Registry(server, dbname)
    try:
        if migrate:
            migrate_in_process(registry)
        yield registry
    finally:
        with psycopg.connect(server.dsn(admin=True), autocommit=True, connect_timeout=10) as admin:
            admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % dbname)


def migrate_in_process(registry):
    collection_import_path()
    from ansible_collections.nqrust.microvm.plugins.module_utils import registry_schema  # pylint: disable=import-outside-toplevel
    with registry.connect() as conn:
        return registry_schema.migrate(conn)


def collection_import_path():
    """Make ``ansible_collections.nqrust.microvm`` importable in this process (the checkout)."""
    path = module_run.module_path()
    import sys  # pylint: disable=import-outside-toplevel
    if path not in sys.path:
        sys.path.insert(0, path)
    return path


def add_host(registry, name, addr=None, host_id=None):
    with registry.connect() as conn:
        row = conn.execute('INSERT INTO host (id, name, addr) VALUES (COALESCE(%s::uuid, gen_random_uuid()), %s, %s) '
                           'RETURNING id::text', (host_id, name, addr or name)).fetchone()
    return row[0]


def admin_execute(server, sql, dbname='postgres'):
    with psycopg.connect(server.dsn(admin=True, dbname=dbname), autocommit=True, connect_timeout=10) as admin:
        admin.execute(sql)


def restart_with(server, settings):
    """ALTER SYSTEM the settings (dict) and restart the server (settings such as max_connections need it)."""
    with psycopg.connect(server.dsn(admin=True), autocommit=True, connect_timeout=10) as admin:
        for key, value in settings.items():
            admin.execute("ALTER SYSTEM SET %s = '%s'" % (key, value))
    pg_ctl = os.path.join(lab_postgres.bin_dir(), 'pg_ctl')
    server._as_postgres([pg_ctl, '-D', server.datadir, '-l', server.log_file, '-w', '-t', '60', '-m', 'fast', 'restart'])  # pylint: disable=protected-access
    server.pid = lab_postgres.postmaster_pid(server.datadir)
    server._save()  # pylint: disable=protected-access


def assert_no_secret(result, *secrets_):
    text = json.dumps(result)
    for secret in secrets_:
        assert secret not in text, 'a password appears in the result: %s' % text


def run_json(argv, env, timeout=300):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return proc
