"""Fixtures and session checks of the integration tests (lab hosts in network namespaces).

Fixtures:
  lab          a fresh lab.Lab per test, torn down afterwards even when the test fails
  postgres     a throwaway PostgreSQL server for the whole session (lab.ThrowawayPostgres)
  ansible_env  environment for ansible-playbook/ansible-galaxy against this checkout

Session rules:
  - SIGTERM/SIGHUP turn into KeyboardInterrupt, so fixture finalizers still run.
  - NQRUST_KERNEL_LANE=1: any skipped test fails the run (the kernel lane must have every feature),
    and the lab's time limits are scaled (NQRUST_LAB_TIMEOUT_SCALE=10) for qemu TCG.
  - At the end, anything with the nql- prefix that this session made and left (namespaces,
    /etc/netns dirs, /run/nqrust-lab records, processes, PostgreSQL servers) fails the session;
    it is then removed. Labs of other sessions (other users of this machine) are left alone;
    ``python -m lab sweep --check`` after a lane is the machine-wide check.
"""

import os
import shutil
import sys
import tempfile
import uuid

import pytest

import lab as lablib
from lab import state as lab_state
from lab.errors import format_report
from lab.module_run import target_python
from lab.role_dirs import network_role_dirs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(REPO, 'tests')
KERNEL_LANE = os.environ.get('NQRUST_KERNEL_LANE') == '1'

PREEXISTING = pytest.StashKey()
SKIPPED = []  # (nodeid, phase, reason) of every skipped test of this session


def _is_worker(config):
    return hasattr(config, 'workerinput')


def pytest_configure(config):
    os.environ.setdefault(lab_state.SESSION_ENV, uuid.uuid4().hex)
    if KERNEL_LANE:
        # qemu without KVM (TCG) runs every process start 10-30 times slower
        os.environ.setdefault('NQRUST_LAB_TIMEOUT_SCALE', '10')
    config.stash[PREEXISTING] = set(lablib.present_lab_ids()) if os.geteuid() == 0 else set()
    lablib.handle_signals()


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason='the lab needs root (network namespaces, /run/netns, /etc/netns)')
        for item in items:
            item.add_marker(skip)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, 'wasxfail'):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        SKIPPED.append((report.nodeid, report.when, reason))


def _session_leaks(config):
    """Lab ids with leftovers that this session made.

    A lab counts when its state records this session, or when it has namespaces but no state
    and did not exist when the session started. /etc/netns and /tmp entries without a state are
    not attributed: in the kernel lane's qemu guest they can be the host's (shared filesystem).
    """
    session_id = os.environ.get(lab_state.SESSION_ENV)
    leaked = []
    for lab_id in lablib.present_lab_ids():
        data = lab_state.load(lab_id)
        if data is not None:
            if data.get('session') == session_id:
                leaked.append(lab_id)
        elif lab_id not in config.stash[PREEXISTING] and lablib.leftovers([lab_id])['namespaces']:
            leaked.append(lab_id)
    return leaked


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
    """After the runner's own sessionfinish (which tears down fixtures left by an interrupted run)."""
    config = session.config
    if _is_worker(config):
        return
    reporter = config.pluginmanager.get_plugin('terminalreporter')

    def say(text):
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(text, red=True, bold=True)
        else:
            sys.stderr.write(text + '\n')

    skipped = SKIPPED
    if KERNEL_LANE and skipped:
        say('NQRUST_KERNEL_LANE=1: %d test(s) skipped; in the kernel lane a skip is a failure:' % len(skipped))
        for nodeid, when, reason in skipped:
            say('  SKIPPED %s (%s): %s' % (nodeid, when, reason))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if os.geteuid() != 0:
        return
    leaked = _session_leaks(config)
    if leaked:
        report = lablib.leftovers(leaked)
        say('lab resources left behind by this session (now removed): %s' % format_report(report))
        lablib.sweep(lab_ids=leaked)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(name='lab')
def lab_fixture():
    """A fresh lab (random id), torn down after the test even when it fails; the teardown is verified."""
    with lablib.Lab() as instance:
        yield instance
    left = lablib.leftovers([instance.lab_id])
    if any(left.values()):
        lablib.sweep(lab_ids=[instance.lab_id])
        pytest.fail('lab %s left resources behind after its teardown: %s' % (instance.lab_id, format_report(left)))


@pytest.fixture(name='dirs')
def dirs_fixture():
    """The network role's directories for one test (``lab.role_dirs``), dnsmasq as a pidfile daemon; removed afterwards."""
    base = tempfile.mkdtemp(prefix='nql-netrole-')
    os.chmod(base, 0o755)  # dnsmasq reads its hosts files after dropping privileges
    try:
        yield dict(network_role_dirs(base), network_dnsmasq_supervisor='pidfile')
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope='session')
def postgres():
    """A throwaway PostgreSQL 15 server for the session (TCP on 127.0.0.1 and a unix socket dir)."""
    with lablib.ThrowawayPostgres() as server:
        yield server


@pytest.fixture(scope='session')
def ansible_env():
    """Environment for ansible-playbook / ansible-galaxy / ansible-doc against this checkout.

    ANSIBLE_COLLECTIONS_PATH holds ``ansible_collections/nqrust/microvm`` as a symlink to the
    repository root; the directory is removed at the end of the session. Modules run with this
    Python (the venv: pyroute2, psycopg), or $NQRUST_TARGET_PYTHON (pyroute2 0.7), unless an inventory
    sets ansible_python_interpreter; implicit localhost (delegated registry tasks) keeps the controller's.
    """
    root = tempfile.mkdtemp(prefix='nqrust-ansible-')
    collections = os.path.join(root, 'collections')
    namespace_dir = os.path.join(collections, 'ansible_collections', 'nqrust')
    os.makedirs(namespace_dir)
    os.symlink(REPO, os.path.join(namespace_dir, 'microvm'))
    os.makedirs(os.path.join(root, 'tmp'))
    env = dict(os.environ)
    python_path = [TESTS] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p and p != TESTS]
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections,
        'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_LOCAL_TEMP': os.path.join(root, 'tmp'),
        'ANSIBLE_PYTHON_INTERPRETER': target_python(),
        'PYTHONPATH': os.pathsep.join(python_path),
        'PATH': os.pathsep.join([os.path.dirname(sys.executable)] + [p for p in env.get('PATH', '').split(os.pathsep) if p]),
    })
    env.pop('ANSIBLE_CONFIG', None)
    try:
        yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)
