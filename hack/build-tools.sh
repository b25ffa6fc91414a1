#!/usr/bin/env bash
# Builds the pinned Go tools this project runs against (kube-apiserver, kube-controller-manager,
# kubectl, kine, helm) from the Go module proxy into $TOOLS_BIN (see hack/lib.sh), skipping any tool whose pinned
# build is already there. Usage: hack/build-tools.sh [kubernetes|kine|helm]...
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

# stamped NAME VERSION: true when $bin/NAME was built from VERSION.
stamped() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$bin/.$1.version"; }

build_kubernetes() {
  local v="$K8S_VERSION" minor major=1
  minor="$(echo "$v" | cut -d. -f2)"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    if stamped "$cmd" "$v"; then continue; fi
    echo "building $cmd $v (first run only; takes several minutes)" >&2
    (cd "$root/hack/tools/kubernetes" && go build -tags selinux,notest -ldflags "$ld" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
    stamp "$cmd" "$v"
  done
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

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kine kubernetes)
for t in "${targets[@]}"; do "build_$t"; done
