# Copyright (c) 2026 NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests of the nqrust.microvm.netns connection plugin (needs root).

Two lab hosts (network namespaces, from the ``lab`` fixture) play two hypervisors. The first has a bridge and a veth pair; both have their
own /etc/hosts and their own copy of a directory under /etc, through /etc/netns/NAME/. Real
ansible-playbook runs, with pipelining on and off, must see exactly what ``ip netns exec``
sees, and move binary files byte for byte, also into /etc. The remote temporary directory is
put inside the overlaid /etc directory, so a transfer that bypassed the namespace would not
find it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

# A directory that exists in /etc (empty on Debian); each lab host overlays it with its own.
ETC_DIR = 'opt'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='network namespaces need root')


def playbook_command(env):
    found = shutil.which('ansible-playbook', path=env.get('PATH'))
    if found is None:
        pytest.skip('ansible-playbook is not installed')
    return found


class Context:
    """Two lab hosts and what the playbooks need, in the lab's temporary directory."""

    def __init__(self, lab, ansible_env):
        self.lab = lab
        self.work = Path(lab.tmpdir)
        self.env = dict(ansible_env, ANSIBLE_REMOTE_TMP=str(self.work / 'remote-tmp'), ANSIBLE_DEPRECATION_WARNINGS='false')
        self.playbook_exe = playbook_command(self.env)
        self.hosts_text = {}
        self.ns = {}
        self.overlay = {}

    def add_host(self, name, inventory_name):
        """A lab host with its own /etc/hosts and its own /etc/<ETC_DIR> (empty at first)."""
        hosts_text = '127.0.0.1 localhost\n10.255.0.1 %s.%s %s-marker\n' % (name, self.lab.lab_id, name)
        host = self.lab.add_host(name, etc_files={'hosts': hosts_text, ETC_DIR + '/README': 'private to %s\n' % name})
        self.hosts_text[inventory_name] = hosts_text
        self.ns[inventory_name] = host.netns
        self.overlay[inventory_name] = Path(host.etc_dir)
        return host

    def playbook(self, inventory_text, playbook_text, *args, inventory_name='inventory.yml'):
        inventory = self.work / inventory_name
        inventory.write_text(textwrap.dedent(inventory_text))
        book = self.work / 'playbook.yml'
        book.write_text(textwrap.dedent(playbook_text))
        started = time.monotonic()
        result = subprocess.run([self.playbook_exe, '-i', str(inventory), str(book)] + list(args), cwd=self.work,
                                env=self.env, capture_output=True, text=True, timeout=240, check=False)
        result.seconds = time.monotonic() - started
        return result


@pytest.fixture(name='ctx')
def ctx_fixture(lab, ansible_env):
    if not os.path.isdir(os.path.join('/etc', ETC_DIR)):
        pytest.skip('/etc/%s does not exist, so it cannot be overlaid' % ETC_DIR)
    return Context(lab, ansible_env)


@pytest.fixture(name='two_hosts')
def two_hosts_fixture(ctx):
    """hv1 with a bridge and a veth pair; a second host named like its namespace, with only lo."""
    hv1 = ctx.add_host('hv1', 'hv1')
    for argv in (['link', 'add', 'nqlc-br0', 'type', 'bridge'],
                 ['link', 'add', 'nqlc-v0', 'type', 'veth', 'peer', 'name', 'nqlc-v1'],
                 ['link', 'set', 'nqlc-v0', 'master', 'nqlc-br0'],
                 ['link', 'set', 'nqlc-br0', 'up'],
                 ['addr', 'add', '10.255.0.1/24', 'dev', 'nqlc-br0']):
        hv1.ip(*argv)
    ctx.add_host('hv2', ctx.lab.prefix + 'hv2')
    ctx.blob = ctx.work / 'blob.bin'
    ctx.blob_bytes = os.urandom(256 * 1024) + bytes(range(256)) + b'\r\n\0\xff'
    ctx.blob.write_bytes(ctx.blob_bytes)
    return ctx


