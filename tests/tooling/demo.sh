#!/usr/bin/env bash
# make demo / make demo-clean: the collection from nothing to VMs on networks, against a lab with a
# throwaway registry (what each step does: tests/tooling/demo.py).
#
#   demo.sh up    build (or reuse) lab "demo" and converge it; prints a summary; a second run changes nothing
#   demo.sh down  remove everything the demo made
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$root/tests"
exec "$root/.venv/bin/python" "$root/tests/tooling/demo.py" "$@"
