"""fc_vlan on a kernel without bridge VLAN filtering or 802.1Q (this project's build machine).

The module must fail cleanly, before changing anything and in check mode too, with a message
saying which kernel feature is missing. On a kernel that has the feature these tests skip (the
kernel lane, which has both, does not select them: they are not marked ``kernel``).
"""

import pytest

from lab import kernel
from lab.module_run import run_module

pytestmark = pytest.mark.module


def require_missing(feature):
    available, reason = kernel.check(feature)
    if available:
        pytest.skip('this kernel has the feature: %s' % reason)


def link_table(host):
    table = {}
    for name, item in host.links().items():
        table[name] = (item.get('ifindex'), item.get('mtu'), tuple(item.get('flags', ())), item.get('master'),
                       item.get('ifalias'), item.get('linkinfo', {}).get('info_kind'))
    return table


@pytest.mark.parametrize('check_mode', [True, False])
def test_port_vlans_need_bridge_vlan_filtering(lab, check_mode):
    require_missing('vlan_filtering')
    hv = lab.add_host('hv1')
    hv.ip('link', 'add', 'br0', 'type', 'bridge')
    hv.ip('tuntap', 'add', 'dev', 'tap0', 'mode', 'tap')
    hv.ip('link', 'set', 'dev', 'tap0', 'master', 'br0')
    before = link_table(hv)
    for port in ('tap0', 'br0'):
        result = run_module(hv, 'fc_vlan', {'ports': [{'port': port, 'pvid': 100, 'untagged': [100]}]},
                            check_mode=check_mode, diff=True)
        assert result['failed'] and not result.get('changed')
        assert result['msg'].startswith('the running kernel (')
        assert 'lacks bridge VLAN filtering, needed for the VLANs of ' in result['msg']
        assert 'CONFIG_BRIDGE_VLAN_FILTERING' in result['msg']
        assert link_table(hv) == before


@pytest.mark.parametrize('check_mode', [True, False])
def test_subinterfaces_need_8021q(lab, check_mode):
    require_missing('8021q')
    hv = lab.add_host('hv1')
    lab.connect(hv, 'eth0', hv, 'peer0')
    before = link_table(hv)
    result = run_module(hv, 'fc_vlan', {'subinterfaces': [{'name': 'eth0.100', 'link': 'eth0', 'id': 100}]},
                        check_mode=check_mode, diff=True)
    assert result['failed'] and not result.get('changed')
    assert "lacks 802.1Q VLAN support (8021q), needed for VLAN link 'eth0.100' (VLAN 100 on 'eth0')" in result['msg']
    assert link_table(hv) == before


def test_bad_values_are_refused_before_the_kernel_is_asked(lab):
    """Validation comes first: on any kernel, VLAN 0 and 4095 are refused by name and value."""
    hv = lab.add_host('hv1')
    before = link_table(hv)
    result = run_module(hv, 'fc_vlan', {'ports': [{'port': 'tap0', 'vlans': [0], 'pvid': 4095}]}, diff=True)
    assert result['failed']
    assert "parameter 'ports[0].vlans[0]' (value 0)" in result['msg']
    assert "parameter 'ports[0].pvid' (value 4095): VLAN id must be an integer from 1 to 4094" in result['msg']
    assert len(result['validation_errors']) == 2
    assert link_table(hv) == before
