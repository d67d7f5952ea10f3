"""Probes for kernel features that tests need, each run in a throwaway lab namespace.

Every probe returns ``(available, reason)``; reason says what was tried and what the kernel
answered, so that a test can ``pytest.skip(reason)``. Results are cached per process.
"""

import functools
import os
import platform

from lab.topology import Lab


def _probe(feature, steps):
    """Run ``ip`` argument lists in a fresh namespace; the first failing one makes the feature unavailable."""
    try:
        with Lab() as lab:
            host = lab.add_host('probe')
            for args in steps:
                result = host.ip(*args, check=False)
                if result.returncode != 0:
                    return False, '%s: not available in kernel %s: `ip %s` failed: %s' % (
                        feature, platform.release(), ' '.join(args), (result.stderr or result.stdout).strip())
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return False, '%s could not be probed in kernel %s: %s' % (feature, platform.release(), exc)
    return True, '%s: available in kernel %s' % (feature, platform.release())


@functools.lru_cache(maxsize=None)
def has_8021q():
    """802.1Q VLAN links (``ip link add link X name X.100 type vlan id 100``)."""
    return _probe('802.1Q VLAN links', [
        ('link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1'),
        ('link', 'add', 'link', 'probe0', 'name', 'probe0.100', 'type', 'vlan', 'id', '100'),
    ])


@functools.lru_cache(maxsize=None)
def has_vlan_filtering():
    """Bridge VLAN filtering (``vlan_filtering 1`` and per-port VLAN membership)."""
    return _probe('bridge VLAN filtering', [
        ('link', 'add', 'probebr0', 'type', 'bridge', 'vlan_filtering', '1'),
        ('link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1'),
        ('link', 'set', 'probe0', 'master', 'probebr0'),
    ])


@functools.lru_cache(maxsize=None)
def has_tun():
    """TUN/TAP devices (``/dev/net/tun`` and ``ip tuntap add``)."""
    if not os.path.exists('/dev/net/tun'):
        return False, 'TUN/TAP is not available: /dev/net/tun does not exist (modprobe tun)'
    return _probe('TUN/TAP', [('tuntap', 'add', 'dev', 'probetap0', 'mode', 'tap')])


@functools.lru_cache(maxsize=None)
def has_bridge():
    """Linux bridges."""
    return _probe('Linux bridges', [('link', 'add', 'probebr0', 'type', 'bridge')])


FEATURES = {
    '8021q': has_8021q,
    'vlan_filtering': has_vlan_filtering,
    'tun': has_tun,
    'bridge': has_bridge,
}


def require(*features):
    """Skip the calling test (``pytest.skip``) with the probes' reasons unless every named feature is available."""
    import pytest  # pylint: disable=import-outside-toplevel
    available, reason = check(*features)
    if not available:
        pytest.skip(reason)


def check(*features):
    """(True, '') when every named feature is available, else (False, reasons of the missing ones)."""
    reasons = []
    for name in features:
        available, reason = FEATURES[name]()
        if not available:
            reasons.append(reason)
    return (not reasons), '; '.join(reasons)
