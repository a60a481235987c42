#!/usr/bin/env bash
# Regenerates the Go code for proto/ with the pinned buf and plugins from
# tools/go.mod, and lints the protos. With --check it fails when the
# committed generated code is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .bin
go -C tools build -o ../.bin/ tool
export PATH="$PWD/.bin:$PATH"
buf lint
buf generate
if [ "${1:-}" = "--check" ]; then
  if [ -n "$(git status --porcelain -- proto/)" ]; then
    git status --short -- proto/ >&2
    echo "generated code in proto/ is stale: run scripts/gen-proto.sh and commit" >&2
    exit 1
  fi
fi
