"""Connecting to the registry: options, dsn, PG* environment, unix socket; failures in one line without passwords."""

import json
import os

import pytest

from lab import postgres as lab_postgres
from registry_testing import REPO, add_host, assert_no_secret, fresh_database

NO_PSYCOPG_PYTHON = os.path.join(REPO, '.venv-pyroute2-0.7', 'bin', 'python')


@pytest.fixture(scope='module', name='registry')
def registry_fixture(postgres):
    with fresh_database(postgres) as registry:
        add_host(registry, 'hv1')
        registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0'})
        yield registry


def _listed(result):
    assert not result.get('failed'), result
    return [network['bridge_name'] for network in result['networks']]


def test_a_server_that_is_down_gives_one_line_with_host_and_port(registry):
    port = lab_postgres.free_port()
    options = dict(registry.options(), login_port=port)
    result = registry.run('fc_network_registry_info', options, connection=False)
    assert result['failed'] is True
    assert result['msg'] == ('cannot connect to the registry database on host 127.0.0.1 port %d (database %s, user nqrust): '
                             'Connection refused (Is the server running on that host and accepting TCP/IP connections?)'
                             % (port, registry.dbname))
    assert '\n' not in result['msg']
    assert_no_secret(result, registry.password)


@pytest.mark.parametrize('how', ['option', 'dsn', 'uri', 'environment'])
def test_a_wrong_password_gives_one_line_and_no_password_anywhere(registry, how):
    wrong = 'Wr0ng-' + registry.password[:12]
    args, env = {}, None
    if how == 'option':
        args.update(registry.options(), login_password=wrong)
    elif how == 'dsn':
        args['dsn'] = registry.server.dsn(user=registry.user, password=wrong, dbname=registry.dbname)
    elif how == 'uri':
        args['dsn'] = 'postgresql://%s:%s@127.0.0.1:%d/%s?connect_timeout=5' % (registry.user, wrong, registry.server.port,
                                                                                registry.dbname)
    else:
        env = dict(registry.env(), PGPASSWORD=wrong)
    result = registry.run('fc_network_registry_info', args, env=env, connection=False)
    assert result['failed'] is True
    assert result['msg'] == ('cannot connect to the registry database on host 127.0.0.1 port %d (database %s, user nqrust): '
                             'password authentication failed for user "nqrust"' % (registry.server.port, registry.dbname))
    assert_no_secret(result, wrong, registry.password)


def test_an_unknown_database_is_named(registry):
    result = registry.run('fc_registry_migrate', dict(registry.options(), login_db='no_such_db'), connection=False)
    assert result['failed'] is True and 'database no_such_db' in result['msg']
    assert result['msg'].endswith('database "no_such_db" does not exist')
    assert_no_secret(result, registry.password)


def test_the_pg_environment_alone_is_enough(registry):
    assert _listed(registry.run('fc_network_registry_info', {}, env=registry.env(), connection=False)) == ['fcbr0']


def test_the_unix_socket_through_the_environment_and_options(registry):
    assert _listed(registry.run('fc_network_registry_info', {}, env=registry.env(unix=True), connection=False)) == ['fcbr0']
    assert _listed(registry.run('fc_network_registry_info', registry.options(unix=True), connection=False)) == ['fcbr0']


def test_dsn_and_uri_and_options_override_them(registry):
    assert _listed(registry.run('fc_network_registry_info', {'dsn': registry.dsn()}, connection=False)) == ['fcbr0']
    uri = 'postgresql://%s:%s@127.0.0.1:%d/%s' % (registry.user, registry.password, registry.server.port, registry.dbname)
    assert _listed(registry.run('fc_network_registry_info', {'dsn': uri}, connection=False)) == ['fcbr0']
    wrong_db = registry.server.dsn(user=registry.user, password=registry.password, dbname='postgres')
    result = registry.run('fc_network_registry_info', {'dsn': wrong_db, 'login_db': registry.dbname}, connection=False)
    assert _listed(result) == ['fcbr0'], 'login_db overrides the dsn'
    # the options fill in what the environment lacks, and win over it
    env = dict(registry.env(), PGDATABASE='postgres', PGPASSWORD='nope')
    result = registry.run('fc_network_registry_info', {'login_db': registry.dbname, 'login_password': registry.password},
                          env=env, connection=False)
    assert _listed(result) == ['fcbr0']


def test_the_invocation_hides_the_password_and_the_dsn(registry):
    from lab import module_run  # pylint: disable=import-outside-toplevel
    result = module_run.run_module(None, 'fc_network_registry_info', {'dsn': registry.dsn()})
    assert result['invocation']['module_args']['dsn'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    result = module_run.run_module(None, 'fc_network_registry_info', registry.options())
    assert result['invocation']['module_args']['login_password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert registry.password not in json.dumps(result)


@pytest.mark.skipif(not os.path.exists(NO_PSYCOPG_PYTHON), reason='no interpreter without psycopg (.venv-pyroute2-0.7)')
def test_without_psycopg_the_module_says_what_to_install(registry):
    from lab import module_run  # pylint: disable=import-outside-toplevel
    result = module_run.run_module(None, 'fc_network_registry_info', registry.options(), python=NO_PSYCOPG_PYTHON)
    assert result['failed'] is True
    assert 'Failed to import the required Python library (psycopg (3.1 or later))' in result['msg']
