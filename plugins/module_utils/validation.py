# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Semantic validation of module parameters.

Step 1 of the module contract: Ansible's ``argument_spec`` checks types, the
validators here check meaning (interface names, VLAN ids and ranges, CIDRs,
gateways, DHCP ranges, MAC addresses) before anything on the host is touched.

Every validator takes the parameter name first (used only in messages; nested
names such as ``networks[0].cidr`` are fine), returns a normalised value and
raises ``ValidationError`` naming the parameter, the value and what is allowed.
``Validator`` collects the errors of many checks so a module reports them all
in one failure.

Pure Python, standard library only; importable on Python 3.8+.
"""

from __future__ import annotations

import ipaddress
import re


IFNAME_MAX_BYTES = 15
VLAN_MIN = 1
VLAN_MAX = 4094

_VALUE_SHOW_MAX = 120
_INT_RE = re.compile(r'^\s*[+-]?[0-9]+\s*$')
_VLAN_RANGE_RE = re.compile(r'^\s*([0-9]+)\s*-\s*([0-9]+)\s*$')
_MAC_RE = re.compile(r'^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$')
_IPV4_LEADING_ZERO_RE = re.compile(r'(^|\.)0[0-9]')

ALLOWED_IFNAME = ("interface name must be 1 to %d bytes of UTF-8, not '.' or '..', "
                  "without '/', ':', whitespace or NUL" % IFNAME_MAX_BYTES)
ALLOWED_VLAN_ID = 'VLAN id must be an integer from %d to %d' % (VLAN_MIN, VLAN_MAX)
ALLOWED_VLAN_RANGES = ('VLANs must be a list of ids from %d to %d and ranges "START-END" with START <= END, '
                       'none overlapping or repeated' % (VLAN_MIN, VLAN_MAX))
ALLOWED_MAC = ('MAC address must be 6 colon-separated hex octets such as 02:fc:00:00:00:01, '
               'unicast (not multicast or broadcast) and not all zero')
ALLOWED_LOCAL_MAC = ('MAC address must be 6 colon-separated hex octets such as aa:fc:00:00:00:01, '
                     'unicast and locally administered (first octet: bit 0x01 clear, bit 0x02 set)')


class ValidationError(Exception):
    """A parameter value that is not allowed.

    ``param`` names the parameter, ``value`` is the value as given, ``allowed``
    says what would be accepted and ``problem`` (optional) says what exactly is
    wrong with this value.  The message names all of them::

        parameter 'vlan' (value 4095): VLAN id must be an integer from 1 to 4094
    """

    def __init__(self, param, value, allowed, problem=None):
        self.param = param
        self.value = value
        self.allowed = allowed
        self.problem = problem
        super(ValidationError, self).__init__(self._format())

    def _format(self):
        head = "parameter '%s' (value %s)" % (self.param, show_value(self.value))
        if self.problem:
            return '%s: %s; %s' % (head, self.problem, self.allowed)
        return '%s: %s' % (head, self.allowed)

    def __str__(self):
        return self._format()


class ValidationErrors(Exception):
    """Several ``ValidationError`` at once (raised by ``Validator.raise_if_any``)."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(ValidationErrors, self).__init__(self.message)

    @property
    def messages(self):
        return [str(err) for err in self.errors]

    @property
    def message(self):
        if len(self.errors) == 1:
            return self.messages[0]
        return '%d invalid parameters: %s' % (len(self.errors), '; '.join(self.messages))

    def __str__(self):
        return self.message


