#!/usr/bin/env bash
# The kernel lane: boot Debian's kernel (linux-image-amd64) under qemu with virtme-ng over this
# machine's root filesystem (TCG, no KVM: see MACHINE-NOTES) and run the tests marked `kernel`
# there. NQRUST_KERNEL_LANE=1 makes any skipped test fail the run: inside this lane every
# kernel feature the tests probe for must be present.
#
# Usage: tests/kernel/run-lane.sh [extra pytest arguments]
#   NQRUST_KERNEL_SELECT   the tests of the first pass (a pytest -m expression; default 'kernel and not slow')
#   NQRUST_KERNEL_PYROUTE2_07_PASS=0   leave out the second pass (modules under pyroute2 0.7)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
export PATH="$venv/bin:$PATH"
results="$root/build/results"
mkdir -p "$results"

kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' | sort -V | tail -n 1)
if [ -z "$kernel" ]; then
    echo "kernel lane: no Debian kernel in /boot (install linux-image-amd64: make setup does)" >&2
    exit 1
fi
release=${kernel#/boot/vmlinuz-}
if [ ! -d "/lib/modules/$release" ]; then
    echo "kernel lane: modules for $release are missing in /lib/modules" >&2
    exit 1
fi

# The guest sees the root filesystem read-only: /etc (for /etc/netns overlays) gets a
# throwaway overlay, and only the results directory is written through to this machine.
pytest_args=(-p no:cacheprovider -ra "$@")
select=${NQRUST_KERNEL_SELECT:-kernel and not slow}
second_pass=${NQRUST_KERNEL_PYROUTE2_07_PASS:-1}
started="$results/.kernel-lane-guest-started"
# The guest runs this file: vng hands an --exec script to the guest on the kernel command line
# (base64, at most 2048 bytes on x86), and a longer one is cut off and the guest sits idle for
# good, so the command line only names the file.
guest_script="$results/.kernel-lane-guest.sh"
cat > "$guest_script" <<EOF
set -e
touch '$started'
cd '$root'
for m in tun 8021q bridge veth; do modprobe \$m; done
export NQRUST_KERNEL_LANE=1 PYTHONPATH='$root/tests' PATH='$venv/bin:/usr/sbin:/usr/bin:/sbin:/bin' PYTHONDONTWRITEBYTECODE=1
'$venv/bin/python' -m pytest ${pytest_args[*]@Q} -m ${select@Q} --junitxml='$results/kernel.xml' tests/integration
[ '$second_pass' = 1 ] || exit 0
# The module tests once more, with the modules running under pyroute2 0.7 (Debian 12's): every
# netlink write path of fc_bridge and fc_vlan (VLAN filtering, port VLANs incl. the bridge's own,
# ranges, sub-interfaces, refusals). Left out, to keep CI within its 90 minutes: the tests whose
# extra part is guest traffic (the kernel's forwarding, the same whatever wrote the settings), and
# fc_tap's, which reads and writes through its own rtnetlink socket (pyroute2 is only imported for
# the VLAN planning it shares with fc_vlan) and runs under 0.7 in the integration lane.
NQRUST_TARGET_PYTHON='$root/.venv-pyroute2-0.7/bin/python' '$venv/bin/python' -m pytest ${pytest_args[*]@Q} \\
    -m 'kernel and module and not slow' --deselect tests/integration/test_fc_tap_vlan.py \\
    -k 'not traffic_flows and not isolate_guests and not carries_both_vlans' \\
    --junitxml='$results/kernel-pyroute2-0.7.xml' tests/integration || [ \$? -eq 5 ]
EOF
inner="sh '$guest_script'"

# qemu re-opens /proc/self/fd/1 and 2 with O_TRUNC: when they are files (a CI log), that would
# wipe everything written before. Through a pipe (here a process substitution) they stay appended.
#
# Should the guest still not start (it sat idle for good when its script was cut off, see above),
# the lane does not wait 50 minutes for nothing: the guest's first command touches $started in the
# results directory; when that has not happened within $boot_wait s, the whole qemu process group
# is killed and the boot tried again.
boot_wait=${NQRUST_KERNEL_BOOT_WAIT:-300}
attempts=3
rc=1
for attempt in $(seq 1 $attempts); do
    rm -f "$started"
    echo "kernel lane: booting $release under qemu (TCG), attempt $attempt of $attempts"
    # setsid: qemu and everything vng starts share one process group, which a hung boot loses whole
    setsid timeout --kill-after=30 3000 "$venv/bin/vng" --run "$kernel" --disable-kvm --memory 2G --cpus 2 \
        --overlay-rwdir /etc --rwdir "$results" --exec "$inner" > >(cat) 2>&1 &
    guest=$!
    waited=0
    while [ ! -e "$started" ] && kill -0 "$guest" 2>/dev/null && [ "$waited" -lt "$boot_wait" ]; do
        sleep 2
        waited=$((waited + 2))
    done
    if [ ! -e "$started" ] && kill -0 "$guest" 2>/dev/null; then
        echo "kernel lane: the guest did not start within ${boot_wait}s; killing qemu and booting again" >&2
        kill -KILL -- "-$guest" 2>/dev/null || true
        wait "$guest" 2>/dev/null || true
        continue
    fi
    rc=0
    wait "$guest" || rc=$?
    break
done
rm -f "$started" "$guest_script"
exit $rc
