#!/usr/bin/env bash
# Regenerates the Go code for proto/ with the pinned buf and plugins from
# tools/go.mod, and lints the protos. It also rewrites the slim sidecar's
# trimmed Envoy protos from tools/protosubset/envoy.keep and the compiled
# descriptors of the go-control-plane version go.mod pins, and generates
# their Go. With --check it fails when any committed generated file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .bin
go -C tools build -o ../.bin/ tool
export PATH="$PWD/.bin:$PATH"
go run tools/protosubset/main.go -keep tools/protosubset/envoy.keep \
  -out sidecar/internal/xdspb/proto -package shoal.xds \
  -go github.com/shoal-mesh/shoal/sidecar/internal/xdspb
go run tools/protosubset/main.go -keep tools/protosubset/etcd.keep \
  -out internal/etcdlite/internal/etcdpb/proto -package shoal.etcd \
  -go github.com/shoal-mesh/shoal/internal/etcdlite/internal/etcdpb
find sidecar/internal/xdspb internal/etcdlite/internal/etcdpb -name '*.pb.go' -delete
buf lint
buf generate
buf generate --template buf.gen.xdspb.yaml
buf generate --template buf.gen.etcdpb.yaml
generated=(proto/ sidecar/internal/xdspb/ internal/etcdlite/internal/etcdpb/)
if [ "${1:-}" = "--check" ]; then
  if [ -n "$(git status --porcelain -- "${generated[@]}")" ]; then
    git status --short -- "${generated[@]}" >&2
    echo "generated code is stale: run scripts/gen-proto.sh (make proto) and commit" >&2
    exit 1
  fi
fi
