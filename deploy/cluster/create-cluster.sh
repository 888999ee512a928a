#!/bin/sh
# Make the compose file's Redis Cluster (compose.yaml, `--profile cluster`), once.
#
#   create-cluster.sh --replicas N HOST:PORT...     # masters first, then their replicas
#
# The first time, `redis-cli --cluster create` cuts the 16384 hash slots among the
# masters and gives each of them N replicas. When the members hold a cluster already (a
# second `docker compose up`, the members' volumes kept), it creates nothing: it has every
# member meet the others at the addresses they have now (a container recreated may come
# back with another address; meeting a known member at a new address updates it), then
# waits, as the first time, until every member sees the whole cluster: exit 0 when it
# does, 1 when it does not within a minute.
#
# redis-cli --cluster create and CLUSTER MEET take IP addresses, not names, so each
# member's service name is resolved first. POSIX sh: the redis image's is BusyBox's.
set -eu

if [ "${1:-}" != "--replicas" ] || [ $# -lt 3 ]; then
    echo "usage: $0 --replicas N HOST:PORT..." >&2
    exit 2
fi
replicas=$2
shift 2

members=""
for member in "$@"; do
    host=${member%:*}
    port=${member##*:}
    case $host in
        *[!0-9.]*)  # a name: its address on the compose network (IPv4 first)
            ip=$(getent hosts "$host" | awk '$1 ~ /^[0-9.]+$/ { print $1; exit }')
            [ -n "$ip" ] || ip=$(getent hosts "$host" | awk 'NR == 1 { print $1 }')
            ;;
        *) ip=$host ;;
    esac
    if [ -z "$ip" ]; then
        echo "create-cluster: cannot resolve $host" >&2
        exit 1
    fi
    members="$members $ip:$port"
done
members=${members# }

# cli ADDRESS COMMAND...: one command to the member at ADDRESS (ip:port).
cli() {
    address=$1
    shift
    redis-cli -h "${address%:*}" -p "${address##*:}" "$@"
}

# info ADDRESS FIELD: one field of the member's CLUSTER INFO ("" when it does not answer).
info() {
    cli "$1" CLUSTER INFO 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

# whole: every member sees the cluster in state ok, all its members and all the slots.
whole() {
    for address in $members; do
        [ "$(info "$address" cluster_state)" = ok ] || return 1
        [ "$(info "$address" cluster_known_nodes)" = "$#" ] || return 1
        [ "$(info "$address" cluster_slots_assigned)" = 16384 ] || return 1
    done
}

first=${members%% *}
if [ "$(info "$first" cluster_slots_assigned)" = 16384 ]; then
    echo "create-cluster: the cluster is made already; meeting its members where they are now"
    for address in $members; do
        for other in $members; do
            if [ "$address" != "$other" ]; then
                cli "$address" CLUSTER MEET "${other%:*}" "${other##*:}" >/dev/null
            fi
        done
    done
else
    echo "create-cluster: creating the cluster of $members"
    # shellcheck disable=SC2086  # one word per member
    redis-cli --cluster create $members --cluster-replicas "$replicas" --cluster-yes
fi

tries=0
until whole "$@"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "create-cluster: the cluster is not whole after a minute:" >&2
        cli "$first" CLUSTER NODES >&2 || true
        exit 1
    fi
    sleep 1
done
echo "create-cluster: the cluster is whole: $# members, 16384 slots, state ok"
