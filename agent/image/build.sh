#!/usr/bin/env bash
# The image a tester's VM boots (agent/image/Dockerfile), and how to publish it as an flist.
#
#   agent/image/build.sh [all]      the static hero-agent, the build context, then the image
#                                   (needs docker with a running daemon, or buildah), then how to
#                                   push it and convert it to an flist
#   agent/image/build.sh binary     only the static hero-agent:
#                                   target/x86_64-unknown-linux-musl/release/hero-agent
#   agent/image/build.sh context    the binary and the build context target/agent-image/context/
#                                   (no image tool needed; build the image elsewhere from it)
#   agent/image/build.sh publish    print how to push the image and make the pinned flist
#   agent/image/build.sh tag        print the default tag of the current sources
#
# Environment:
#   IMAGE           the image's repository (default ghcr.io/hero-sandbox/sandbox-tester); the hub
#                   must be able to pull it (public)
#   TAG             its tag (default `agent/image/build.sh tag`: <agent version>-<source digest>,
#                   the digest of the files the image is made from, so that the commit that sets
#                   the controller's FLIST to the published name still gives the same tag)
#   BASE_IMAGE      instead of the Dockerfile's ARG BASE_IMAGE; must be pinned (…@sha256:<digest>)
#   ZINIT_SHA256    instead of the Dockerfile's ARG ZINIT_SHA256
#   ALLOW_UNPINNED  1: build on an unpinned base anyway (local tries; never publish that image)
#   CONTAINER_TOOL  docker or buildah (default: docker if its daemon answers, else buildah)
#
# The binary is built as hack/image.sh builds the controller's: release, --locked, target
# x86_64-unknown-linux-musl (musl-gcc from Debian's musl-tools), checked static, then stripped.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/agent/image"
TARGET=x86_64-unknown-linux-musl
CARGO="${CARGO:-cargo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/$TARGET/release/hero-agent"
context="$target_dir/agent-image/context"
IMAGE="${IMAGE:-ghcr.io/hero-sandbox/sandbox-tester}"

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
# shellcheck source=hack/musl.sh
source "$root/hack/musl.sh"

# The agent's version (agent/Cargo.toml).
agent_version() {
  sed -n 's/^version = "\(.*\)"$/\1/p' "$root/agent/Cargo.toml" | head -n 1
}

# The first 12 hex digits of a SHA-256 over the files the image is made from (the agent and the
# workspace crates it depends on, the lock file, this directory; not docs nor tests), tracked or
# new, as they are in the work tree. The controller's FLIST is outside them: the commit that
# pins the published name has the digest the image was built from.
source_digest() {
  (
    cd "$root"
    git ls-files -z --cached --others --exclude-standard -- \
      agent gate gridapi Cargo.toml Cargo.lock ':!*.md' ':!*/tests/*' |
      LC_ALL=C sort -zu |
      while IFS= read -r -d '' f; do
        if [ -f "$f" ]; then
          printf '%s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
        fi
      done
  ) | sha256sum | cut -c1-12
}

# <agent version>-<source digest>.
default_tag() {
  git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    die "$root is not a git checkout: the default tag needs git; set TAG"
  echo "$(agent_version)-$(source_digest)"
}

# The default of `ARG NAME=` in the Dockerfile.
dockerfile_arg() {
  sed -n "s/^ARG $1=\(.*\)$/\1/p" "$here/Dockerfile" | head -n 1
}

# The static, stripped agent at $bin.
build_binary() {
  build_static agent hero-agent || die "the static hero-agent could not be built"
  log "$bin ($(du -h "$bin" | cut -f1), static)"
}

# The build context: the stripped binary next to the Dockerfile and the files it copies.
stage_context() {
  build_binary
  rm -rf "$context"
  mkdir -p "$context"
  strip -o "$context/hero-agent" "$bin"
  chmod 0755 "$context/hero-agent"
  cp "$here/Dockerfile" "$context/Dockerfile"
  cp -R "$here/zinit" "$here/sshd_config.d" "$context/"
  log "build context: $context"
}

# Which tool builds the image; dies with what to do when there is none.
pick_tool() {
  local want="${CONTAINER_TOOL:-}"
  case "$want" in
    "" | docker | buildah) ;;
    *) die "CONTAINER_TOOL=$want: use docker or buildah" ;;
  esac
  if [ "$want" != buildah ] && command -v docker >/dev/null; then
    if docker info >/dev/null 2>&1; then
      echo docker
      return
    fi
    [ "$want" = docker ] && die "docker is installed but its daemon does not answer (docker info fails): start it, or use CONTAINER_TOOL=buildah"
    log "docker is installed but its daemon does not answer; trying buildah"
  fi
  if [ "$want" != docker ] && command -v buildah >/dev/null; then
    echo buildah
    return
  fi
  local missing="neither a docker daemon that answers nor buildah"
  [ -n "$want" ] && missing="no usable $want (CONTAINER_TOOL=$want)"
  die "the image step needs docker (with a running daemon) or buildah, and this machine has $missing.
  Install one (Debian: apt-get install docker.io, or apt-get install buildah), or run
    agent/image/build.sh context
  here and build the image from target/agent-image/context/ on a machine that has one:
    docker build --platform linux/amd64 -t $IMAGE:<tag> target/agent-image/context"
}

