# Copyright (c) 2026 NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a Linux network namespace on the controller
description:
  - Runs every command, and every file transfer, inside a named Linux network namespace
    on the Ansible controller, with exactly the semantics of C(ip netns exec NAME ...).
  - The task sees the namespace's own interfaces, routes, firewall and sockets, a C(/sys)
    that describes the namespace, and every entry of C(/etc/netns/NAME/) bind-mounted over
    the entry of the same name in C(/etc) (for example C(/etc/netns/NAME/hosts) is seen as
    C(/etc/hosts)). The rest of the filesystem, the process table and the hostname are
    shared with the controller.
  - Each command is run as C(ip netns exec NAME SHELL -c COMMAND). Files are copied by
    streaming them through C(ip netns exec NAME SHELL -c 'cat ...'), so a file under C(/etc)
    is read or written exactly where the task sees it, byte for byte.
  - This lets a single machine host a whole lab of "hypervisors", one per namespace,
    for tests and demonstrations.
author: NQRust MicroVM developers (@nqrust)
version_added: 1.0.0
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description:
      - Name of the network namespace to run in, as listed by C(ip netns list).
      - The namespace must already exist as C(/run/netns/NAME).
      - Taken from the inventory host name unless C(ansible_host) is set; the dedicated
        variable C(ansible_netns_name) takes precedence over both, which lets C(ansible_host)
        keep holding an address.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
  ip_executable:
    description:
      - The C(ip) program (from iproute2) used to enter the namespace.
      - A bare name is looked up in E(PATH), then in C(/usr/sbin), C(/sbin), C(/usr/bin)
        and C(/bin); an absolute path is used as it is.
    type: string
    default: ip
    vars:
      - name: ansible_netns_ip_executable
    env:
      - name: ANSIBLE_NETNS_IP_EXECUTABLE
    ini:
      - section: netns_connection
        key: ip_executable
  executable:
    description:
      - Shell started inside the namespace to interpret the command line that Ansible sends.
        It must accept C(-c COMMAND) and Bourne shell syntax.
      - This is the outer shell; the shell that Ansible itself uses inside that command
        line is configured as usual with C(ansible_shell_executable).
    type: string
    default: /bin/sh
    vars:
      - name: ansible_netns_executable
    env:
      - name: ANSIBLE_NETNS_EXECUTABLE
    ini:
      - section: netns_connection
        key: executable
