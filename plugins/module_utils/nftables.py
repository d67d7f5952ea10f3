# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""nftables through its JSON interface: read the ruleset, build commands, apply one transaction.

* ``NftCli`` runs ``nft -j list ruleset`` (one read of everything) and
  ``nft -j -f -`` with a batch of commands, which the kernel applies as one
  atomic transaction: all of it or nothing.  ``check=True`` runs the same
  batch with ``nft --check`` (nothing is applied), so check mode fails exactly
  where the real run would.
* ``Ruleset`` holds the listed tables, chains and rules as plain records
  (``Table``, ``Chain``, ``Rule``), in the kernel's order.
* ``TableContent`` is one table with its chains and rules; ``key()`` is a
  comparable form that ignores handles and counter values, so a table read
  back from the kernel equals the table that was written.
* The builders (``add_table``, ``match``, ``prefix``...) make the JSON in the
  form ``nft -j list`` prints it, which is what makes that comparison work.
* ``rule_text`` renders a rule in ``nft list`` words for diffs and messages
  (no human-readable output of ``nft`` is ever parsed).

Every table of the collection has a name starting with ``COLLECTION_PREFIX``;
nothing else is ever flushed or deleted.  Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Optional

COLLECTION_PREFIX = 'nqrust_microvm'
NFT_TIMEOUT = 60

# statements that do not decide whether a rule matches
NEUTRAL_STATEMENTS = frozenset(['counter', 'log', 'notrack'])
# verdicts that end the packet's path through the hook
DROP_VERDICTS = frozenset(['drop', 'reject'])


class NftError(Exception):
    """An ``nft`` command failed; the message names what was being done and what nft said."""

    def __init__(self, operation, detail):
        self.operation = operation
        self.detail = detail
        super(NftError, self).__init__('%s: %s' % (operation, detail))


# --------------------------------------------------------------------------- records

@dataclasses.dataclass(frozen=True)
class Table(object):
    family: str
    name: str
    handle: Optional[int] = None

    @property
    def ref(self):
        """``'inet nqrust_microvm_fw_fcbr0'``."""
        return '%s %s' % (self.family, self.name)

    def to_json(self):
        return {'family': self.family, 'name': self.name}


@dataclasses.dataclass(frozen=True)
class Chain(object):
    family: str
    table: str
    name: str
    type: Optional[str] = None
    hook: Optional[str] = None
    prio: Optional[int] = None
    policy: Optional[str] = None
    handle: Optional[int] = None

    @property
    def is_base(self):
        return self.hook is not None

    @property
    def ref(self):
        """``'ip filter FORWARD'``."""
        return '%s %s %s' % (self.family, self.table, self.name)

    def key(self):
        return (self.name, self.type, self.hook, self.prio, self.policy)

    def header_text(self):
        """``'type filter hook forward priority 0; policy drop'`` (``''`` for a regular chain)."""
        if not self.is_base:
            return ''
        text = 'type %s hook %s priority %s' % (self.type, self.hook, self.prio)
        if self.policy:
            text += '; policy %s' % self.policy
        return text

    def to_json(self):
        data = {'family': self.family, 'table': self.table, 'name': self.name}
        if self.is_base:
            data.update(type=self.type, hook=self.hook, prio=self.prio)
            if self.policy:
                data['policy'] = self.policy
        return data


@dataclasses.dataclass(frozen=True)
class Rule(object):
    family: str
    table: str
    chain: str
    expr: tuple
    comment: Optional[str] = None
    handle: Optional[int] = None

    @property
    def chain_ref(self):
        return '%s %s %s' % (self.family, self.table, self.chain)

    def key(self):
        """What the rule does: its normalised expression and comment (no handle, no counter values)."""
        return (json.dumps(normalize(list(self.expr)), sort_keys=True), self.comment or '')

    def text(self):
        return rule_text(self.expr, self.comment)

    def to_json(self, with_handle=False):
        data = {'family': self.family, 'table': self.table, 'chain': self.chain, 'expr': [_copy(item) for item in self.expr]}
        if self.comment:
            data['comment'] = self.comment
        if with_handle and self.handle is not None:
            data['handle'] = self.handle
        return data


