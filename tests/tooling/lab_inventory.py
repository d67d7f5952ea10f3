"""Write an Ansible inventory (YAML) for a lab described by ``python -m lab up`` / ``info``.

Usage: python lab_inventory.py LAB.json INVENTORY.yml

Every lab host except ``upstream`` becomes a hypervisor reached through the
``nqrust.microvm.netns`` connection; modules run with this Python (the venv that has
pyroute2 and psycopg). The lab's throwaway PostgreSQL, when it has one, is given to the
play as ``fc_registry_*`` variables (connection data only; its password stays in the
lab's state file, which is readable by root alone).
"""

from __future__ import annotations

import json
import sys

import yaml

UPSTREAM = 'upstream'


def inventory(lab: dict, python: str) -> dict:
    """The inventory dict for a lab description."""
    hypervisors = {}
    for name, host in sorted(lab['hosts'].items()):
        if name == UPSTREAM or host.get('kind') != 'host':
            continue
        hypervisors[name] = {
            'ansible_connection': 'nqrust.microvm.netns',
            'ansible_netns_name': host['netns'],
            'ansible_pipelining': True,
            'ansible_python_interpreter': python,
        }
    group_vars = {'fc_lab_id': lab['lab_id']}
    servers = lab.get('postgres') or []
    if servers:
        server = servers[0]
        group_vars.update({
            'fc_registry_login_host': server['socket_dir'],
            'fc_registry_login_port': server['port'],
            'fc_registry_login_user': server['user'],
            'fc_registry_login_db': server['dbname'],
        })
    return {'all': {'children': {'hypervisors': {'hosts': hypervisors, 'vars': group_vars}}}}


def main() -> None:
    """Read the lab JSON, write the inventory YAML."""
    with open(sys.argv[1], encoding='utf-8') as handle:
        lab = json.load(handle)
    with open(sys.argv[2], 'w', encoding='utf-8') as handle:
        handle.write('# Written by tests/tooling/lab_inventory.py for lab %s; do not edit.\n' % lab['lab_id'])
        yaml.safe_dump(inventory(lab, sys.executable), handle, default_flow_style=False, sort_keys=True)


if __name__ == '__main__':
    main()
