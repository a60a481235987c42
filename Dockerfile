# syntax=docker/dockerfile:1
# The shoal binary (control plane, sidecar, gateway, injector) and the slim
# sidecar build the injector uses, on a
# distroless static base: no shell, no libc, runs as nonroot (65532).
#   docker build -t ghcr.io/shoal-mesh/shoal:latest --build-arg VERSION=$(git describe --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) --build-arg BUILD_DATE=$(date -u +%FT%TZ) .
# (shoal version prints them.)

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
ARG BUILD_DATE=
# grpcnotrace leaves out grpc-go's golang.org/x/net/trace (grpc.EnableTracing,
# which shoal never sets): its /debug/requests page links html/template's
# executor, whose reflection keeps every exported method in the binary
# (+2.4 MB mapped, about +1.8 MiB of the sidecar's RSS; bench/rss.sh).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    LDFLAGS="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILD_DATE}" && \
    CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o /out/shoal ./cmd/shoal && \
    CGO_ENABLED=0 go build -trimpath -tags shoal_slim,grpcnotrace -ldflags "$LDFLAGS" -o /out/shoal-sidecar ./cmd/shoal

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shoal /shoal
# The injected sidecar runs the slim build: no control plane, etcd server,
# Envoy types or CLI, about 19 MiB RSS with 1,000 endpoints.
COPY --from=build /out/shoal-sidecar /shoal-sidecar
USER 65532:65532
EXPOSE 18000 18001 18002 7946 15000 15006 8080 8443
ENTRYPOINT ["/shoal"]
