#!/usr/bin/env bash
# bench/run.sh — the one command for shoal's side-by-side benchmark.
#
# Installs nginx, haproxy and wrk with apt if they are missing, builds the
# shoal binary, the loopback backend and the harness, then runs the harness
# (bench/cmd/sidebyside): direct, nginx, HAProxy and the shoal sidecar, each
# proxy with one worker pinned to its own CPU, A/B interleaved, medians.
#
#   bench/run.sh                 # full run: 3 rounds x 10 s after 2 s warmup
#   bench/run.sh --quick         # smoke run, about a minute
#   bench/run.sh --runs 5 --duration 20s --proxy-cpus 1 --load-cpus 0
#   bench/run.sh --h2            # h2c gRPC unary calls with h2load instead of HTTP/1.1
#   bench/run.sh --mtls          # the proxy-to-proxy hop over mTLS: A → TLS 1.3 → B, both counted
#   bench/run.sh --cpbench       # the control-plane bench instead (flags follow)
#   bench/run.sh --lb            # load balancing over unequal Node.js instances (issue 17)
#   bench/run.sh --lb --quick    # its smoke run, about two minutes
#
# Every other flag goes to the harness (bench/results/bin/sidebyside -h).
# The markdown table goes to stdout; JSON and markdown to bench/results/.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
bin=$root/bench/results/bin
mkdir -p "$bin"

log() { printf 'run.sh: %s\n' "$*" >&2; }

install_tools() {
	local missing=()
	command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
	command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
	command -v wrk >/dev/null 2>&1 || missing+=(wrk)
	command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
	command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
	if [[ $mode == lbbench ]]; then
		command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)
		command -v node >/dev/null 2>&1 || missing+=(nodejs)
	fi
	((${#missing[@]} == 0)) && return 0
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		log "missing ${missing[*]}: install them (apt-get install ${missing[*]}) and retry"
		exit 1
	fi
	log "installing ${missing[*]}"
	# policy-rc.d 101 keeps Debian's postinst from starting nginx/haproxy
	# services on :80 — the harness starts its own instances.
	local policy=/usr/sbin/policy-rc.d created_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	((created_policy)) && rm -f "$policy"
	return 0
}

# Processes the harness started carry SHOAL_BENCH_RUN in their
# environment; if the harness dies without cleaning up, end exactly those
# process groups listed in its pid file (never by name).
work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-bench.XXXXXX")
harness_pid=
lb_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $harness_pid ]] && kill -0 "$harness_pid" 2>/dev/null; then
		kill -TERM "$harness_pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$harness_pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$harness_pid" 2>/dev/null || true
	fi
	if [[ -f $work/pids ]]; then
		while read -r pgid; do
			[[ -n $pgid && -r /proc/$pgid/environ ]] || continue
			if tr '\0' '\n' <"/proc/$pgid/environ" | grep -q '^SHOAL_BENCH_RUN='; then
				kill -KILL -- "-$pgid" 2>/dev/null || true
			fi
		done <"$work/pids"
	fi
	# lbbench's cgroup for the half-CPU instance, if it could not remove it
	# itself (it is empty once its processes ended above).
	if [[ -n $lb_pid ]]; then
		for d in /sys/fs/cgroup/shoal-lbbench-"$lb_pid" /sys/fs/cgroup/cpu/shoal-lbbench-"$lb_pid"; do
			[[ -d $d ]] && rmdir "$d" 2>/dev/null || true
		done
	fi
	[[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mode=sidebyside
if [[ ${1:-} == --cpbench ]]; then
	mode=cpbench
	shift
elif [[ ${1:-} == --lb ]]; then
	mode=lbbench
	shift
fi

install_tools
log "building shoal, backend and the harness into $bin"
go build -o "$bin/shoal" ./cmd/shoal
# The sidecar as it ships (README, Dockerfile): static, without the control plane.
CGO_ENABLED=0 go build -tags shoal_slim,grpcnotrace -o "$bin/shoal-sidecar" ./cmd/shoal
[[ $mode == lbbench ]] || go build -o "$bin/backend" ./bench/cmd/backend
go build -o "$bin/$mode" "./bench/cmd/$mode"

# Run in the background and wait, so that the traps run as soon as a
# signal arrives; the harness gets SIGINT from the terminal itself and
# stops its children.
if [[ $mode == sidebyside ]]; then
	"$bin/sidebyside" --shoal "$bin/shoal" --sidecar "$bin/shoal-sidecar" --backend "$bin/backend" \
		--nginx "$(command -v nginx || echo /usr/sbin/nginx)" \
		--haproxy "$(command -v haproxy || echo /usr/sbin/haproxy)" --h2load "$(command -v h2load || echo h2load)" \
		--results "$root/bench/results" --work "$work" "$@" &
elif [[ $mode == lbbench ]]; then
	"$bin/lbbench" --shoal "$bin/shoal" --sidecar "$bin/shoal-sidecar" \
		--nginx "$(command -v nginx || echo /usr/sbin/nginx)" \
		--haproxy "$(command -v haproxy || echo /usr/sbin/haproxy)" \
		--nodejs "$root/nodejs" --results "$root/bench/results" --work "$work" "$@" &
else
	"$bin/cpbench" --shoal "$bin/shoal" --results "$root/bench/results" --work "$work" "$@" &
fi
harness_pid=$!
[[ $mode == lbbench ]] && lb_pid=$harness_pid
wait "$harness_pid"
harness_pid=
if [[ $mode == sidebyside ]]; then
	# The memory goal is stated with 1,000 endpoints loaded.
	rss=$(SIDECAR_BIN="$bin/shoal-sidecar" bench/rss.sh 1000) || rss="bench/rss.sh failed"
	printf '\n%s\n' "$rss"
	printf '\n%s (bench/rss.sh 1000)\n' "$rss" >>"$root/bench/results/latest.md"
fi
