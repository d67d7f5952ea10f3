#!/bin/sh
# busybox udhcpc hook of the lab's guest simulator: applies a lease inside the guest's network
# namespace and records it for Guest.dhcp().
#   NQL_LEASE_FILE   where the lease is written as key=value lines
#   NQL_RESOLV_CONF  the guest's /etc/netns/<netns>/resolv.conf (never the machine's /etc/resolv.conf)
set -eu

dev=${interface:?udhcpc sets interface}

record() {
    tmp="$NQL_LEASE_FILE.tmp"
    {
        echo "event=$1"
        echo "interface=$dev"
        echo "ip=${ip:-}"
        echo "mask=${mask:-}"
        echo "subnet=${subnet:-}"
        echo "broadcast=${broadcast:-}"
        echo "router=${router:-}"
        echo "dns=${dns:-}"
        echo "domain=${domain:-}"
        echo "serverid=${serverid:-}"
        echo "lease=${lease:-}"
        echo "hostname=${hostname:-}"
        echo "mtu=${mtu:-}"
    } > "$tmp"
    mv "$tmp" "$NQL_LEASE_FILE"
}

case "$1" in
    deconfig)
        ip -4 addr flush dev "$dev"
        ip link set dev "$dev" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$dev"
        if [ -n "${broadcast:-}" ]; then
            ip addr add "$ip/${mask:-32}" broadcast "$broadcast" dev "$dev"
        else
            ip addr add "$ip/${mask:-32}" dev "$dev"
        fi
        if [ -n "${mtu:-}" ]; then
            ip link set dev "$dev" mtu "$mtu"
        fi
        for gateway in ${router:-}; do
            ip route replace default via "$gateway" dev "$dev"
            break
        done
        if [ -n "${NQL_RESOLV_CONF:-}" ]; then
            {
                if [ -n "${domain:-}" ]; then
                    echo "search $domain"
                fi
                for server in ${dns:-}; do
                    echo "nameserver $server"
                done
            } > "$NQL_RESOLV_CONF"
        fi
        record "$1"
        ;;
    leasefail|nak)
        if [ -n "${NQL_LEASE_FILE:-}" ]; then
            echo "event=$1" > "$NQL_LEASE_FILE.$1"
        fi
        ;;
esac
exit 0
