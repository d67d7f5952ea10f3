# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.nqrust.microvm.plugins.module_utils import registry_connection as rc


def test_only_the_options_that_are_set_are_passed():
    params = dict((key, None) for key in rc.CONNECTION_ARGUMENT_SPEC)
    params.update(login_host='db.example.com', login_port=6543, login_db='', ssl_mode='require')
    assert rc.connection_settings(params) == {'host': 'db.example.com', 'port': '6543', 'sslmode': 'require'}


def test_argument_spec_hides_the_password_and_the_dsn():
    assert rc.CONNECTION_ARGUMENT_SPEC['login_password']['no_log'] is True
    assert rc.CONNECTION_ARGUMENT_SPEC['dsn']['no_log'] is True
    assert rc.CONNECTION_ARGUMENT_SPEC['ca_cert']['aliases'] == ['ssl_rootcert']
    assert 'default' not in rc.CONNECTION_ARGUMENT_SPEC['login_port'], 'unset options leave PGPORT to libpq'


def test_effective_settings_follow_libpq_precedence():
    pytest.importorskip('psycopg')
    env = {'PGHOST': 'env-host', 'PGPORT': '7000', 'PGUSER': 'env-user', 'PGDATABASE': 'env-db'}
    assert rc.effective_settings({}, env)['host'] == 'env-host'
    from_dsn = rc.effective_settings({'dsn': 'host=dsn-host port=7001 dbname=dsn-db'}, env)
    assert (from_dsn['host'], from_dsn['port'], from_dsn['dbname'], from_dsn['user']) == ('dsn-host', '7001', 'dsn-db', 'env-user')
    from_uri = rc.effective_settings({'dsn': 'postgresql://u:pw@uri-host:7002/uri-db'}, {})
    assert (from_uri['host'], from_uri['port'], from_uri['dbname'], from_uri['user']) == ('uri-host', '7002', 'uri-db', 'u')
    options = rc.effective_settings({'dsn': 'host=dsn-host', 'login_host': 'opt-host', 'login_port': 7003}, env)
    assert (options['host'], options['port']) == ('opt-host', '7003')


def test_effective_settings_defaults():
    defaults = rc.effective_settings({}, {})
    assert defaults['host'] == 'localhost (default unix socket)' and defaults['port'] == '5432'
    assert defaults['dbname'] == defaults['user']


def test_every_password_is_a_secret():
    pytest.importorskip('psycopg')
    params = {'login_password': 'opt-pw', 'dsn': 'postgresql://u:dsn-pw@h/db'}
    assert sorted(rc.secrets_of(params, {'PGPASSWORD': 'env-pw'})) == ['dsn-pw', 'env-pw', 'opt-pw']
    assert rc.secrets_of({'login_password': 'ab', 'dsn': 'password=abcd'}, {}) == ['abcd', 'ab'], 'longest first'
    assert rc.redact('a opt-pw b dsn-pw c', ['opt-pw', 'dsn-pw']) == 'a ******** b ******** c'


@pytest.mark.parametrize('message, reason', [
    ('connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running '
     'on that host and accepting TCP/IP connections?',
     'Connection refused (Is the server running on that host and accepting TCP/IP connections?)'),
    ('connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed '
     'for user "nqrust"', 'password authentication failed for user "nqrust"'),
    ('connection is bad: connection to server on socket "/x/.s.PGSQL.5432" failed: No such file or directory\n\tIs the '
     'server running locally and accepting connections on that socket?',
     'No such file or directory (Is the server running locally and accepting connections on that socket?)'),
    ("failed to resolve host 'nosuch.invalid': [Errno -2] Name or service not known",
     "failed to resolve host 'nosuch.invalid': [Errno -2] Name or service not known"),
    ('', 'unknown error'),
])
def test_libpq_errors_become_one_short_reason(message, reason):
    assert rc.connection_failure_reason(message) == reason


def test_the_error_names_host_port_database_user_and_reason():
    exc = rc.RegistryConnectionError('db.example.com', '5432', 'nqrust', 'fleet', 'Connection refused')
    assert str(exc) == ('cannot connect to the registry database on host db.example.com port 5432 (database nqrust, '
                        'user fleet): Connection refused')


class _FakeError(Exception):
    pass


class _FakePsycopg(object):
    Error = _FakeError

    def __init__(self, message):
        self.message = message
        self.calls = []

    def connect(self, dsn, **kwargs):
        self.calls.append((dsn, kwargs))
        raise _FakeError(self.message)


def test_a_refused_login_never_shows_a_password(monkeypatch):
    pytest.importorskip('psycopg')
    fake = _FakePsycopg('connection failed: connection to server at "h", port 5432 failed: FATAL:  password '
                        'authentication failed for user "s3cret-user" (s3cret-pw)')
    monkeypatch.setattr(rc, 'psycopg', fake)
    params = {'login_host': 'h', 'login_user': 'u', 'login_password': 's3cret-pw', 'dsn': 'password=dsn-pw'}
    with pytest.raises(rc.RegistryConnectionError) as caught:
        rc.connect(params, environ={'PGPASSWORD': 'env-pw'})
    text = str(caught.value)
    assert 's3cret-pw' not in text and 'dsn-pw' not in text and '\n' not in text
    assert text.startswith('cannot connect to the registry database on host h port 5432 (database u, user u): ')
    dsn, kwargs = fake.calls[0]
    assert dsn == 'password=dsn-pw'
    assert kwargs['password'] == 's3cret-pw' and kwargs['connect_timeout'] == '10'
    assert kwargs['application_name'] == 'nqrust.microvm'


def test_the_environment_timeout_and_application_name_are_left_to_libpq(monkeypatch):
    pytest.importorskip('psycopg')
    fake = _FakePsycopg('x')
    monkeypatch.setattr(rc, 'psycopg', fake)
    with pytest.raises(rc.RegistryConnectionError):
        rc.connect({}, environ={'PGCONNECT_TIMEOUT': '3', 'PGAPPNAME': 'mine'})
    assert 'connect_timeout' not in fake.calls[0][1] and 'application_name' not in fake.calls[0][1]


class _Diag(object):
    message_primary = 'duplicate key value violates unique constraint "x"'
    message_detail = 'Key (a)=(secret) already exists.'
    message_hint = None


class _DbError(Exception):
    diag = _Diag()


def test_database_errors_are_one_line_with_detail():
    text = rc.database_error_message(_DbError('first\nsecond'), ['secret'])
    assert text == 'duplicate key value violates unique constraint "x"; Key (a)=(********) already exists.'
