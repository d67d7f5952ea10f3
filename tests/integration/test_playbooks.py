"""The collection's playbooks (playbooks/*.yml) run the way AWX runs a job template: ansible-runner, extra
variables as a survey passes them (flat scalars, strings), the inventory from the registry inventory plugin
against a real throwaway PostgreSQL, on lab hosts in network namespaces.

Proven: registry_init migrates and registers hosts (a second run changes nothing); site.yml converges every
network of the registry fleet (check mode predicts the run, a second run changes nothing); network_create and
network_delete record and build one network; vm_nic_attach makes the TAP and the registry row and returns the
Firecracker object, and a guest on that TAP gets a DHCP lease and reaches the outside through NAT;
vm_nic_detach leaves the host's links and the registry exactly as before the attach; bad input fails with a
clear message and changes nothing.
"""

import json
import os
import shutil
import tempfile

import pytest

from lab.playbook import inventory_for, run_playbook
from lab.snapshot import assert_unchanged, snapshot
from playbook_testing import (debug_messages, failed_messages, host_dirs, playbook, registry_inventory, registry_vars,
                              stats_data, without_pg)
from registry_testing import VM1, VM2, add_host, collection_import_path, fresh_database

# Not marked `module`: the playbooks run once, with the venv's pyroute2. The modules and roles they drive
# run again under pyroute2 0.7 in their own tests (the lane's second pass), and CI has 90 minutes.

INTERNET = '192.0.2.1'


@pytest.fixture(name='workdir')
def workdir_fixture():
    path = tempfile.mkdtemp(prefix='nql-playbooks-')
    os.chmod(path, 0o755)  # dnsmasq reads its hosts files after dropping privileges
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _identity():
    collection_import_path()
    from ansible_collections.nqrust.microvm.plugins.module_utils import vm_identity  # pylint: disable=import-outside-toplevel
    return vm_identity


def _tables(registry):
    return registry.dump()['tables']


def _ok(run):
    assert run.ok, run.failures()
    return run


def test_registry_init_and_site_converge_the_registry_fleet(lab, postgres, ansible_env, workdir):
    hv1, hv2 = lab.add_host('hv1'), lab.add_host('hv2')
    lab.upstream(hv1, hv2)
    with fresh_database(postgres, migrate=False) as registry:
        init_vars = dict(registry_vars(registry), registry_host_names='hv1=%s, hv2=%s' % (hv1.netns, hv2.netns))
        first = _ok(run_playbook(lab, playbook('registry_init.yml'), {}, ansible_env, extravars=init_vars,
                                 inventory=inventory_for({})))
        assert first.changed('localhost') == 2, first.changed_tasks()        # the schema, the hosts
        assert registry.query('SELECT max(version) FROM nqrust_microvm_schema_version') == [(3,)]
        assert sorted(registry.query('SELECT name, addr FROM host')) == [('hv1', hv1.netns), ('hv2', hv2.netns)]
        again = _ok(run_playbook(lab, playbook('registry_init.yml'), {}, ansible_env, extravars=init_vars,
                                 inventory=inventory_for({})))
        assert again.changed('localhost') == 0, again.changed_tasks()

        # the fleet's networks, as the manager or network_create.yml would record them
        for host, args in (('hv1', {'bridge_name': 'fcbr0', 'name': 'Tenants', 'mode': 'nat', 'cidr': '10.50.0.0/24',
                                    'gateway': '10.50.0.1'}),
                           ('hv2', {'bridge_name': 'fcbr1', 'mode': 'isolated', 'cidr': '10.60.0.0/24'})):
            result = registry.run('fc_network_registry', dict(args, host=host))
            assert result.get('changed'), result
        inventory = registry_inventory(workdir, registry)
        extravars = host_dirs(workdir)
        hosts = {'hv1': hv1, 'hv2': hv2}

        check = _ok(run_playbook(lab, playbook('site.yml'), hosts, ansible_env, extravars=extravars,
                                 inventory=inventory, check=True, diff=True))
        assert hv1.link('fcbr0') is None and hv2.link('fcbr1') is None, 'check mode changed the hosts'
        real = _ok(run_playbook(lab, playbook('site.yml'), hosts, ansible_env, extravars=extravars, inventory=inventory,
                                diff=True))
        for name in hosts:
            # the host role (sysctl file, modules file) and the network role both ran on every registry host
            assert real.changed(name) == check.changed(name) > 0, (name, check.changed_tasks(name), real.changed_tasks(name))
            assert check.changed_tasks(name) == real.changed_tasks(name)
        assert hv1.addresses('fcbr0') == ['10.50.0.1/24']
        assert hv2.addresses('fcbr1') == ['10.60.0.1/24']
        assert hv1.link('fcbr1') is None and hv2.link('fcbr0') is None
        assert os.path.exists(os.path.join(workdir, 'hv1', 'modules.conf'))

        rerun = _ok(run_playbook(lab, playbook('site.yml'), hosts, ansible_env, extravars=extravars, inventory=inventory))
        assert rerun.changed('hv1') == 0 and rerun.changed('hv2') == 0, rerun.changed_tasks()

        # fc_prepare_hosts=false skips the host role; fc_hosts narrows the run to one host
        narrow = _ok(run_playbook(lab, playbook('site.yml'), hosts, ansible_env, inventory=inventory,
                                  extravars=dict(extravars, fc_prepare_hosts='false', fc_hosts='hv2')))
        assert narrow.results('hv1') == []
        assert not [item for item in narrow.results('hv2') if 'nqrust.microvm.host' in str(item.get('_task'))]
        assert [item for item in narrow.results('hv2') if item['_task'] == 'Firewall rules and forwarding']


