"""fc_registry_host against a real PostgreSQL: register, update, remove, refusals."""

from registry_testing import fresh_database


def test_register_update_and_remove_a_host(postgres):
    with fresh_database(postgres) as registry:
        before = registry.dump()
        check = registry.run('fc_registry_host', {'name': 'hv1', 'addr': '10.0.0.11'}, check_mode=True, diff=True)
        assert check['changed'] is True and registry.dump() == before
        real = registry.run('fc_registry_host', {'name': 'hv1', 'addr': '10.0.0.11'}, diff=True)
        assert (real['changed'], real['diff'], [c['description'] for c in real['changes']]) == (
            check['changed'], check['diff'], [c['description'] for c in check['changes']])
        assert real['host']['name'] == 'hv1' and real['host']['addr'] == '10.0.0.11'
        assert registry.run('fc_registry_host', {'name': 'hv1'})['changed'] is False, 'addr not given: left as it is'
        moved = registry.run('fc_registry_host', {'name': 'hv1', 'addr': '10.0.0.99'}, diff=True)
        assert moved['changed'] is True and moved['changes'][0]['description'] == "update host 'hv1' (addr: 10.0.0.11 -> 10.0.0.99)"

        registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0'})
        refused = registry.run('fc_registry_host', {'name': 'hv1', 'state': 'absent'})
        assert refused['failed'] is True
        assert refused['msg'] == ("cannot remove host 'hv1' (id %s): 1 network and 0 VMs of the registry belong to it; "
                                  'delete them first' % real['host']['id'])
        registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0', 'state': 'absent'})
        gone = registry.run('fc_registry_host', {'name': 'hv1', 'state': 'absent'})
        assert gone['changed'] is True and registry.query('SELECT count(*) FROM host') == [(0,)]
        assert registry.run('fc_registry_host', {'name': 'hv1', 'state': 'absent'})['changed'] is False


def test_a_given_id_and_bad_input(postgres):
    with fresh_database(postgres) as registry:
        host_id = 'bbab8c75-f516-47ec-987a-828422b2ee5a'
        made = registry.run('fc_registry_host', {'id': host_id, 'name': 'hv7'})
        assert made['host'] == {'id': host_id, 'name': 'hv7', 'addr': 'hv7'}
        renamed = registry.run('fc_registry_host', {'id': host_id, 'name': 'hv8'})
        assert renamed['changed'] is True and renamed['host']['name'] == 'hv8'
        bad = registry.run('fc_registry_host', {'id': 'nope'})
        assert bad['failed'] is True and bad['msg'].startswith("parameter 'id' (value 'nope'): a host id is a UUID")
        missing = registry.run('fc_registry_host', {'addr': '10.0.0.1'})
        assert missing['failed'] is True and "parameter 'name' (value None): missing" in missing['msg']
