"""The AWX / execution-environment files are real: the credential type's injectors feed the registry
inventory source, execution-environment.yml makes an ansible-builder context that pulls in the
collection's requirements.txt and bindep.txt, and those list what the plugins import."""

import ast
import os
import shutil
import subprocess
import sys
import tempfile

import jinja2.sandbox
import pytest
import yaml

from bindep.depends import Depends
from registry_testing import add_host, fresh_database

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX = os.path.join(REPO, 'extensions', 'awx')
BIN = os.path.dirname(sys.executable)


def _load(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def injected_env(credential_type, inputs):
    """The environment AWX gives a job for a credential: each injector rendered (sandboxed Jinja) with the inputs."""
    fields = dict((field['id'], field) for field in credential_type['inputs']['fields'])
    values = dict((key, field.get('default')) for key, field in fields.items() if 'default' in field)
    values.update(inputs)
    missing = [key for key in credential_type['inputs'].get('required', []) if values.get(key) in (None, '')]
    assert not missing, 'required inputs without a value: %s' % missing
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return dict((name, env.from_string(template).render(**values))
                for name, template in credential_type['injectors']['env'].items())


@pytest.fixture(name='workdir')
def workdir_fixture():
    path = tempfile.mkdtemp(prefix='nqrust-awx-')
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _plain(value):
    """ansible-inventory marks values from inventory plugins unsafe: {"__ansible_unsafe": v} -> v."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _inventory(ansible_env, env):
    run_env = dict((key, value) for key, value in ansible_env.items() if not key.startswith('PG'))
    run_env.update(env)
    run_env['ANSIBLE_INVENTORY_UNPARSED_FAILED'] = 'True'   # as AWX runs an inventory update: a source that fails fails
    return subprocess.run(['ansible-inventory', '-i', os.path.join(AWX, 'fleet.registry.yml'), '--list'],
                          env=run_env, capture_output=True, text=True, timeout=120, check=False)


def test_the_credential_type_feeds_the_registry_inventory_source(postgres, ansible_env):
    credential_type = _load(os.path.join(AWX, 'credential_type.yml'))
    fields = dict((field['id'], field) for field in credential_type['inputs']['fields'])
    assert sorted(fields) == ['dbname', 'host', 'password', 'port', 'sslmode', 'user']
    assert fields['password'].get('secret') is True
    assert credential_type['kind'] in ('cloud', 'net')
    with fresh_database(postgres, prefix='dgawx') as registry:
        hv1 = add_host(registry, 'hv1', addr='192.0.2.11')
        add_host(registry, 'hv2', addr='192.0.2.12')
        registry.execute("INSERT INTO network (name, type, bridge_name, host_id, cidr, gateway, mode) VALUES "
                         "('fcbr0 Network', 'bridge', 'fcbr0', %s, '192.168.18.0/24', '192.168.18.240', 'nat')", (hv1,))
        inputs = {'host': postgres.host, 'port': str(postgres.port), 'dbname': registry.dbname, 'user': registry.user,
                  'password': registry.password, 'sslmode': 'disable'}
        env = injected_env(credential_type, inputs)
        assert sorted(env) == ['PGDATABASE', 'PGHOST', 'PGPASSWORD', 'PGPORT', 'PGSSLMODE', 'PGUSER']
        proc = _inventory(ansible_env, env)
        assert proc.returncode == 0, proc.stderr
        listed = _plain(yaml.safe_load(proc.stdout))
        hostvars = listed['_meta']['hostvars']
        assert sorted(hostvars) == ['hv1', 'hv2']
        assert hostvars['hv1']['ansible_host'] == '192.0.2.11' and hostvars['hv1']['fc_registry_host_id'] == hv1
        assert [(net['bridge'], net['mode'], net['cidr']) for net in hostvars['hv1']['fc_networks']] == [
            ('fcbr0', 'nat', '192.168.18.0/24')]
        assert hostvars['hv2']['fc_networks'] == []
        assert listed['fc_mode_nat']['hosts'] == ['hv1'] and listed['fc_bridge_fcbr0']['hosts'] == ['hv1']

        # a wrong password in the credential: the source fails, and says why without the password
        proc = _inventory(ansible_env, injected_env(credential_type, dict(inputs, password='Wr0ng-dg-secret')))
        assert proc.returncode != 0
        assert 'password authentication failed' in proc.stdout + proc.stderr
        assert 'Wr0ng-dg-secret' not in proc.stdout + proc.stderr


def test_the_execution_environment_builds_a_context_with_the_collection_and_its_dependencies(workdir, ansible_env):
    definition = _load(os.path.join(REPO, 'execution-environment.yml'))
    galaxy = _load(os.path.join(REPO, 'galaxy.yml'))
    assert definition['version'] == 3
    (collection,) = definition['dependencies']['galaxy']['collections']
    assert collection == {'name': 'collections/nqrust-%s-%s.tar.gz' % (galaxy['name'], galaxy['version']), 'type': 'file'}
    meta = _load(os.path.join(REPO, 'meta', 'execution-environment.yml'))
    assert meta == {'version': 1, 'dependencies': {'python': 'requirements.txt', 'system': 'bindep.txt'}}

    # as docs/awx.md says: build the collection tarball, then the context
    shutil.copy(os.path.join(REPO, 'execution-environment.yml'), workdir)
    build = subprocess.run(['ansible-galaxy', 'collection', 'build', '--force', '--output-path',
                            os.path.join(workdir, 'build', 'ee'), REPO],
                           env=ansible_env, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    create = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '-f', 'execution-environment.yml',
                             '-c', 'context'], cwd=workdir, env=ansible_env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert create.returncode == 0, create.stdout + create.stderr
    context = os.path.join(workdir, 'context')
    with open(os.path.join(context, 'Dockerfile'), encoding='utf-8') as handle:
        containerfile = handle.read()
    assert 'ansible-galaxy collection install' in containerfile
    assert os.path.isfile(os.path.join(context, '_build', collection['name']))
    assert _load(os.path.join(context, '_build', 'requirements.yml'))['collections'] == [collection]

    # what the image's introspection step will make of the installed collection
    installed = os.path.join(workdir, 'installed')
    install = subprocess.run(['ansible-galaxy', 'collection', 'install', '--force', '-p', installed,
                              os.path.join(context, '_build', collection['name'])],
                             env=ansible_env, capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    introspect = subprocess.run([sys.executable, os.path.join(context, '_build', 'scripts', 'introspect.py'),
                                 'introspect', installed], capture_output=True, text=True, timeout=120, check=False)
    assert introspect.returncode == 0, introspect.stderr
    found = yaml.safe_load(introspect.stdout)
    python = [line.split('#')[0].strip() for line in found['python']]
    system = [line.split('#')[0].strip() for line in found['system']]
    assert 'pyroute2>=0.7.2' in python and 'psycopg>=3.1' in python
    assert 'libpq [platform:rpm]' in system and 'libpq5 [platform:dpkg]' in system


def _third_party_imports():
    found = set()
    for root, dummy, files in os.walk(os.path.join(REPO, 'plugins')):
        for name in files:
            if not name.endswith('.py'):
                continue
            with open(os.path.join(root, name), encoding='utf-8') as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split('.')[0]
                    if top not in sys.stdlib_module_names and top not in ('ansible', 'ansible_collections', '__future__'):
                        found.add(top)
    return found


def test_requirements_txt_names_every_library_the_plugins_import():
    with open(os.path.join(REPO, 'requirements.txt'), encoding='utf-8') as handle:
        names = set()
        for line in handle:
            line = line.split('#')[0].strip()
            if line:
                names.add(line.split('[')[0].split('>')[0].split('=')[0].split('<')[0].strip().lower())
    imported = _third_party_imports()
    assert imported == {'psycopg', 'pyroute2'}, imported
    assert imported <= names, (imported, names)


def test_bindep_txt_parses_and_names_packages_for_debian_and_rpm_platforms():
    with open(os.path.join(REPO, 'bindep.txt'), encoding='utf-8') as handle:
        depends = Depends(handle.read())
    for platform, wanted in (('platform:dpkg', {'libpq5', 'iproute2', 'nftables', 'dnsmasq-base'}),
                             ('platform:rpm', {'libpq', 'iproute', 'nftables', 'dnsmasq'})):
        rules = depends.active_rules([platform, 'default'])
        assert set(rule[0] for rule in rules) == wanted, (platform, rules)
    listed = subprocess.run([os.path.join(BIN, 'bindep'), '-f', os.path.join(REPO, 'bindep.txt'), '-l', 'newline'],
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {'libpq5', 'iproute2', 'nftables', 'dnsmasq-base'}   # this Debian machine
