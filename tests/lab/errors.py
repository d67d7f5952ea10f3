"""Exceptions raised by the test lab."""

import subprocess


class LabError(Exception):
    """A lab operation failed; the message says what and why."""


class LabCommandError(LabError, subprocess.CalledProcessError):
    """A command run by the lab exited non-zero; the message carries its output."""

    def __init__(self, returncode, cmd, output=None, stderr=None, where=None):
        subprocess.CalledProcessError.__init__(self, returncode, cmd, output, stderr)
        LabError.__init__(self, returncode, cmd)
        self.where = where

    def __str__(self):
        argv = self.cmd if isinstance(self.cmd, str) else ' '.join(str(arg) for arg in self.cmd)
        text = 'command %r failed with exit code %s' % (argv, self.returncode)
        if self.where:
            text += ' in %s' % self.where
        for label, value in (('stderr', self.stderr), ('stdout', self.output)):
            if value:
                text += '\n%s: %s' % (label, value.strip() if isinstance(value, str) else value)
        return text


class LabLeakError(LabError):
    """sweep(check=True) found (and removed) resources that a lab had left behind."""

    def __init__(self, report):
        LabError.__init__(self, 'leftover lab resources were found and removed: %s' % format_report(report))
        self.report = report


def format_report(report):
    """One line per kind of leftover resource, for humans."""
    lines = []
    for kind in sorted(report):
        items = report[kind]
        if items:
            lines.append('%s: %s' % (kind, ', '.join(str(item) for item in items)))
    return '; '.join(lines) if lines else 'nothing'