def test_network_and_nic_lifecycle_with_registry_and_real_traffic(lab, postgres, ansible_env, workdir):
    hv = lab.add_host('hv1')
    lab.upstream(hv)
    identity = _identity()
    tap, mac = identity.tap_name(VM1, 'eth0'), identity.guest_mac(VM1, 'eth0')
    with fresh_database(postgres) as registry:
        add_host(registry, 'hv1', hv.netns)
        registry.execute("INSERT INTO vm (id, name) VALUES (%s, 'web1')", (VM1,))   # the manager made the VM
        inventory = registry_inventory(workdir, registry)
        base = dict(host_dirs(workdir), **registry_vars(registry))

        def run(name, check=False, **survey):
            return run_playbook(lab, playbook(name), {'hv1': hv}, ansible_env, extravars=dict(base, **survey),
                                inventory=inventory, check=check, diff=True)

        # -- network_create from survey answers (strings; an empty answer is "not set")
        survey = dict(fc_network_bridge='fcbr0', fc_network_name='Tenants', fc_network_mode='nat',
                      fc_network_cidr='10.50.0.0/24', fc_network_gateway='10.50.0.1', fc_network_mtu='',
                      fc_network_dhcp_range_start='10.50.0.100', fc_network_dhcp_range_end='10.50.0.150',
                      fc_network_dhcp_lease_time='1h', fc_network_dns_domain='fc.internal', fc_network_vlan_id='')
        empty = _tables(registry)
        check = _ok(run('network_create.yml', check=True, **survey))
        assert check.changed('hv1') > 0
        assert _tables(registry) == empty and hv.link('fcbr0') is None, 'check mode changed something'
        created = _ok(run('network_create.yml', **survey))
        assert created.changed_tasks('hv1') == check.changed_tasks('hv1')
        (network,) = registry.query("SELECT id::text, name, mode, cidr, gateway, dhcp->>'range_start', "
                                    "dhcp->>'range_end', dhcp->>'lease_time', dns->>'domain', vlan_id, mtu FROM network")
        assert network[1:] == ('Tenants', 'nat', '10.50.0.0/24', '10.50.0.1', '10.50.0.100', '10.50.0.150', '1h',
                               'fc.internal', None, None)
        assert hv.addresses('fcbr0') == ['10.50.0.1/24']
        assert _ok(run('network_create.yml', **survey)).changed('hv1') == 0

        links_before, rows_before = snapshot(hv), _tables(registry)

        # -- vm_nic_attach: check mode predicts, changes nothing
        nic = dict(fc_vm_id=VM1, fc_network_bridge='fcbr0')
        predicted = _ok(run('vm_nic_attach.yml', check=True, **nic))
        expected = {'iface_id': 'eth0', 'host_dev_name': tap, 'guest_mac': mac}
        assert stats_data(predicted)['fc_vm_network_interface'] == expected
        assert hv.link(tap) is None and _tables(registry) == rows_before

        attached = _ok(run('vm_nic_attach.yml', **nic))
        assert attached.changed_tasks('hv1') == predicted.changed_tasks('hv1')
        assert stats_data(attached) == {'fc_vm_id': VM1, 'fc_vm_network_interface': expected}
        shown = debug_messages(attached, "Show it (the body of PUT /network-interfaces/<iface_id> of the VM's Firecracker API)")
        assert [json.loads(text) for text in shown] == [expected]
        link = hv.link(tap)
        assert link['master'] == 'fcbr0' and 'nqrust.microvm' in link.get('ifalias', '')
        assert registry.query('SELECT vm_id::text, network_id::text, iface_id, guest_mac, host_dev_name '
                              'FROM vm_network_interface') == [(VM1, network[0], 'eth0', mac, tap)]
        assert _ok(run('vm_nic_attach.yml', **nic)).changed('hv1') == 0

        # a guest behind the TAP (as Firecracker opens it, with the returned MAC) gets a lease and reaches the outside
        guest = lab.add_guest('vm1', hv, tap, mac=mac)
        lease = guest.dhcp()
        assert 100 <= int(lease['ip'].rsplit('.', 1)[1]) <= 150 and lease['router'] == '10.50.0.1', lease
        assert guest.ping(INTERNET)

        # -- network_delete is refused while the VM is attached: nothing changes, here or on the host
        attached_rows, attached_links = _tables(registry), snapshot(hv)
        refused = run('network_delete.yml', fc_network_bridge='fcbr0')
        assert not refused.ok
        assert 'cannot delete network' in failed_messages(refused) and '1 VM interface attached' in failed_messages(refused)
        assert _tables(registry) == attached_rows
        assert_unchanged(attached_links, snapshot(hv))
        lab.remove_guest('vm1')

        # -- vm_nic_detach: check mode first, then for real; the host's links and the registry are as before the attach
        predicted = _ok(run('vm_nic_detach.yml', check=True, fc_vm_id=VM1))
        assert predicted.changed('hv1') == 2 and hv.link(tap) is not None and _tables(registry) == attached_rows
        detached = _ok(run('vm_nic_detach.yml', fc_vm_id=VM1))
        assert detached.changed_tasks('hv1') == predicted.changed_tasks('hv1')
        assert_unchanged(links_before, snapshot(hv))
        assert _tables(registry) == rows_before
        assert _ok(run('vm_nic_detach.yml', fc_vm_id=VM1)).changed('hv1') == 0

        # -- network_delete: the row and everything the role made go
        deleted = _ok(run('network_delete.yml', fc_network_bridge='fcbr0'))
        assert deleted.changed('hv1') > 0
        assert registry.query('SELECT count(*) FROM network') == [(0,)]
        assert hv.link('fcbr0') is None
        assert not [entry for entry in snapshot(hv)['nft_tables'] if 'fcbr0' in entry]
        assert _ok(run('network_delete.yml', fc_network_bridge='fcbr0')).changed('hv1') == 0


