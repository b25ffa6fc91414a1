#!/usr/bin/env bash
# One tester end to end on the REAL ThreeFold devnet, then deleted; prints each step. Not in CI
# (nothing here can reach the grid): run it by hand on a machine with internet access.
#
#   MNEMONIC_FILE=~/devnet.mnemonic \
#   CATALOG_URL=https://releases.example.org/catalog \
#   RELEASE_INDEX_URL=https://releases.example.org/releases/index.json \
#   NODES=11,12 GATEWAY_NODES=14 \
#     bash hack/real-grid-smoke.sh
#
# MNEMONIC_FILE   a devnet account's mnemonic (with a twin, some TFT, and the twin's relay and
#                 public key set, as the dashboard or rmb-peer sets them); read into a Secret, never
#                 printed
# CATALOG_URL, RELEASE_INDEX_URL
#                 the project's release catalog and index, reachable from the devnet VMs
# NODES, GATEWAY_NODES
#                 devnet node ids with capacity, and with a gateway domain
# GRID_NETWORK    dev (default), qa, test or main
# KEY_TYPE        sr25519 (default) or ed25519
#
# It uses the local control plane, the Forge and the controller binary of this checkout
# (`make build` first), like `make run`, with GRID=tfgrid.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
run="$root/.run/real-grid"
ns=real-grid-smoke
mkdir -p "$run"
: "${MNEMONIC_FILE:?set MNEMONIC_FILE to a file holding a devnet mnemonic}"
: "${CATALOG_URL:?set CATALOG_URL}" "${RELEASE_INDEX_URL:?set RELEASE_INDEX_URL}"
: "${NODES:?set NODES, e.g. 11,12}" "${GATEWAY_NODES:?set GATEWAY_NODES, e.g. 14}"
network="${GRID_NETWORK:-dev}"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "control plane and Forge"
bash "$root/hack/build-tools.sh" kine kubernetes gitea
eval "$(bash "$root/hack/cluster.sh" up)"
kubectl="$TOOLS_BIN/kubectl"
eval "$(FORGE_DIR="$run/forge" bash "$root/hack/forge.sh" up)"
"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" apply --server-side -f "$root/crds/" >/dev/null

step "controller on $network (GRID=tfgrid, node calls over RMB, chain over substrate)"
GRID=tfgrid GRID_NETWORK="$network" GRID_KEY_TYPE="${KEY_TYPE:-sr25519}" \
  GRID_MNEMONIC="$(cat "$MNEMONIC_FILE")" \
  CATALOG_URL="$CATALOG_URL" RELEASE_INDEX_URL="$RELEASE_INDEX_URL" \
  POD_NAMESPACE="$ns" WATCH_NAMESPACE="$ns" ADMINS=ops \
  FORGE_URL="$FORGE_URL" FORGE_TOKEN="$(cat "$FORGE_TOKEN_FILE")" \
  METRICS_ADDR=127.0.0.1:18080 RUST_LOG=info,kube=warn \
  nohup "$root/target/debug/controller" >"$run/controller.log" 2>&1 &
echo $! > "$run/controller.pid"
trap 'kill "$(cat "$run/controller.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  ready="$(curl -s http://127.0.0.1:18080/readyz || true)"
  [ "$ready" = ready ] && break
  sleep 1
done
echo "readyz: $ready"
[ "$ready" = ready ] || { tail -n 30 "$run/controller.log"; exit 1; }

step "HostPool and Tester"
"$kubectl" -n "$ns" apply -f - <<YAML
apiVersion: sandbox.hero.dev/v1alpha1
kind: HostPool
metadata: {name: devnet}
spec:
  nodes: [${NODES}]
  gatewayNodes: [${GATEWAY_NODES}]
  perTester: {cpu: 1, memoryGiB: 2, diskGiB: 15}
---
apiVersion: sandbox.hero.dev/v1alpha1
kind: Tester
metadata: {name: smoke}
spec:
  accountName: smoke
  email: smoke@example.org
  hostPool: devnet
  welcomeEmail: false
YAML

step "waiting for Ready (each condition as it changes)"
deadline=$((SECONDS + 1800))
last=""
while [ $SECONDS -lt $deadline ]; do
  now="$("$kubectl" -n "$ns" get tester smoke -o jsonpath='{range .status.conditions[*]}{.type}={.status}/{.reason} {end}')"
  [ "$now" != "$last" ] && echo "$(date +%T) $now" && last="$now"
  case "$now" in *"Ready=True"*) break ;; esac
  sleep 5
done
"$kubectl" -n "$ns" get tester smoke -o wide
case "$last" in *"Ready=True"*) ;; *) echo "not Ready in 30 minutes"; exit 1 ;; esac

step "deleting; the finalizer cancels every contract"
"$kubectl" -n "$ns" delete tester smoke --wait=true --timeout=20m
"$kubectl" -n "$ns" delete hostpool devnet --wait=true --timeout=5m
echo "done: the tester was created on $network and removed; controller log: $run/controller.log"
