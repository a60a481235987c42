#!/usr/bin/env bash
# quickstart-test.sh runs the README's "Quick start with Node.js" exactly as
# written: it reads the ```sh blocks of that section from README.md (so the
# guide and this test cannot drift apart) and runs each in a fresh shell at
# the root of a scratch copy of the repository, the way a newcomer pastes
# them into terminals.
#
# Every block of the section carries an HTML comment (invisible on GitHub)
# right above it that says how to run it; a block without one fails the run:
#
#   <!-- quickstart: background ready=URL -->  a long-running terminal: started
#        in the background, then URL is polled until it answers 2xx
#   <!-- quickstart: expect=TEXT -->  run until all it prints is TEXT, once
#        or more (curl fails on HTTP errors here), within a deadline
#   <!-- quickstart: run -->          run until it exits 0, within a deadline
#   <!-- quickstart: skip reason="..." -->  not run; the reason is printed
#
# The guide uses the default, fixed ports (2379, 18000, 15001, ...). When it
# can, the script runs everything in a network namespace of its own so that
# it never collides with anything else on the machine (a second copy of the
# test suite); otherwise it takes a lock and uses the host's loopback.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
readme="$repo/README.md"
ready_timeout=${QUICKSTART_READY_TIMEOUT:-240} # seconds; the first block builds shoal
run_timeout=${QUICKSTART_RUN_TIMEOUT:-60}

work=$(mktemp -d /tmp/shoal-quickstart.XXXXXX)
blocks="$work/blocks"
copy="$work/repo"
mkdir -p "$blocks" "$copy"

# Split the section into numbered blocks: N.sh (the code) and N.meta (the
# annotation).
awk -v dir="$blocks" '
  /^## Quick start with Node.js/ { in_section = 1; next }
  in_section && /^## / { exit }
  !in_section { next }
  /^<!-- quickstart:/ { meta = $0; sub(/^<!-- quickstart: */, "", meta); sub(/ *-->$/, "", meta); next }
  /^```sh$/ { n++; file = sprintf("%s/%02d", dir, n); print meta > (file ".meta"); close(file ".meta"); meta = ""; code = 1; next }
  code && /^```$/ { code = 0; close(file ".sh"); next }
  code { print > (file ".sh") }
' "$readme"
count=$(find "$blocks" -name '*.sh' | wc -l)
if [ "$count" -eq 0 ]; then
  echo "quickstart: no \`\`\`sh blocks found in README.md's Quick start section" >&2
  exit 1
fi

# A scratch copy of the tree as checked out (tracked and untracked files,
# not what .gitignore ignores), so the guide's data dirs and binary land
# there and not in the developer's tree.
(cd "$repo" && git ls-files -z -c -o --exclude-standard | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$copy"

ns=""
exec_in=()
if [ "$(id -u)" = 0 ] && command -v ip > /dev/null && ip netns add "shoal-qs-$$" 2> /dev/null; then
  ns="shoal-qs-$$"
  ip -n "$ns" link set lo up
  exec_in=(ip netns exec "$ns")
  echo "quickstart: running in network namespace $ns"
else
  exec 9> /tmp/shoal-quickstart.lock
  echo "quickstart: no network namespace (needs root and iproute2); waiting for the host loopback lock"
  flock 9
fi

pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2> /dev/null || true
  done
  if [ -n "$ns" ]; then ip netns del "$ns" 2> /dev/null || true; fi
  if [ $rc -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -e "$log" ] || continue
      echo "----- $(basename "$log")" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

in_ns() { "${exec_in[@]}" "$@"; }

# wait_ready polls url (from inside the namespace) until it answers 2xx,
# failing early when the block's process has exited.
wait_ready() {
  local url=$1 pid=$2 name=$3 deadline=$((SECONDS + ready_timeout))
  until in_ns curl -fsS --max-time 2 -o /dev/null "$url" 2> /dev/null; do
    if ! kill -0 "$pid" 2> /dev/null; then
      echo "quickstart: block $name exited before $url answered" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "quickstart: block $name: $url did not answer within ${ready_timeout}s" >&2
      return 1
    fi
    sleep 0.2 # poll interval
  done
}

# retry runs block file f until check accepts its output or the deadline
# passes.
retry() {
  local f=$1 name=$2 check=$3 deadline=$((SECONDS + run_timeout)) out
  while :; do
    # curl fails on HTTP errors here, so a 404 or 503 is a failed attempt.
    if out=$(cd "$copy" && in_ns bash -c 'curl() { command curl -fsS --max-time 5 "$@"; }; export -f curl; set -eo pipefail; source "$0"' "$f" 2>&1) && $check "$out"; then
      printf '%s\n' "$out" | sed 's/^/    /'
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "quickstart: block $name did not pass within ${run_timeout}s; last output:" >&2
      printf '%s\n' "$out" | sed 's/^/    /' >&2
      return 1
    fi
    sleep 0.5 # retry interval: routes reach the sidecars asynchronously
  done
}

want=""
# only_want accepts output made of want, once or more (curl prints no newline
# after a body without one), and nothing else.
only_want() {
  local rest=${1//"$want"/}
  [[ "$1" == *"$want"* && -z "${rest//[[:space:]]/}" ]]
}
always() { return 0; }

for f in "$blocks"/*.sh; do
  name=$(basename "$f" .sh)
  meta=$(cat "$blocks/$name.meta")
  first=$(head -n 1 "$f")
  echo "quickstart: block $name [$meta] $first"
  case "$meta" in
    background\ ready=*)
      url=${meta#background ready=}
      (cd "$copy" && exec setsid "${exec_in[@]}" bash -euo pipefail "$f") > "$work/$name.log" 2>&1 &
      pids+=($!)
      wait_ready "$url" $! "$name"
      ;;
    expect=*)
      want=${meta#expect=}
      retry "$f" "$name" only_want
      ;;
    run)
      retry "$f" "$name" always
      ;;
    skip\ reason=*)
      echo "quickstart: block $name not run: ${meta#skip reason=}"
      ;;
    *)
      echo "quickstart: block $name has no (or an unknown) <!-- quickstart: ... --> annotation: \"$meta\"" >&2
      exit 1
      ;;
  esac
done
echo "quickstart: ok ($count blocks)"
