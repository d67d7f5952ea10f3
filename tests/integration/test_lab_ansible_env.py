"""The ansible_env fixture: Ansible finds this checkout as nqrust.microvm through a symlinked collection."""

import glob
import json
import os
import subprocess

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_collection_is_found_through_the_symlink(ansible_env):
    collections = ansible_env['ANSIBLE_COLLECTIONS_PATH']
    link = os.path.join(collections, 'ansible_collections', 'nqrust', 'microvm')
    assert os.path.islink(link) and os.path.realpath(link) == os.path.realpath(REPO)
    result = subprocess.run(['ansible-galaxy', 'collection', 'list', '--format', 'json'], env=ansible_env,
                            capture_output=True, text=True, timeout=120, check=True)
    listing = json.loads(result.stdout)
    with open(os.path.join(REPO, 'galaxy.yml'), encoding='utf-8') as handle:
        version = yaml.safe_load(handle)['version']
    assert listing[os.path.join(collections, 'ansible_collections')]['nqrust.microvm'] == {'version': version}
    found = [path for path, entries in listing.items() if 'nqrust.microvm' in entries]
    assert found == [os.path.join(collections, 'ansible_collections')], 'no other (stale) copy is visible'


def test_modules_of_the_checkout_are_loaded(ansible_env):
    modules = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, 'plugins', 'modules', '*.py'))
                     if not os.path.basename(path).startswith('_'))
    result = subprocess.run(['ansible-doc', '--json', '-t', 'module', '-l', 'nqrust.microvm'], env=ansible_env,
                            capture_output=True, text=True, timeout=120, check=True)
    listed = sorted(name.split('.', 2)[2] for name in json.loads(result.stdout))
    assert listed == modules


def test_a_playbook_runs_without_retry_files(ansible_env, tmp_path):
    playbook = tmp_path / 'site.yml'
    playbook.write_text('- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: "true"\n      changed_when: false\n'
                        '    - ansible.builtin.fail:\n        msg: fails on purpose\n')
    result = subprocess.run(['ansible-playbook', '-i', 'localhost,', '-c', 'local', str(playbook)], env=ansible_env, cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2 and 'fails on purpose' in result.stdout
    assert '\x1b[' not in result.stdout, 'no colour codes'
    assert 'ok=1' in result.stdout and 'failed=1' in result.stdout
    assert not list(tmp_path.glob('*.retry'))
    assert ansible_env['PYTHONPATH'].split(os.pathsep)[0] == os.path.join(REPO, 'tests')
