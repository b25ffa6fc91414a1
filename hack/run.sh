#!/usr/bin/env bash
# `make run`: the whole thing on this machine. The local control plane (or your cluster, if
# KUBECONFIG points at one), gridshim on its sample config, the Forge (a real Gitea: accounts and
# sign-in) and the controller, with the examples applied and the sample Tester driven to Ready.
#
#   hack/run.sh up     start everything (idempotent), wait for the sample Tester, print how to use it
#   hack/run.sh down   stop gridshim, the Forge and the controller (the control plane stays)
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
  for name in controller gridshim; do
    if alive "$name"; then
      kill "$(cat "$run/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$run/$name.pid"
  done
  FORGE_DIR="$run/forge" bash "$root/hack/forge.sh" down >/dev/null
  # The e2e tests leave their shared Forge running (like the control plane); stop it too.
  FORGE_DIR="$run/forge-e2e" bash "$root/hack/forge.sh" down >/dev/null
  echo "stopped gridshim, the Forge and the controller (make cluster-down stops the control plane)"
}

# account NAME: a sign-in account at the Forge with the password NAME-password (the demo's
# testers and administrator; an account that is already there is left as it is).
account() {
  local code
  code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "${FORGE_URL}api/v1/admin/users" \
    -H "Authorization: token $(cat "$FORGE_TOKEN_FILE")" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$1\",\"email\":\"$1@forge.localhost\",\"password\":\"$1-password\",\"must_change_password\":false,\"send_notify\":false}")"
  case "$code" in
    201|422) ;;
    *) echo "making the account $1 at the Forge answered HTTP $code" >&2; exit 1 ;;
  esac
}

up() {
  bash "$root/hack/build-tools.sh" kine kubernetes gitea
  (cd "$root" && cargo build --workspace --bins --quiet)
  eval "$(bash "$root/hack/cluster.sh" up)"
  local kubectl="$TOOLS_BIN/kubectl"
  "$kubectl" apply --server-side --force-conflicts -f "$root/crds/" >/dev/null
  "$kubectl" wait --for=condition=Established --timeout=60s crd --all >/dev/null

  need_ports gridshim "gridshim" 127.0.0.1:8800 127.0.0.1:8880 127.77.0.1:7801 127.77.0.1:7802
  need_ports controller "the controller's metrics" 127.0.0.1:8080
  start gridshim "gridshim listening on" "$root/target/debug/gridshim" \
    --config "$root/gridshim/gridshim.sample.yaml" --db "$run/gridshim.db"
  eval "$(FORGE_DIR="$run/forge" bash "$root/hack/forge.sh" up)"
  for name in alice bob ops; do account "$name"; done
  # Its namespace first: the controller keeps its agent-signing key Secret there.
  "$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  # It watches only its own namespace: Testers elsewhere (the e2e tests' namespaces, with their
  # own gridshims and controllers) are not its business.
  start controller "scheduler ledger rebuilt" env \
    GRID_URL=http://127.0.0.1:8800 GRID_TWIN_ID=7 GRID_TWIN_SECRET=controller-secret \
    GRID_MNEMONIC="bottom drive obey lake curtain smoke basket hold race lonely fit walk" \
    POD_NAMESPACE="$ns" ADMINS=ops \
    FORGE_URL="$FORGE_URL" FORGE_TOKEN="$(cat "$FORGE_TOKEN_FILE")" \
    PUBLIC_URL_FORMAT='http://{fqdn}:8880/' PRIVATE_NETWORK_PROXY=http://127.0.0.1:8880 \
    PROXY_LAG=0s METRICS_ADDR=127.0.0.1:8080 \
    WATCH_NAMESPACE="$ns" \
    "$root/target/debug/controller"

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
  Open $url and sign in at the Forge ($FORGE_URL) as alice / alice-password
  (ops / ops-password is an administrator; bob / bob-password is refused with a friendly page).
  The Forge's own administrator: user hero-admin, password in $run/forge/admin-password.
  Metrics: http://127.0.0.1:8080/metrics   Grid inspection: http://127.0.0.1:8800/inspect
  Logs: $run/*.log   Stop: make stop
EOT
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
