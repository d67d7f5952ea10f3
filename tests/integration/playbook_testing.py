"""Helpers of test_playbooks.py: the collection's playbooks run through ansible-runner (as AWX runs them) on lab
hosts listed by the registry inventory plugin.

Lab hosts are registered in the registry with their network namespace as ``addr``; the inventory file's
``compose`` makes the plugin's ``ansible_host`` the namespace of the ``nqrust.microvm.netns`` connection. Every
host-side directory the roles write to is under one temporary directory, per inventory host (lab hosts share the
controller's filesystem).
"""

import os

import yaml

from lab.role_dirs import network_role_dirs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def playbook(name):
    """The path of one of the collection's playbooks."""
    return os.path.join(REPO, 'playbooks', name)


def registry_inventory(directory, registry):
    """A ``*.registry.yml`` inventory source reading ``registry`` and reaching its hosts through their namespaces."""
    config = dict(registry.options())
    config.update({
        'plugin': 'nqrust.microvm.registry',
        'compose': {'ansible_connection': "'nqrust.microvm.netns'", 'ansible_netns_name': 'ansible_host'},
    })
    path = os.path.join(directory, 'fleet.registry.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(config, handle)
    return path


def registry_vars(registry):
    """The playbooks' registry connection variables (the names the registry role uses)."""
    return {'registry_%s' % key: value for key, value in registry.options().items()}


def host_dirs(base):
    """Extra variables that keep the host and network roles' files and daemons under ``base``, per host."""
    per_host = os.path.join(base, '{{ inventory_hostname }}')
    dirs = network_role_dirs(per_host)
    dirs.update(network_dnsmasq_supervisor='pidfile', host_install_packages=False, host_optional_kernel_modules=[],
                host_modules_load_file=os.path.join(per_host, 'modules.conf'),
                host_sysctl_file=os.path.join(per_host, 'sysctl.conf'))
    return dirs


def without_pg(env):
    """The environment without PG* variables (so that ``fc_registry: auto`` means no registry)."""
    return {key: value for key, value in env.items() if not key.startswith('PG')}


def stats_data(run):
    """What the playbook returned with ``set_stats`` (the job's artifacts in AWX)."""
    for event in run.events:
        if event.get('event') == 'playbook_on_stats':
            return event.get('event_data', {}).get('artifact_data') or {}
    return {}


def failed_messages(run):
    """The messages of the failed tasks, as one text."""
    return '\n'.join(str(item.get('msg')) for item in run.results() if item['_event'] == 'runner_on_failed')


def debug_messages(run, task):
    return [item.get('msg') for item in run.results(task=task) if item['_event'] == 'runner_on_ok']
