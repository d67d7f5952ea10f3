"""Helpers of the fc_tap tests (test_fc_tap.py, and test_fc_tap_vlan.py in the kernel lane).

``run`` is how a test runs the module: ``run(host, check_mode=False, **args)`` -> result dict
(diff mode on), through ``lab.module_run.run_module`` or the fork server of ``module_runner``.
"""

from lab.snapshot import assert_unchanged, snapshot


def check_then_apply(run, host, **args):
    """Check mode (which changes nothing), then the real run: the check run predicts the real one exactly."""
    before = snapshot(host)
    predicted = run(host, check_mode=True, **args)
    assert not predicted.get('failed'), predicted.get('msg')
    assert_unchanged(before, snapshot(host))
    applied = run(host, **args)
    assert not applied.get('failed'), applied.get('msg')
    for key in ('changed', 'changes', 'diff', 'removed', 'network_interfaces'):
        assert predicted[key] == applied[key], key
    return predicted, applied


def converge_twice(run, host, **args):
    """``check_then_apply``, then a second run that changes nothing and finds what the first predicted."""
    predicted, applied = check_then_apply(run, host, **args)
    again = run(host, **args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False and again['changes'] == [], again['changes']
    assert again['diff']['before'] == again['diff']['after']
    # what the first run said the host would look like is what the second run found
    assert applied['diff']['after'] == again['diff']['before']
    assert again['network_interfaces'] == applied['network_interfaces']
    return predicted, applied, again


def descriptions(result):
    return [change['description'] for change in result['changes']]


def warnings_of(result):
    """The warning texts of a module result (ansible-core 2.19 returns them as structured events)."""
    texts = []
    for warning in result.get('warnings', []):
        if isinstance(warning, dict):
            warning = (warning.get('event') or {}).get('msg', warning.get('msg'))
        texts.append(warning)
    return texts
