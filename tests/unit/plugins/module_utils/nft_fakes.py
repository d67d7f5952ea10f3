# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake ``nft`` for unit tests: keeps a ruleset, lists it as ``nft -j list ruleset`` does, applies JSON batches atomically."""

from __future__ import annotations

import copy
import json


def _counter_listed(expr):
    return [{'counter': {'packets': 0, 'bytes': 0}} if stmt == {'counter': None} else stmt for stmt in expr]


class FakeNft(object):
    """``runner(argv, stdin)`` for ``NftCli``; ``fail`` makes every apply fail with that stderr."""

    def __init__(self, commands=None, fail=None):
        self.tables, self.chains, self.rules = [], [], []
        self.handle = 0
        self.calls = []
        self.fail = fail
        if commands:
            self._batch(commands)
        self.calls = []

    # ------------------------------------------------------------ kernel
    def _next(self):
        self.handle += 1
        return self.handle

    def _find_table(self, obj):
        for table in self.tables:
            if table['family'] == obj['family'] and table['name'] == obj['name']:
                return table
        return None

    def _apply(self, command):
        (verb, body), = command.items()
        (kind, obj), = body.items()
        obj = copy.deepcopy(obj)
        if kind == 'table':
            found = self._find_table(obj)
            if verb == 'add':
                if found is None:
                    self.tables.append({'family': obj['family'], 'name': obj['name'], 'handle': self._next()})
            elif verb == 'delete':
                if found is None:
                    raise KeyError('no such table')
                self.tables.remove(found)
                key = (obj['family'], obj['name'])
                self.chains = [c for c in self.chains if (c['family'], c['table']) != key]
                self.rules = [r for r in self.rules if (r['family'], r['table']) != key]
            return
        table = self._find_table({'family': obj['family'], 'name': obj['table']})
        if table is None:
            raise KeyError('no such table')
        if kind == 'chain' and verb == 'add':
            obj['handle'] = self._next()
            self.chains.append(obj)
            return
        if kind == 'rule':
            chain_key = (obj['family'], obj['table'], obj['chain'])
            if not any((c['family'], c['table'], c['name']) == chain_key for c in self.chains):
                raise KeyError('no such chain')
            if verb in ('add', 'insert'):
                obj['handle'] = self._next()
                obj['expr'] = _counter_listed(obj['expr'])
                same = [i for i, r in enumerate(self.rules) if (r['family'], r['table'], r['chain']) == chain_key]
                if verb == 'insert' and same:
                    self.rules.insert(same[0], obj)
                else:
                    self.rules.append(obj)
                return
            if verb == 'delete':
                for rule in self.rules:
                    if (rule['family'], rule['table'], rule['chain']) == chain_key and rule['handle'] == obj['handle']:
                        self.rules.remove(rule)
                        return
                raise KeyError('no such rule')
        raise KeyError('unsupported %s %s' % (verb, kind))

    def _batch(self, commands):
        saved = copy.deepcopy((self.tables, self.chains, self.rules, self.handle))
        try:
            for command in commands:
                self._apply(command)
        except KeyError:
            self.tables, self.chains, self.rules, self.handle = saved
            raise
        return saved

    # ------------------------------------------------------------ nft
    def listing(self):
        items = [{'metainfo': {'version': '1.0.6', 'release_name': 'Lester Gooch #5', 'json_schema_version': 1}}]
        for table in self.tables:
            items.append({'table': dict(table)})
            key = (table['family'], table['name'])
            chains = [c for c in self.chains if (c['family'], c['table']) == key]
            items.extend({'chain': dict(chain)} for chain in chains)
            for chain in chains:
                items.extend({'rule': copy.deepcopy(rule)} for rule in self.rules
                             if (rule['family'], rule['table'], rule['chain']) == (chain['family'], chain['table'], chain['name']))
        return {'nftables': items}

    def runner(self, argv, stdin_text=None):
        self.calls.append((list(argv), stdin_text))
        if argv[1:] == ['-j', 'list', 'ruleset']:
            return 0, json.dumps(self.listing()), ''
        if argv[-3:] != ['-j', '-f', '-']:
            return 1, '', 'Error: unexpected arguments %s' % argv
        if self.fail:
            return 1, '', self.fail
        try:
            saved = self._batch(json.loads(stdin_text)['nftables'])
        except KeyError as exc:
            return 1, '', 'internal:0:0-0: Error: Could not process rule: No such file or directory (%s)' % exc
        if '--check' in argv:
            self.tables, self.chains, self.rules, self.handle = saved
        return 0, '', ''

    def applies(self):
        """The batches applied for real (not --check)."""
        return [json.loads(stdin)['nftables'] for argv, stdin in self.calls if argv[-3:] == ['-j', '-f', '-'] and '--check' not in argv]

    def checks(self):
        return [json.loads(stdin)['nftables'] for argv, stdin in self.calls if '--check' in argv]
