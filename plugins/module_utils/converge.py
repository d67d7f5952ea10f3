# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module contract in one call: validate -> lock -> read -> plan -> check/apply -> report.

A module supplies the five pieces and gets the standard result back::

    def validate(v):                       # v is a validation.Validator
        return Desired(name=v.check(interface_name, 'name', p['name']), ...)

    def read(nl):                          # nl is what session_factory() gave
        return current_state(nl.links(), nl.addresses())

    def plan(desired, current):            # pure: list of plan.Change
        ...

    def handlers(nl):                      # do(change) -> result, undo(change, result)
        return do, undo                    # or a plan.Handlers

    result = converge(module, validate, read, plan, handlers,
                      after=predict, view=show, session_factory=NetlinkSession)
    module.exit_json(**result)

Failures end in ``module.fail_json`` with a message naming what failed:
every validation problem at once, a lock that could not be taken, a netlink
error while reading, or the failed plan step with the rollback outcome.
"""

from __future__ import annotations

import contextlib

from ansible_collections.nqrust.microvm.plugins.module_utils.host_lock import (
    DEFAULT_TIMEOUT,
    HostLock,
    HostLockError,
    HostLockTimeout,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import NetlinkOperationError
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import (
    PlanApplyError,
    apply_changes,
    build_result,
    order_changes,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    Validator,
    ValidationErrors,
)


class ConvergeFailure(Exception):
    """Raised by ``converge`` (instead of failing the module) when ``module`` is ``None``; carries the result keys."""

    def __init__(self, msg, **result):
        super(ConvergeFailure, self).__init__(msg)
        self.msg = msg
        self.result = result


@contextlib.contextmanager
def _no_session():
    yield None


def _split_handlers(handlers):
    if isinstance(handlers, tuple):
        do = handlers[0]
        undo = handlers[1] if len(handlers) > 1 else None
        return do, undo
    return handlers.do, getattr(handlers, 'undo', None)


def _fail(module, msg, **result):
    if module is None:
        raise ConvergeFailure(msg, **result)
    module.fail_json(msg=msg, **result)
    # fail_json exits; a test double that returns is treated as a failure too
    raise ConvergeFailure(msg, **result)


def converge(module, validate, read, plan, handlers, after=None, view=None, report=None,
             session_factory=None, lock=True, lock_timeout=DEFAULT_TIMEOUT, lock_directory=None,
             check_mode=None, operational_errors=(NetlinkOperationError,)):
    """Run the module contract and return the result dict (``changed``, ``changes``, ``diff`` + ``report`` keys).

    * ``validate(validator)`` -> desired state; problems recorded on the
      validator (``validator.check``) are all reported together.
    * ``read(session)`` -> current state (one dump per object kind).
    * ``plan(desired, current)`` -> list of ``Change``.
    * ``handlers(session)`` -> ``(do, undo)`` or an object with ``do``/``undo``.
    * ``after(desired, current, changes)`` -> the predicted state after the
      changes (default: ``desired``); the same in check mode and for real, so
      the diff a check run shows is the diff the real run makes.
    * ``view(state)`` -> what the diff shows of a state (default: the state).
    * ``report(session, changes, check_mode)`` -> extra result keys (e.g. the
      resulting objects, re-read after apply).
    * ``session_factory()`` -> a context manager giving the session (e.g.
      ``NetlinkSession``); none by default.
    * ``operational_errors``: exception types that, raised while reading,
      planning or building handlers, fail the module with their message
      instead of a traceback (default: ``NetlinkOperationError``).

    ``module`` is the ``AnsibleModule`` (``check_mode`` taken from it unless
    given); with ``module=None`` failures raise ``ConvergeFailure``.
    """
    if check_mode is None:
        check_mode = bool(getattr(module, 'check_mode', False))

    validator = Validator()
    desired = validate(validator)
    try:
        validator.raise_if_any()
    except ValidationErrors as exc:
        _fail(module, exc.message, validation_errors=exc.messages)

    host_lock = HostLock(timeout=lock_timeout, directory=lock_directory) if lock else contextlib.nullcontext()
    factory = session_factory or _no_session
    try:
        with host_lock:
            with factory() as session:
                return _converge_locked(session, desired, read, plan, handlers, after, view, report, check_mode)
    except (HostLockTimeout, HostLockError) as exc:
        _fail(module, str(exc))
    except PlanApplyError as exc:
        result = exc.to_result()
        _fail(module, str(exc), changed=bool(exc.applied) and not exc.rolled_back, **result)
    except tuple(operational_errors) as exc:  # pylint: disable=catching-non-exception
        _fail(module, str(exc))
    return None  # not reached: _fail raises


def _converge_locked(session, desired, read, plan, handlers, after, view, report, check_mode):
    current = read(session)
    changes = order_changes(plan(desired, current))
    predicted = after(desired, current, changes) if after is not None else desired
    show = view or (lambda state: state)
    do, undo = _split_handlers(handlers(session))
    apply_changes(changes, do, undo, check_mode=check_mode)
    extra = report(session, changes, check_mode) if report is not None else {}
    return build_result(changes, show(current), show(predicted), **(extra or {}))
