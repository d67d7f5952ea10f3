"""The registry under concurrency: parallel auto-registrations, delete against attach, MAC races.

These tests run on their own throwaway server with max_connections raised (the session server allows 50
connections, fewer than 50 parallel writers plus the test's own).
"""

import concurrent.futures
import threading
import time

import psycopg
import pytest

import lab as lablib
from registry_testing import VM1, VM2, add_host, collection_import_path, fresh_database, restart_with

collection_import_path()

# pylint: disable=wrong-import-position
from ansible_collections.nqrust.microvm.plugins.module_utils import registry_networks  # noqa: E402
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import RegistryError, transaction  # noqa: E402
from ansible_collections.nqrust.microvm.plugins.modules import fc_network_registry  # noqa: E402

WRITERS = 50


@pytest.fixture(scope='module', name='server')
def server_fixture():
    with lablib.ThrowawayPostgres() as server:
        restart_with(server, {'max_connections': 150})
        yield server


@pytest.fixture(name='registry')
def registry_fixture(server):
    with fresh_database(server) as registry:
        registry.hv1 = add_host(registry, 'hv1', '10.0.0.11')
        yield registry


def module_params(**args):
    """The module's params as AnsibleModule would make them (every option, defaults applied)."""
    params = {}
    for key, spec in fc_network_registry.argument_spec().items():
        params[key] = spec.get('default')
    params.update(args)
    return params


def call(conn, **args):
    """One fc_network_registry call in this process, on this connection (one transaction)."""
    params = module_params(**args)
    request = fc_network_registry.validate(params)
    with transaction(conn) as cur:
        return fc_network_registry.HANDLERS[params['state']](cur, params, request)


def test_fifty_parallel_auto_registrations_leave_one_row_and_no_error(registry):
    connections = [registry.connect() for dummy in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)

    def register(conn):
        barrier.wait(timeout=60)
        with transaction(conn) as cur:
            record, created = registry_networks.auto_register(cur, registry.hv1, 'fcbr0')
        return record['id'], created

    try:
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
            outcomes = list(pool.map(register, connections))
    finally:
        for conn in connections:
            conn.close()
    assert len(outcomes) == WRITERS, 'every registration returned without an error'
    assert len(set(network_id for network_id, dummy in outcomes)) == 1, 'all of them name the same network'
    assert sum(1 for dummy, created in outcomes if created) == 1, 'exactly one of them created it'
    assert registry.query("SELECT count(*), min(name), min(description) FROM network") == [
        (1, 'fcbr0 Network', 'Auto-registered from VM creation')]


def test_parallel_module_runs_register_one_network(registry):
    args = {'state': 'registered', 'host': 'hv1', 'bridge_name': 'fcbr1', 'vlan_id': 42}
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda dummy: registry.run('fc_network_registry', args), range(12)))
    assert [r for r in results if r.get('failed')] == []
    assert sum(1 for r in results if r['changed']) == 1
    assert len(set(r['network']['id'] for r in results)) == 1
    assert registry.query('SELECT count(*) FROM network') == [(1,)]


