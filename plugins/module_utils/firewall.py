# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The firewall of one network: parameters, host state, plan, diff view, handlers and report.

The pieces follow the module contract (see ``converge``):

* ``spec_from_params`` validates the parameters into a ``FirewallSpec`` (pure).
* ``read_host`` reads the whole nftables ruleset once (``nft -j list ruleset``),
  the forwarding and br_netfilter sysctls, and (for ``state: present``) the
  links and, when the uplinks are not given, the routes (one netlink dump each).
* ``plan_firewall`` (pure) checks the host (bridge, uplinks, other firewalls in
  the way), then plans: the network's table (``firewall_rules``) created,
  replaced or deleted; the opt-in accept rules in other firewalls' chains
  (``firewall_coexistence``) added or removed; forwarding turned on.  All
  nftables work of a plan is one ``nft -j -f -`` transaction.
* ``view_of`` is the diff's form: the network's table as rule texts, the
  opt-in rules, the forwarding switches.
* ``FirewallHandlers`` applies the plan (the transaction first, forwarding
  after it, so forwarding never runs ahead of the rules) and can undo it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Optional

from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_coexistence import (
    find_blockers,
    marked_rules,
    pass_rules,
    refusal_message,
    relevant_families,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.firewall_rules import (
    MODES,
    MODES_WITH_TABLE,
    MODES_WITH_UPLINK,
    TABLE_FAMILY,
    desired_table,
    forwarding_needed,
    table_name,
    table_of,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.ip_forwarding import (
    FORWARDING,
    read_br_netfilter,
    read_forwarding,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import RT_TABLE_MAIN, RTN_UNICAST, NetlinkSession
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import (
    add_table,
    delete_rule,
    delete_table,
    insert_rule,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.plan import Change, Phase
from ansible_collections.nqrust.microvm.plugins.module_utils.sysctl import ProcSys
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import (
    ValidationErrors,
    Validator,
    cidr,
    interface_name,
)

STATES = ('present', 'absent')
COEXISTENCE = ('fail', 'allow')
NAME_MAX = 255

ALLOWED_NAME = 'name must be a string of 1 to %d characters (the network\'s display name)' % NAME_MAX
ALLOWED_MODE = 'mode must be one of: %s' % ', '.join(MODES)
ALLOWED_STATE = 'state must be one of: %s' % ', '.join(STATES)
ALLOWED_COEXISTENCE = 'coexistence must be one of: %s' % ', '.join(COEXISTENCE)
ALLOWED_UPLINKS = ('uplinks must be a list of distinct interface names other than the bridge; '
                   'in nat and routed mode existing links that are not ports of the bridge, in bridged mode ports of the bridge; '
                   'when omitted, nat and routed use the interfaces of the host\'s default routes')
ALLOWED_BRIDGE_ON_HOST = 'bridge must name an existing Linux bridge (create it first, for example with nqrust.microvm.fc_bridge)'
ALLOWED_CIDR_FOR_MODE = ('mode %s needs the network\'s IPv4 CIDR (cidr, e.g. 192.168.18.0/24) '
                         'or its IPv6 CIDR (ipv6_cidr, e.g. fd00:18::/64), or both')


class FirewallRefused(Exception):
    """Another firewall is in the way and the module may not (or cannot) make the traffic pass."""


# --------------------------------------------------------------------------- desired state

@dataclasses.dataclass(frozen=True)
class FirewallSpec(object):
    """The validated parameters (``cidr``/``ipv6_cidr`` are ``ipaddress`` networks, ``uplinks`` ``None`` when not given)."""

    name: str
    bridge: str
    mode: str = 'nat'
    cidr: Optional[ipaddress.IPv4Network] = None
    ipv6_cidr: Optional[ipaddress.IPv6Network] = None
    uplinks: Optional[tuple] = None
    state: str = 'present'
    coexistence: str = 'fail'
    bridge_pending: bool = False   # check mode only: an earlier task creates the bridge

    @property
    def present(self):
        return self.state == 'present'

    @property
    def filtered(self):
        """Whether the collection filters this network's traffic (present, and not open)."""
        return self.present and self.mode != 'open'


def _choice(validator, param, value, choices, allowed):
    if value not in choices:
        validator.add(param, value, allowed)
        return None
    return value


def _network(validator, param, value, family):
    if value is None:
        return None
    iface = validator.check(cidr, param, value, family=family, require_network=True)
    return iface.network if iface is not None else None


def _uplinks(validator, value, bridge):
    if value is None or value == []:
        return None
    if not isinstance(value, (list, tuple)):
        validator.add('uplinks', value, ALLOWED_UPLINKS, 'not a list')
        return None
    names = []
    for position, item in enumerate(value):
        param = 'uplinks[%d]' % position
        checked = validator.check(interface_name, param, item)
        if checked is None:
            continue
        if checked == bridge:
            validator.add(param, item, ALLOWED_UPLINKS, 'is the bridge itself')
        elif checked in names:
            validator.add('uplinks', list(value), ALLOWED_UPLINKS, 'lists %s more than once' % checked)
        else:
            names.append(checked)
    return tuple(names)


def spec_from_params(validator, params):
    """A ``FirewallSpec`` from module parameters; every problem is recorded on ``validator``."""
    bridge = validator.check(interface_name, 'bridge', params.get('bridge'))
    name = params.get('name')
    if name is None:
        name = bridge
    elif not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        validator.add('name', name, ALLOWED_NAME)
    mode = _choice(validator, 'mode', params.get('mode', 'nat'), MODES, ALLOWED_MODE)
    state = _choice(validator, 'state', params.get('state', 'present'), STATES, ALLOWED_STATE)
    coexistence = _choice(validator, 'coexistence', params.get('coexistence', 'fail'), COEXISTENCE, ALLOWED_COEXISTENCE)
    ipv4 = _network(validator, 'cidr', params.get('cidr'), 'ipv4')
    ipv6 = _network(validator, 'ipv6_cidr', params.get('ipv6_cidr'), 'ipv6')
    uplinks = _uplinks(validator, params.get('uplinks'), bridge)
    if (state == 'present' and mode in MODES_WITH_UPLINK and params.get('cidr') is None and params.get('ipv6_cidr') is None):
        validator.add('cidr', None, ALLOWED_CIDR_FOR_MODE % mode, 'neither cidr nor ipv6_cidr is given')
    if not validator.ok:
        return None
    return FirewallSpec(name=name, bridge=bridge, mode=mode, cidr=ipv4, ipv6_cidr=ipv6, uplinks=uplinks,
                        state=state, coexistence=coexistence, bridge_pending=bool(params.get('bridge_pending')))


# --------------------------------------------------------------------------- the host

class FirewallSession(object):
    """What the firewall reads and writes: nftables (``NftCli``), ``/proc/sys`` and netlink."""

    def __init__(self, nft, procsys=None, netlink=None):
        self.nft = nft
        self.procsys = procsys or ProcSys()
        self.netlink = netlink
        self._owns_netlink = netlink is None

    def __enter__(self):
        if self.netlink is None:
            self.netlink = NetlinkSession()
            self.netlink.open()
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        if self._owns_netlink and self.netlink is not None:
            self.netlink.close()
            self.netlink = None
        return False


@dataclasses.dataclass
class HostState(object):
    """What one read found: the ruleset, sysctls, and (present) links and default-route interfaces."""

    ruleset: object
    forwarding: dict
    br_netfilter: dict
    links: dict = dataclasses.field(default_factory=dict)
    default_uplinks: dict = dataclasses.field(default_factory=dict)

    def link(self, name):
        return self.links.get(name)

    def ports(self, bridge):
        link = self.links.get(bridge)
        if link is None:
            return ()
        return tuple(sorted(item.name for item in self.links.values() if item.master_index == link.index))


def default_route_interfaces(routes, links_by_index):
    """``{4: (names...), 6: (names...)}``: interfaces of the main table's default routes (multipath hops included)."""
    found = {4: set(), 6: set()}
    for route in routes:
        if route.table != RT_TABLE_MAIN or route.type != RTN_UNICAST or route.destination != 'default':
            continue
        for index in ([route.oif] if route.oif else []) + list(route.multipath_oifs):
            link = links_by_index.get(index)
            if link is not None:
                found[route.version].add(link.name)
    return dict((version, tuple(sorted(names))) for version, names in found.items())


def read_host(session, spec):
    """One read of everything the plan needs."""
    host = HostState(ruleset=session.nft.list_ruleset(), forwarding=read_forwarding(session.procsys),
                     br_netfilter=read_br_netfilter(session.procsys))
    if spec.present:
        links = session.netlink.links()
        host.links = dict((link.name, link) for link in links)
        if spec.mode in MODES_WITH_UPLINK and spec.uplinks is None:
            by_index = dict((link.index, link) for link in links)
            host.default_uplinks = default_route_interfaces(session.netlink.routes(), by_index)
    return host


def check_bridge(spec, host, validator):
    link = host.link(spec.bridge)
    if link is None and spec.bridge_pending:
        return
    if link is None:
        validator.add('bridge', spec.bridge, ALLOWED_BRIDGE_ON_HOST, 'no link of that name exists')
    elif not link.is_bridge:
        validator.add('bridge', spec.bridge, ALLOWED_BRIDGE_ON_HOST, 'is a %s, not a bridge' % link.kind_label)


def resolve_uplinks(spec, host, validator):
    """The uplinks the rules use: the given ones (checked against the host) or the default routes' interfaces."""
    ports = host.ports(spec.bridge)
    if spec.mode == 'bridged':
        for position, name in enumerate(spec.uplinks or ()):
            if name not in ports and not spec.bridge_pending:
                validator.add('uplinks[%d]' % position, name, ALLOWED_UPLINKS,
                              'is not a port of bridge %s (in bridged mode the uplink joins the bridge: see fc_bridge uplink)' % spec.bridge)
        return tuple(spec.uplinks or ())
    if spec.mode not in MODES_WITH_UPLINK:
        return ()
    if spec.uplinks is not None:
        for position, name in enumerate(spec.uplinks):
            param = 'uplinks[%d]' % position
            if host.link(name) is None:
                validator.add(param, name, ALLOWED_UPLINKS, 'no link of that name exists')
            elif name in ports:
                validator.add(param, name, ALLOWED_UPLINKS, 'is a port of bridge %s' % spec.bridge)
        return spec.uplinks
    versions = [version for version, net in ((4, spec.cidr), (6, spec.ipv6_cidr)) if net is not None]
    found = sorted(set(name for version in versions for name in host.default_uplinks.get(version, ())))
    missing = [version for version in versions if not host.default_uplinks.get(version)]
    if missing:
        validator.add('uplinks', None, ALLOWED_UPLINKS, 'the host has no %s default route to take the uplink from'
                      % ' and no '.join('IPv%d' % version for version in missing))
    for name in found:
        if name == spec.bridge or name in ports:
            validator.add('uplinks', None, ALLOWED_UPLINKS, 'the default route leaves by %s, which is the bridge or one of its ports' % name)
    return tuple(found)


# --------------------------------------------------------------------------- plan

@dataclasses.dataclass
class FirewallPlan(object):
    changes: list
    uplinks: tuple = ()
    desired: Optional[object] = None          # TableContent or None
    current: Optional[object] = None          # TableContent or None
    table_changed: bool = False
    marked: list = dataclasses.field(default_factory=list)      # opt-in rules found
    keep_rules: list = dataclasses.field(default_factory=list)
    add_rules: list = dataclasses.field(default_factory=list)
    remove_rules: list = dataclasses.field(default_factory=list)
    enable: list = dataclasses.field(default_factory=list)      # IP versions whose forwarding goes on
    blockers: list = dataclasses.field(default_factory=list)
    commands: list = dataclasses.field(default_factory=list)

    @property
    def pass_rules_after(self):
        return list(self.keep_rules) + list(self.add_rules)


def _count(content):
    return len(content.rules) if content is not None else 0


def _table_change(spec, desired, current):
    if desired is not None and current is None:
        return Change('create', 'table', desired.table.ref, Phase.CREATE, details={'chains': desired.view()},
                      description="create table '%s' (mode %s, %d rules)" % (desired.table.ref, spec.mode, _count(desired)))
    if desired is not None and current.key() != desired.key():
        return Change('replace', 'table', desired.table.ref, Phase.CREATE,
                      details={'before': current.view(), 'after': desired.view()},
                      description="replace table '%s' (mode %s: %d rules, before %d)" % (
                          desired.table.ref, spec.mode, _count(desired), _count(current)))
    if desired is None and current is not None:
        return Change('delete', 'table', current.table.ref, Phase.CREATE, details={'chains': current.view()},
                      description="delete table '%s' (%d rules)" % (current.table.ref, _count(current)))
    return None


def _rule_change(action, rule):
    text = rule.text()
    return Change(action, 'rule', '%s: %s' % (rule.chain_ref, text), Phase.CREATE,
                  details={'chain': rule.chain_ref, 'rule': text, 'handle': rule.handle},
                  description="%s rule '%s' %s chain '%s'" % (action, text, 'to' if action == 'add' else 'from', rule.chain_ref))


def _plan_pass_rules(spec, host, plan):
    plan.marked = marked_rules(host.ruleset, spec.bridge)
    wanted = []
    if spec.filtered:
        families = relevant_families(spec.mode, spec.cidr is not None, spec.ipv6_cidr is not None, host.br_netfilter)
        plan.blockers = find_blockers(host.ruleset, spec.bridge, families)
        if plan.blockers:
            if spec.coexistence != 'allow' or any(blocker.target is None for blocker in plan.blockers):
                raise FirewallRefused(refusal_message(spec.name, spec.bridge, spec.mode, plan.blockers, plan.marked))
            seen = set()
            for blocker in plan.blockers:
                for rule in pass_rules(blocker.target, spec.bridge):
                    if (rule.chain_ref, rule.key()) not in seen:
                        seen.add((rule.chain_ref, rule.key()))
                        wanted.append(rule)
    left = list(plan.marked)
    for rule in wanted:
        same = [have for have in left if have.chain_ref == rule.chain_ref and have.key() == rule.key()]
        if same:
            plan.keep_rules.append(same[0])
            left.remove(same[0])
        else:
            plan.add_rules.append(rule)
    plan.remove_rules = left


def plan_firewall(spec, host):
    """(spec, host) -> ``FirewallPlan``; raises ``ValidationErrors`` or ``FirewallRefused`` before anything changes."""
    validator = Validator()
    uplinks = ()
    if spec.present:
        check_bridge(spec, host, validator)
        uplinks = resolve_uplinks(spec, host, validator)
        validator.raise_if_any()
    plan = FirewallPlan(changes=[], uplinks=tuple(uplinks))
    if spec.present and spec.mode in MODES_WITH_TABLE:
        plan.desired = desired_table(spec.mode, spec.bridge, spec.cidr, spec.ipv6_cidr, uplinks)
    plan.current = host.ruleset.content(TABLE_FAMILY, table_name(spec.bridge))
    table_change = _table_change(spec, plan.desired, plan.current)
    plan.table_changed = table_change is not None
    _plan_pass_rules(spec, host, plan)

    changes = []
    commands = [delete_rule(rule) for rule in plan.remove_rules]
    changes.extend(_rule_change('remove', rule) for rule in plan.remove_rules)
    if table_change is not None:
        changes.append(table_change)
        if plan.desired is not None:
            commands.extend(plan.desired.replace_commands())
        else:
            commands.append(delete_table(plan.current.table))
    # inserted at the top one after the other: the last inserted ends up first
    commands.extend(insert_rule(rule) for rule in reversed(plan.add_rules))
    changes.extend(_rule_change('add', rule) for rule in plan.add_rules)
    plan.commands = commands

    if spec.present:
        needed = forwarding_needed(spec.mode, spec.cidr, spec.ipv6_cidr)
        for version in (4, 6):
            if needed[version] and not host.forwarding.get(version):
                plan.enable.append(version)
                changes.append(Change('enable', 'sysctl', FORWARDING[version], Phase.UP,
                                      details={'before': {'value': 0}, 'after': {'value': 1}},
                                      description="enable sysctl '%s' (0 -> 1)" % FORWARDING[version]))
    plan.changes = changes
    return plan


def undo_commands(plan, bridge, ruleset_now):
    """The transaction that puts back what ``plan.commands`` changed (given the ruleset after it)."""
    commands = []
    if plan.table_changed:
        if plan.current is not None:
            commands.extend(plan.current.replace_commands())
        else:
            commands.extend([add_table(plan.desired.table), delete_table(plan.desired.table)])
    before = set((rule.chain_ref, rule.handle) for rule in plan.marked)
    commands.extend(delete_rule(rule) for rule in marked_rules(ruleset_now, bridge) if (rule.chain_ref, rule.handle) not in before)
    commands.extend(insert_rule(rule) for rule in plan.remove_rules)
    return commands


# --------------------------------------------------------------------------- views

def _pass_view(rules):
    shown = {}
    for rule in rules:
        shown.setdefault(rule.chain_ref, []).append(rule.text())
    return dict((chain, sorted(texts)) for chain, texts in shown.items())


def view_of(spec, table_content, pass_rules_now, forwarding):
    """The diff's form of the network's firewall (stable: sorted by ``render_state``)."""
    return {
        'network': spec.name,
        'bridge': spec.bridge,
        'nftables': {table_content.table.ref: table_content.view()} if table_content is not None else {},
        'pass_rules': _pass_view(pass_rules_now),
        'forwarding': dict((FORWARDING[version], bool(forwarding.get(version))) for version in (4, 6)),
    }


def predicted_forwarding(host, plan):
    forwarding = dict(host.forwarding)
    for version in plan.enable:
        forwarding[version] = True
    return forwarding


# --------------------------------------------------------------------------- apply

class FirewallHandlers(object):
    """``do``/``undo`` for ``apply_changes``.

    The first nftables change runs the plan's whole transaction (all table and
    rule changes at once); the others of the same plan are then already done.
    Forwarding changes come after it (phase ``up``).
    """

    def __init__(self, session, spec, plan):
        self.session = session
        self.spec = spec
        self.plan = plan
        self.committed = False

    def do(self, change):
        if change.kind in ('table', 'rule'):
            if self.committed:
                return None
            self.session.nft.apply(self.plan.commands, operation='applying the nftables rules of network %s (bridge %s)'
                                   % (self.spec.name, self.spec.bridge))
            self.committed = True
            return 'transaction'
        if change.kind == 'sysctl':
            previous = self.session.procsys.read(change.target)
            self.session.procsys.write(change.target, '1')
            return previous
        raise LookupError('no handler for %s %s' % (change.action, change.kind))

    def undo(self, change, result):
        if change.kind in ('table', 'rule'):
            if result == 'transaction':
                ruleset = self.session.nft.list_ruleset()
                self.session.nft.apply(undo_commands(self.plan, self.spec.bridge, ruleset),
                                       operation='restoring the nftables rules of network %s' % self.spec.name)
                self.committed = False
            return
        if change.kind == 'sysctl' and result is not None:
            self.session.procsys.write(change.target, result)


# --------------------------------------------------------------------------- report

def _listing(content, with_handles):
    if content is None:
        return []
    objects = [{'table': dict(content.table.to_json(), **({'handle': content.table.handle} if with_handles and content.table.handle is not None else {}))}]
    for chain in content.chains:
        data = chain.to_json()
        if with_handles and chain.handle is not None:
            data['handle'] = chain.handle
        objects.append({'chain': data})
    objects.extend({'rule': rule.to_json(with_handle=with_handles)} for rule in content.rules)
    return objects


def shape_firewall(spec, plan, content, pass_rules_now, forwarding, with_handles):
    return {
        'name': spec.name,
        'bridge': spec.bridge,
        'mode': spec.mode,
        'state': spec.state,
        'table': content.table.ref if content is not None else None,
        'uplinks': list(plan.uplinks),
        'rules': content.view() if content is not None else {},
        'nftables': _listing(content, with_handles),
        'pass_rules': [{'chain': rule.chain_ref, 'rule': rule.text()} for rule in pass_rules_now],
        'forwarding': dict((FORWARDING[version], bool(forwarding.get(version))) for version in (4, 6)),
        'blockers': [blocker.to_dict() for blocker in plan.blockers],
    }


class FirewallTask(object):
    """The module's five pieces for ``converge``, sharing what one run read and planned."""

    def __init__(self, params):
        self.params = params
        self.spec = None
        self.host = None
        self.plan_result = None

    def validate(self, validator):
        self.spec = spec_from_params(validator, self.params)
        return self.spec

    def read(self, session):
        self.host = read_host(session, self.spec)
        return self.host

    def plan(self, spec, host):
        self.plan_result = plan_firewall(spec, host)
        return list(self.plan_result.changes)

    def after(self, spec, host, changes):  # pylint: disable=unused-argument
        plan = self.plan_result
        return view_of(spec, plan.desired, plan.pass_rules_after, predicted_forwarding(host, plan))

    def view(self, state):
        if isinstance(state, HostState):
            return view_of(self.spec, state.ruleset.content(TABLE_FAMILY, table_name(self.spec.bridge)),
                           marked_rules(state.ruleset, self.spec.bridge), state.forwarding)
        return state

    def handlers(self, session):
        handlers = FirewallHandlers(session, self.spec, self.plan_result)
        return handlers.do, handlers.undo

    def report(self, session, changes, check_mode):
        plan = self.plan_result
        if check_mode:
            # nft --check: the transaction the real run would send, validated by the kernel, nothing applied
            session.nft.apply(plan.commands, check=True, operation='checking the nftables rules of network %s (bridge %s)'
                              % (self.spec.name, self.spec.bridge))
            return {'firewall': shape_firewall(self.spec, plan, plan.desired, plan.pass_rules_after,
                                               predicted_forwarding(self.host, plan), with_handles=False)}
        if changes:
            ruleset = session.nft.list_ruleset()
            forwarding = read_forwarding(session.procsys)
        else:
            ruleset, forwarding = self.host.ruleset, self.host.forwarding
        content = ruleset.content(TABLE_FAMILY, table_name(self.spec.bridge))
        return {'firewall': shape_firewall(self.spec, plan, content, marked_rules(ruleset, self.spec.bridge), forwarding,
                                           with_handles=True)}


OPERATIONAL_ERRORS = (ValidationErrors, FirewallRefused)

__all__ = [
    'FirewallHandlers', 'FirewallPlan', 'FirewallRefused', 'FirewallSession', 'FirewallSpec', 'FirewallTask', 'HostState',
    'OPERATIONAL_ERRORS', 'default_route_interfaces', 'plan_firewall', 'read_host', 'spec_from_params', 'table_of',
    'undo_commands', 'view_of',
]
