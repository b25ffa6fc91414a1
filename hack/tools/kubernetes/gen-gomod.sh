#!/usr/bin/env bash
# Regenerates this wrapper go.mod for a k8s.io/kubernetes release: k8s.io/kubernetes requires
# each staging module (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and replaces it with a local
# path, which a dependent module cannot use; so every such requirement is replaced here with the
# matching published v0.MINOR.PATCH. The list is derived from k8s.io/kubernetes's own go.mod.
# Usage: hack/tools/kubernetes/gen-gomod.sh 1.37.2
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k="${1:?usage: $0 KUBERNETES_VERSION (e.g. 1.37.2)}"
proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"
upstream="$(curl -fsS "$proxy/k8s.io/kubernetes/@v/v$k.mod")"
go_line="$(printf '%s\n' "$upstream" | awk '$1=="go" {print $2; exit}')"
{
  echo "// Wrapper module: builds kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes."
  echo "// Regenerate with hack/tools/kubernetes/gen-gomod.sh; the replace list comes from k8s.io/kubernetes's own go.mod."
  echo "module hero.dev/hack/tools/kubernetes"
  echo
  echo "go $go_line"
  echo
  echo "require k8s.io/kubernetes v$k"
  echo
  echo "replace ("
  printf '%s\n' "$upstream" | grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' \
    | awk -v v="v0.${k#1.}" '{print "\t"$1" => "$1" "v}'
  echo ")"
} > "$here/go.mod"
(cd "$here" && GOWORK=off GOFLAGS=-mod=mod go mod tidy)
echo "wrote $here/go.mod for k8s.io/kubernetes v$k" >&2
