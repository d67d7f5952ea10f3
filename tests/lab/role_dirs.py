"""Where the network role keeps a lab host's files: lab hosts share this machine's file system.

Every lab host (a network namespace) sees the same /etc and /var, so two hosts running the network
role with its defaults would write each other's dnsmasq files and boot replay. Tests, molecule and
the demo give each host (or each test) its own directories with these variables.
"""

import os


def network_role_dirs(base):
    """The network role's directory variables, all below ``base`` (which may contain a Jinja template)."""
    dirs = {'network_dnsmasq_%s_dir' % key: os.path.join(base, 'dnsmasq', key) for key in ('config', 'state', 'run')}
    dirs.update(network_dnsmasq_unit_dir=os.path.join(base, 'units'), network_persist_unit_dir=os.path.join(base, 'units'),
                network_persist_dir=os.path.join(base, 'boot'), network_guard_dir=os.path.join(base, 'guard'))
    return dirs
