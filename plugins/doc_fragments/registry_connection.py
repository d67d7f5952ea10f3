# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    """The connection options of the registry modules and the registry inventory plugin."""

    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or address of the registry's PostgreSQL server, or the directory of its unix socket (a path
        starting with C(/)).
      - When not set, O(dsn) or the E(PGHOST) environment variable applies, else libpq's default (the local unix socket).
    type: str
  login_port:
    description:
      - TCP port of the server (also the number in the unix socket's name).
      - When not set, O(dsn) or E(PGPORT) applies, else 5432.
    type: int
  login_user:
    description:
      - The role to log in as.
      - When not set, O(dsn) or E(PGUSER) applies, else the name of the user running the task.
    type: str
  login_password:
    description:
      - The role's password.
      - When not set, O(dsn), E(PGPASSWORD) or the password file (E(PGPASSFILE), C(~/.pgpass)) applies.
      - It never appears in a message or a result.
    type: str
  login_db:
    description:
      - The database of the registry.
      - When not set, O(dsn) or E(PGDATABASE) applies, else a database named like the user.
    type: str
  ssl_mode:
    description:
      - How to use TLS, as libpq's C(sslmode).
      - When not set, O(dsn) or E(PGSSLMODE) applies, else V(prefer).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of the certificate authorities that signed the server's certificate (libpq's C(sslrootcert)),
        checked with O(ssl_mode=verify-ca) or O(ssl_mode=verify-full).
      - When not set, O(dsn) or E(PGSSLROOTCERT) applies.
    type: str
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection.
      - When not set, O(dsn) or E(PGCONNECT_TIMEOUT) applies, else 10.
    type: int
  dsn:
    description:
      - A libpq connection string (V(host=db.example.com dbname=nqrust user=nqrust)) or URI
        (V(postgresql://nqrust@db.example.com/nqrust?sslmode=verify-full)), such as the NQRust manager's
        E(DATABASE_URL).
      - The options above override the same settings in it; the E(PG*) environment fills in what neither gives.
    type: str
notes:
  - The connection settings are resolved as libpq does, highest first, an option, the same setting in O(dsn),
    the E(PG*) environment variables, libpq's defaults. Options that are not set are not passed at all.
  - A server that cannot be reached or refuses the login fails the task with one line naming the host,
    the port, the database, the user and the reason; passwords are never shown.
  - Needs the Python library psycopg (3.1 or later) where the task runs (usually the controller).
"""