def test_attach_auto_registers_the_network_and_runs_without_a_registry(lab, postgres, ansible_env, workdir):
    hv = lab.add_host('hv1')
    hv.ip('link', 'add', 'fcbr3', 'type', 'bridge')
    identity = _identity()
    with fresh_database(postgres) as registry:
        add_host(registry, 'hv1', hv.netns)
        inventory = registry_inventory(workdir, registry)
        survey = dict(registry_vars(registry), fc_vm_id=VM2, fc_vm_name='db1', fc_network_bridge='fcbr3',
                      fc_iface_id='eth1', fc_tap_name='tap-db1', fc_tap_isolated='true')
        attached = _ok(run_playbook(lab, playbook('vm_nic_attach.yml'), {'hv1': hv}, ansible_env, extravars=survey,
                                    inventory=inventory))
        nic = stats_data(attached)['fc_vm_network_interface']
        assert nic == {'iface_id': 'eth1', 'host_dev_name': 'tap-db1', 'guest_mac': identity.guest_mac(VM2, 'eth1')}
        assert hv.link('tap-db1')['master'] == 'fcbr3'
        assert registry.query("SELECT name, description, bridge_name FROM network") == [
            ('fcbr3 Network', 'Auto-registered from VM creation', 'fcbr3')]
        assert registry.query('SELECT name FROM vm') == [('db1',)]
        assert registry.query('SELECT host_dev_name FROM vm_network_interface') == [('tap-db1',)]
        # the registry knows the TAP's own name: detach finds it from the row
        detached = _ok(run_playbook(lab, playbook('vm_nic_detach.yml'), {'hv1': hv}, ansible_env, inventory=inventory,
                                    extravars=dict(registry_vars(registry), fc_vm_id=VM2, fc_iface_id='eth1')))
        assert detached.changed('hv1') == 2
        assert hv.link('tap-db1') is None and registry.query('SELECT count(*) FROM vm_network_interface') == [(0,)]

    # no registry at all (plain inventory, no registry_* variables, no PG* environment): only the TAP
    env = without_pg(ansible_env)
    plain = _ok(run_playbook(lab, playbook('vm_nic_attach.yml'), {'hv1': hv}, env,
                             extravars={'fc_vm_id': VM1, 'fc_network_bridge': 'fcbr3', 'fc_hosts': 'hv1'}))
    assert stats_data(plain)['fc_vm_network_interface']['host_dev_name'] == identity.tap_name(VM1, 'eth0')
    assert hv.link(identity.tap_name(VM1, 'eth0'))['master'] == 'fcbr3'
    gone = _ok(run_playbook(lab, playbook('vm_nic_detach.yml'), {'hv1': hv}, env, extravars={'fc_vm_id': VM1}))
    assert gone.changed('hv1') == 1 and hv.link(identity.tap_name(VM1, 'eth0')) is None


