"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test bootstraps pip into each of its virtual environments by running a
cached ``get_pip_<version>.py`` with pip's install arguments.  The real script
is fetched from a host this network cannot reach, so this stand-in takes pip
from the wheel that ships inside CPython's ``ensurepip`` and lets that pip
install the requested packages (``pip==<version>`` among them) from the
configured package index.
"""

from __future__ import annotations

import glob
import os
import runpy
import sys

# Options of the real get-pip script that pip itself does not know.
GET_PIP_ONLY_OPTIONS = {'--no-setuptools', '--no-wheel'}


def bundled_pip_wheel() -> str:
    """Return the path of the pip wheel bundled with ensurepip."""
    import ensurepip

    bundled = os.path.join(os.path.dirname(ensurepip.__file__), '_bundled')
    wheels = sorted(glob.glob(os.path.join(bundled, 'pip-*.whl')))
    if not wheels:
        raise SystemExit('get_pip_offline: no pip wheel bundled with ensurepip in %s' % bundled)
    return wheels[-1]


def main() -> None:
    """Install the requested packages with the bundled pip."""
    sys.path.insert(0, bundled_pip_wheel())
    arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    sys.argv = ['pip', 'install'] + arguments
    runpy.run_module('pip', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main()