def _waiting_on_a_lock(registry, timeout=30):
    """Wait until a session of the module (application_name nqrust.microvm) waits on a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = registry.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nqrust.microvm' "
                              "AND wait_event_type = 'Lock' AND datname = current_database()")
        if rows[0][0]:
            return True
        time.sleep(0.05)
    return False


def test_a_delete_waits_for_an_open_attach_and_then_refuses_with_the_count(registry):
    network = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0'})['network']
    with registry.connect() as attacher:
        params = module_params(state='attached', id=network['id'], vm_id=VM1)
        request = fc_network_registry.validate(params)
        cur = attacher.cursor()
        fc_network_registry.do_attached(cur, params, request)   # attached, not committed yet
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            deleting = pool.submit(registry.run, 'fc_network_registry', {'state': 'absent', 'id': network['id']})
            assert _waiting_on_a_lock(registry), 'the delete waits for the attach to finish'
            assert not deleting.done()
            attacher.commit()
            result = deleting.result(timeout=120)
    assert result['failed'] is True and '1 VM interface attached (1 VM)' in result['msg']
    assert registry.query('SELECT count(*) FROM network') == [(1,)]
    assert registry.query('SELECT count(*) FROM vm_network_interface WHERE network_id IS NULL') == [(0,)]


def test_an_attach_waits_for_an_open_delete_and_then_finds_the_network_gone(registry):
    network = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0'})['network']
    with registry.connect() as deleter:
        cur = deleter.cursor()
        assert registry_networks.delete_network(cur, network['id'])['id'] == network['id']   # deleted, not committed
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            attaching = pool.submit(registry.run, 'fc_network_registry',
                                    {'state': 'attached', 'id': network['id'], 'vm_id': VM1})
            assert _waiting_on_a_lock(registry), 'the attach waits for the delete to finish'
            deleter.commit()
            result = attaching.result(timeout=120)
    assert result['failed'] is True and result['msg'] == 'no network with id %s in the registry' % network['id']
    assert registry.query('SELECT count(*) FROM vm_network_interface') == [(0,)]


def test_racing_deletes_and_attaches_never_leave_an_orphan_interface(registry):
    """20 rounds of a delete and an attach started together: one of them wins, cleanly."""
    outcomes = {'delete': 0, 'attach': 0}
    for round_number in range(20):
        with registry.connect() as conn:
            network = call(conn, state='present', host='hv1', bridge_name='br%d' % round_number)['network']
        vm = '%08x-0000-4000-8000-%012x' % (round_number, round_number)
        conns = [registry.connect(), registry.connect()]
        barrier = threading.Barrier(2)

        def delete(conn, network_id=network['id']):
            barrier.wait(timeout=30)
            try:
                call(conn, state='absent', id=network_id)
                return 'deleted'
            except registry_networks.NetworkInUseError:
                return 'refused'

        def attach(conn, network_id=network['id'], vm_id=vm):
            barrier.wait(timeout=30)
            try:
                call(conn, state='attached', id=network_id, vm_id=vm_id)
                return 'attached'
            except RegistryError:
                return 'no network'

        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                deleted = pool.submit(delete, conns[0])
                attached = pool.submit(attach, conns[1])
                pair = (deleted.result(timeout=60), attached.result(timeout=60))
        finally:
            for conn in conns:
                conn.close()
        assert pair in (('deleted', 'no network'), ('refused', 'attached')), pair
        outcomes['delete' if pair[0] == 'deleted' else 'attach'] += 1
        rows = registry.query('SELECT count(*) FROM network WHERE id = %s', (network['id'],))[0][0]
        interfaces = registry.query('SELECT count(*) FROM vm_network_interface WHERE vm_id = %s', (vm,))[0][0]
        assert (rows, interfaces) == ((0, 0) if pair[0] == 'deleted' else (1, 1))
    assert registry.query('SELECT count(*) FROM vm_network_interface WHERE network_id IS NULL') == [(0,)]
    assert sum(outcomes.values()) == 20


def test_racing_attaches_with_one_mac_leave_one_owner_and_clear_errors(registry):
    network = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0'})['network']
    vms = ['%08x-1111-4111-8111-%012x' % (n, n) for n in range(10)]
    conns = [registry.connect() for dummy in vms]
    barrier = threading.Barrier(len(vms))

    def attach(pair):
        conn, vm = pair
        barrier.wait(timeout=30)
        try:
            call(conn, state='attached', id=network['id'], vm_id=vm, guest_mac='02:fc:00:00:00:99')
            return 'ok'
        except RegistryError as exc:
            return str(exc)

    try:
        with concurrent.futures.ThreadPoolExecutor(len(vms)) as pool:
            results = list(pool.map(attach, zip(conns, vms)))
    finally:
        for conn in conns:
            conn.close()
    assert results.count('ok') == 1, results
    for text in results:
        if text != 'ok':
            assert text.startswith('guest_mac 02:fc:00:00:00:99 is already used by VM '), text
    assert registry.query("SELECT count(*) FROM vm_network_interface WHERE guest_mac = '02:fc:00:00:00:99'") == [(1,)]


def test_two_vms_keep_distinct_default_macs(registry):
    with registry.connect() as conn:
        first = call(conn, state='attached', host='hv1', bridge_name='fcbr0', vm_id=VM1)['interface']
        second = call(conn, state='attached', host='hv1', bridge_name='fcbr0', vm_id=VM2)['interface']
    assert first['guest_mac'] != second['guest_mac'] and first['host_dev_name'] != second['host_dev_name']
    with pytest.raises(psycopg.errors.UniqueViolation):
        registry.execute("UPDATE vm_network_interface SET guest_mac = upper(%s) WHERE id = %s",
                         (first['guest_mac'], second['id']))
