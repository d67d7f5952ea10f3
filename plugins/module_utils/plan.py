# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan and apply: steps 3 to 5 of the module contract.

A module's plan function turns (desired, current) into a list of ``Change``.
``order_changes`` puts them in the fixed order: removals first, in reverse
phase order (down, addresses, VLANs, detach, delete), then everything else in
phase order (create parents, attach, VLANs, addresses, up).  Within one phase
the plan's own order is kept (the sort is stable), so a plan lists bridges
before the TAPs that join them.

``apply_changes`` runs the ordered changes through the module's handlers; if
one fails, the steps already applied are undone in reverse and a
``PlanApplyError`` names the failed step and says whether the rollback worked.
In check mode nothing runs.

``build_result`` makes the standard result: ``changed``, ``changes`` and an
Ansible ``diff`` whose ``before``/``after`` are stable, sorted, YAML-like text.

Pure Python, standard library only.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import re
import types
from collections.abc import Mapping
from typing import Any, Optional


class Phase(enum.IntEnum):
    """When a change runs.  Additions and updates run in this order, removals in reverse."""

    CREATE = 10     # create parents first (bridges, then their ports), and set link properties
    ATTACH = 20     # enslave ports to bridges
    VLAN = 30       # VLAN links and bridge-port VLAN membership
    ADDRESS = 40    # IP addresses
    UP = 50         # administrative state up

    @classmethod
    def coerce(cls, value):
        """A ``Phase`` from a ``Phase``, its value, or its name (any case)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError('unknown phase %r (one of %s)' % (value, ', '.join(p.name.lower() for p in cls))) from None
        return cls(value)


# Actions that take something away; they run before all others, in reverse phase order.
REMOVAL_ACTIONS = frozenset(['delete', 'remove', 'detach', 'down', 'flush', 'purge'])


def _freeze(value):
    if isinstance(value, Mapping):
        return types.MappingProxyType(dict((key, _freeze(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value):
    if isinstance(value, Mapping):
        return dict((key, _thaw(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_thaw(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_thaw(item) for item in value)
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
                          ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    return value


@dataclasses.dataclass(frozen=True)
class Change(object):
    """One step of a plan.

    ``action`` is a verb (``create``, ``update``, ``attach``, ``add``, ``up``,
    ``delete``, ``detach``, ``remove``, ``down``...), ``kind`` the object kind
    (``bridge``, ``tap``, ``address``...), ``target`` the object's name,
    ``phase`` a ``Phase`` (or its name), ``details`` whatever the handler needs
    (frozen into a read-only mapping; not part of the hash, so changes can
    go in sets), ``description`` the human text (made
    from the rest when empty).  ``removal`` defaults to whether ``action`` is
    one of ``REMOVAL_ACTIONS``.
    """

    action: str
    kind: str
    target: str
    phase: Phase
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    description: str = ''
    removal: Optional[bool] = None

    def __post_init__(self):
        object.__setattr__(self, 'phase', Phase.coerce(self.phase))
        object.__setattr__(self, 'details', _freeze(dict(self.details or {})))
        if self.removal is None:
            object.__setattr__(self, 'removal', self.action in REMOVAL_ACTIONS)
        if not self.description:
            object.__setattr__(self, 'description', describe(self.action, self.kind, self.target, self.details))

    def to_dict(self):
        """Plain data for module results."""
        return {
            'action': self.action,
            'kind': self.kind,
            'target': self.target,
            'phase': self.phase.name.lower(),
            'details': _thaw(self.details),
            'description': self.description,
        }

    def __str__(self):
        return self.description


def describe(action, kind, target, details=None):
    """``"create bridge 'fcbr0'"``; an update with ``before``/``after`` details adds ``(mtu: 1500 -> 9000)``."""
    text = "%s %s '%s'" % (action, kind, target)
    if details and isinstance(details.get('before'), Mapping) and isinstance(details.get('after'), Mapping):
        before, after = details['before'], details['after']
        parts = []
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                parts.append('%s: %s -> %s' % (key, _short(before.get(key)), _short(after.get(key))))
        if parts:
            text += ' (%s)' % ', '.join(parts)
    return text


def _short(value):
    return json.dumps(_thaw(value), sort_keys=True) if not isinstance(value, str) else value


def order_changes(changes):
    """Changes in execution order: removals in reverse phase order, then the rest in phase order (stable)."""
    def key(change):
        if change.removal:
            return (0, -int(change.phase))
        return (1, int(change.phase))
    return sorted(changes, key=key)


# --------------------------------------------------------------------------- apply

class PlanApplyError(Exception):
    """A step of the plan failed.

    ``change`` is the failed step, ``position``/``total`` its place in the
    ordered plan, ``cause`` the exception, ``applied`` the steps that had
    succeeded before it, ``rolled_back`` whether all of them were undone, and
    ``rollback_errors`` a list of ``(change, message)`` for undo steps that
    failed or had no undo handler.
    """

    def __init__(self, change, cause, position, total, applied, rolled_back, rollback_errors, attempted_rollback=True):
        self.change = change
        self.cause = cause
        self.position = position
        self.total = total
        self.applied = list(applied)
        self.rolled_back = rolled_back
        self.rollback_errors = list(rollback_errors)
        self.attempted_rollback = attempted_rollback
        super(PlanApplyError, self).__init__(self._format())

    def _format(self):
        text = 'step %d of %d (%s) failed: %s' % (self.position, self.total, self.change.description, self.cause)
        if not self.applied:
            return text + '; nothing had been changed before it'
        count = len(self.applied)
        steps = '%d step%s' % (count, '' if count == 1 else 's')
        if not self.attempted_rollback:
            return text + '; rollback disabled, the %s applied before it remain' % steps
        if self.rolled_back:
            return text + '; rolled back the %s applied before it' % steps
        problems = '; '.join('%s: %s' % (change.description, message) for change, message in self.rollback_errors)
        return text + '; rollback FAILED, the host may be partly changed (%s)' % problems

    def __str__(self):
        return self._format()

    def to_result(self):
        """Keys to pass to ``fail_json`` besides ``msg``."""
        return {
            'failed_change': self.change.to_dict(),
            'applied_changes': [change.to_dict() for change in self.applied],
            'rolled_back': self.rolled_back,
            'rollback_errors': ['%s: %s' % (change.description, message) for change, message in self.rollback_errors],
        }


def apply_changes(changes, do, undo=None, check_mode=False, rollback=True):
    """Run the changes in ``order_changes`` order; return that ordered list.

    ``do(change)`` applies one change and may return anything; ``undo(change,
    result)`` reverses an applied change given what ``do`` returned.  A
    handler must leave nothing half-done when it raises (the failed step is
    not undone, only the ones before it).  In check mode nothing runs.  On a
    failure the applied steps are undone in reverse order (unless ``rollback``
    is false) and ``PlanApplyError`` is raised.
    """
    ordered = order_changes(changes)
    if check_mode:
        return ordered
    done = []
    for position, change in enumerate(ordered, 1):
        try:
            result = do(change)
        except Exception as exc:  # pylint: disable=broad-except
            if rollback:
                errors = _rollback(done, undo)
            else:
                errors = []
            raise PlanApplyError(change, exc, position, len(ordered), [item[0] for item in done],
                                 rolled_back=rollback and not errors, rollback_errors=errors,
                                 attempted_rollback=rollback) from exc
        done.append((change, result))
    return ordered


def _rollback(done, undo):
    errors = []
    for change, result in reversed(done):
        if undo is None:
            errors.append((change, 'no undo handler'))
            continue
        try:
            undo(change, result)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append((change, 'undo failed: %s' % exc))
    return errors


class Handlers(object):
    """A table of handlers by (action, kind), usable as ``do``/``undo`` for ``apply_changes``.

    ::

        handlers = Handlers()
        handlers.register('create', 'bridge', do=create_bridge, undo=delete_created_bridge)
        apply_changes(plan, handlers.do, handlers.undo)

    A change without a registered ``do`` fails its step; one without an
    ``undo`` cannot be rolled back (reported as such).
    """

    def __init__(self):
        self._table = {}

    def register(self, action, kind, do, undo=None):
        self._table[(action, kind)] = (do, undo)
        return self

    def do(self, change):
        entry = self._table.get((change.action, change.kind))
        if entry is None:
            raise LookupError('no handler for %s %s' % (change.action, change.kind))
        return entry[0](change)

    def undo(self, change, result):
        entry = self._table.get((change.action, change.kind))
        if entry is None or entry[1] is None:
            raise LookupError('no undo handler for %s %s' % (change.action, change.kind))
        return entry[1](change, result)


# --------------------------------------------------------------------------- report

_PLAIN_RE = re.compile(r'^[A-Za-z0-9_./@+-][A-Za-z0-9_./:@+ -]*$')
_YAML_WORDS = frozenset(['true', 'false', 'yes', 'no', 'on', 'off', 'null', 'none', 'y', 'n', '~'])
_NUMBER_RE = re.compile(r'^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^0[xob]')


def _scalar(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if (_PLAIN_RE.match(text) and not text.endswith(' ') and not text.endswith(':')
            and ': ' not in text and ' #' not in text
            and text.lower() not in _YAML_WORDS and not _NUMBER_RE.match(text)):
        return text
    return json.dumps(text)


def _plain(value):
    if hasattr(value, 'to_dict') and callable(value.to_dict):
        return _plain(value.to_dict())
    value = _thaw(value)
    if isinstance(value, dict):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _emit(value, indent, lines):
    pad = '  ' * indent
    if isinstance(value, dict):
        if not value:
            lines.append(pad + '{}')
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append('%s%s:' % (pad, _scalar(key)))
                _emit(item, indent + 1, lines)
            else:
                lines.append('%s%s: %s' % (pad, _scalar(key), _inline(item)))
    elif isinstance(value, list):
        if not value:
            lines.append(pad + '[]')
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = []
                _emit(item, indent + 1, sub)
                first = sub[0][len(pad) + 2:]
                lines.append('%s- %s' % (pad, first))
                lines.extend(sub[1:])
            else:
                lines.append('%s- %s' % (pad, _inline(item)))
    else:
        lines.append(pad + _scalar(value))


def _inline(value):
    if isinstance(value, dict):
        return '{}'
    if isinstance(value, list):
        return '[]'
    return _scalar(value)


def render_state(state):
    """Stable, readable YAML-like text of a state (mappings sorted by key, lists kept in order).

    Records with ``to_dict()``, enums, ``ipaddress`` objects, tuples and sets
    are turned into plain data first (sets sorted).  Ends with a newline.
    """
    lines = []
    _emit(_plain(state), 0, lines)
    return '\n'.join(lines) + '\n'


def build_result(changes, before, after, **extra):
    """The standard module result.

    ``changed`` (any change), ``changes`` (the ordered changes as dicts with a
    ``description``), ``diff`` with ``before``/``after`` rendered by
    ``render_state``, plus ``extra`` keys (e.g. the resulting objects).
    """
    ordered = order_changes(changes)
    result = {
        'changed': bool(ordered),
        'changes': [change.to_dict() for change in ordered],
        'diff': {'before': render_state(before), 'after': render_state(after)},
    }
    result.update(extra)
    return result
