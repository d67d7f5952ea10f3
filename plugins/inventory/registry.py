# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: registry
short_description: Hypervisors and their networks from the NQRust network registry
version_added: 1.0.0
description:
  - Reads the hosts of the NQRust network registry (PostgreSQL) and the networks of each, in one query for the whole
    fleet, and makes each host an inventory host with the variables the collection's roles need, so that
    C(ansible-playbook -i fleet.registry.yml site.yml) converges every hypervisor with no other variables.
  - Each host gets C(ansible_host) (the host's C(addr)), C(fc_registry_host_id) (its id in the registry) and
    C(fc_networks), its networks in exactly the shape the P(nqrust.microvm.network#role) role takes
    (see docs/network-model.md in the collection).
  - Every host joins the group O(host_group) (default C(hypervisors), the group the collection's playbooks
    run on), and the groups of its networks' names, bridges, VLANs and modes (see O(group_by)); O(compose),
    O(groups) and O(keyed_groups) add variables and groups of your own.
  - The configuration file's name must end in C(.registry.yml) or C(.registry.yaml).
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - psycopg (3.1 or later) on the controller
  - the registry schema (nqrust.microvm.fc_registry_migrate)
extends_documentation_fragment:
  - nqrust.microvm.registry_connection
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; the file is only read when it says so.
    type: str
    required: true
    choices: [nqrust.microvm.registry]
  host_group:
    description:
      - The group every host of the registry joins, whatever its networks; the collection's playbooks run on
        C(hypervisors) unless told otherwise (their C(fc_hosts) variable).
      - The name is used as given (no O(group_prefix)); it must be a valid group name (letters, digits and C(_),
        not starting with a digit). An empty string makes no such group.
    type: str
    default: hypervisors
  group_prefix:
    description:
      - What the names of the groups this plugin makes start with.
    type: str
    default: fc_
  group_by:
    description:
      - Which groups to make, each host joining the groups of all its networks. Names are lower case, runs of
        other characters than letters, digits and C(_) become C(_).
      - V(network), C(<prefix>network_<network name>), such as C(fc_network_fcbr0_network).
      - V(bridge), C(<prefix>bridge_<bridge>), such as C(fc_bridge_fcbr0).
      - V(vlan), C(<prefix>vlan_<VLAN id>), such as C(fc_vlan_100), for networks with a VLAN.
      - V(mode), C(<prefix>mode_<mode>), such as C(fc_mode_nat).
    type: list
    elements: str
    choices: [network, bridge, vlan, mode]
    default: [network, bridge, vlan, mode]
notes:
  - The whole fleet is read with one SQL statement whatever the number of hosts.
  - Two hosts with the same name are told apart by adding C(-) and the first 8 hex digits of the id to the later
    one (by id), with a warning.
  - Hosts without networks are listed with an empty C(fc_networks), and in O(host_group).
seealso:
  - module: nqrust.microvm.fc_network_registry
  - module: nqrust.microvm.fc_registry_host
"""

EXAMPLES = r"""
# fleet.registry.yml -- connection from the PG* environment (PGHOST, PGUSER, PGPASSWORD, PGDATABASE...)
plugin: nqrust.microvm.registry

---
# fleet.registry.yml -- explicit settings, a cache, and groups of your own
plugin: nqrust.microvm.registry
host_group: fc_fleet_eu1
login_host: db.example.com
login_user: nqrust_ro
login_db: nqrust
ssl_mode: verify-full
ca_cert: /etc/ssl/certs/registry-ca.pem
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/nqrust-registry
cache_timeout: 300
compose:
  fc_vlans: fc_networks | map(attribute='vlan_id') | select | list
groups:
  routers: fc_networks | selectattr('mode', 'equalto', 'routed') | list | length > 0
keyed_groups:
  - key: fc_networks | map(attribute='bridge') | list
    prefix: uses
"""

import re

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import (
    HAS_PSYCOPG,
    RegistryError,
    connect,
    database_error_message,
    redact,
    secrets_of,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_fleet import (
    build_fleet,
    fetch_rows,
    group_names,
)

CONNECTION_OPTIONS = ('login_host', 'login_port', 'login_user', 'login_password', 'login_db', 'ssl_mode', 'ca_cert',
                      'connect_timeout', 'dsn')
# what Ansible accepts as a group name without a warning or a rewrite
GROUP_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# SQLSTATEs meaning the registry tables or columns are missing: the schema is not migrated
UNDEFINED_OBJECT_STATES = ('42P01', '42703')


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Hosts and their networks from the registry."""

    NAME = 'nqrust.microvm.registry'

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        return path.endswith(('.registry.yml', '.registry.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        host_group = self.get_option('host_group')
        if host_group and not GROUP_NAME.match(host_group):
            raise AnsibleParserError("option 'host_group' (value %r): a group name is letters, digits and _, not starting "
                                     "with a digit (or empty: no such group)" % host_group)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        fleet = None
        if use_cache:
            try:
                fleet = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if fleet is None:
            fleet = self._read_fleet()
        if update_cache:
            self._cache[cache_key] = fleet
        self._populate(fleet)

    def _connection_params(self):
        return dict((name, self.get_option(name)) for name in CONNECTION_OPTIONS)

    def _read_fleet(self):
        if not HAS_PSYCOPG:
            raise AnsibleError('the nqrust.microvm.registry inventory plugin needs the Python library psycopg '
                               '(3.1 or later) on the controller: pip install "psycopg[binary]"')
        params = self._connection_params()
        secrets = secrets_of(params)
        try:
            conn = connect(params, autocommit=True)
        except RegistryError as exc:
            raise AnsibleParserError(redact(str(exc), secrets)) from None
        try:
            rows = fetch_rows(conn)
        except Exception as exc:  # pylint: disable=broad-except
            if getattr(exc, 'sqlstate', None) in UNDEFINED_OBJECT_STATES:
                raise AnsibleParserError('the registry database has no (or an old) nqrust.microvm schema (%s): run the '
                                         'nqrust.microvm.registry role or the nqrust.microvm.fc_registry_migrate module'
                                         % database_error_message(exc, secrets)) from None
            if getattr(exc, 'sqlstate', None) is not None or hasattr(exc, 'diag'):
                raise AnsibleParserError('reading the registry failed: %s' % database_error_message(exc, secrets)) from None
            raise
        finally:
            try:
                conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
        return build_fleet(rows)

    def _populate(self, fleet):
        prefix = self.get_option('group_prefix') or ''
        kinds = self.get_option('group_by') or []
        host_group = self.get_option('host_group')
        strict = self.get_option('strict')
        compose = self.get_option('compose')
        groups = self.get_option('groups')
        keyed_groups = self.get_option('keyed_groups')
        constructed = bool(compose or groups or keyed_groups)
        for old, new in fleet.get('renamed', []):
            self.display.warning("nqrust.microvm.registry: two hosts are named '%s'; the later one is listed as '%s'"
                                 % (old, new))
        made = set()
        inventory = self.inventory
        for name, entry in fleet['hosts'].items():
            inventory.add_host(name)
            variables = {
                'fc_registry_host_id': entry['id'],
                'fc_networks': entry['networks'],
            }
            if entry.get('addr'):
                variables['ansible_host'] = entry['addr']
            for key, value in variables.items():
                inventory.set_variable(name, key, value)
            member_of = [host_group] if host_group else []
            for item in entry['networks']:
                for group in group_names(item, prefix=prefix, kinds=kinds):
                    if group not in member_of:
                        member_of.append(group)
            for group in member_of:
                if group not in made:
                    inventory.add_group(group)
                    made.add(group)
                inventory.add_child(group, name)
            if constructed:
                hostvars = inventory.get_host(name).get_vars()
                self._set_composite_vars(compose, hostvars, name, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, name, strict=strict)
