# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kernel parameters (sysctls) through ``/proc/sys``: names, paths, reading and writing.

``net.*`` parameters belong to the network namespace of the reading process, so a module
running inside a namespace (a lab host) reads and writes that namespace's values.
Values are compared the way ``sysctl`` shows them: fields separated by single spaces.

Standard library only.
"""

from __future__ import annotations

import errno
import os
import re

from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationError, show_value

PROC_SYS = '/proc/sys'
_NAME_RE = re.compile(r'^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$')
_VALUE_RE = re.compile(r'^[^\n\r]*$')


def path_of(name, root=PROC_SYS):
    """``net.ipv4.ip_forward`` -> ``/proc/sys/net/ipv4/ip_forward``."""
    return os.path.join(root, *name.split('.'))


def normalize(value):
    """A value as ``sysctl`` shows it: ``'4096\\t87380  6291456'`` -> ``'4096 87380 6291456'``."""
    if isinstance(value, bool):
        value = int(value)
    return ' '.join(str(value).split())


def sysctl_name(param, value, root=PROC_SYS):
    """A dotted parameter name that exists on this kernel (in this namespace) and can be written."""
    text = str(value)
    if not _NAME_RE.match(text):
        raise ValidationError(param, value, 'a kernel parameter name such as net.ipv4.ip_forward '
                                            '(letters, digits, _ and -, separated by dots)')
    path = path_of(text, root)
    if not os.path.isfile(path):
        raise ValidationError(param, value, 'a kernel parameter this kernel has (there is no %s)' % path)
    return text


def sysctl_value(param, value):
    """A value to write: a number, a word or space-separated fields, on one line."""
    if value is None or isinstance(value, (dict, list)) or not _VALUE_RE.match(str(value)) or not normalize(value):
        raise ValidationError(param, value, 'a number, a word or space-separated fields on one line, '
                                            'not %s' % show_value(value))
    return normalize(value)


class SysctlError(Exception):
    """A sysctl could not be read or written; the message names it and the reason."""


class ProcSys(object):
    """Reads and writes sysctls by dotted name (``net.ipv4.ip_forward``) under ``root`` (tests use a temp dir)."""

    def __init__(self, root=PROC_SYS):
        self.root = root

    def path(self, name):
        return path_of(name, self.root)

    def read(self, name):
        """The value, normalized (fields separated by one space), or ``None`` when the sysctl does not exist here."""
        try:
            with open(self.path(name), encoding='ascii') as handle:
                return normalize(handle.read())
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise SysctlError('reading %s (%s): %s' % (name, self.path(name), exc.strerror or exc)) from exc

    def write(self, name, value):
        """Write ``value``; the kernel's refusal (EINVAL, EPERM, EROFS...) becomes a ``SysctlError`` naming it."""
        try:
            with open(self.path(name), 'w', encoding='ascii') as handle:
                handle.write('%s\n' % normalize(value))
        except OSError as exc:
            raise SysctlError('writing %s=%s (%s): %s' % (name, value, self.path(name), exc.strerror or exc)) from exc

    def enabled(self, name):
        """True when the sysctl exists and is not ``0``."""
        value = self.read(name)
        return value is not None and value != '0'
