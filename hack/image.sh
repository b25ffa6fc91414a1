#!/usr/bin/env bash
# The controller's container image, built without a Docker daemon (`make image`, `make image-import`).
#
#   hack/image.sh [build]      static musl release build of the controller, then the OCI image archive
#                              target/image/controller-<version>.oci.tar (prints its manifest digest)
#   hack/image.sh import       build, start a private containerd if none answers, import the image
#                              into its namespace `hero` (as ghcr.io/hero-sandbox/controller:<version>)
#   hack/image.sh containerd   start the private containerd if it does not answer (prints its socket)
#   hack/image.sh containerd-down   stop the private containerd this script started
#   hack/image.sh writer       build the image writer if needed (prints its path; hack/node.sh uses it)
#
# The image holds only /controller (static, stripped), /etc/ssl/certs/ca-certificates.crt (the
# host's Debian ca-certificates bundle), /etc/passwd and /etc/group (hack/tools/image/rootfs,
# user `controller` 65532:65532), runs as USER 65532:65532 with ENTRYPOINT ["/controller"].
# It is reproducible: every time in it is SOURCE_DATE_EPOCH (default 0) and its entries are
# sorted, so the same sources give the same digest. The Dockerfile at the root builds the same
# layout for those who have Docker.
#
# The writer is hack/tools/image (go-containerregistry, pinned in its go.mod), built once into
# $TOOLS_BIN (hack/lib.sh) with a version stamp. The private containerd keeps its root, state,
# socket and log under .run/containerd/; CONTAINERD_ADDRESS points the script at another one.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

TARGET=x86_64-unknown-linux-musl
NAME=ghcr.io/hero-sandbox/controller
NAMESPACE=hero
CARGO="${CARGO:-cargo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out_dir="$target_dir/image"
run_dir="$root/.run/containerd"
sock="${CONTAINERD_ADDRESS:-$run_dir/containerd.sock}"

log() { echo "image.sh: $*" >&2; }
# shellcheck source=hack/musl.sh
source "$root/hack/musl.sh"

# The controller's version: the workspace's version of the controller package.
version() {
  "$CARGO" metadata --no-deps --format-version 1 --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "controller"))'
}

# The static controller: target/x86_64-unknown-linux-musl/release/controller.
build_controller() { build_static controller controller; }

# The image writer in $TOOLS_BIN, rebuilt when hack/tools/image changes.
build_writer() {
  local dir="$root/hack/tools/image" v stamp
  v="$(awk '$1=="require" && $2=="github.com/google/go-containerregistry" {print $3}' "$dir/go.mod")"
  stamp="$v+$(cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go" | sha256sum | cut -c1-16)"
  writer="$TOOLS_BIN/oci-image"
  if [ -x "$writer" ] && [ "$(cat "$TOOLS_BIN/.oci-image.version" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  mkdir -p "$TOOLS_BIN"
  log "building the image writer (go-containerregistry $v)"
  (cd "$dir" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$writer" .) >&2
  echo "$stamp" > "$TOOLS_BIN/.oci-image.version"
}

# Writes target/image/controller-<version>.oci.tar and prints its manifest digest.
build_image() {
  local v certs=/etc/ssl/certs/ca-certificates.crt
  v="$(version)"
  build_controller
  build_writer
  [ -s "$certs" ] || apt_install ca-certificates
  mkdir -p "$out_dir"
  strip -o "$out_dir/.controller.tmp" "$target_dir/$TARGET/release/controller"
  mv "$out_dir/.controller.tmp" "$out_dir/controller"
  local archive="$out_dir/controller-$v.oci.tar" digest
  digest="$("$writer" -name "$NAME" -tag "$v" -epoch "${SOURCE_DATE_EPOCH:-0}" \
    -user 65532:65532 -entrypoint /controller \
    -add "/controller=$out_dir/controller:0755" \
    -add "/etc/ssl/certs/ca-certificates.crt=$certs:0644" \
    -add "/etc/passwd=$root/hack/tools/image/rootfs/etc/passwd:0644" \
    -add "/etc/group=$root/hack/tools/image/rootfs/etc/group:0644" \
    -out "$archive")"
  echo "$digest" > "$out_dir/controller-$v.digest"
  log "$NAME:$v $digest"
  log "$archive ($(du -h "$archive" | cut -f1))"
  echo "$digest"
}

ctr_() { ctr -a "$sock" -n "$NAMESPACE" "$@"; }

# Starts the private containerd unless something answers on $sock.
containerd_up() {
  command -v containerd >/dev/null || apt_install containerd
  command -v runc >/dev/null || apt_install runc
  if ctr -a "$sock" version >/dev/null 2>&1; then
    echo "$sock"
    return 0
  fi
  if [ -n "${CONTAINERD_ADDRESS:-}" ]; then
    log "nothing answers on CONTAINERD_ADDRESS=$sock"
    return 1
  fi
  mkdir -p "$run_dir/root" "$run_dir/state"
  cat > "$run_dir/config.toml" <<EOF
version = 2
root = "$run_dir/root"
state = "$run_dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$run_dir/debug.sock"
EOF
  rm -f "$sock" "$sock.ttrpc" "$run_dir/debug.sock"
  log "starting containerd on $sock (log: $run_dir/containerd.log)"
  setsid containerd --config "$run_dir/config.toml" >"$run_dir/containerd.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$run_dir/containerd.pid"
  local deadline=$((SECONDS + 60))
  until ctr -a "$sock" version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "containerd exited; its log:"
      tail -n 30 "$run_dir/containerd.log" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "containerd does not answer on $sock after 60s; its log:"
      tail -n 30 "$run_dir/containerd.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$sock"
}

containerd_down() {
  local pidfile="$run_dir/containerd.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = containerd ]; then
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
}

import_image() {
  local v archive
  v="$(version)"
  build_image >/dev/null
  archive="$out_dir/controller-$v.oci.tar"
  containerd_up >/dev/null
  ctr_ images import --platform linux/amd64 "$archive" >&2
  ctr_ images ls "name==$NAME:$v" >&2
}

case "${1:-build}" in
  build) build_image ;;
  import) import_image ;;
  containerd) containerd_up ;;
  writer) build_writer && echo "$writer" ;;
  containerd-down) containerd_down ;;
  *) echo "usage: $0 [build|import|containerd|containerd-down|writer]" >&2; exit 2 ;;
esac
