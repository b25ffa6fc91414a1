#!/usr/bin/env bash
# `make run`: the whole thing on this machine. The local control plane (or your cluster, if
# KUBECONFIG points at one), gridshim on its sample config, the test OIDC provider and the
# controller, with the examples applied and the sample Tester driven to Ready.
#
#   hack/run.sh up     start everything (idempotent), wait for the sample Tester, print how to use it
#   hack/run.sh down   stop gridshim, the provider and the controller (the control plane stays)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
# shellcheck source=hack/ports.sh
source "$root/hack/ports.sh"
run="$root/.run"
ns="${SANDBOX_NAMESPACE:-sandbox}"
mkdir -p "$run"

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME READY-TEXT CMD...: runs CMD in the background, logging to .run/NAME.log, and waits
# for READY-TEXT in the log.
start() {
  local name="$1" ready="$2"; shift 2
  if alive "$name"; then return 0; fi
  nohup "$@" >"$run/$name.log" 2>&1 &
  echo $! > "$run/$name.pid"
  for _ in $(seq 1 600); do
    grep -q "$ready" "$run/$name.log" 2>/dev/null && return 0
    alive "$name" || { echo "$name exited; last lines of $run/$name.log:" >&2; tail -n 20 "$run/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$name did not become ready; see $run/$name.log" >&2
  exit 1
}

# need_ports NAME WHAT HOST:PORT...: unless NAME already runs from this checkout, every port must
# be free; a port held by something else (another checkout's `make run`, most likely) stops here
# with one line saying who holds it and how to stop that, not later with a bind error.
need_ports() {
  local name="$1" what="$2" hp; shift 2
  alive "$name" && return 0
  for hp in "$@"; do
    if port_in_use "${hp##*:}" "${hp%:*}"; then
      taken_message "${hp##*:}" "$what" stop >&2
      exit 1
    fi
  done
}

down() {
  for name in controller gridshim oidc; do
    if alive "$name"; then
      kill "$(cat "$run/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$run/$name.pid"
  done
  echo "stopped gridshim, the OIDC provider and the controller (make cluster-down stops the control plane)"
}

up() {
  bash "$root/hack/build-tools.sh" kine kubernetes
  bash "$root/hack/oidc/install.sh" >/dev/null
  (cd "$root" && cargo build --workspace --bins --quiet)
  eval "$(bash "$root/hack/cluster.sh" up)"
  local kubectl="$TOOLS_BIN/kubectl"
  "$kubectl" apply --server-side --force-conflicts -f "$root/crds/" >/dev/null
  "$kubectl" wait --for=condition=Established --timeout=60s crd --all >/dev/null

  need_ports gridshim "gridshim" 127.0.0.1:8800 127.0.0.1:8880 127.77.0.1:7801 127.77.0.1:7802
  need_ports oidc "the OIDC provider" 127.0.0.1:5556
  need_ports controller "the controller's metrics" 127.0.0.1:8080
  start gridshim "gridshim listening on" "$root/target/debug/gridshim" \
    --config "$root/gridshim/gridshim.sample.yaml" --db "$run/gridshim.db"
  start oidc "OIDC_READY" env OIDC_PORT=5556 bash "$root/hack/oidc/start.sh"
  [ -f "$run/agent-key" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$run/agent-key"
  # It watches only its own namespace: Testers elsewhere (the e2e tests' namespaces, with their
  # own gridshims and controllers) are not its business.
  start controller "scheduler ledger rebuilt" env \
    GRID_URL=http://127.0.0.1:8800 GRID_TWIN_ID=7 GRID_TWIN_SECRET=controller-secret \
    AGENT_KEY="$(cat "$run/agent-key")" ADMINS=admin \
    OIDC_ISSUER=http://127.0.0.1:5556 OIDC_CLIENT_ID=gate OIDC_CLIENT_SECRET=gate-dev-secret \
    PUBLIC_URL_FORMAT='http://{fqdn}:8880/' PRIVATE_NETWORK_PROXY=http://127.0.0.1:8880 \
    PROXY_LAG=0s METRICS_ADDR=127.0.0.1:8080 \
    WATCH_NAMESPACE="$ns" \
    "$root/target/debug/controller"

  "$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$kubectl" -n "$ns" apply -f "$root/examples/" >/dev/null
  echo "waiting for the sample Tester (kubectl -n $ns get testers -w) ..." >&2
  if ! "$kubectl" -n "$ns" wait --for=condition=Ready tester/alice --timeout=180s >/dev/null; then
    "$kubectl" -n "$ns" get tester alice -o yaml >&2
    echo "the sample Tester did not become Ready; logs are in $run/" >&2
    exit 1
  fi
  local url
  url="$("$kubectl" -n "$ns" get tester alice -o jsonpath='{.status.url}')"
  "$kubectl" -n "$ns" get testers,hostpools,sharedengines
  cat <<EOT

The sample Tester is Ready.
  export KUBECONFIG=$KUBECONFIG
  Open $url and sign in as alice / alice-password (admin / admin-password is an administrator;
  bob / bob-password is refused with a friendly page).
  Metrics: http://127.0.0.1:8080/metrics   Grid inspection: http://127.0.0.1:8800/inspect
  Logs: $run/*.log   Stop: make stop
EOT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
