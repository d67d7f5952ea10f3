"""Run a module's ``main()`` in-process the way Ansible would, and catch how it ends."""

from __future__ import annotations

import json

from ansible.module_utils import basic


class ExitJson(Exception):
    """The module called ``exit_json``; ``args[0]`` is its result."""


class FailJson(Exception):
    """The module called ``fail_json``; ``args[0]`` is its result."""


def call_main(monkeypatch, main, args, diff=True, collect_warnings=False):
    """``('exit' | 'fail', result)`` of ``main()`` with module arguments ``args``.

    ``args['_check_mode']`` turns check mode on; diff mode is on unless ``diff`` is false.
    With ``collect_warnings``, the texts the module passes to ``warn()`` become the ``warnings``
    list of an exit's result (the stand-in ``exit_json`` would otherwise lose them).
    """
    warnings = []

    def exit_json(self, **kwargs):  # pylint: disable=unused-argument
        if collect_warnings:
            kwargs['warnings'] = warnings
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):  # pylint: disable=unused-argument
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    if collect_warnings:
        monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warnings.append(text))
    module_args = dict(args)
    module_args['_ansible_check_mode'] = module_args.pop('_check_mode', False)
    module_args['_ansible_diff'] = bool(diff)
    try:
        from ansible.module_utils.testing import patch_module_args  # pylint: disable=import-outside-toplevel
    except ImportError:  # ansible-core before 2.19
        monkeypatch.setattr(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': module_args}).encode())
        patcher = None
    else:
        patcher = patch_module_args(module_args)
    try:
        if patcher is None:
            main()
        else:
            with patcher:
                main()
    except ExitJson as done:
        return 'exit', done.args[0]
    except FailJson as failed:
        return 'fail', failed.args[0]
    raise AssertionError('the module neither exited nor failed')