class Validator(object):
    """Collects validation errors so that all of them are reported at once.

    ::

        v = Validator()
        name = v.check(interface_name, 'name', params['name'])
        net = v.check(cidr, 'cidr', params['cidr'])
        if net is not None and params['gateway'] is not None:
            v.check(gateway, 'gateway', params['gateway'], net, cidr_param='cidr')
        v.raise_if_any()          # or: v.fail_module(module)

    ``check`` returns the validator's normalised value, or ``None`` when it
    failed, so dependent checks can be skipped.
    """

    def __init__(self):
        self.errors = []

    def check(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            self.errors.append(exc)
            return None

    def add(self, param, value, allowed, problem=None):
        """Record an error found by the module's own logic."""
        self.errors.append(ValidationError(param, value, allowed, problem))

    @property
    def ok(self):
        return not self.errors

    @property
    def messages(self):
        return [str(err) for err in self.errors]

    def raise_if_any(self):
        if self.errors:
            raise ValidationErrors(self.errors)

    def fail_module(self, module):
        """``module.fail_json`` with every collected message, if there are any."""
        if self.errors:
            exc = ValidationErrors(self.errors)
            module.fail_json(msg=exc.message, validation_errors=exc.messages)


def show_value(value):
    """A short, unambiguous rendering of a value for messages."""
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface,
                          ipaddress.IPv4Network, ipaddress.IPv6Network,
                          ipaddress.IPv4Address, ipaddress.IPv6Address)):
        text = repr(str(value))
    else:
        text = repr(value)
    if len(text) > _VALUE_SHOW_MAX:
        text = text[:_VALUE_SHOW_MAX - 3] + '...'
    return text


# --------------------------------------------------------------------------- interface names

def interface_name(param, value):
    """A Linux interface name: 1-15 bytes of UTF-8, not '.'/'..', no '/', ':', whitespace or NUL.

    These are the kernel's own rules (``dev_valid_name``) plus ':', which the
    kernel tolerates but which old tools read as an alias label.
    """
    if not isinstance(value, str):
        raise ValidationError(param, value, ALLOWED_IFNAME, 'not a string')
    size = len(value.encode('utf-8'))
    if size == 0:
        raise ValidationError(param, value, ALLOWED_IFNAME, 'empty')
    if size > IFNAME_MAX_BYTES:
        raise ValidationError(param, value, ALLOWED_IFNAME, 'is %d bytes long' % size)
    if value in ('.', '..'):
        raise ValidationError(param, value, ALLOWED_IFNAME, "'.' and '..' are reserved")
    for char in value:
        if char == '/' or char == ':' or char == '\0':
            raise ValidationError(param, value, ALLOWED_IFNAME, 'contains %r' % char)
        if char.isspace():
            raise ValidationError(param, value, ALLOWED_IFNAME, 'contains whitespace')
    return value


# --------------------------------------------------------------------------- VLANs