# Refuses, before any build, what must not be published: an unpinned base or no zinit checksum.
check_pins() {
  local base sha
  base="${BASE_IMAGE:-$(dockerfile_arg BASE_IMAGE)}"
  sha="${ZINIT_SHA256:-$(dockerfile_arg ZINIT_SHA256)}"
  if [ -z "$sha" ]; then
    die "ZINIT_SHA256 is empty: set ARG ZINIT_SHA256 in agent/image/Dockerfile once, from
    curl -fsSL https://github.com/threefoldtech/zinit/releases/download/$(dockerfile_arg ZINIT_VERSION)/$(dockerfile_arg ZINIT_ASSET) | sha256sum
  (or pass ZINIT_SHA256=<sha256> for a try)"
  fi
  case "$base" in
    *@sha256:*) ;;
    *)
      if [ "${ALLOW_UNPINNED:-}" = 1 ]; then
        log "warning: the base $base is not pinned by digest (ALLOW_UNPINNED=1): never publish this image"
      else
        die "the base $base is not pinned by digest: set ARG BASE_IMAGE in agent/image/Dockerfile to
    docker.io/library/ubuntu:24.04@sha256:<digest>
  (the Digest: line of \`docker pull docker.io/library/ubuntu:24.04\`, or
   \`skopeo inspect --raw docker://docker.io/library/ubuntu:24.04 | sha256sum\`), or ALLOW_UNPINNED=1 for a local try"
      fi
      ;;
  esac
}

build_image() {
  local tool tag args=()
  tool="$(pick_tool)"
  check_pins
  tag="${TAG:-$(default_tag)}"
  stage_context
  if [ -n "${BASE_IMAGE:-}" ] || [ -n "${ZINIT_SHA256:-}" ]; then
    log "warning: BASE_IMAGE or ZINIT_SHA256 from the environment: the tag does not cover them; publish only images built from the Dockerfile's own pins"
  fi
  [ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  [ -n "${ZINIT_SHA256:-}" ] && args+=(--build-arg "ZINIT_SHA256=$ZINIT_SHA256")
  log "building $IMAGE:$tag with $tool"
  case "$tool" in
    docker) docker build --platform linux/amd64 ${args[@]+"${args[@]}"} -t "$IMAGE:$tag" -f "$context/Dockerfile" "$context" >&2 ;;
    buildah) buildah bud --platform linux/amd64 ${args[@]+"${args[@]}"} -t "$IMAGE:$tag" -f "$context/Dockerfile" "$context" >&2 ;;
  esac
  log "built $IMAGE:$tag"
  publish_help "$tool" "$tag"
}

# How to push the image and make the pinned flist the controller deploys.
publish_help() {
  local tool="${1:-docker}" tag="${2:-${TAG:-$(default_tag)}}"
  local ref="$IMAGE:$tag" converted="${IMAGE//\//-}-$tag.flist" name="sandbox-tester-$tag.flist"
  converted="${converted//:/-}"
  cat <<EOF

Publishing $ref as an flist (agent/README.md, "Publishing"):

 1. Push it where the hub can pull it (public):
      $tool push $ref

 2. Convert it on the hub (https://hub.grid.tf, signed in; an API token from your hub page):
      web: https://hub.grid.tf/docker-convert, image $ref
      API: curl -fsS -H "Authorization: bearer \$HUB_TOKEN" -F image=$ref \\
             https://hub.grid.tf/api/flist/me/docker
    The hub names it <your hub repository>/$converted

 3. Give it its pinned name, after checking that name is free (a rename overwrites):
      curl -sS https://hub.grid.tf/api/flist/<repository>/$name/light      # must say "source not found"
      curl -fsS -H "Authorization: bearer \$HUB_TOKEN" \\
        https://hub.grid.tf/api/flist/me/$converted/rename/$name
      curl -fsS https://hub.grid.tf/api/flist/<repository>/$name/light      # "type": "regular", its "md5"

 4. In the same commit as this image's sources, set FLIST in controller/src/tester/deployment.rs:
      pub const FLIST: &str = "https://hub.grid.tf/<repository>/$name";
    Never reuse or overwrite a published name: a changed image gets a new tag, hence a new name.
EOF
}

case "${1:-all}" in
  all) build_image ;;
  binary) build_binary ;;
  context) stage_context ;;
  publish) publish_help "${CONTAINER_TOOL:-docker}" ;;
  tag) echo "${TAG:-$(default_tag)}" ;;
  *) echo "usage: $0 [all|binary|context|publish|tag]" >&2; exit 2 ;;
esac
