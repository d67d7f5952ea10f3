# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The frame of the registry modules: psycopg check, connection, errors as one line, no passwords.

::

    module = AnsibleModule(argument_spec=registry_argument_spec(name=dict(...)), supports_check_mode=True)
    run_registry_module(module, lambda conn: do_the_work(conn, module.params, module.check_mode))

``work(conn)`` returns the result dict; it raises ``ValidationErrors`` (all
problems reported at once), a ``RegistryError`` (its message), or lets a
database error through (reported with its primary message, detail and
hint).  The connection is closed in every case; work that did not commit is
rolled back.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils.registry_connection import (
    CONNECTION_ARGUMENT_SPEC,
    HAS_PSYCOPG,
    PSYCOPG_IMPORT_ERROR,
    RegistryError,
    connect,
    database_error_message,
    redact,
    secrets_of,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import ValidationErrors


def registry_argument_spec(**options):
    """The connection options plus the module's own."""
    spec = dict((key, dict(value)) for key, value in CONNECTION_ARGUMENT_SPEC.items())
    spec.update(options)
    return spec


def fail_validation(module, exc, secrets=()):
    module.fail_json(msg=redact(exc.message, secrets), validation_errors=[redact(text, secrets) for text in exc.messages])


def run_registry_module(module, work):
    """Connect, run ``work(conn)``, exit with its result or fail with one clear line."""
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib('psycopg (3.1 or later)'), exception=PSYCOPG_IMPORT_ERROR)
    secrets = secrets_of(module.params)
    try:
        conn = connect(module.params)
    except RegistryError as exc:
        module.fail_json(msg=redact(str(exc), secrets))
    try:
        result = work(conn)
    except ValidationErrors as exc:
        _rollback(conn)
        fail_validation(module, exc, secrets)
    except RegistryError as exc:
        _rollback(conn)
        module.fail_json(msg=redact(str(exc), secrets), **getattr(exc, 'result', {}))
    except Exception as exc:  # pylint: disable=broad-except
        _rollback(conn)
        if getattr(exc, 'sqlstate', None) is None and not hasattr(exc, 'diag'):
            raise
        module.fail_json(msg='registry database error: %s' % database_error_message(exc, secrets),
                         sqlstate=getattr(exc, 'sqlstate', None))
    finally:
        try:
            conn.close()
        except Exception:  # pylint: disable=broad-except
            pass
    module.exit_json(**result)


def _rollback(conn):
    try:
        conn.rollback()
    except Exception:  # pylint: disable=broad-except
        pass