def inventory_yaml(ctx):
    # hv1 names its namespace with ansible_netns_name (ansible_host keeps an address);
    # the second host is simply called like its namespace. The remote tmp is inside the
    # overlaid /etc directory, so uploads that bypassed the namespace would not find it.
    return """
        all:
          vars:
            ansible_connection: nqrust.microvm.netns
            ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
            ansible_remote_tmp: /etc/{etc_dir}/tmp
          hosts:
            hv1:
              ansible_host: 192.0.2.1
              ansible_netns_name: {ns_a}
            {ns_b}: {{}}
    """.format(etc_dir=ETC_DIR, ns_a=ctx.ns['hv1'], ns_b=ctx.lab.prefix + 'hv2')


MAIN_PLAYBOOK = """
    - name: Hosts are network namespaces
      hosts: all
      gather_facts: true
      gather_subset: ['!all', '!min', network]
      tasks:
        - name: Read /etc/hosts with slurp
          ansible.builtin.slurp:
            src: /etc/hosts
          register: hosts_slurp

        - name: Read /etc/hosts and /sys/class/net with a command
          ansible.builtin.shell: cat /etc/hosts; echo ---; ls /sys/class/net
          register: shell_out
          changed_when: false

        - name: Become another user without a password (su as root)
          ansible.builtin.raw: id -un; ls /sys/class/net; cat /etc/hosts
          become: true
          become_method: ansible.builtin.su
          become_user: nobody
          become_flags: -s /bin/sh
          register: become_out
          changed_when: false

        - name: Copy the binary file into the overlaid /etc directory
          ansible.builtin.copy:
            src: "{{ blob }}"
            dest: "/etc/{{ etc_dir }}/blob-{{ run_id }}.bin"
            mode: "0600"

        - name: Copy the binary file to a plain path
          ansible.builtin.copy:
            src: "{{ blob }}"
            dest: "{{ work }}/{{ inventory_hostname }}-{{ run_id }}-copied.bin"
            mode: "0600"

        - name: Fetch it back from /etc
          ansible.builtin.fetch:
            src: "/etc/{{ etc_dir }}/blob-{{ run_id }}.bin"
            dest: "{{ work }}/fetched/{{ inventory_hostname }}-{{ run_id }}.bin"
            flat: true

        - name: Fetch /etc/hosts
          ansible.builtin.fetch:
            src: /etc/hosts
            dest: "{{ work }}/fetched/{{ inventory_hostname }}-{{ run_id }}-hosts"
            flat: true

        - name: Save what the host saw
          ansible.builtin.copy:
            dest: "{{ work }}/{{ inventory_hostname }}-{{ run_id }}.json"
            mode: "0600"
            content: "{{ seen | to_nice_json }}"
          vars:
            seen:
              interfaces: "{{ ansible_facts.interfaces }}"
              hosts_slurp: "{{ hosts_slurp.content }}"
              shell_out: "{{ shell_out.stdout }}"
              become_out: "{{ become_out.stdout }}"
"""


def root_interfaces():
    return set(os.listdir('/sys/class/net'))


def ns_interfaces(name):
    out = subprocess.run(['ip', '-n', name, '-o', 'link', 'show'], capture_output=True, text=True, check=True).stdout
    return {re.match(r'\d+: ([^:@]+)', line).group(1) for line in out.splitlines()}


