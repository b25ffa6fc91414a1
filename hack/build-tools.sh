#!/usr/bin/env bash
# Builds the pinned Go tools this project runs against (kube-apiserver, kube-controller-manager,
# kubectl, kine, helm, gitea; for the local node kubelet, kube-scheduler and the CNI plugins)
# from the Go module proxy into $TOOLS_BIN (see hack/lib.sh), skipping any tool whose pinned
# build is already there. Usage: hack/build-tools.sh [kubernetes|kine|helm|gitea|node]...
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
bin="$TOOLS_BIN"
mkdir -p "$bin"
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod

K8S_VERSION="$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/hack/tools/kubernetes/go.mod")"
KINE_VERSION="$(awk '$1=="require" && $2=="github.com/k3s-io/kine" {print $3}' "$root/hack/tools/kine/go.mod")"
HELM_VERSION="$(awk '$1=="require" && $2=="helm.sh/helm/v4" {print $3}' "$root/hack/tools/helm/go.mod" 2>/dev/null || true)"
GITEA_VERSION="$(awk '$1=="replace" && $2=="gitea.dev" && $4=="code.gitea.io/gitea" {print $5}' "$root/hack/tools/gitea/go.mod" 2>/dev/null || true)"

# stamped NAME VERSION: true when $bin/NAME was built from VERSION.
stamped() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$bin/.$1.version"; }

# k8s_cmd CMD...: builds the Kubernetes commands CMD from the pin (version-stamped).
k8s_cmd() {
  local v="$K8S_VERSION" minor major=1 cmd
  minor="$(echo "$v" | cut -d. -f2)"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in "$@"; do
    if stamped "$cmd" "$v"; then continue; fi
    echo "building $cmd $v (first run only; takes several minutes)" >&2
    (cd "$root/hack/tools/kubernetes" && go build -tags selinux,notest -ldflags "$ld" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
    stamp "$cmd" "$v"
  done
}

build_kubernetes() { k8s_cmd kube-apiserver kube-controller-manager kubectl; }

CNI_VERSION="$(awk '$1=="require" && $2=="github.com/containernetworking/plugins" {print $3}' "$root/hack/tools/cni/go.mod")"

# The node (hack/node.sh): kubelet and kube-scheduler from the same pin as the API server, and
# the CNI plugins it wires Pods with (bridge, host-local, loopback, portmap) into $TOOLS_BIN/cni.
build_node() {
  build_kubernetes
  k8s_cmd kubelet kube-scheduler
  stamped cni/bridge "$CNI_VERSION" && return 0
  echo "building the CNI plugins $CNI_VERSION" >&2
  mkdir -p "$bin/cni"
  local p
  for p in ipam/host-local main/bridge main/loopback meta/portmap; do
    (cd "$root/hack/tools/cni" && go build -ldflags "-s -w" -o "$bin/cni/$(basename "$p")" \
      "github.com/containernetworking/plugins/plugins/$p")
  done
  mkdir -p "$bin/.cni" && stamp cni/bridge "$CNI_VERSION"
}

build_kine() {
  stamped kine "$KINE_VERSION" && return 0
  echo "building kine $KINE_VERSION" >&2
  (cd "$root/hack/tools/kine" && go build -ldflags "-s -w" -o "$bin/kine" github.com/k3s-io/kine)
  stamp kine "$KINE_VERSION"
}

build_helm() {
  [ -n "$HELM_VERSION" ] || { echo "hack/tools/helm/go.mod missing" >&2; return 1; }
  stamped helm "$HELM_VERSION" && return 0
  echo "building helm $HELM_VERSION" >&2
  (cd "$root/hack/tools/helm" && go build -ldflags "-s -w" -o "$bin/helm" helm.sh/helm/v4/cmd/helm)
  stamp helm "$HELM_VERSION"
}

# Gitea (hack/forge.sh runs it) is built inside a copy of its module's source, because its go.mod
# names the module gitea.dev (see hack/tools/gitea/go.mod) and carries replace directives that a
# wrapper module would drop. Templates, locales and migrations are embedded (tag bindata), so the
# binary needs no work tree; the browser UI's JS/CSS (an npm build) is left out: the API, OAuth2
# and OIDC endpoints the controller uses need none. Since 1.27 Gitea's default SQLite driver is
# modernc.org/sqlite (pure Go; the old `sqlite sqlite_unlock_notify` tags gate nothing any more and
# cgo's mattn driver needs `sqlite_mattn`), so the build needs no cgo and the binary is static.
# GITEA_BUILD_JOBS (default 1) is go build -p: the machine has two cores, shared with cargo.
build_gitea() {
  [ -n "$GITEA_VERSION" ] || { echo "hack/tools/gitea/go.mod has no gitea.dev replace line" >&2; return 1; }
  stamped gitea "$GITEA_VERSION" && return 0
  local v="$GITEA_VERSION" mod src start
  src="$(dirname "$bin")/src/gitea-$v"
  start=$SECONDS
  echo "building gitea $v (first run only; takes many minutes)" >&2
  mod="$(cd "$root/hack/tools/gitea" && go mod download -json "code.gitea.io/gitea@$v" | awk -F'"' '$2=="Dir" {print $4}')"
  [ -d "$mod" ] || { echo "go mod download code.gitea.io/gitea@$v gave no source directory" >&2; return 1; }
  if [ ! -f "$src/.copied" ]; then
    rm -rf "$src" "$src.tmp"
    mkdir -p "$(dirname "$src")"
    cp -r "$mod" "$src.tmp"
    chmod -R u+w "$src.tmp"
    touch "$src.tmp/.copied"
    mv "$src.tmp" "$src"
  fi
  (
    cd "$src"
    # Gitea's own go.mod and go.sum decide every dependency version.
    export GOFLAGS="-mod=readonly -buildvcs=false"
    for d in modules/options modules/public modules/templates modules/migration; do
      (cd "$d" && CGO_ENABLED=0 go generate -tags bindata) >/dev/null
    done
    local tags="bindata"
    CGO_ENABLED=0 go build -p "${GITEA_BUILD_JOBS:-1}" -tags "$tags" \
      -ldflags "-s -w -X main.Version=${v#v} -X 'main.Tags=$tags'" -o "$bin/gitea.tmp" .
  )
  mv "$bin/gitea.tmp" "$bin/gitea"
  stamp gitea "$v"
  echo "built gitea $v in $(( SECONDS - start ))s" >&2
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kine kubernetes)
for t in "${targets[@]}"; do "build_$t"; done