def _copy(value):
    return json.loads(json.dumps(value))


# --------------------------------------------------------------------------- ruleset

class Ruleset(object):
    """The host's ruleset as ``nft -j list ruleset`` gives it."""

    def __init__(self, tables=(), chains=(), rules=(), version=None):
        self.tables = tuple(tables)
        self.chains = tuple(chains)
        self.rules = tuple(rules)
        self.version = version

    @classmethod
    def from_json(cls, data):
        """From the parsed output of ``nft -j list ruleset`` (``{"nftables": [...]}``)."""
        tables, chains, rules = [], [], []
        version = None
        for item in (data or {}).get('nftables', []):
            if 'metainfo' in item:
                version = item['metainfo'].get('version')
            elif 'table' in item:
                obj = item['table']
                tables.append(Table(obj['family'], obj['name'], obj.get('handle')))
            elif 'chain' in item:
                obj = item['chain']
                chains.append(Chain(obj['family'], obj['table'], obj['name'], obj.get('type'), obj.get('hook'),
                                    obj.get('prio'), obj.get('policy'), obj.get('handle')))
            elif 'rule' in item:
                obj = item['rule']
                rules.append(Rule(obj['family'], obj['table'], obj['chain'], tuple(obj.get('expr', ())),
                                  obj.get('comment'), obj.get('handle')))
        return cls(tables, chains, rules, version)

    def table(self, family, name):
        for table in self.tables:
            if table.family == family and table.name == name:
                return table
        return None

    def chain(self, family, table, name):
        for chain in self.chains:
            if (chain.family, chain.table, chain.name) == (family, table, name):
                return chain
        return None

    def chains_of(self, family, table):
        return tuple(chain for chain in self.chains if chain.family == family and chain.table == table)

    def rules_of(self, family, table, chain=None):
        return tuple(rule for rule in self.rules
                     if rule.family == family and rule.table == table and (chain is None or rule.chain == chain))

    def base_chains(self, hook):
        return tuple(chain for chain in self.chains if chain.hook == hook)

    def content(self, family, name):
        """The ``TableContent`` of one table, or ``None`` when it does not exist."""
        table = self.table(family, name)
        if table is None:
            return None
        return TableContent(table, self.chains_of(family, name), self.rules_of(family, name))


@dataclasses.dataclass(frozen=True)
class TableContent(object):
    """A table with its chains and rules (rules in chain order)."""

    table: Table
    chains: tuple = ()
    rules: tuple = ()

    def rules_in(self, chain):
        return tuple(rule for rule in self.rules if rule.chain == chain)

    def key(self):
        """Comparable form: chains by name with their settings and rules; handles and counters left out."""
        return tuple((chain.key(), tuple(rule.key() for rule in self.rules_in(chain.name)))
                     for chain in sorted(self.chains, key=lambda item: item.name))

    def view(self):
        """``{chain: {'hook': ..., 'rules': [text...]}}`` for diffs and results."""
        shown = {}
        for chain in self.chains:
            entry = {'rules': [rule.text() for rule in self.rules_in(chain.name)]}
            if chain.is_base:
                entry['hook'] = chain.header_text()
            shown[chain.name] = entry
        return shown

    def create_commands(self):
        """``add`` commands making this table from nothing (tables, chains, then rules)."""
        commands = [add_table(self.table)]
        commands.extend({'add': {'chain': chain.to_json()}} for chain in self.chains)
        commands.extend({'add': {'rule': rule.to_json()}} for rule in self.rules)
        return commands

    def replace_commands(self):
        """One transaction that replaces whatever table of that name exists with this one.

        ``add table`` (a no-op when it exists) then ``delete table`` clears it
        whether or not it was there; the rest builds it anew.
        """
        return [add_table(self.table), delete_table(self.table)] + self.create_commands()


