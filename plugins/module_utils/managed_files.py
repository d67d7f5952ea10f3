# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Files the collection owns on a host (configuration, persistence, units): read, replace atomically, remove.

Standard library only.
"""

from __future__ import annotations

import errno
import os
import tempfile


def read_text(path):
    """The file's text, or ``None`` when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'surrogateescape')
    except FileNotFoundError:
        return None


def write_file(path, content, mode=0o644, times=None):
    """Atomically replace ``path`` with ``content`` (temporary file in the same directory, then rename).

    Missing directories are made (mode 0755); ``times`` (``(atime_ns, mtime_ns)``) restores a
    previous file's times, for undo.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(content.encode('utf-8', 'surrogateescape'))
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if times is not None:
            os.utime(temporary, ns=times)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def remove_file(path):
    """Delete a file; a file already gone is fine."""
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
