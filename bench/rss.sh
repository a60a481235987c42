#!/usr/bin/env bash
# bench/rss.sh — the sidecar's memory with N endpoints loaded.
#
# Builds the sidecar binary the way it ships (CGO_ENABLED=0, -tags
# shoal_slim,grpcnotrace) and the full binary for the control plane, starts a control
# plane with embedded etcd, registers N instances of one service straight
# into etcd, starts a sidecar with an --upstream for that service, waits
# until its /clusters lists all N endpoints and prints the highest VmRSS
# over the next RSS_SETTLE seconds (default 30), with its anonymous and
# file-backed parts.
#
#   bench/rss.sh              # 1000 endpoints
#   bench/rss.sh 5000         # N endpoints
#   SIDECAR_BIN=/path/shoal bench/rss.sh   # measure another build
set -euo pipefail

n=${1:-1000}
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-rss.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/shoal" ./cmd/shoal
sidecar=${SIDECAR_BIN:-}
if [[ -z $sidecar ]]; then
	CGO_ENABLED=0 go build -tags shoal_slim,grpcnotrace -o "$work/shoal-sidecar" ./cmd/shoal
	sidecar=$work/shoal-sidecar
fi

# Nine free loopback ports below the kernel's ephemeral range (32768+
# here), so that no outgoing connection of another process takes one
# between this check and the bind; held open together so no two repeat.
ports=$(python3 -c '
import random, socket
ss = []
while len(ss) < 9:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(20000, 32000)))
        ss.append(s)
    except OSError:
        s.close()
print(" ".join("127.0.0.1:%d" % s.getsockname()[1] for s in ss))' 2>/dev/null) || {
	base=$((20000 + RANDOM % 12000)) ports=
	for i in 0 1 2 3 4 5 6 7 8; do ports+="127.0.0.1:$((base + i)) "; done
}
read -r etcd peer xds api admin sadmin out up gossip <<<"$ports"

"$work/shoal" controlplane --data-dir "$work/cp" --etcd-listen "$etcd" --etcd-peer-listen "$peer" \
	--xds-listen "$xds" --api-listen "$api" --admin-listen "$admin" --gossip-listen "$gossip" --log-level warn >"$work/cp.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://$admin/ready" >/dev/null 2>&1 && break; sleep 0.2; done
if ! curl -fs "http://$admin/ready" >/dev/null 2>&1; then
	echo "rss.sh: the control plane did not get ready" >&2
	tail -40 "$work/cp.log" >&2
	exit 1
fi

# Instances are written through etcd's JSON gateway, 8 writers at a time.
for i in $(seq 1 "$n"); do
	key=$(printf '/shoal/v1/instances/fleet/f%d' "$i" | base64 -w0)
	val=$(printf '{"id":"f%d","service":"fleet","address":"127.%d.%d.%d","port":8080,"protocol":"http"}' \
		"$i" $((i / 65536 % 256 + 1)) $((i / 256 % 256)) $((i % 256)) | base64 -w0)
	printf '{"key":"%s","value":"%s"}\n' "$key" "$val"
done | xargs -d "\n" -P 8 -I{} curl -fsS --retry 5 --retry-all-errors --retry-delay 1 -o /dev/null -X POST "http://$etcd/v3/kv/put" -d {} || echo "rss.sh: some writes failed; the endpoint count below tells" >&2

"$sidecar" sidecar ${SIDECAR_ARGS:-} --service rss --app-port 9 --no-register --etcd "$etcd" --xds "$xds" \
	--admin-listen "$sadmin" --outbound "$out" --upstream "fleet=$up" --log-level warn >"$work/sidecar.log" 2>&1 &
spid=$!
pids+=($spid)
got=0
for _ in $(seq 150); do
	got=$(curl -fs "http://$sadmin/clusters" 2>/dev/null | grep -c '"address"' || true)
	((got >= n)) && break
	sleep 0.2
done
if ((got < n)); then
	echo "rss.sh: sidecar lists $got of $n endpoints" >&2
	tail -20 "$work/sidecar.log" >&2
	exit 1
fi
[[ -n ${RSS_HOLD:-} ]] && { echo "rss.sh: sidecar admin http://$sadmin (pid $spid); holding ${RSS_HOLD}s" >&2; sleep "$RSS_HOLD"; }
# Steady state, not a moment: the highest VmRSS seen over RSS_SETTLE seconds
# (default 30) after every endpoint arrived, with its anonymous share.
rss=0 anon=0
for _ in $(seq "${RSS_SETTLE:-30}"); do
	sleep 1
	r=$(awk '/^VmRSS/{print $2}' "/proc/$spid/status")
	if ((r > rss)); then
		rss=$r anon=$(awk '/^Anonymous/{print $2}' "/proc/$spid/smaps_rollup")
	fi
done
size=$(stat -c %s "$sidecar")
awk -v n="$n" -v rss="$rss" -v anon="$anon" -v size="$size" -v settle="${RSS_SETTLE:-30}" 'BEGIN {
	printf "sidecar with %d endpoints: VmRSS %.1f MiB (anonymous %.1f MiB, file-backed %.1f MiB; highest over %d s), binary %.1f MiB\n",
		n, rss / 1024, anon / 1024, (rss - anon) / 1024, settle, size / 1048576
}'
