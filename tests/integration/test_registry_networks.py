"""fc_network_registry against a real PostgreSQL: CRUD, check mode, diff, idempotence, input checks, attach/detach."""

import json

import pytest

from registry_testing import VM1, VM2, add_host, fresh_database


@pytest.fixture(name='registry')
def registry_fixture(postgres):
    with fresh_database(postgres) as registry:
        registry.hv1 = add_host(registry, 'hv1', '10.0.0.11')
        registry.hv2 = add_host(registry, 'hv2', '10.0.0.12')
        yield registry


NAT = {
    'host': 'hv1', 'bridge_name': 'fcbr0', 'mode': 'nat', 'cidr': '192.168.18.0/24', 'gateway': '192.168.18.240',
    'uplink': 'eth0', 'mtu': 1500,
    'dhcp': {'enabled': True, 'range_start': '192.168.18.128', 'range_end': '192.168.18.200', 'lease_time': '12h',
             'static_leases': [{'mac': '02:FC:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}]},
    'dns': {'enabled': True, 'upstream': ['192.0.2.53'], 'domain': 'fc.internal'},
}


def _same_run(check, real):
    assert check['changed'] == real['changed']
    assert [c['description'] for c in check['changes']] == [c['description'] for c in real['changes']]
    assert check['diff'] == real['diff']


def test_create_in_check_mode_then_for_real_then_nothing_to_do(registry):
    before = registry.dump()
    check = registry.run('fc_network_registry', NAT, check_mode=True, diff=True)
    assert check['changed'] is True and not check.get('failed'), check
    assert registry.dump() == before, 'check mode ran in a transaction that was rolled back'
    real = registry.run('fc_network_registry', NAT, diff=True)
    _same_run(check, real)
    assert real['changes'][0]['description'] == "create network 'fcbr0 Network'"
    assert real['diff']['before'] == '{}\n' and 'cidr: 192.168.18.0/24' in real['diff']['after']
    network = real['network']
    # the manager API's field names and values
    assert {key: network[key] for key in ('name', 'type', 'vlan_id', 'bridge_name', 'host_id', 'cidr', 'gateway')} == {
        'name': 'fcbr0 Network', 'type': 'bridge', 'vlan_id': None, 'bridge_name': 'fcbr0', 'host_id': registry.hv1,
        'cidr': '192.168.18.0/24', 'gateway': '192.168.18.240'}
    assert network['created_at'].endswith('Z') and network['vm_count'] == 0 and network['host_name'] == 'hv1'
    assert network['dhcp']['static_leases'] == [{'mac': '02:fc:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}]
    rows = registry.query('SELECT name, type, bridge_name, cidr, gateway, mode, uplink, mtu, dhcp, dns FROM network')
    assert rows == [('fcbr0 Network', 'bridge', 'fcbr0', '192.168.18.0/24', '192.168.18.240', 'nat', 'eth0', 1500,
                     {'enabled': True, 'range_start': '192.168.18.128', 'range_end': '192.168.18.200', 'lease_time': '12h',
                      'static_leases': [{'mac': '02:fc:00:00:00:05', 'ip': '192.168.18.5', 'hostname': 'db1'}]},
                     {'enabled': True, 'upstream': ['192.0.2.53'], 'domain': 'fc.internal'})]
    again = registry.run('fc_network_registry', NAT, diff=True)
    assert again['changed'] is False and again['changes'] == []
    assert again['diff']['before'] == again['diff']['after']
    assert again['network']['updated_at'] == network['updated_at']


def test_update_changes_only_the_options_given(registry):
    created = registry.run('fc_network_registry', NAT)['network']
    change = {'host': 'hv1', 'bridge_name': 'fcbr0', 'mtu': 9000, 'description': 'jumbo frames', 'uplink': ''}
    check = registry.run('fc_network_registry', change, check_mode=True, diff=True)
    real = registry.run('fc_network_registry', change, diff=True)
    _same_run(check, real)
    assert real['changes'][0]['description'] == (
        "update network 'fcbr0 Network' (description: null -> jumbo frames, mtu: 1500 -> 9000, uplink: eth0 -> null)")
    assert 'mtu: 1500' in real['diff']['before'] and 'mtu: 9000' in real['diff']['after']
    network = real['network']
    assert (network['mtu'], network['description'], network['uplink']) == (9000, 'jumbo frames', None)
    assert network['dhcp'] == created['dhcp'] and network['cidr'] == created['cidr'] and network['mode'] == 'nat'
    assert network['updated_at'] > created['updated_at'] and network['created_at'] == created['created_at']
    assert registry.run('fc_network_registry', change)['changed'] is False


def test_a_network_is_found_by_id_too(registry):
    created = registry.run('fc_network_registry', NAT)['network']
    renamed = registry.run('fc_network_registry', {'id': created['id'], 'name': 'Primary'})
    assert renamed['changed'] is True and renamed['network']['name'] == 'Primary'
    fixed_id = '5d0c9d5e-52a4-4c41-9d55-3f1f4c2e7a10'
    new = registry.run('fc_network_registry', {'id': fixed_id, 'host': 'hv2', 'bridge_name': 'fcbr1', 'mode': 'routed'})
    assert new['changed'] is True and new['network']['id'] == fixed_id and new['network']['host_name'] == 'hv2'


def test_cidr_as_the_gateway_address_with_prefix_and_the_default_gateway(registry):
    seed_style = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0', 'cidr': '192.168.18.240/24'})
    assert (seed_style['network']['cidr'], seed_style['network']['gateway']) == ('192.168.18.0/24', '192.168.18.240')
    plain = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr1', 'cidr': '10.100.0.0/24'})
    assert (plain['network']['cidr'], plain['network']['gateway']) == ('10.100.0.0/24', '10.100.0.1')
    vlan = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0', 'vlan_id': 100, 'name': 'Customer A',
                                                'cidr': '10.100.0.0/24'})
    assert vlan['network']['type'] == 'vlan' and vlan['network']['vlan_id'] == 100
    assert registry.query('SELECT count(*) FROM network') == [(3,)]


BAD_INPUTS = [
    ({'vlan_id': 0}, "parameter 'vlan_id' (value 0): VLAN id must be an integer from 1 to 4094"),
    ({'vlan_id': 4095}, "parameter 'vlan_id' (value 4095): VLAN id must be an integer from 1 to 4094"),
    ({'cidr': '10.0.0.0/33'}, "parameter 'cidr' (value '10.0.0.0/33')"),
    ({'cidr': '10.0.0.0/24', 'gateway': '10.0.1.1'},
     "parameter 'gateway' (value '10.0.1.1'): is outside 10.0.0.0/24; gateway must be an address inside cidr (10.0.0.0/24)"),
    ({'cidr': '10.0.0.0/24', 'dhcp': {'range_start': '10.0.0.1', 'range_end': '10.0.0.50'}}, 'contains the gateway 10.0.0.1'),
    ({'mode': 'bridged'}, "parameter 'uplink' (value None): missing; bridged mode needs an uplink"),
    # (the full list of input checks is in tests/unit/plugins/module_utils/test_registry_networks.py)
]


def test_bad_input_fails_naming_parameter_value_and_what_is_allowed_and_changes_nothing(registry):
    before = registry.dump()
    for extra, expected in BAD_INPUTS:
        args = {'host': 'hv1', 'bridge_name': 'fcbr9'}
        args.update(extra)
        result = registry.run('fc_network_registry', args)
        assert result.get('failed') is True, (extra, result)
        assert expected in result['msg'], (extra, result['msg'])
        assert '\n' not in result['msg']
    assert registry.dump() == before


def test_an_unknown_host_is_named_with_the_hosts_there_are(registry):
    result = registry.run('fc_network_registry', {'host': 'hv9', 'bridge_name': 'fcbr0'})
    assert result['failed'] is True
    assert result['msg'] == ("unknown host: host 'hv9' is not a host name or id in the registry's host table; "
                             'known hosts: hv1, hv2')
    by_id = registry.run('fc_network_registry', {'host': '00000000-0000-4000-8000-000000000000', 'bridge_name': 'fcbr0'})
    assert "host '00000000-0000-4000-8000-000000000000'" in by_id['msg']
    assert registry.query('SELECT count(*) FROM network') == [(0,)]


def test_a_name_with_sql_in_it_is_stored_as_text(registry):
    name = "x'); DROP TABLE network; --"
    description = "'; DELETE FROM host WHERE ''='"
    result = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0', 'name': name,
                                                  'description': description, 'dns': {'domain': 'a.example'}})
    assert result['changed'] is True and result['network']['name'] == name
    assert registry.query('SELECT name, description FROM network') == [(name, description)]
    assert registry.query('SELECT count(*) FROM host') == [(2,)]
    listed = registry.run('fc_network_registry_info', {'name': name})
    assert [item['name'] for item in listed['networks']] == [name]
    by_host = registry.run('fc_network_registry_info', {'host': "hv1' OR '1'='1"})
    assert by_host['failed'] is True and 'unknown host' in by_host['msg']


def test_list_filters_get_and_vm_count(registry):
    for args in ({'host': 'hv1', 'bridge_name': 'fcbr0'},
                 {'host': 'hv1', 'bridge_name': 'fcbr0', 'vlan_id': 10},
                 {'host': 'hv1', 'bridge_name': 'fcbr1', 'vlan_id': 20},
                 {'host': 'hv2', 'bridge_name': 'fcbr0', 'vlan_id': 10}):
        assert registry.run('fc_network_registry', args)['changed'] is True
    everything = registry.run('fc_network_registry_info', {})
    assert everything['changed'] is False
    assert [(n['host_name'], n['bridge_name'], n['vlan_id']) for n in everything['networks']] == [
        ('hv1', 'fcbr0', None), ('hv1', 'fcbr0', 10), ('hv1', 'fcbr1', 20), ('hv2', 'fcbr0', 10)]
    assert set(everything['networks'][0]) >= {'id', 'name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id',
                                              'cidr', 'gateway', 'created_at', 'updated_at', 'vm_count'}

    def names(**filters):
        result = registry.run('fc_network_registry_info', filters)
        return [(n['host_name'], n['bridge_name'], n['vlan_id']) for n in result['networks']]
    assert names(host='hv2') == [('hv2', 'fcbr0', 10)]
    assert names(bridge_name='fcbr0', vlan_id=10) == [('hv1', 'fcbr0', 10), ('hv2', 'fcbr0', 10)]
    assert names(type='bridge') == [('hv1', 'fcbr0', None)]
    assert names(host=registry.hv1, bridge_name='fcbr1') == [('hv1', 'fcbr1', 20)]

    attached = registry.run('fc_network_registry',
                            {'state': 'attached', 'host': 'hv1', 'bridge_name': 'fcbr0', 'vlan_id': 10, 'vm_id': VM1})
    network_id = attached['network']['id']
    registry.run('fc_network_registry', {'state': 'attached', 'id': network_id, 'vm_id': VM1, 'iface_id': 'eth1'})
    registry.run('fc_network_registry', {'state': 'attached', 'id': network_id, 'vm_id': VM2})
    got = registry.run('fc_network_registry_info', {'id': network_id, 'include_interfaces': True})
    assert [n['id'] for n in got['networks']] == [network_id]
    assert got['networks'][0]['vm_count'] == 2 and got['networks'][0]['vlan_id'] == 10
    assert [(i['vm_id'], i['iface_id']) for i in got['networks'][0]['interfaces']] == sorted(
        [(VM1, 'eth0'), (VM1, 'eth1'), (VM2, 'eth0')])
    missing = registry.run('fc_network_registry_info', {'host': 'hv2', 'bridge_name': 'fcbr7'})
    assert missing['networks'] == [] and missing['changed'] is False
    bad = registry.run('fc_network_registry_info', {'vlan_id': 4095, 'id': 'x'})
    assert bad['failed'] is True and len(bad['validation_errors']) == 2


def test_delete_check_mode_then_real_then_nothing_to_do(registry):
    registry.run('fc_network_registry', NAT)
    gone = {'state': 'absent', 'host': 'hv1', 'bridge_name': 'fcbr0'}
    before = registry.dump()
    check = registry.run('fc_network_registry', gone, check_mode=True, diff=True)
    assert check['changed'] is True and registry.dump() == before
    real = registry.run('fc_network_registry', gone, diff=True)
    _same_run(check, real)
    assert real['diff']['after'] == '{}\n' and real['network']['name'] == 'fcbr0 Network'
    assert registry.query('SELECT count(*) FROM network') == [(0,)]
    assert registry.run('fc_network_registry', gone)['changed'] is False


def test_delete_is_refused_with_the_count_while_vms_are_attached(registry):
    network = registry.run('fc_network_registry', NAT)['network']
    for vm, iface in ((VM1, 'eth0'), (VM1, 'eth1'), (VM2, 'eth0')):
        registry.run('fc_network_registry', {'state': 'attached', 'id': network['id'], 'vm_id': vm, 'iface_id': iface})
    before = registry.dump()
    for check_mode in (True, False):
        result = registry.run('fc_network_registry', {'state': 'absent', 'id': network['id']}, check_mode=check_mode)
        assert result['failed'] is True
        assert result['msg'] == ("cannot delete network 'fcbr0 Network' (id %s): 3 VM interfaces attached (2 VMs); "
                                 'detach or delete them first: a network can only be deleted when its VM count is 0'
                                 % network['id'])
        assert (result['interfaces'], result['vm_count']) == (3, 2)
    assert registry.dump() == before
    for vm, iface in ((VM1, 'eth0'), (VM1, 'eth1'), (VM2, 'eth0')):
        assert registry.run('fc_network_registry', {'state': 'detached', 'vm_id': vm, 'iface_id': iface})['changed'] is True
    assert registry.run('fc_network_registry', {'state': 'absent', 'id': network['id']})['changed'] is True


def test_attach_and_detach_with_stable_names_and_unique_macs(registry):
    attach = {'state': 'attached', 'host': 'hv1', 'bridge_name': 'fcbr0', 'vm_id': VM1, 'vm_name': 'web-1'}
    before = registry.dump()
    check = registry.run('fc_network_registry', attach, check_mode=True, diff=True)
    assert registry.dump() == before
    real = registry.run('fc_network_registry', attach, diff=True)
    _same_run(check, real)
    assert [c['description'] for c in real['changes']] == [
        "create network 'fcbr0 Network'", "create vm '%s'" % VM1, "attach interface '%s/eth0'" % VM1]
    interface = real['interface']
    # the collection's stable TAP name and guest MAC for (VM, iface), as the filters compute them
    assert interface['guest_mac'].startswith('aa:fc:') and len(interface['host_dev_name']) == 15
    assert interface['host_dev_name'] == 'tap-' + interface['guest_mac'].replace(':', '')[4:] + interface['host_dev_name'][12:]
    assert real['created'] is True and real['network']['description'] == 'Auto-registered from VM creation'
    assert registry.query('SELECT name FROM vm') == [('web-1',)]
    again = registry.run('fc_network_registry', attach, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after']

    clash = registry.run('fc_network_registry', {'state': 'attached', 'host': 'hv1', 'bridge_name': 'fcbr0', 'vm_id': VM2,
                                                 'guest_mac': interface['guest_mac'].upper()})
    assert clash['failed'] is True
    assert clash['msg'] == ('guest_mac %s is already used by VM %s iface eth0 (interface id %s): every guest MAC in the '
                            'registry must be unique' % (interface['guest_mac'], VM1, interface['id']))
    # a manager-written upper-case MAC clashes too (the unique index ignores case)
    registry.execute("INSERT INTO vm (id, name) VALUES (%s, 'vm2')", (VM2,))
    with pytest.raises(Exception, match='vm_network_interface_guest_mac_key'):
        registry.execute("INSERT INTO vm_network_interface (vm_id, iface_id, guest_mac) VALUES (%s, 'eth5', %s)",
                         (VM2, interface['guest_mac'].upper()))

    moved = registry.run('fc_network_registry', {'state': 'attached', 'host': 'hv1', 'bridge_name': 'fcbr0', 'vlan_id': 30,
                                                 'vm_id': VM1, 'auto_register': True}, diff=True)
    assert [c['action'] for c in moved['changes']] == ['create', 'update']
    assert 'vlan_id: 30' in moved['diff']['after']
    refused = registry.run('fc_network_registry', {'state': 'attached', 'host': 'hv1', 'bridge_name': 'fcbr3',
                                                   'vm_id': VM1, 'auto_register': False})
    assert refused['failed'] is True and 'auto_register is false' in refused['msg']

    detach = {'state': 'detached', 'vm_id': VM1}
    check = registry.run('fc_network_registry', detach, check_mode=True, diff=True)
    real = registry.run('fc_network_registry', detach, diff=True)
    _same_run(check, real)
    assert real['interface']['iface_id'] == 'eth0'
    assert registry.query('SELECT count(*) FROM vm_network_interface') == [(0,)]
    assert registry.run('fc_network_registry', detach)['changed'] is False


def test_an_interface_the_manager_wrote_keeps_its_mac_and_tap(registry):
    network = registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0'})['network']
    registry.execute("INSERT INTO vm (id, name) VALUES (%s, 'vm-1')", (VM1,))
    registry.execute("INSERT INTO vm_network_interface (vm_id, network_id, iface_id, guest_mac, host_dev_name) "
                     "VALUES (%s, %s, 'eth0', 'AA:FC:00:00:00:01', 'tap-vm-1')", (VM1, network['id']))
    again = registry.run('fc_network_registry', {'state': 'attached', 'id': network['id'], 'vm_id': VM1})
    assert again['changed'] is False and again['interface']['guest_mac'] == 'AA:FC:00:00:00:01'
    renamed = registry.run('fc_network_registry', {'state': 'attached', 'id': network['id'], 'vm_id': VM1,
                                                   'host_dev_name': 'tap-vm-one'})
    assert renamed['changed'] is True and renamed['interface']['host_dev_name'] == 'tap-vm-one'
    assert renamed['interface']['guest_mac'] == 'AA:FC:00:00:00:01'


def test_registered_leaves_an_existing_network_alone(registry):
    created = registry.run('fc_network_registry', NAT)['network']
    again = registry.run('fc_network_registry', {'state': 'registered', 'host': 'hv1', 'bridge_name': 'fcbr0', 'mode': 'open'},
                         diff=True)
    assert again['changed'] is False and again['created'] is False
    assert again['network']['id'] == created['id'] and again['network']['mode'] == 'nat'
    new = registry.run('fc_network_registry', {'state': 'registered', 'host': 'hv2', 'bridge_name': 'fcbr0', 'vlan_id': 7})
    assert new['changed'] is True and new['created'] is True
    assert (new['network']['name'], new['network']['type']) == ('fcbr0 VLAN 7 Network', 'vlan')


def test_results_are_json_with_api_field_order(registry):
    result = registry.run('fc_network_registry', NAT)
    assert list(result['network'])[:11] == ['id', 'name', 'description', 'type', 'vlan_id', 'bridge_name', 'host_id', 'cidr',
                                            'gateway', 'created_at', 'updated_at']
    json.dumps(result)