# --------------------------------------------------------------------------- command builders

def add_table(table):
    return {'add': {'table': table.to_json()}}


def delete_table(table):
    return {'delete': {'table': table.to_json()}}


def insert_rule(rule):
    """Insert ``rule`` at the top of its chain."""
    return {'insert': {'rule': rule.to_json()}}


def delete_rule(rule):
    """Delete one rule by its handle."""
    return {'delete': {'rule': {'family': rule.family, 'table': rule.table, 'chain': rule.chain, 'handle': rule.handle}}}


def batch(commands):
    return {'nftables': list(commands)}


# --------------------------------------------------------------------------- expression builders

def meta(key):
    return {'meta': {'key': key}}


def payload(protocol, field):
    return {'payload': {'protocol': protocol, 'field': field}}


def ct(key):
    return {'ct': {'key': key}}


def prefix(network):
    """``ipaddress`` network -> ``{"prefix": {...}}`` (a host route stays a plain address, as nft lists it)."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return {'prefix': {'addr': str(network.network_address), 'len': network.prefixlen}}


def names(values):
    """One interface name as a string, several as an anonymous set (sorted)."""
    values = sorted(set(values))
    if len(values) == 1:
        return values[0]
    return {'set': values}


def match(left, right, op='=='):
    return {'match': {'op': op, 'left': left, 'right': right}}


def verdict(name, target=None):
    if name in ('jump', 'goto'):
        return {name: {'target': target}}
    return {name: None}


def counter():
    return {'counter': None}


def reject_admin_prohibited():
    """``reject with icmpx admin-prohibited`` (ICMP/ICMPv6 "administratively prohibited")."""
    return {'reject': {'type': 'icmpx', 'expr': 'admin-prohibited'}}


def masquerade():
    return {'masquerade': None}


# --------------------------------------------------------------------------- normalising and rendering

def normalize(value):
    """Counters without values, sets and lists of flags sorted: what a rule does, not what it counted."""
    if isinstance(value, dict):
        if set(value) == {'counter'}:
            return {'counter': None}
        result = {}
        for key, item in value.items():
            if key == 'set' and isinstance(item, list):
                result[key] = sorted((normalize(elem) for elem in item), key=lambda elem: json.dumps(elem, sort_keys=True))
            else:
                result[key] = normalize(item)
        return result
    if isinstance(value, list):
        items = [normalize(item) for item in value]
        if items and all(isinstance(item, str) for item in items) and len(items) > 1:
            # flag lists such as ct state ["established", "related"]: order carries no meaning
            return sorted(items)
        return items
    return value


_QUOTED_META = frozenset(['iifname', 'oifname', 'ibrname', 'obrname', 'ibriport', 'obriport'])


def _left_text(left):
    if isinstance(left, dict):
        if 'meta' in left:
            key = left['meta'].get('key')
            return key if key in _QUOTED_META or key in ('iif', 'oif', 'mark', 'nfproto', 'l4proto') else 'meta %s' % key
        if 'payload' in left:
            data = left['payload']
            if 'protocol' in data:
                return '%s %s' % (data['protocol'], data.get('field'))
        if 'ct' in left:
            data = left['ct']
            words = ['ct']
            if data.get('dir'):
                words.append(data['dir'])
            words.append(data.get('key'))
            return ' '.join(str(word) for word in words)
    return json.dumps(left, sort_keys=True)


def _right_text(right, quoted):
    if isinstance(right, str):
        return '"%s"' % right if quoted else right
    if isinstance(right, bool) or isinstance(right, (int, float)):
        return json.dumps(right)
    if isinstance(right, list):
        return ','.join(_right_text(item, quoted) for item in right)
    if isinstance(right, dict):
        if 'prefix' in right:
            return '%s/%s' % (right['prefix'].get('addr'), right['prefix'].get('len'))
        if 'set' in right:
            return '{ %s }' % ', '.join(_right_text(item, quoted) for item in right['set'])
        if 'range' in right and isinstance(right['range'], list) and len(right['range']) == 2:
            return '%s-%s' % (_right_text(right['range'][0], quoted), _right_text(right['range'][1], quoted))
    return json.dumps(right, sort_keys=True)


def _statement_text(stmt):
    if not isinstance(stmt, dict) or len(stmt) != 1:
        return json.dumps(stmt, sort_keys=True)
    (name, arg), = stmt.items()
    if name == 'match':
        left = arg.get('left')
        quoted = isinstance(left, dict) and 'meta' in left and left['meta'].get('key') in _QUOTED_META
        op = arg.get('op', '==')
        words = [_left_text(left)]
        if op not in ('==', 'in'):
            words.append(op)
        words.append(_right_text(arg.get('right'), quoted))
        return ' '.join(words)
    if name in ('jump', 'goto') and isinstance(arg, dict):
        return '%s %s' % (name, arg.get('target'))
    if name == 'reject':
        if isinstance(arg, dict) and arg.get('type'):
            expr = arg.get('expr')
            return 'reject with %s%s' % (arg['type'], ' %s' % expr if expr else '')
        return 'reject'
    if arg is None or name == 'counter':
        return name
    return '%s %s' % (name, json.dumps(arg, sort_keys=True))


def rule_text(expr, comment=None):
    """``'iifname "fcbr0" oifname "eth0" ip saddr 192.168.18.0/24 accept comment "..."'``."""
    words = [_statement_text(stmt) for stmt in expr]
    if comment:
        words.append('comment %s' % json.dumps(comment))
    return ' '.join(words)


# --------------------------------------------------------------------------- the nft command

class NftCli(object):
    """Talks to the kernel through the ``nft`` command's JSON interface.

    ``runner(argv, stdin_text)`` -> ``(rc, stdout, stderr)`` may replace the
    subprocess call (tests).
    """

    def __init__(self, nft_path='nft', runner=None, timeout=NFT_TIMEOUT):
        self.nft_path = nft_path
        self.runner = runner or self._run
        self.timeout = timeout
        self.reads = 0

    def _run(self, argv, stdin_text=None):
        try:
            proc = subprocess.run(argv, input=stdin_text, capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return 127, '', str(exc)
        return proc.returncode, proc.stdout, proc.stderr

    def list_ruleset(self):
        """The whole ruleset (one ``nft -j list ruleset``) as a ``Ruleset``."""
        rc, out, err = self.runner([self.nft_path, '-j', 'list', 'ruleset'], None)
        self.reads += 1
        if rc != 0:
            raise NftError('reading the nftables ruleset (nft -j list ruleset)', _error_text(err, rc))
        try:
            data = json.loads(out) if out.strip() else {'nftables': []}
        except ValueError as exc:
            raise NftError('reading the nftables ruleset (nft -j list ruleset)', 'output is not JSON: %s' % exc) from None
        return Ruleset.from_json(data)

    def apply(self, commands, check=False, operation='applying the nftables transaction'):
        """Run ``commands`` as one ``nft -j -f -`` transaction (``check``: ``nft --check``, nothing applied)."""
        if not commands:
            return
        argv = [self.nft_path] + (['--check'] if check else []) + ['-j', '-f', '-']
        rc, dummy, err = self.runner(argv, json.dumps(batch(commands)))
        if rc != 0:
            raise NftError(operation + (' (nft --check)' if check else ''), _error_text(err, rc))


def _error_text(err, rc):
    lines = [line.strip() for line in (err or '').splitlines() if line.strip()]
    return '; '.join(lines) or 'nft exited with status %s' % rc


__all__ = [
    'COLLECTION_PREFIX', 'Chain', 'NftCli', 'NftError', 'Rule', 'Ruleset', 'Table', 'TableContent',
    'add_table', 'batch', 'counter', 'ct', 'delete_rule', 'delete_table', 'insert_rule', 'masquerade', 'match',
    'meta', 'names', 'normalize', 'payload', 'prefix', 'reject_admin_prohibited', 'rule_text', 'verdict',
]
