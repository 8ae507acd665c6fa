# syntax=docker/dockerfile:1
#
# The edge gateway image: a static binary on distroless, run as non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t edge-gateway .
#   docker run -p 8080:8080 -p 9090:9090 -e GATEWAY_OPS__TOKEN=... edge-gateway
#
# The build command below is the one e2e/harness_test.go runs in CI without
# Docker (e2e/ops_deploy_test.go checks that they stay the same), so a build
# this file would break is caught by `go test ./...`.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/bffgate/edge/gateway/daemon.Version=${VERSION}" -o /out/gateway ./cmd/gateway

# distroless/static: CA certificates, /etc/passwd with the nonroot user
# (65532), no shell and no package manager. The binary carries its own time
# zone data (time/tzdata).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /gateway
# The default configuration. Override it by mounting a directory over
# /etc/gateway (Kubernetes: a ConfigMap), and any key by environment
# (GATEWAY_ + the key path in upper case, "__" between segments).
COPY config.yaml /etc/gateway/config.yaml
# Inside a container the listeners must accept connections from outside it.
# An ops listener that is not on loopback needs GATEWAY_OPS__TOKEN (16+
# characters): without it the gateway refuses to start.
ENV GATEWAY_CONFIG=/etc/gateway/config.yaml \
    GATEWAY_SERVER__LISTEN=0.0.0.0:8080 \
    GATEWAY_OPS__LISTEN=0.0.0.0:9090
# nonroot, by number: the kubelet checks runAsNonRoot only against a numeric
# USER (with a name, a pod that does not set runAsUser is refused).
USER 65532:65532
# 8080: the public API. 9090: probes, metrics and ops endpoints.
EXPOSE 8080 9090
# `gateway healthcheck` asks the ops listener's /healthz (no curl needed).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/gateway", "healthcheck"]
ENTRYPOINT ["/gateway"]
