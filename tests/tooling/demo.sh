#!/usr/bin/env bash
# make demo / make demo-clean: the collection against a lab with a throwaway registry.
#
#   demo.sh up    build (or reuse) lab "demo": hypervisors hv1 and hv2 in network namespaces,
#                 an upstream host, a throwaway PostgreSQL; run the collection's playbooks
#                 against the hypervisors through the netns connection; print a summary
#   demo.sh down  remove everything the demo made
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py="$root/.venv/bin/python"
state="$root/.demo"
lab_id=demo
export PYTHONPATH="$root/tests"

lab() { "$py" -m lab "$@"; }

up() {
    mkdir -p "$state"
    echo "== building lab '$lab_id' (hosts in network namespaces, throwaway PostgreSQL)"
    lab up --lab-id "$lab_id" --spec "$root/tests/tooling/demo-lab.yml" > "$state/lab.json"
    "$py" "$root/tests/tooling/lab_inventory.py" "$state/lab.json" "$state/inventory.yml"
    echo "== running playbooks/network_report.yml against the lab"
    ansible-playbook -i "$state/inventory.yml" "$root/playbooks/network_report.yml"
    echo "== summary"
    "$py" - "$state/lab.json" <<'PY'
import json, sys
lab = json.load(open(sys.argv[1]))
for name, host in sorted(lab['hosts'].items()):
    uplink = host.get('uplink') or {}
    print('  host %-9s netns %-20s uplink %s' % (name, host['netns'], uplink.get('address', '-')))
for server in lab.get('postgres') or []:
    print('  registry   postgresql://%s@127.0.0.1:%s/%s (socket dir %s)'
          % (server['user'], server['port'], server['dbname'], server['socket_dir']))
PY
    echo "  inventory  $state/inventory.yml    (ansible-playbook -i $state/inventory.yml ...)"
    echo "  remove it all with: make demo-clean"
}

down() {
    lab down --lab-id "$lab_id" > /dev/null
    echo "demo lab removed"
    rm -rf "$state"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
