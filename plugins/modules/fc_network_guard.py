# -*- coding: utf-8 -*-
# Copyright (c) NQRust MicroVM developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fc_network_guard
short_description: Commit-confirmed for moving a host's uplink into a bridge
version_added: 1.0.0
description:
  - Guards the step that can cut a host off from its controller - moving the uplink, with the address the
    controller reaches the host on, into a bridge (bridged mode, nqrust.microvm.fc_bridge with an uplink).
  - V(armed), run before that step, starts a watchdog on the host. V(confirmed), run as the next task over a new
    connection (C(meta - reset_connection) in between), stops it - the controller reached the host after the change.
  - If nothing confirms within O(timeout) seconds, the watchdog moves the addresses and routes back from the bridge
    to the uplink, releases the uplink and deletes the bridges that did not exist when it was armed. The next
    V(confirmed) then fails, saying what was rolled back.
  - Arming is only done when a run would move something (an uplink not yet a port of its bridge), so a converged
    host runs no watchdog. Neither state changes the host's configuration, so both report C(changed=false); the
    RV(armed) and RV(disarmed) values say what happened. In check mode nothing is started.
  - The nqrust.microvm.network role wraps its bridged networks with it.
author:
  - NQRust MicroVM developers (@nqrust)
requirements:
  - pyroute2 (0.7 or later) on the managed host
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - nqrust.microvm.attributes.host_reads
options:
  state:
    description: V(armed) before the uplink moves, V(confirmed) after it.
    type: str
    choices: [armed, confirmed]
    required: true
  pairs:
    description:
      - The bridges and the uplinks that move into them (with V(armed)), each a dictionary with C(bridge) and
        C(uplink). Other keys are ignored, so the networks of nqrust.microvm.fc_network_spec can be passed as they are.
    type: list
    elements: dict
    default: []
  timeout:
    description: Seconds the change has to be confirmed in, 5 to 3600.
    type: int
    default: 120
  state_dir:
    description: Where the watchdog keeps its state (one guard per directory).
    type: path
    default: /run/nqrust-microvm/guard
"""

EXAMPLES = r"""
- name: Arm the rollback before the uplink moves
  nqrust.microvm.fc_network_guard:
    state: armed
    pairs: [{bridge: br0, uplink: eth0}]
    timeout: 60

- name: Move eth0 with its address into br0
  nqrust.microvm.fc_bridge:
    name: br0
    uplink: eth0

- name: Reconnect, so the next task proves the controller still reaches the host
  ansible.builtin.meta: reset_connection

- name: Confirm (or learn that it was rolled back)
  nqrust.microvm.fc_network_guard:
    state: confirmed
"""

RETURN = r"""
armed:
  description: Whether a watchdog was started (V(armed); false when nothing would move, and in check mode).
  returned: always
  type: bool
disarmed:
  description: Whether a running watchdog was stopped (V(confirmed)).
  returned: always
  type: bool
guarded:
  description: The (bridge, uplink) pairs the watchdog rolls back.
  returned: always
  type: list
  elements: dict
deadline:
  description: Seconds since the epoch after which the watchdog rolls back (V(armed)).
  returned: when armed
  type: float
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nqrust.microvm.plugins.module_utils import rollback_guard
from ansible_collections.nqrust.microvm.plugins.module_utils.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
    NetlinkOperationError,
    NetlinkSession,
)
from ansible_collections.nqrust.microvm.plugins.module_utils.validation import Validator, interface_name

TIMEOUT_MIN = 5
TIMEOUT_MAX = 3600


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['armed', 'confirmed'], required=True),
            pairs=dict(type='list', elements='dict', default=[]),
            timeout=dict(type='int', default=120),
            state_dir=dict(type='path', default='/run/nqrust-microvm/guard'),
        ),
        supports_check_mode=True,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=PYROUTE2_IMPORT_ERROR)
    params = module.params
    v = Validator()
    pairs = []
    for position, item in enumerate(params['pairs']):
        bridge = v.check(interface_name, 'pairs[%d].bridge' % position, item.get('bridge'))
        uplink = v.check(interface_name, 'pairs[%d].uplink' % position, item.get('uplink'))
        if bridge and uplink:
            pairs.append((bridge, uplink))
    if not TIMEOUT_MIN <= params['timeout'] <= TIMEOUT_MAX:
        v.add('timeout', params['timeout'], 'seconds from %d to %d' % (TIMEOUT_MIN, TIMEOUT_MAX))
    v.fail_module(module)
    state_dir = params['state_dir']
    result = dict(changed=False, armed=False, disarmed=False, guarded=[])

    if params['state'] == 'confirmed':
        record = None if module.check_mode else rollback_guard.disarm(state_dir)
        rolled = rollback_guard.rollback_result(state_dir)   # also one that finished while we confirmed
        if rolled is not None:
            if not module.check_mode:
                rollback_guard.forget(state_dir)
            module.fail_json(msg='the network change was rolled back: it was not confirmed within %s s (%s)%s' % (
                rolled['timeout'], '; '.join(rolled['done']) or 'nothing to undo',
                '; errors: ' + '; '.join(rolled['errors']) if rolled['errors'] else ''), rollback=rolled, **result)
        if record is not None:
            result.update(disarmed=True, guarded=[dict(bridge=b, uplink=u) for b, u in record['pairs']])
        module.exit_json(**result)

    try:
        with NetlinkSession() as session:
            pending = rollback_guard.unguarded_moves(session, pairs)
            result['guarded'] = [dict(bridge=b, uplink=u) for b, u in pending]
            if pending and not module.check_mode:
                record = rollback_guard.arm(session, state_dir, pending, params['timeout'])
                result.update(armed=True, deadline=record['deadline'])
    except (NetlinkOperationError, OSError) as exc:
        module.fail_json(msg='arming the rollback failed: %s' % exc, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
