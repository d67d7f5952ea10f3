# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Other firewalls on the forward hook that would silently drop a network's traffic (pure: no I/O).

nftables runs every base chain registered on a hook; an ``accept`` ends only
its own chain, a ``drop`` anywhere is final.  So Docker's ``table ip filter``
chain ``FORWARD`` with policy drop, firewalld's ``filter_FORWARD`` ending in an
unconditional reject, or any other base chain on the forward hook that drops
what it does not know, drops the network's traffic whatever our own table says.

``find_blockers`` walks each such base chain outside the collection's tables
the way the kernel would for a packet of the network: rules that pass
everything (a bare ``accept``) or everything of the bridge (``iifname "br"
accept`` and ``oifname "br" accept``) let it through; an unconditional
``drop``/``reject`` or a ``drop`` policy stops it.  Unconditional ``jump`` and
``goto`` are followed; rules with other matches cannot be judged and are
skipped (they may drop some traffic; that is the other firewall's business).

With the user's explicit opt-in, ``pass_rules`` are the two accept rules for
the bridge, marked with ``pass_comment(bridge)``, that go to the top of the
blocking chain, or of the ``DOCKER-USER`` chain where the base chain jumps
there first (Docker's documented place for such rules).  They are the one
exception to "never edit another firewall's tables", and ``marked_rules``
finds them again for removal.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import (
    COLLECTION_PREFIX,
    DROP_VERDICTS,
    NEUTRAL_STATEMENTS,
    Rule,
    match,
    meta,
    rule_text,
    verdict,
)

FORWARD_HOOK = 'forward'
DOCKER_USER_CHAIN = 'DOCKER-USER'
PASS_MARKER = 'nqrust.microvm pass'
MAX_JUMP_DEPTH = 16


def pass_comment(bridge):
    """``'nqrust.microvm pass fcbr0'``: the comment marking the opt-in accept rules of one bridge."""
    return '%s %s' % (PASS_MARKER, bridge)


def is_collection_table(family, name):  # pylint: disable=unused-argument
    """Tables of the collection (``nqrust_microvm*``) are never judged as another firewall."""
    return name.startswith(COLLECTION_PREFIX)


@dataclasses.dataclass(frozen=True)
class Blocker(object):
    """A base chain of another firewall that would drop the network's traffic.

    ``reason`` says how (``'policy drop'`` or the dropping rule), ``target``
    is the chain (``nftables.Chain``) the opt-in accept rules go to, ``None``
    where they cannot help (bridge family).
    """

    chain: object
    reason: str
    target: Optional[object] = None

    def describe(self):
        chain = self.chain
        text = 'table %s %s, base chain %s (hook %s, priority %s, policy %s): %s' % (
            chain.family, chain.table, chain.name, chain.hook, chain.prio, chain.policy or 'accept', self.reason)
        return text

    def to_dict(self):
        chain = self.chain
        return {
            'family': chain.family, 'table': chain.table, 'chain': chain.name, 'hook': chain.hook,
            'priority': chain.prio, 'policy': chain.policy, 'reason': self.reason,
            'pass_chain': self.target.ref if self.target is not None else None,
        }


def relevant_families(mode, has_ipv4, has_ipv6, br_netfilter):
    """The nftables families whose forward base chains see the network's traffic.

    nat and routed networks route their CIDRs' families; with br_netfilter
    (``bridge-nf-call-iptables``/``-ip6tables``) even frames between guests of
    one bridge pass the IP forward hooks.  Bridge-family chains see every
    bridged frame.  ``br_netfilter`` is ``{'ip': bool, 'ip6': bool}``.
    """
    if mode == 'open':
        return set()
    families = {'bridge'}
    if mode in ('nat', 'routed'):
        if has_ipv4:
            families.add('ip')
        if has_ipv6:
            families.add('ip6')
    for family in ('ip', 'ip6'):
        if br_netfilter.get(family):
            families.add(family)
    if families & {'ip', 'ip6'}:
        families.add('inet')
    return families


def _statements(rule):
    return [stmt for stmt in rule.expr if not (isinstance(stmt, dict) and len(stmt) == 1 and next(iter(stmt)) in NEUTRAL_STATEMENTS)]


def _verdict_of(stmt):
    if isinstance(stmt, dict) and len(stmt) == 1:
        name = next(iter(stmt))
        if name in ('accept', 'drop', 'reject', 'return', 'jump', 'goto', 'continue'):
            return name
    return None


def _iface_match(stmt, bridge):
    """``'in'``/``'out'`` when ``stmt`` is ``iifname``/``oifname`` equal to (or a set holding) ``bridge``."""
    if not (isinstance(stmt, dict) and 'match' in stmt):
        return None
    data = stmt['match']
    left = data.get('left')
    if not (isinstance(left, dict) and 'meta' in left) or data.get('op', '==') not in ('==', 'in'):
        return None
    key = left['meta'].get('key')
    right = data.get('right')
    hit = right == bridge or (isinstance(right, dict) and isinstance(right.get('set'), list) and bridge in right['set'])
    if not hit:
        return None
    return {'iifname': 'in', 'oifname': 'out'}.get(key)


class _Walk(object):
    def __init__(self, ruleset, bridge, base):
        self.ruleset = ruleset
        self.bridge = bridge
        self.base = base
        self.passed = set()       # 'in', 'out': directions accepted for the bridge so far
        self.jumped = []          # regular chains entered by unconditional jumps, in order
        self.ignore = pass_comment(bridge)

    def chain(self, name, depth=0, stack=()):
        """('accept'|'drop'|'return'|'end', rule or None) for one chain."""
        if depth > MAX_JUMP_DEPTH or name in stack:
            return 'return', None
        family, table = self.base.family, self.base.table
        for rule in self.ruleset.rules_of(family, table, name):
            if rule.comment == self.ignore:
                continue  # our own opt-in rules never count: they are what the opt-in manages
            stmts = _statements(rule)
            if not stmts:
                continue
            last = _verdict_of(stmts[-1])
            conditions = stmts[:-1]
            if last is None:
                continue
            if not conditions:
                if last == 'accept':
                    return 'accept', rule
                if last in DROP_VERDICTS:
                    return 'drop', rule
                if last == 'return':
                    return 'return', rule
                if last in ('jump', 'goto'):
                    target = stmts[-1][last].get('target')
                    if self.ruleset.chain(family, table, target) is not None and target not in self.jumped:
                        self.jumped.append(target)
                    outcome, why = self.chain(target, depth + 1, stack + (name,))
                    if outcome in ('accept', 'drop'):
                        return outcome, why
                    if last == 'goto':
                        return 'end', None
                continue
            if last == 'accept' and len(conditions) == 1:
                direction = _iface_match(conditions[0], self.bridge)
                if direction:
                    self.passed.add(direction)
        return 'return', None


def _blocked(walk, outcome, rule, base):
    if walk.passed >= {'in', 'out'}:
        return None
    if outcome == 'drop':
        where = '' if rule.chain == base.name else ' of chain %s' % rule.chain
        return 'rule "%s" (handle %s%s) drops all traffic that reaches it' % (rule_text(rule.expr, rule.comment), rule.handle, where)
    if outcome in ('return', 'end') and base.policy == 'drop':
        return 'policy drop'
    return None


def find_blockers(ruleset, bridge, families):
    """``Blocker`` for every base chain on the forward hook, of ``families``, outside the collection's tables, that would drop the bridge's traffic."""
    found = []
    for base in ruleset.base_chains(FORWARD_HOOK):
        if base.family not in families or is_collection_table(base.family, base.table):
            continue
        walk = _Walk(ruleset, bridge, base)
        outcome, rule = walk.chain(base.name)
        if outcome == 'accept':
            continue
        reason = _blocked(walk, outcome, rule, base)
        if reason is None:
            continue
        target = None
        if base.family != 'bridge':
            target = base
            if DOCKER_USER_CHAIN in walk.jumped:
                target = ruleset.chain(base.family, base.table, DOCKER_USER_CHAIN)
        found.append(Blocker(base, reason, target))
    return found


def pass_rules(chain, bridge):
    """The two marked accept rules for ``bridge`` in ``chain`` (``iifname`` first, as they end up listed)."""
    comment = pass_comment(bridge)
    return [Rule(chain.family, chain.table, chain.name, (match(meta(key), bridge), verdict('accept')), comment)
            for key in ('iifname', 'oifname')]


def marked_rules(ruleset, bridge):
    """The opt-in accept rules of ``bridge`` now in other firewalls' chains (found by their comment)."""
    comment = pass_comment(bridge)
    return [rule for rule in ruleset.rules if rule.comment == comment and not is_collection_table(rule.family, rule.table)]


def refusal_message(network, bridge, mode, blockers, marked=()):
    """The failure message: what is in the way, that nothing changed, and how to resolve it."""
    text = 'network %s (bridge %s, mode %s): another firewall would silently drop its forwarded traffic: %s. Nothing was changed.' % (
        network, bridge, mode, '; '.join(blocker.describe() for blocker in blockers))
    fixes = []
    for blocker in blockers:
        if blocker.target is None:
            fixes.append('in table %s %s chain %s, accept the frames of the ports of %s before they are dropped, '
                         'or remove that chain' % (blocker.chain.family, blocker.chain.table, blocker.chain.name, bridge))
        else:
            fixes.append('add "iifname %s accept" and "oifname %s accept" at the top of chain %s' % (bridge, bridge, blocker.target.ref))
    text += ' To resolve it: ' + '; '.join(fixes)
    if any(blocker.chain.table == 'filter' and blocker.chain.family in ('ip', 'ip6') for blocker in blockers):
        text += ' (for Docker: iptables -I DOCKER-USER -i %s -j ACCEPT; iptables -I DOCKER-USER -o %s -j ACCEPT)' % (bridge, bridge)
    if all(blocker.target is not None for blocker in blockers):
        text += ('; or set coexistence=allow to have this module add these accept rules, marked with the comment "%s", '
                 'and remove them again with state=absent' % pass_comment(bridge))
    else:
        text += '; coexistence=allow cannot add accept rules to bridge-family chains'
    if marked:
        text += ('. Accept rules that an earlier run with coexistence=allow added are in place (%s); '
                 'coexistence=fail does not keep them' % ', '.join(sorted({rule.chain_ref for rule in marked})))
    return text + '.'


__all__ = [
    'Blocker', 'DOCKER_USER_CHAIN', 'PASS_MARKER', 'find_blockers', 'is_collection_table', 'marked_rules', 'pass_comment',
    'pass_rules', 'refusal_message', 'relevant_families',
]