def test_bad_input_fails_clearly_and_changes_nothing(lab, postgres, ansible_env, workdir):
    hv = lab.add_host('hv1')
    hv2 = lab.add_host('hv2')
    hv.ip('link', 'add', 'fcbr0', 'type', 'bridge')
    with fresh_database(postgres) as registry:
        add_host(registry, 'hv1', hv.netns)
        add_host(registry, 'hv2', hv2.netns)
        registry.run('fc_network_registry', {'host': 'hv1', 'bridge_name': 'fcbr0', 'cidr': '10.50.0.0/24'})
        inventory = registry_inventory(workdir, registry)
        base = dict(host_dirs(workdir), **registry_vars(registry))
        cases = [
            ('vm_nic_attach.yml', dict(fc_hosts='hv1', fc_vm_id=VM1, fc_tap_vlan='5000'), "parameter 'vlan' (value 5000)"),
            ('vm_nic_attach.yml', dict(fc_hosts='hv1', fc_vm_id=VM1, fc_network_bridge='fcbr9', fc_auto_register='false'),
             'bridge fcbr9, VLAN none in the registry, and auto_register is false'),
            # the registry would auto-register fcbr8, but the host has no such bridge: nothing is written
            ('vm_nic_attach.yml', dict(fc_hosts='hv1', fc_vm_id=VM1, fc_network_bridge='fcbr8'),
             "parameter 'bridge' (value 'fcbr8'): no such link on the host"),
            ('vm_nic_attach.yml', dict(fc_hosts='hv1', fc_vm_id='vm-1'), 'must be a UUID'),
            ('vm_nic_attach.yml', dict(fc_vm_id=VM1), 'a VM NIC lives on one hypervisor'),
            ('network_create.yml', dict(fc_hosts='hv1', fc_network_bridge='fcbr1', fc_network_vlan_id='5000'),
             'vlan_id'),
            ('network_create.yml', dict(fc_hosts='hv1', fc_network_bridge='fcbr1', fc_network_cidr='10.50.0.0/33'),
             '10.50.0.0/33'),
            ('network_create.yml', dict(fc_hosts='hv1', fc_network_mode='nat'), 'fc_network_bridge (or fc_network.bridge) is required'),
            ('network_delete.yml', dict(fc_hosts='hv1', fc_network_bridge='fcbr0', fc_network_vlan_id='abc'),
             "VLAN 'abc'"),
        ]
        rows, links = _tables(registry), snapshot(hv)
        for name, survey, expected in cases:
            run = run_playbook(lab, playbook(name), {'hv1': hv}, ansible_env, extravars=dict(base, **survey),
                               inventory=inventory)
            assert not run.ok, (name, survey)
            assert expected in failed_messages(run), (name, survey, failed_messages(run))
            assert run.changed('hv1') == 0, (name, survey, run.changed_tasks())
            assert _tables(registry) == rows, (name, survey)
            assert_unchanged(links, snapshot(hv))
        assert not os.path.exists(os.path.join(workdir, 'hv1')), 'a role wrote files on failed input'
