# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Connecting to the network registry (PostgreSQL) from modules and the inventory plugin.

The options are named as community.postgresql names them (``login_host``,
``login_port``, ``login_user``, ``login_password``, ``login_db``,
``ssl_mode``, ``ca_cert``, ``connect_timeout``) plus ``dsn``, a libpq
connection string or ``postgresql://`` URI.  Precedence, highest first: an
option, the same setting in ``dsn``, libpq's ``PG*`` environment variables
(``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``,
``PGSSLMODE``, ``PGSSLROOTCERT``, ``PGCONNECT_TIMEOUT``, also
``PGPASSFILE``/``~/.pgpass``), libpq's defaults.  An option that is not set
is not passed at all, so the environment really applies.

A connection that fails raises ``RegistryConnectionError`` whose message is
one line naming the host, the port, the database, the user and libpq's
reason -- and never a password: every password the settings could carry
(option, ``dsn``, ``PGPASSWORD``) is cut out of the message, whatever libpq
said.

psycopg (3.1 or later) is imported lazily-guarded: ``HAS_PSYCOPG`` says
whether it is there and ``PSYCOPG_IMPORT_ERROR`` holds the traceback for
``missing_required_lib``.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - exercised by the sanity import test
    psycopg = None
    conninfo_to_dict = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None


SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']
DEFAULT_CONNECT_TIMEOUT = 10
APPLICATION_NAME = 'nqrust.microvm'
REDACTED = '********'

# The argument_spec of the connection options (documented by the
# nqrust.microvm.registry_connection doc fragment).
CONNECTION_ARGUMENT_SPEC = dict(
    login_host=dict(type='str'),
    login_port=dict(type='int'),
    login_user=dict(type='str'),
    login_password=dict(type='str', no_log=True),
    login_db=dict(type='str'),
    ssl_mode=dict(type='str', choices=SSL_MODES),
    ca_cert=dict(type='str', aliases=['ssl_rootcert']),
    connect_timeout=dict(type='int'),
    dsn=dict(type='str', no_log=True),
)

# option -> libpq keyword
_LIBPQ_KEYWORDS = (
    ('login_host', 'host'),
    ('login_port', 'port'),
    ('login_user', 'user'),
    ('login_password', 'password'),
    ('login_db', 'dbname'),
    ('ssl_mode', 'sslmode'),
    ('ca_cert', 'sslrootcert'),
    ('connect_timeout', 'connect_timeout'),
)

# libpq keyword -> environment variable
_LIBPQ_ENV = {
    'host': 'PGHOST',
    'hostaddr': 'PGHOSTADDR',
    'port': 'PGPORT',
    'user': 'PGUSER',
    'password': 'PGPASSWORD',
    'dbname': 'PGDATABASE',
    'sslmode': 'PGSSLMODE',
    'sslrootcert': 'PGSSLROOTCERT',
    'connect_timeout': 'PGCONNECT_TIMEOUT',
    'application_name': 'PGAPPNAME',
}

_FAILED_RE = re.compile(r'^.*\bfailed:\s*')
_SEVERITY_RE = re.compile(r'^(FATAL|ERROR|PANIC):\s+')
_SPACE_RE = re.compile(r'\s+')


class RegistryError(Exception):
    """Base of the registry errors; ``str()`` is a one-line message for ``fail_json``."""


class RegistryConnectionError(RegistryError):
    """The registry database could not be reached or refused the login.

    ``host``, ``port``, ``dbname``, ``user`` and ``reason`` are the parts of
    the message; none of them carries a password.
    """

    def __init__(self, host, port, dbname, user, reason):
        self.host = host
        self.port = port
        self.dbname = dbname
        self.user = user
        self.reason = reason
        super(RegistryConnectionError, self).__init__(self._format())

    def _format(self):
        who = []
        if self.dbname:
            who.append('database %s' % self.dbname)
        if self.user:
            who.append('user %s' % self.user)
        text = 'cannot connect to the registry database on host %s port %s' % (self.host, self.port)
        if who:
            text += ' (%s)' % ', '.join(who)
        return '%s: %s' % (text, self.reason)


def require_psycopg():
    """Raise ``RegistryError`` when psycopg is missing (modules use ``missing_required_lib`` instead)."""
    if not HAS_PSYCOPG:
        raise RegistryError('the registry needs the Python library psycopg (version 3.1 or later) on the '
                            'machine that runs this: pip install "psycopg[binary]"')


def connection_settings(params):
    """The libpq keyword arguments for the options that are set (``None`` and ``''`` are "not set")."""
    settings = {}
    for option, keyword in _LIBPQ_KEYWORDS:
        value = params.get(option)
        if value is None or value == '':
            continue
        settings[keyword] = str(value)
    return settings


def _parse_dsn(dsn):
    if not dsn:
        return {}
    if conninfo_to_dict is None:
        return {}
    try:
        return dict((key, str(value)) for key, value in conninfo_to_dict(dsn).items() if value is not None)
    except Exception:  # pylint: disable=broad-except
        return {}


