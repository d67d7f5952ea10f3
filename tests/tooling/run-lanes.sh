#!/usr/bin/env bash
# Run the named test lanes (make targets) one after another, keep going when one fails,
# then print one line per lane and a closing count. Exits non-zero when any lane failed.
#
# The closing count adds up the test cases of the lanes that write JUnit XML (pytest lanes
# and ansible-test units) and counts every other lane (sanity, molecule, bench) as one case.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results="$root/build/results"
mkdir -p "$results"
rm -f "$results"/*.xml

declare -A outcome seconds
failed=0
run_start=$(date +%s)
for lane in "$@"; do
    echo "===================================================== lane: $lane"
    start=$(date +%s)
    if make --no-print-directory -C "$root" "$lane"; then
        outcome[$lane]=passed
    else
        outcome[$lane]=FAILED
        failed=1
    fi
    seconds[$lane]=$(( $(date +%s) - start ))
done

echo "===================================================== summary"
for lane in "$@"; do
    printf '  %-12s %-7s %5ss\n' "$lane" "${outcome[$lane]}" "${seconds[$lane]}"
done
# Lanes without JUnit output count as one case each.
plain_passed=0 plain_failed=0
for lane in "$@"; do
    case "$lane" in
        integration|kernel|units) continue ;;  # these write JUnit XML
    esac
    if [ "${outcome[$lane]}" = passed ]; then plain_passed=$((plain_passed + 1)); else plain_failed=$((plain_failed + 1)); fi
done
"$root/.venv/bin/python" "$root/tests/tooling/junit_totals.py" "$(( $(date +%s) - run_start ))" "$plain_passed" "$plain_failed" "$results"/*.xml
exit $failed