@pytest.mark.parametrize('pipelining', [True, False], ids=['pipelining', 'no-pipelining'])
def test_playbook_runs_inside_namespaces(two_hosts, pipelining):
    ctx = two_hosts
    run_id = 'pipe-on' if pipelining else 'pipe-off'
    result = ctx.playbook(
        inventory_yaml(ctx), MAIN_PLAYBOOK, '-vvv',
        '-e', 'ansible_pipelining=%s' % pipelining,
        '-e', json.dumps({'blob': str(ctx.blob), 'etc_dir': ETC_DIR, 'work': str(ctx.work), 'run_id': run_id}),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    print('ansible-playbook with pipelining=%s took %.1f s' % (pipelining, result.seconds))

    # Pipelining on: modules go through stdin and only the copied file is uploaded;
    # pipelining off: every module is uploaded as an AnsiballZ file into the remote tmp in /etc.
    module_puts = re.findall(r'PUT \S+ TO (/etc/%s/tmp/\S*AnsiballZ_\w+\.py)' % re.escape(ETC_DIR), output)
    assert bool(module_puts) is not pipelining
    assert re.search(r'PUT \S+ TO /etc/%s/tmp/\S*/\.source\.bin' % re.escape(ETC_DIR), output)

    root_ifaces = root_interfaces()
    for host, ns in ctx.ns.items():
        seen = json.loads((ctx.work / ('%s-%s.json' % (host, run_id))).read_text())
        overlay_hosts = ctx.hosts_text[host]

        # Facts describe the namespace's interfaces, not the root's.
        expected_ifaces = ns_interfaces(ns)
        assert set(seen['interfaces']) == expected_ifaces
        if host == 'hv1':
            assert {'lo', 'nqlc-br0', 'nqlc-v0', 'nqlc-v1'} <= set(seen['interfaces'])
        else:
            assert set(seen['interfaces']) == {'lo'}
        assert (root_ifaces - {'lo'}).isdisjoint(seen['interfaces'])
        assert 'eth0' not in seen['interfaces']

        # /etc/hosts is the /etc/netns/NAME/hosts overlay; /sys is the namespace's.
        assert base64.b64decode(seen['hosts_slurp']).decode() == overlay_hosts
        hosts_part, sys_part = seen['shell_out'].split('\n---\n')
        assert hosts_part + '\n' == overlay_hosts
        assert set(sys_part.split()) == expected_ifaces

        # Passwordless become wraps the command and stays inside the namespace.
        become_lines = seen['become_out'].splitlines()
        assert 'nobody' in become_lines
        assert overlay_hosts.splitlines()[1] in become_lines
        assert ('nqlc-br0' in become_lines) == (host == 'hv1')

        # copy landed byte for byte where the task sees /etc/<dir>: in the overlay of this
        # namespace only, not in the root's /etc.
        name = 'blob-%s.bin' % run_id
        assert (ctx.overlay[host] / ETC_DIR / name).read_bytes() == ctx.blob_bytes
        assert not (Path('/etc') / ETC_DIR / name).exists()
        assert (ctx.work / ('%s-%s-copied.bin' % (host, run_id))).read_bytes() == ctx.blob_bytes

        # fetch brought both files back byte for byte.
        assert (ctx.work / 'fetched' / ('%s-%s.bin' % (host, run_id))).read_bytes() == ctx.blob_bytes
        assert (ctx.work / 'fetched' / ('%s-%s-hosts' % (host, run_id))).read_text() == overlay_hosts

    # The remote tmp under /etc/<dir> was made inside the overlays, never in the root's /etc.
    assert not (Path('/etc') / ETC_DIR / 'tmp').exists()
    assert all((overlay / ETC_DIR / 'tmp').is_dir() for overlay in ctx.overlay.values())


def test_missing_namespace_is_a_clear_failure(ctx):
    present = ctx.add_host('hv1', 'hv1')
    missing = ctx.lab.prefix + 'ghost'
    inventory = """
        [hypervisors]
        ghost ansible_netns_name={missing}
        hv1 ansible_netns_name={present}

        [hypervisors:vars]
        ansible_connection=nqrust.microvm.netns
        ansible_pipelining=true
        ansible_python_interpreter="{{{{ ansible_playbook_python }}}}"
    """.format(missing=missing, present=present.netns)
    result = ctx.playbook(inventory, """
        - name: One namespace is missing
          hosts: all
          gather_facts: false
          tasks:
            - name: Ping
              ansible.builtin.ping:
    """, inventory_name='inventory.ini')
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # 4: some hosts were unreachable
    assert "Network namespace '%s' does not exist (no /run/netns/%s)" % (missing, missing) in output
    assert 'ip netns list' in output
    assert re.search(r'^ghost\s*:.*\bunreachable=1\b', output, re.MULTILINE), output
    # the other host is not affected
    assert re.search(r'^hv1\s*:\s*ok=1\b.*\bunreachable=0\b.*\bfailed=0\b', output, re.MULTILINE), output
    assert not os.path.exists(os.path.join('/run/netns', missing))