def _parse_int(value):
    """int from an int or a decimal string; ``None`` for anything else (bools and floats included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value.strip())
    return None


def vlan_id(param, value):
    """A VLAN id 1-4094 as ``int``; numeric strings are accepted, bools and floats are not."""
    number = _parse_int(value)
    if number is None:
        raise ValidationError(param, value, ALLOWED_VLAN_ID, 'not an integer')
    if number < VLAN_MIN or number > VLAN_MAX:
        raise ValidationError(param, value, ALLOWED_VLAN_ID)
    return number


def format_vlan_range(vlan_range):
    """``(10, 10)`` -> ``'10'``, ``(10, 20)`` -> ``'10-20'``."""
    start, end = vlan_range
    return str(start) if start == end else '%d-%d' % (start, end)


def format_vlan_ranges(ranges):
    """``[(1, 1), (10, 20)]`` -> ``'1,10-20'`` (the form ``bridge vlan`` prints)."""
    return ','.join(format_vlan_range(r) for r in ranges)


def expand_vlan_ranges(ranges):
    """Every VLAN id in the ranges, ascending."""
    ids = []
    for start, end in ranges:
        ids.extend(range(start, end + 1))
    return ids


def _one_vlan_range(param, item):
    if isinstance(item, str):
        match = _VLAN_RANGE_RE.match(item)
        if match:
            start, end = int(match.group(1)), int(match.group(2))
            for number in (start, end):
                if number < VLAN_MIN or number > VLAN_MAX:
                    raise ValidationError(param, item, ALLOWED_VLAN_RANGES, '%d is not a VLAN id from %d to %d' % (number, VLAN_MIN, VLAN_MAX))
            if start > end:
                raise ValidationError(param, item, ALLOWED_VLAN_RANGES, 'range is reversed (%d > %d)' % (start, end))
            return (start, end)
    number = _parse_int(item)
    if number is None:
        raise ValidationError(param, item, ALLOWED_VLAN_RANGES, 'not a VLAN id or a "START-END" range')
    if number < VLAN_MIN or number > VLAN_MAX:
        raise ValidationError(param, item, ALLOWED_VLAN_RANGES, '%d is not a VLAN id from %d to %d' % (number, VLAN_MIN, VLAN_MAX))
    return (number, number)


def vlan_ranges(param, value, merge_adjacent=True):
    """VLAN ids and ``"START-END"`` ranges -> sorted list of non-overlapping ``(start, end)`` tuples.

    ``value`` is a list (a single id or range string is taken as a one-item
    list).  Reversed ranges, overlapping ranges and repeated ids are errors;
    the message names the offending items.  With ``merge_adjacent`` (default)
    touching ranges such as ``10-19`` and ``20`` are merged into ``10-20`` so
    that equal sets always compare equal.
    """
    if value is None or isinstance(value, (bool, float, dict)):
        raise ValidationError(param, value, ALLOWED_VLAN_RANGES, 'not a list')
    items = value if isinstance(value, (list, tuple)) else [value]
    parsed = []
    for position, item in enumerate(items):
        parsed.append((_one_vlan_range('%s[%d]' % (param, position), item), item))
    parsed.sort(key=lambda pair: pair[0])
    clashes = []
    reach = None  # the range seen so far that ends last
    previous = None
    for current, dummy in parsed:
        if current == previous:
            clash = '%s is listed more than once' % format_vlan_range(current)
        elif reach is not None and current[0] <= reach[1]:
            clash = '%s and %s overlap' % (format_vlan_range(reach), format_vlan_range(current))
        else:
            clash = None
        if clash and clash not in clashes:
            clashes.append(clash)
        if reach is None or current[1] > reach[1]:
            reach = current
        previous = current
    if clashes:
        raise ValidationError(param, value, ALLOWED_VLAN_RANGES, '; '.join(clashes))
    result = []
    for (start, end), dummy in parsed:
        if result and merge_adjacent and start == result[-1][1] + 1:
            result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


# --------------------------------------------------------------------------- IP addresses

def _family_number(family):
    if family in (None, 'any'):
        return None
    if family in (4, '4', 'ipv4', 'inet'):
        return 4
    if family in (6, '6', 'ipv6', 'inet6'):
        return 6
    raise ValueError('unknown address family %r' % (family,))


def _family_text(version):
    return {4: 'IPv4', 6: 'IPv6', None: 'IPv4 or IPv6'}[version]


def _has_ipv4_leading_zero(text):
    # Python before 3.9.5 reads '010.0.0.1' as 10.0.0.1, later ones refuse it;
    # refuse it everywhere (some tools read a leading zero as octal).
    return '.' in text and ':' not in text and bool(_IPV4_LEADING_ZERO_RE.search(text))


def _as_network(value):
    """The ``ip_network`` of an interface, a network, or their text forms (host bits ignored)."""
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return value.network
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    return ipaddress.ip_network(value, strict=False)


def _reserved_ipv4(network, address):
    """True if ``address`` is the network or broadcast address of an IPv4 network of /30 or larger.

    /31 (RFC 3021) and /32 have no network or broadcast address: every address is usable.
    """
    if network.version != 4 or network.prefixlen >= 31:
        return False
    return address in (network.network_address, network.broadcast_address)


def _subnet_router_anycast(network, address):
    """True for the all-zero host part of an IPv6 subnet (RFC 4291 subnet-router anycast), /126 or larger."""
    return network.version == 6 and network.prefixlen <= 126 and address == network.network_address


def cidr(param, value, family=None, require_network=False, require_host=False):
    """An address with prefix length, e.g. ``10.0.0.1/24`` or ``fd00::1/64``.

    Returns an ``ipaddress.IPv4Interface``/``IPv6Interface`` (``str()`` gives the
    normalised text, ``.network`` the network).

    * ``family``: ``None`` (either), ``'ipv4'``/``4`` or ``'ipv6'``/``6``.
    * ``require_network``: the host bits must be zero (``10.0.0.0/24``), for
      values naming a network.
    * ``require_host``: the address must be usable by a host, i.e. not the
      IPv4 network or broadcast address (below /31), for values assigned to an
      interface.
    """
    version = _family_number(family)
    kind = _family_text(version)
    if require_network:
        allowed = 'CIDR must be an %s network with the host bits zero, e.g. %s' % (kind, '10.0.0.0/24' if version != 6 else 'fd00::/64')
    else:
        allowed = 'CIDR must be an %s address with prefix length, e.g. %s' % (kind, '10.0.0.1/24' if version != 6 else 'fd00::1/64')
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        iface = value
    else:
        if not isinstance(value, str):
            raise ValidationError(param, value, allowed, 'not a string')
        text = value.strip()
        if '/' not in text:
            raise ValidationError(param, value, allowed, 'no prefix length')
        if _has_ipv4_leading_zero(text.split('/', 1)[0]):
            raise ValidationError(param, value, allowed, 'leading zeros are ambiguous')
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise ValidationError(param, value, allowed, str(exc).rstrip('.')) from None
    if version is not None and iface.version != version:
        raise ValidationError(param, value, allowed, 'is an %s address' % _family_text(iface.version))
    if require_network and iface.ip != iface.network.network_address:
        raise ValidationError(param, value, allowed, 'host bits are set (the network is %s)' % iface.network)
    if require_host and _reserved_ipv4(iface.network, iface.ip):
        which = 'network' if iface.ip == iface.network.network_address else 'broadcast'
        raise ValidationError(param, value, allowed + ', not the network or broadcast address', 'is the %s address of %s' % (which, iface.network))
    return iface


def ip_address(param, value, family=None):
    """A single IPv4/IPv6 address without prefix length, returned as an ``ipaddress`` address."""
    version = _family_number(family)
    allowed = 'address must be an %s address without prefix length' % _family_text(version)
    address = _parse_address(param, value, allowed)
    if version is not None and address.version != version:
        raise ValidationError(param, value, allowed, 'is an %s address' % _family_text(address.version))
    return address


def _parse_address(param, value, allowed):
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if not isinstance(value, str):
        raise ValidationError(param, value, allowed, 'not a string')
    text = value.strip()
    if '/' in text:
        raise ValidationError(param, value, allowed, 'has a prefix length')
    if _has_ipv4_leading_zero(text):
        raise ValidationError(param, value, allowed, 'leading zeros are ambiguous')
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValidationError(param, value, allowed, str(exc).rstrip('.')) from None


def gateway(param, value, network, cidr_param='cidr'):
    """A gateway address inside ``network`` (a CIDR string or ``ipaddress`` interface/network).

    Not the IPv4 network or broadcast address (below /31; in /31 and /32 every
    address is usable) and not the IPv6 subnet-router anycast address.
    Returns an ``ipaddress`` address.
    """
    net = _as_network(network)
    allowed = 'gateway must be an address inside %s (%s)' % (cidr_param, net)
    if net.version == 4 and net.prefixlen < 31:
        allowed += ', not its network or broadcast address'
    elif net.version == 6 and net.prefixlen <= 126:
        allowed += ', not its subnet-router anycast address'
    address = _address_in(param, value, net, allowed)
    if _reserved_ipv4(net, address):
        which = 'network' if address == net.network_address else 'broadcast'
        raise ValidationError(param, value, allowed, 'is the %s address' % which)
    if _subnet_router_anycast(net, address):
        raise ValidationError(param, value, allowed, 'is the subnet-router anycast address')
    return address


def _address_in(param, value, net, allowed):
    address = _parse_address(param, value, allowed)
    if address.version != net.version:
        raise ValidationError(param, value, allowed, 'is an %s address' % _family_text(address.version))
    if address not in net:
        raise ValidationError(param, value, allowed, 'is outside %s' % net)
    return address


def dhcp_range(param, start, end, network, gateway_address=None, static_range=None, cidr_param='cidr'):
    """A DHCP pool ``start``-``end`` inside ``network``.

    Both ends inside the network and usable by hosts (not the IPv4 network or
    broadcast address), ``start <= end``, the gateway (if given) outside the
    pool, and the pool clear of ``static_range`` (an optional ``(first, last)``
    pair of addresses kept for static assignment).  Returns ``(start, end)`` as
    ``ipaddress`` addresses.
    """
    net = _as_network(network)
    allowed = 'DHCP range must be START-END inside %s (%s) with START <= END' % (cidr_param, net)
    if net.version == 4 and net.prefixlen < 31:
        allowed += ', not the network or broadcast address'
    if gateway_address is not None:
        allowed += ', not containing the gateway'
    if static_range is not None:
        allowed += ', clear of the static range'
    shown = '%s-%s' % (start, end)
    ends = []
    for which, item in (('start', start), ('end', end)):
        try:
            address = _address_in(param, item, net, allowed)
        except ValidationError as exc:
            raise ValidationError(param, shown, allowed, '%s %s' % (which, exc.problem)) from None
        if _reserved_ipv4(net, address):
            kind = 'network' if address == net.network_address else 'broadcast'
            raise ValidationError(param, shown, allowed, '%s is the %s address' % (which, kind))
        ends.append(address)
    first, last = ends
    if first > last:
        raise ValidationError(param, shown, allowed, 'start is after end')
    if gateway_address is not None:
        gw_addr = ipaddress.ip_address(str(gateway_address))
        if gw_addr.version == net.version and first <= gw_addr <= last:
            raise ValidationError(param, shown, allowed, 'contains the gateway %s' % gw_addr)
    if static_range is not None:
        static_first = ipaddress.ip_address(str(static_range[0]))
        static_last = ipaddress.ip_address(str(static_range[1]))
        if static_first.version == net.version and first <= static_last and static_first <= last:
            raise ValidationError(param, shown, allowed, 'overlaps the static range %s-%s' % (static_first, static_last))
    return (first, last)


# --------------------------------------------------------------------------- MAC addresses

def mac_address(param, value, require_local=False):
    """A unicast MAC, 6 colon-separated hex octets; returned in lower case.

    Multicast (and broadcast) addresses and ``00:00:00:00:00:00`` are refused.
    ``require_local`` also demands the locally administered bit (guest MACs).
    """
    allowed = ALLOWED_LOCAL_MAC if require_local else ALLOWED_MAC
    if not isinstance(value, str):
        raise ValidationError(param, value, allowed, 'not a string')
    if not _MAC_RE.match(value):
        raise ValidationError(param, value, allowed, 'not 6 colon-separated hex octets')
    mac = value.lower()
    first = int(mac[:2], 16)
    if mac == '00:00:00:00:00:00':
        raise ValidationError(param, value, allowed, 'all zero')
    if first & 0x01:
        raise ValidationError(param, value, allowed, 'multicast bit set' if mac != 'ff:ff:ff:ff:ff:ff' else 'broadcast address')
    if require_local and not first & 0x02:
        raise ValidationError(param, value, allowed, 'not locally administered (second-lowest bit of the first octet clear)')
    return mac


def is_locally_administered(mac):
    """True if the MAC's locally administered bit (0x02 of the first octet) is set."""
    return bool(int(mac.split(':', 1)[0], 16) & 0x02)


def is_unicast(mac):
    """True if the MAC's multicast bit (0x01 of the first octet) is clear."""
    return not int(mac.split(':', 1)[0], 16) & 0x01
