# syntax=docker/dockerfile:1
# The controller's image, for those who have Docker (BuildKit):
#
#   docker build -t ghcr.io/hero-sandbox/controller:0.1.0 .
#
# The same layout as `make image` (hack/image.sh), which builds it without a Docker daemon as a
# reproducible OCI archive: a static musl build of the controller at /controller, the Debian
# CA bundle at /etc/ssl/certs/ca-certificates.crt, /etc/passwd and /etc/group with the user
# `controller` (65532:65532), USER 65532:65532, ENTRYPOINT ["/controller"], nothing else.
# The tag is the controller's version (controller/Cargo.toml), which the Helm chart defaults to.

FROM docker.io/library/rust:1.95-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$TARGET"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "$TARGET" -p controller --bin controller \
 && strip -o /controller "target/$TARGET/release/controller" \
 && file /controller | grep -Eq 'statically linked|static-pie linked'

FROM scratch
COPY --from=build --chmod=0644 /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --chmod=0644 hack/tools/image/rootfs/etc/passwd hack/tools/image/rootfs/etc/group /etc/
COPY --from=build --chmod=0755 /controller /controller
USER 65532:65532
ENTRYPOINT ["/controller"]
