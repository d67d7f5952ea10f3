# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_registry_migrate
short_description: Create or upgrade the schema of the NQRust network registry
version_added: 1.0.0
description:
  - Brings the network registry's PostgreSQL schema to the version this collection needs (or to O(version)).
  - Creates the seed's tables (C(host), C(vm), C(network), C(vm_network_interface)) where they do not exist, then
    adds the collection's columns (network C(mode), C(uplink), C(mtu), C(dhcp), C(dns)), constraints and keys.
    Tables the NQRust manager made are kept as they are; nothing is ever renamed or dropped.
  - All pending versions run in one transaction under an advisory lock, so the module is safe to run twice or
    from several hosts at once (the later runs find nothing to do), and a failure changes nothing.
  - In check mode the migrations really run and are then rolled back, which proves they apply.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - psycopg (3.1 or later) where the task runs
  - PostgreSQL 13 or later, and a role that may create tables in the registry database
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.registry_connection
  - nqrust.microvm.attributes.registry_changes
options:
  version:
    description:
      - The schema version to migrate to. Versions are only ever added, never undone.
      - When omitted, the latest version this collection knows.
    type: int
seealso:
  - module: nqrust.microvm.fc_network_registry
  - module: nqrust.microvm.fc_registry_host
  - name: The network registry
    description: The registry's tables, columns and migrations (docs/registry.md in the collection).
    link: https://github.com/nqrust/nqrust.microvm/blob/main/docs/registry.md
"""

EXAMPLES = r"""
- name: Bring the registry schema up to date (connection from the PG* environment)
  nqrust.microvm.fc_registry_migrate:

- name: Migrate a registry reached with explicit settings
  nqrust.microvm.fc_registry_migrate:
    login_host: db.example.com
    login_user: nqrust
    login_password: "{{ vault_registry_password }}"
    login_db: nqrust
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/registry-ca.pem

- name: Migrate the manager's database from its DATABASE_URL
  nqrust.microvm.fc_registry_migrate:
    dsn: "{{ lookup('ansible.builtin.env', 'DATABASE_URL') }}"
"""

RETURN = r"""
version_before:
  description: The schema version before the run (0 for a database the collection never migrated).
  returned: always
  type: int
  sample: 0
version:
  description: The schema version after the run (in check mode, the version the run would reach).
  returned: always
  type: int
  sample: 3
latest_version:
  description: The newest schema version this collection knows.
  returned: always
  type: int
  sample: 3
applied:
  description: The versions applied by this run (in check mode, the ones that would be), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: The version number.
      type: int
      sample: 1
    description:
      description: What the version adds.
      type: str
      sample: "the seed's tables: host, vm, network, vm_network_interface"
server:
  description: Where the registry is (no password).
  returned: always
  type: dict
  contains:
    host:
      description: Server host or socket directory.
      type: str
      sample: db.example.com
    port:
      description: Server port.
      type: int
      sample: 5432
    dbname:
      description: Database.
      type: str
      sample: nqrust
    user:
      description: Role logged in as.
      type: str
      sample: nqrust
    server_version:
      description: PostgreSQL version number (C(150008) is 15.8).
      type: int
      sample: 150008
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils.plan import render_state
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import describe_connection
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_module import (
    registry_argument_spec,
    run_registry_module,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import (
    LATEST_VERSION,
    RegistrySchemaError,
    migrate,
)


def work(module, conn):
    target = module.params['version']
    if target is not None and (target < 1 or target > LATEST_VERSION):
        raise RegistrySchemaError("parameter 'version' (value %r): schema versions are 1 to %d" % (target, LATEST_VERSION))
    outcome = migrate(conn, target=target, check_mode=module.check_mode)
    for warning in outcome['warnings']:
        module.warn(warning)
    before = {'version': outcome['version_before']}
    after = {'version': outcome['version'], 'applied': [item['description'] for item in outcome['applied']]}
    if not outcome['applied']:
        after = dict(before)
    return {
        'changed': outcome['changed'],
        'version_before': outcome['version_before'],
        'version': outcome['version'],
        'latest_version': LATEST_VERSION,
        'applied': outcome['applied'],
        'server': describe_connection(conn),
        'diff': {'before': render_state(before), 'after': render_state(after)},
    }


def main():
    module = AnsibleModule(
        argument_spec=registry_argument_spec(version=dict(type='int')),
        supports_check_mode=True,
    )
    run_registry_module(module, lambda conn: work(module, conn))


if __name__ == '__main__':
    main()