def effective_settings(params, environ=None):
    """What libpq will use for host, port, dbname, user and sslmode: option, dsn, environment, default.

    Used for messages; the password is never part of the result.
    """
    environ = os.environ if environ is None else environ
    options = connection_settings(params)
    from_dsn = _parse_dsn(params.get('dsn'))
    result = {}
    for keyword in ('host', 'hostaddr', 'port', 'dbname', 'user', 'sslmode', 'connect_timeout'):
        value = options.get(keyword) or from_dsn.get(keyword) or environ.get(_LIBPQ_ENV[keyword]) or None
        result[keyword] = value
    if not result['host']:
        result['host'] = result['hostaddr'] or 'localhost (default unix socket)'
    if not result['port']:
        result['port'] = '5432'
    if not result['user']:
        result['user'] = _os_user()
    if not result['dbname']:
        result['dbname'] = result['user']
    return result


def _os_user():
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        return pwd.getpwuid(os.getuid()).pw_name
    except Exception:  # pylint: disable=broad-except
        return None


def secrets_of(params, environ=None):
    """Every password the settings could carry (option, dsn, PGPASSWORD), longest first."""
    environ = os.environ if environ is None else environ
    found = set()
    for value in (params.get('login_password'), _parse_dsn(params.get('dsn')).get('password'), environ.get('PGPASSWORD')):
        if value:
            found.add(str(value))
    return sorted(found, key=len, reverse=True)


def redact(text, secrets):
    """``text`` with every secret replaced by ``********``."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def connection_failure_reason(message):
    """libpq's connection error as one short line: ``Connection refused (is the server running ...?)``.

    libpq says ``connection failed: connection to server at "127.0.0.1", port
    5432 failed: FATAL:  password authentication failed for user "x"`` with a
    hint on the next lines; the host and port are already in our message, so
    only the reason (and the hint) are kept.
    """
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if not lines:
        return 'unknown error'
    first = _FAILED_RE.sub('', lines[0], count=1) if 'failed:' in lines[0] else lines[0]
    first = _SEVERITY_RE.sub('', first.strip())
    reason = first or lines[0]
    hints = [_SEVERITY_RE.sub('', line) for line in lines[1:]]
    if hints:
        reason = '%s (%s)' % (reason, ' '.join(hints))
    return _SPACE_RE.sub(' ', reason).strip()


def connect(params, environ=None, autocommit=False):
    """A psycopg connection for the options in ``params`` (module params or inventory options).

    Raises ``RegistryConnectionError`` (one line, no password) when the server
    cannot be reached or refuses the login.
    """
    require_psycopg()
    environ = os.environ if environ is None else environ
    kwargs = connection_settings(params)
    dsn = params.get('dsn') or ''
    from_dsn = _parse_dsn(dsn)
    if 'connect_timeout' not in kwargs and 'connect_timeout' not in from_dsn and not environ.get('PGCONNECT_TIMEOUT'):
        kwargs['connect_timeout'] = str(DEFAULT_CONNECT_TIMEOUT)
    if 'application_name' not in from_dsn and not environ.get('PGAPPNAME'):
        kwargs['application_name'] = APPLICATION_NAME
    secrets = secrets_of(params, environ)
    try:
        return psycopg.connect(dsn, autocommit=autocommit, **kwargs)
    except psycopg.Error as exc:
        where = effective_settings(params, environ)
        reason = redact(connection_failure_reason(exc), secrets)
        raise RegistryConnectionError(redact(where['host'], secrets), redact(where['port'], secrets),
                                      redact(where['dbname'] or '', secrets), redact(where['user'] or '', secrets),
                                      reason) from None
    except Exception as exc:  # pylint: disable=broad-except
        # e.g. a dsn libpq cannot parse: its message may quote the dsn, password included
        where = effective_settings(params, environ)
        reason = redact(_SPACE_RE.sub(' ', str(exc)).strip() or type(exc).__name__, secrets)
        raise RegistryConnectionError(redact(where['host'], secrets), redact(where['port'], secrets),
                                      redact(where['dbname'] or '', secrets), redact(where['user'] or '', secrets),
                                      reason) from None


def describe_connection(conn):
    """``{'host', 'port', 'dbname', 'user', 'server_version'}`` of an open connection (no password)."""
    info = conn.info
    return {
        'host': info.host,
        'port': info.port,
        'dbname': info.dbname,
        'user': info.user,
        'server_version': info.server_version,
    }


@contextlib.contextmanager
def transaction(conn, check_mode=False):
    """One transaction: yields a cursor; commits at the end, or rolls back in check mode or on an error."""
    try:
        with conn.cursor() as cur:
            yield cur
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise
    if check_mode:
        conn.rollback()
    else:
        conn.commit()


def database_error_message(exc, secrets=()):
    """A psycopg error as one line: its primary message, detail and hint (passwords cut out)."""
    diag = getattr(exc, 'diag', None)
    primary = getattr(diag, 'message_primary', None) if diag is not None else None
    if not primary:
        text = str(exc).strip()
        primary = text.splitlines()[0] if text else type(exc).__name__
    parts = [primary]
    for attribute in ('message_detail', 'message_hint'):
        extra = getattr(diag, attribute, None) if diag is not None else None
        if extra:
            parts.append(extra)
    return redact(_SPACE_RE.sub(' ', '; '.join(part for part in parts if part)).strip(), secrets)
