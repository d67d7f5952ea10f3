# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_registry_host
short_description: Register a hypervisor host in the NQRust network registry
version_added: 1.0.0
description:
  - Adds, updates or removes a row of the registry's C(host) table, the hypervisors that networks belong to and
    that the P(nqrust.microvm.registry#inventory) inventory plugin lists.
  - Where the NQRust manager runs, its agents register their hosts themselves; this module is for fleets run
    from the registry without the manager, and for tests.
  - A host is found by O(id) when given, else by O(name). Registrations of one name are serialised, so two runs
    at the same time make one row.
  - Runs in one transaction; in check mode the transaction is rolled back.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - psycopg (3.1 or later) where the task runs
  - the registry schema (nqrust.microvm.fc_registry_migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.registry_connection
  - nqrust.microvm.attributes.registry_changes
options:
  name:
    description:
      - The host's name; the inventory plugin uses it as the inventory host name.
      - Required unless O(id) is given.
    type: str
  id:
    description:
      - The host's UUID. When given for a new host, the row gets this id.
    type: str
  addr:
    description:
      - The address Ansible reaches the host at (the inventory's C(ansible_host)), or for lab hosts the name
        of their network namespace.
      - When omitted for a new host, the name. When omitted for an existing host, left as it is.
    type: str
    aliases: [address]
  state:
    description:
      - V(present) adds the host or updates its name and address.
      - V(absent) removes it; refused while networks of the registry belong to it.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: nqrust.microvm.fc_network_registry
  - plugin: nqrust.microvm.registry
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Register two hypervisors
  nqrust.microvm.fc_registry_host:
    name: "{{ item.name }}"
    addr: "{{ item.addr }}"
  loop:
    - {name: hv1, addr: 10.0.0.11}
    - {name: hv2, addr: 10.0.0.12}

- name: Retire a hypervisor whose networks are gone
  nqrust.microvm.fc_registry_host:
    name: hv2
    state: absent
"""

RETURN = r"""
host:
  description: The host after the run (before it, for O(state=absent)); null when there is none.
  returned: always
  type: dict
  contains:
    id:
      description: The host's UUID (in check mode, for a new host, a placeholder that the real run does not keep).
      type: str
      sample: bbab8c75-f516-47ec-987a-828422b2ee5a
    name:
      description: Name.
      type: str
      sample: hv1
    addr:
      description: Address.
      type: str
      sample: 10.0.0.11
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, build_result
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import RegistryError, transaction
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_hosts import (
    as_uuid,
    delete_host,
    find_hosts_by_name,
    get_host,
    host_references,
    insert_host,
    lock_host_name,
    update_host,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_module import (
    fail_validation,
    registry_argument_spec,
    run_registry_module,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.registry_schema import require_current
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator, ValidationErrors


def _view(host):
    if host is None:
        return {}
    return {'name': host['name'], 'addr': host['addr']}


def validate(params):
    v = Validator()
    if params['id'] is not None and as_uuid(params['id']) is None:
        v.add('id', params['id'], 'a host id is a UUID such as bbab8c75-f516-47ec-987a-828422b2ee5a')
    if params['name'] is not None and not params['name'].strip():
        v.add('name', params['name'], 'a host name is a non-empty string', 'empty')
    if params['name'] is None and params['id'] is None:
        v.add('name', None, 'name or id is required', 'missing')
    v.raise_if_any()


def _find(cur, params):
    if params['id'] is not None:
        return get_host(cur, as_uuid(params['id']), lock=True)
    hosts = find_hosts_by_name(cur, params['name'], lock=True)
    if len(hosts) > 1:
        raise RegistryError("host name '%s' is ambiguous: %d hosts have it (ids %s); give the id instead"
                            % (params['name'], len(hosts), ', '.join(host['id'] for host in hosts)))
    return hosts[0] if hosts else None


def work(module, conn):
    params = module.params
    with transaction(conn, check_mode=module.check_mode) as cur:
        require_current(cur)
        if params['name'] is not None:
            lock_host_name(cur, params['name'])
        current = _find(cur, params)
        changes = []
        if params['state'] == 'absent':
            after = None
            if current is not None:
                networks, vms = host_references(cur, current['id'])
                if networks or vms:
                    raise RegistryError("cannot remove host '%s' (id %s): %d network%s and %d VM%s of the registry belong "
                                        "to it; delete them first" % (current['name'], current['id'], networks,
                                                                      '' if networks == 1 else 's', vms, '' if vms == 1 else 's'))
                delete_host(cur, current['id'])
                changes.append(Change('delete', 'host', current['name'], 'create', details={'before': _view(current)}))
            return build_result(changes, _view(current), {}, host=current)
        if current is None:
            name = params['name'] if params['name'] is not None else as_uuid(params['id'])
            after = insert_host(cur, name, params['addr'], host_id=as_uuid(params['id']))
            changes.append(Change('create', 'host', name, 'create', details={'after': _view(after)}))
        else:
            name = params['name'] if params['name'] is not None else current['name']
            addr = params['addr'] if params['addr'] is not None else current['addr']
            after = current
            if (name, addr) != (current['name'], current['addr']):
                after = update_host(cur, current['id'], name, addr)
                changes.append(Change('update', 'host', name, 'create',
                                      details={'before': _view(current), 'after': _view(after)}))
        return build_result(changes, _view(current), _view(after), host=after)


def main():
    module = AnsibleModule(
        argument_spec=registry_argument_spec(
            name=dict(type='str'),
            id=dict(type='str'),
            addr=dict(type='str', aliases=['address']),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    try:
        validate(module.params)
    except ValidationErrors as exc:
        fail_validation(module, exc)
    run_registry_module(module, lambda conn: work(module, conn))


if __name__ == '__main__':
    main()