notes:
  - The controller must run as root (more precisely, with C(CAP_SYS_ADMIN)), because
    C(ip netns exec) has to join the namespace and create a private mount namespace.
    The plugin checks this, and that C(/run/netns/NAME) exists, before the first command
    and reports a plain error naming the namespace; the host is then marked unreachable.
  - Namespaces are not created by this plugin. Create them first, for example with
    C(ip netns add NAME), and put per-host configuration files in C(/etc/netns/NAME/).
    A file or directory there only shadows C(/etc/...) when the entry already exists in
    C(/etc); new files written under C(/etc) by a task land in the real C(/etc).
  - Files replaced by renaming, as the M(ansible.builtin.copy) and M(ansible.builtin.template)
    modules do, cannot replace a single bind-mounted file such as C(/etc/hosts) ("Device or
    resource busy"); set O(ansible.builtin.copy#module:unsafe_writes=true) for those, or
    overlay a whole directory instead of a single file.
  - Commands run as the controller user (root) with the controller's environment and
    working directory, like C(ip netns exec) run by hand. The remote user setting is ignored.
  - Privilege escalation (C(become)) works when it does not ask for a password, which is
    the case for C(sudo) and C(su) run by root. Password prompts are not supported; the
    plugin never answers them and gives the command no terminal, so a become method that
    asks for a password fails.
  - Pipelining is supported and recommended (O(pipelining=true)).
seealso:
  - name: ip-netns(8)
    description: Manual page of C(ip netns), which describes the namespace and C(/etc/netns) conventions.
    link: https://man7.org/linux/man-pages/man8/ip-netns.8.html
"""

EXAMPLES = r"""
# YAML inventory: one host per network namespace. The host name is the namespace name,
# unless ansible_netns_name says otherwise.
all:
  children:
    hypervisors:
      vars:
        ansible_connection: nqrust.microvm.netns
        ansible_pipelining: true
        # Run modules with the controller's Python and libraries.
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
      hosts:
        hv1: {}
        hv2:
          ansible_netns_name: lab-hv2
          ansible_host: 10.10.0.2

# The same in INI format:
#
#   [hypervisors]
#   hv1
#   hv2 ansible_netns_name=lab-hv2 ansible_host=10.10.0.2
#
#   [hypervisors:vars]
#   ansible_connection=nqrust.microvm.netns
#   ansible_pipelining=true
#   ansible_python_interpreter="{{ ansible_playbook_python }}"
#
# ansible.cfg, when ip is not on the PATH of the controller:
#
#   [netns_connection]
#   ip_executable = /usr/sbin/ip
"""

import getpass
import os
import re
import shutil
import subprocess
import tempfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# CAP_SYS_ADMIN, see capabilities(7).
CAP_SYS_ADMIN = 21

# Exit status of the fetch helper when the source file does not exist in the namespace.
_FETCH_MISSING_RC = 66

# Messages that ip(8) prints, with exit status 255, when it cannot enter the namespace;
# anything else on standard error belongs to the command itself.
_IP_NO_NAMESPACE_RE = re.compile(r'^Cannot open network namespace "(?P<name>[^"]*)"', re.MULTILINE)
_IP_SETUP_FAILED_RE = re.compile(
    r'^(setting the network namespace "[^"]*" failed|unshare failed|"mount --make-rslave /" failed'
    r'|mount of /sys failed|Invalid netns name|Failed to get a netns name)',
    re.MULTILINE,
)


class Connection(ConnectionBase):
    """Run commands and move files inside a Linux network namespace with ``ip netns exec``."""

    transport = 'nqrust.microvm.netns'
    has_pipelining = True
    has_tty = False

    # Where ip(8) keeps the named namespaces, and where the kernel reports our capabilities.
    # Class attributes so that tests can point them elsewhere.
    netns_run_dir = '/run/netns'
    proc_status_path = '/proc/self/status'
    ip_fallback_dirs = ('/usr/sbin', '/sbin', '/usr/bin', '/bin')

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        try:
            self.default_user = getpass.getuser()
        except KeyError:
            self.default_user = ''
        self._privileges_checked = False

    # ------------------------------------------------------------------ helpers

    @property
    def netns_name(self):
        """Name of the namespace the next command runs in (read on every call)."""
        name = self.get_option('remote_addr')
        return to_text(name) if name is not None else ''

    def _ip_executable(self):
        """Absolute path of the ip program, or AnsibleError."""
        configured = self.get_option('ip_executable') or 'ip'
        if os.path.sep in configured:
            if os.access(configured, os.X_OK) and not os.path.isdir(configured):
                return configured
            raise AnsibleError(
                "The ip executable %r configured for the nqrust.microvm.netns connection does not exist "
                "or is not executable (option ip_executable, variable ansible_netns_ip_executable)." % configured
            )
        # Absolute directories only: an empty or relative PATH entry would search the working directory.
        dirs = [d for d in os.environ.get('PATH', '').split(os.pathsep) if os.path.isabs(d)]
        search_path = os.pathsep.join(dirs + list(self.ip_fallback_dirs))
        found = shutil.which(configured, path=search_path)
        if found is None:
            raise AnsibleError(
                "Cannot find the %r program of iproute2 on the controller (looked in PATH and %s). Install iproute2 "
                "or set ansible_netns_ip_executable to its full path." % (configured, ', '.join(self.ip_fallback_dirs))
            )
        return found

    def _shell_executable(self):
        return self.get_option('executable') or '/bin/sh'

    def _validate_name(self, name):
        if not name or '/' in name or name in ('.', '..') or '\0' in name:
            raise AnsibleConnectionFailure(
                "%r is not a valid network namespace name for the nqrust.microvm.netns connection: it must be a plain "
                "name as shown by 'ip netns list' (set it with ansible_netns_name or ansible_host)." % name
            )

    def _has_cap_sys_admin(self):
        """True if the effective capabilities include CAP_SYS_ADMIN (None when they cannot be read)."""
        try:
            with open(self.proc_status_path, 'r') as status:
                for line in status:
                    if line.startswith('CapEff:'):
                        return bool(int(line.split(':', 1)[1].strip(), 16) & (1 << CAP_SYS_ADMIN))
        except (OSError, ValueError):
            return None
        return None

    def _check_privileges(self):
        if self._privileges_checked:
            return
        if self._has_cap_sys_admin() is False:
            uid = os.geteuid()
            if uid == 0:
                advice = "Give it CAP_SYS_ADMIN (a container needs --cap-add SYS_ADMIN or --privileged)."
            else:
                advice = "Run ansible-playbook as root (for example with sudo)."
            raise AnsibleConnectionFailure(
                "The nqrust.microvm.netns connection needs root (CAP_SYS_ADMIN) on the controller to enter a network "
                "namespace with 'ip netns exec', but ansible runs as uid %d without CAP_SYS_ADMIN. %s" % (uid, advice)
            )
        self._privileges_checked = True

    def _check_namespace(self, name):
        self._validate_name(name)
        path = os.path.join(self.netns_run_dir, name)
        if not os.path.exists(to_bytes(path, errors='surrogate_or_strict')):
            raise AnsibleConnectionFailure(
                "Network namespace %r does not exist (no %s). Create it first (ip netns add %s), or point the host at "
                "an existing namespace with ansible_netns_name; 'ip netns list' shows the namespaces that exist."
                % (name, path, name)
            )

    def _preflight(self):
        """Check privileges and the namespace, and return (ip executable, namespace name)."""
        name = self.netns_name
        self._check_privileges()
        self._check_namespace(name)
        return self._ip_executable(), name

    def _build_command(self, ip_exe, name, script, *args):
        """The argv that runs ``script`` with the configured shell inside namespace ``name``."""
        argv = [ip_exe, 'netns', 'exec', name, self._shell_executable(), '-c', script]
        if args:
            argv.append('netns-sh')  # $0 of the script; the arguments follow as $1...
            argv.extend(args)
        return [to_bytes(a, errors='surrogate_or_strict') for a in argv]

    def _raise_for_ip_failure(self, name, returncode, stderr):
        """Turn ip's own errors (namespace not entered, shell not started) into clear errors."""
        text = to_text(stderr, errors='surrogate_or_replace')
        # ip exits with 1 when it cannot execute the program it was given: our shell.
        if returncode == 1 and text.startswith('exec of "%s" failed' % self._shell_executable()):
            raise AnsibleError(
                "ip netns exec could not start the shell %r in network namespace %r (see the executable option of "
                "the nqrust.microvm.netns connection): %s" % (self._shell_executable(), name, text.strip())
            )
        if returncode != 255:
            return
        if _IP_NO_NAMESPACE_RE.search(text):
            raise AnsibleConnectionFailure(
                "Network namespace %r does not exist (it may have been deleted while the play ran); "
                "'ip netns list' shows the namespaces that exist. ip said: %s" % (name, text.strip())
            )
        if _IP_SETUP_FAILED_RE.search(text):
            hint = ' (this needs root with CAP_SYS_ADMIN)' if 'Operation not permitted' in text else ''
            raise AnsibleConnectionFailure(
                "ip netns exec could not enter network namespace %r%s: %s" % (name, hint, text.strip())
            )

    # ------------------------------------------------------------------ connection API

    def _connect(self):
        """Nothing to open: check that the namespace can be entered."""
        # Commands run as the controller user, whatever remote_user says.
        self._play_context.remote_user = self.default_user
        if not self._connected:
            ip_exe, name = self._preflight()
            display.vvv(u"ESTABLISH NETNS CONNECTION TO NAMESPACE {0} WITH {1} AS {2}".format(name, ip_exe, self.default_user),
                        host=name)
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run ``cmd`` with the configured shell inside the namespace; ``in_data`` goes to its stdin."""
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        ip_exe, name = self._preflight()
        argv = self._build_command(ip_exe, name, to_text(cmd, errors='surrogate_or_strict'))

        display.vvv(u"EXEC {0}".format(to_text(cmd)), host=name)
        display.debug(u"netns: running {0!r}".format(argv))
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as ex:
            raise AnsibleConnectionFailure("Failed to run %s for network namespace %r: %s" % (ip_exe, name, to_native(ex)))
        stdout, stderr = proc.communicate(in_data)
        self._raise_for_ip_failure(name, proc.returncode, stderr)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        """Copy the controller file ``in_path`` to ``out_path`` as seen inside the namespace."""
        super(Connection, self).put_file(in_path, out_path)
        ip_exe, name = self._preflight()
        display.vvv(u"PUT {0} TO {1}".format(in_path, out_path), host=name)

        b_in_path = to_bytes(in_path, errors='surrogate_or_strict')
        if not os.path.exists(b_in_path):
            raise AnsibleFileNotFound("file or module does not exist: %s" % to_native(in_path))
        if os.path.isdir(b_in_path):
            raise AnsibleError("cannot copy %s into network namespace %r: it is a directory" % (to_native(in_path), name))

        argv = self._build_command(ip_exe, name, 'cat > "$1"', out_path)
        try:
            with open(b_in_path, 'rb') as source:
                proc = subprocess.Popen(argv, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                stdout, stderr = proc.communicate()
        except OSError as ex:
            raise AnsibleError("failed to copy %s to %s in network namespace %r: %s"
                               % (to_native(in_path), to_native(out_path), name, to_native(ex)))
        self._raise_for_ip_failure(name, proc.returncode, stderr)
        if proc.returncode != 0:
            raise AnsibleError("failed to copy %s to %s in network namespace %r (exit status %d): %s"
                               % (to_native(in_path), to_native(out_path), name, proc.returncode,
                                  to_text(stdout + stderr, errors='surrogate_or_replace').strip()))

    def fetch_file(self, in_path, out_path):
        """Copy ``in_path`` as seen inside the namespace to the controller file ``out_path``."""
        super(Connection, self).fetch_file(in_path, out_path)
        ip_exe, name = self._preflight()
        display.vvv(u"FETCH {0} TO {1}".format(in_path, out_path), host=name)

        script = '[ -e "$1" ] || exit %d; exec cat -- "$1"' % _FETCH_MISSING_RC
        argv = self._build_command(ip_exe, name, script, in_path)

        b_out_path = to_bytes(out_path, errors='surrogate_or_strict')
        out_dir = os.path.dirname(b_out_path) or b'.'
        # Write next to the destination and rename at the end, so that a failed transfer
        # never leaves a truncated or partial file behind.
        try:
            fd, b_tmp_path = tempfile.mkstemp(prefix=b'.netns-fetch-', dir=out_dir)
        except OSError as ex:
            raise AnsibleError("failed to create a file in %s: %s" % (to_native(out_dir), to_native(ex)))
        try:
            with os.fdopen(fd, 'wb') as target:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=target, stderr=subprocess.PIPE)
                stdout, stderr = proc.communicate()
            self._raise_for_ip_failure(name, proc.returncode, stderr)
            if proc.returncode == _FETCH_MISSING_RC:
                raise AnsibleFileNotFound("file %s does not exist in network namespace %r" % (to_native(in_path), name))
            if proc.returncode != 0:
                raise AnsibleError("failed to fetch %s from network namespace %r (exit status %d): %s"
                                   % (to_native(in_path), name, proc.returncode,
                                      to_text(stderr, errors='surrogate_or_replace').strip()))
            os.chmod(b_tmp_path, self._new_file_mode(b_out_path))
            os.replace(b_tmp_path, b_out_path)
        except OSError as ex:
            raise AnsibleError("failed to fetch %s from network namespace %r to %s: %s"
                               % (to_native(in_path), name, to_native(out_path), to_native(ex)))
        finally:
            if os.path.lexists(b_tmp_path):
                os.unlink(b_tmp_path)

    @staticmethod
    def _new_file_mode(b_path):
        """Mode for a fetched file: that of the file it replaces, or 0666 minus the umask."""
        try:
            return os.stat(b_path).st_mode & 0o7777
        except OSError:
            umask = os.umask(0o022)
            os.umask(umask)
            return 0o666 & ~umask

    def reset(self):
        """Nothing is kept open between commands, so there is nothing to reset."""
        self._privileges_checked = False

    def close(self):
        """Nothing to close."""
        self._connected = False
