# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.module_utils import basic

from ansible_collections.nqrust.microvm.plugins.module_utils import firewall, host_lock
from ansible_collections.nqrust.microvm.plugins.module_utils.nftables import NftCli
from ansible_collections.nqrust.microvm.plugins.modules import fc_firewall
from ansible_collections.nqrust.microvm.tests.unit.plugins.modules.module_harness import call_main
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.firewall_fakes import (
    FakeNetlink,
    make_procsys,
    read_sysctl,
)
from ansible_collections.nqrust.microvm.tests.unit.plugins.module_utils.nft_fakes import FakeNft


def run(monkeypatch, tmp_path, args, nft=None, netlink=None, nft_path='/usr/sbin/nft'):
    """Run fc_firewall.main() against a fake nft, fake netlink and /proc/sys in tmp_path; returns (outcome, result, nft)."""
    nft = nft or FakeNft()
    procsys_root = tmp_path / 'proc-sys'
    make_procsys(procsys_root)
    monkeypatch.setattr(fc_firewall, 'HAS_PYROUTE2', True)
    monkeypatch.setattr(fc_firewall, 'NftCli', lambda path: NftCli(path, runner=nft.runner))
    monkeypatch.setattr(firewall, 'NetlinkSession', lambda: netlink or FakeNetlink())
    monkeypatch.setattr(firewall, 'ProcSys', lambda: make_procsys(procsys_root))
    monkeypatch.setattr(host_lock, 'LOCK_DIRS', (str(tmp_path),))
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False, opt_dirs=None: nft_path)

    kind, result = call_main(monkeypatch, fc_firewall.main, args)
    return kind, result, nft


def test_check_mode_then_real_run_then_no_change(monkeypatch, tmp_path):
    args = {'bridge': 'fcbr0', 'cidr': '192.168.18.0/24', 'uplink': 'eth1'}
    outcome, predicted, nft = run(monkeypatch, tmp_path, dict(args, _check_mode=True))
    assert outcome == 'exit' and predicted['changed'] is True
    assert nft.applies() == [] and len(nft.checks()) == 1
    assert nft.calls[-1][0][0] == '/usr/sbin/nft'
    outcome, applied, nft = run(monkeypatch, tmp_path, args, nft=nft)
    assert outcome == 'exit'
    for key in ('changed', 'changes', 'diff'):
        assert predicted[key] == applied[key]
    assert applied['firewall']['uplinks'] == ['eth1']
    assert applied['firewall']['rules']['postrouting']['rules'] == [
        'ip saddr 192.168.18.0/24 oifname "eth1" masquerade comment "nqrust.microvm nat: masquerade"']
    assert read_sysctl(tmp_path / 'proc-sys', 'net/ipv4/ip_forward') == '1'
    outcome, again, nft = run(monkeypatch, tmp_path, args, nft=nft)
    assert again['changed'] is False and again['diff']['before'] == applied['diff']['after']


def test_bad_input_fails_naming_parameter_value_and_allowed_without_reading_the_host(monkeypatch, tmp_path):
    outcome, result, nft = run(monkeypatch, tmp_path, {'bridge': 'fcbr0', 'cidr': '10.0.0.1/24', 'uplinks': ['a/b']})
    assert outcome == 'fail'
    assert "parameter 'cidr' (value '10.0.0.1/24')" in result['msg'] and "parameter 'uplinks[0]' (value 'a/b')" in result['msg']
    assert len(result['validation_errors']) == 2
    assert nft.calls == []


def test_unknown_mode_is_refused_by_the_argument_spec(monkeypatch, tmp_path):
    outcome, result, nft = run(monkeypatch, tmp_path, {'bridge': 'fcbr0', 'mode': 'bogus'})
    assert outcome == 'fail'
    assert 'mode' in result['msg'] and 'bogus' in result['msg'] and 'nat, routed, isolated, bridged, open' in result['msg']
    assert nft.calls == []


def test_missing_bridge_fails_before_any_change(monkeypatch, tmp_path):
    outcome, result, nft = run(monkeypatch, tmp_path, {'bridge': 'nosuch', 'mode': 'isolated'})
    assert outcome == 'fail'
    assert "parameter 'bridge' (value 'nosuch')" in result['msg'] and 'existing Linux bridge' in result['msg']
    assert nft.applies() == []


def test_absent_on_a_clean_host_is_a_no_op(monkeypatch, tmp_path):
    outcome, result, nft = run(monkeypatch, tmp_path, {'bridge': 'fcbr0', 'state': 'absent'})
    assert outcome == 'exit' and result['changed'] is False and result['firewall']['table'] is None


def test_argument_spec_matches_the_documentation():
    import yaml
    doc = yaml.safe_load(fc_firewall.DOCUMENTATION)
    spec = fc_firewall.argument_spec()
    assert set(doc['options']) == set(spec)
    for name, option in doc['options'].items():
        assert option.get('type', 'str') == spec[name].get('type', 'str'), name
        assert option.get('choices') == spec[name].get('choices'), name
        assert option.get('default') == spec[name].get('default'), name
        assert option.get('aliases') == spec[name].get('aliases'), name
