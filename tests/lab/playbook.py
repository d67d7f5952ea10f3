"""Run a playbook against lab hosts through ansible-runner, the way AWX runs a job.

::

    from lab.playbook import run_playbook

    run = run_playbook(lab, [play], hosts={'hv1': hv}, env=ansible_env)
    assert run.ok, run.failures()
    assert run.changed('hv1') == 0

Each lab host becomes an inventory host reached through the ``nqrust.microvm.netns``
connection plugin (``ansible_netns_name`` = its namespace) with the modules' interpreter of
``lab.module_run.target_python()``: the test venv's Python, or ``$NQRUST_TARGET_PYTHON`` (the
integration lane's second pass: pyroute2 0.7, as Debian 12 hosts have). Tasks delegated to
localhost (the registry modules) run with the controller's Python.
Results come from ansible-runner's structured events and stats, never from the printed
output. The private data directory lives in the lab's temp directory and goes with the lab.
"""

import json
import os
import tempfile

import ansible_runner
import yaml

from lab.module_run import target_python


class PlaybookRun:
    """What one ansible-runner job did: return code, per-host stats and the task results."""

    def __init__(self, runner, stdout):
        self.rc = runner.rc
        self.status = runner.status
        self.stats = runner.stats or {}
        self.events = list(runner.events)
        self.stdout = stdout

    @property
    def ok(self):
        return self.rc == 0 and self.status == 'successful'

    def _count(self, key, host):
        return int(self.stats.get(key, {}).get(host, 0))

    def changed(self, host):
        """How many tasks reported a change on ``host``."""
        return self._count('changed', host)

    def failed(self, host):
        return self._count('failures', host) + self._count('dark', host)

    def results(self, host=None, task=None):
        """The module results of finished tasks (``runner_on_ok``/``failed``), optionally for one host or task name."""
        found = []
        for event in self.events:
            if event.get('event') not in ('runner_on_ok', 'runner_on_failed', 'runner_on_unreachable'):
                continue
            data = event.get('event_data', {})
            if host is not None and data.get('host') != host:
                continue
            if task is not None and data.get('task') != task:
                continue
            found.append(dict(data.get('res', {}), _task=data.get('task'), _host=data.get('host'),
                              _event=event.get('event')))
        return found

    def changed_tasks(self, host=None):
        """Names of the tasks that reported a change (to say *what* changed when an assertion fails)."""
        return [item['_task'] for item in self.results(host) if item.get('changed')]

    def failures(self):
        """The failed task results, as text for assertion messages."""
        failed = [item for item in self.results() if item['_event'] != 'runner_on_ok']
        return json.dumps([{key: item.get(key) for key in ('_host', '_task', 'msg', 'stderr')} for item in failed],
                          indent=1) + '\n' + self.stdout[-4000:]


def inventory_for(hosts, group='hypervisors', variables=None):
    """An inventory dict: each lab host reached through the netns connection plugin."""
    entries = {}
    for name, host in hosts.items():
        entries[name] = {
            'ansible_connection': 'nqrust.microvm.netns',
            'ansible_netns_name': host.netns,
            'ansible_python_interpreter': target_python(),
        }
        entries[name].update((variables or {}).get(name, {}))
    return {'all': {'children': {group: {'hosts': entries}}}}


def run_playbook(lab, plays, hosts, env, extravars=None, check=False, diff=False, host_vars=None, inventory=None,
                 timeout=900):
    """Run ``plays`` (a list of plays, or a path to a playbook file) against ``hosts`` ({name: lab Host}).

    ``env`` is the environment for ansible (the ``ansible_env`` fixture); ``inventory`` replaces the
    generated one (a dict, or a path such as a ``*.registry.yml`` file).
    """
    base = tempfile.mkdtemp(prefix='runner-', dir=lab.tmpdir)
    project = os.path.join(base, 'project')
    os.makedirs(project)
    if isinstance(plays, str):
        playbook = os.path.abspath(plays)
    else:
        playbook = os.path.join(project, 'play.yml')
        with open(playbook, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(plays, handle, sort_keys=False)
    if inventory is None:
        inventory = inventory_for(hosts, variables=host_vars)
    cmdline = ' '.join(flag for flag, wanted in (('--check', check), ('--diff', diff)) if wanted) or None
    envvars = {key: value for key, value in env.items() if key.startswith(('ANSIBLE_', 'PYTHON', 'PG')) or key == 'PATH'}
    envvars.setdefault('ANSIBLE_REMOTE_TMP', os.path.join(base, 'remote-tmp'))
    runner = ansible_runner.run(
        private_data_dir=base, playbook=playbook, inventory=inventory, extravars=extravars or {},
        envvars=envvars, cmdline=cmdline, quiet=True, timeout=timeout,
        rotate_artifacts=1, process_isolation=False)
    with runner.stdout as stdout:
        text = stdout.read()
    return PlaybookRun(runner, text)
