# syntax=docker/dockerfile:1
# The Sensorcast operator image: the EdgeAutoscaler controller.
#
#   docker build -f deploy/images/operator.Dockerfile --build-arg VERSION=v0.1.0 -t sensorcast-operator:v0.1.0 .
#
# Built from the repository root (the Go workspace needs every module).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.work go.work.sum ./
COPY proto/go.mod proto/go.sum proto/
COPY services/go.mod services/go.sum services/
COPY operator/go.mod operator/go.sum operator/
COPY tests/go.mod tests/go.sum tests/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/sensorcast-operator ./operator/cmd

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sensorcast-operator" \
      org.opencontainers.image.description="Sensorcast operator: scales edge pods by their live WebSocket connections" \
      org.opencontainers.image.source="https://github.com/sensorcast/sensorcast" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/sensorcast-operator /sensorcast-operator
USER 65532:65532
ENTRYPOINT ["/sensorcast-operator"]
