#!/usr/bin/env bash
# The local control plane, assembled as k3s assembles it: kine (etcd API over SQLite) on a unix
# socket, kube-apiserver with TLS (on every address: Pods of hack/node.sh reach it at the
# bridge's 10.88.0.1), client-certificate admin, the Node authorizer and RBAC, and
# kube-controller-manager for garbage collection, namespace deletion, service-account tokens and
# their CA ConfigMap, Deployments, ReplicaSets and node taints. hack/node.sh adds a node (kubelet,
# kube-scheduler).
#
#   hack/cluster.sh up       start (or reuse) it; prints the KUBECONFIG line
#   hack/cluster.sh down     stop it; data stays in .run/cluster
#   hack/cluster.sh reset    stop it and delete its data
#   hack/cluster.sh status   say whether it answers
#
# If KUBECONFIG points at a reachable cluster (your own k3s), `up` uses that instead.
# The API server's port: CLUSTER_PORT if set (refused, with who holds it, when it is taken);
# otherwise the one recorded in the data folder (`port`), or 16443, or the next free one when
# another checkout holds it. Several checkouts' control planes can so run side by side.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
# shellcheck source=hack/ports.sh
source "$root/hack/ports.sh"
data="${CLUSTER_DIR:-$root/.run/cluster}"
port_file="$data/port"
port="${CLUSTER_PORT:-$(cat "$port_file" 2>/dev/null || echo 16443)}"
kubeconfig="$data/kubeconfig"
pki="$data/pki"
logs="$data/logs"

readyz() {
  curl -fsS --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$port/readyz" >/dev/null 2>&1
}


# The node's bridge address (hack/node.sh): Pods reach the API server there.
NODE_GATEWAY=10.88.0.1

gen_pki() {
  # A data folder from before the node: its server certificate lacks the bridge address.
  if [ -f "$pki/server.crt" ] && ! openssl x509 -in "$pki/server.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "$NODE_GATEWAY"; then
    echo "the API server's certificate predates the node; run: make cluster-reset" >&2
  fi
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=hero-sandbox-ca" 2>/dev/null
    cat > server.ext <<EOT
subjectAltName=IP:127.0.0.1,IP:10.43.0.1,IP:$NODE_GATEWAY,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth
EOT
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
      -days 3650 -extfile server.ext 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt \
      -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext
  )
}

write_kubeconfig() {
  cat > "$kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: hero-sandbox
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: hero-sandbox
  context: {cluster: hero-sandbox, user: admin, namespace: default}
current-context: hero-sandbox
EOT
}

up() {
  if [ -n "${KUBECONFIG:-}" ] && [ "$KUBECONFIG" != "$kubeconfig" ] \
     && "$TOOLS_BIN/kubectl" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    echo "using the cluster KUBECONFIG points at ($KUBECONFIG)" >&2
    echo "export KUBECONFIG=$KUBECONFIG"
    return 0
  fi
  "$root/hack/build-tools.sh" kine kubernetes
  mkdir -p "$data" "$logs"
  exec 9>"$data/.lock"
  flock 9
  gen_pki
  if ! readyz && port_in_use "$port"; then
    # Held by something else: another checkout's control plane, most likely.
    if [ -n "${CLUSTER_PORT:-}" ]; then
      taken_message "$port" "CLUSTER_PORT, the local API server" cluster-down >&2
      exit 1
    fi
    echo "$(taken_message "$port" "the local API server" cluster-down); this checkout uses another" >&2
    port="$(free_port $(( port + 1 )))"
  fi
  echo "$port" > "$port_file"
  write_kubeconfig
  if ! readyz; then
    start kine "$TOOLS_BIN/kine" \
      --endpoint "sqlite://$data/state.db?_journal=WAL&cache=shared&_busy_timeout=30000" \
      --listen-address "unix://$data/kine.sock" --metrics-bind-address 0
    start kube-apiserver "$TOOLS_BIN/kube-apiserver" \
      --etcd-servers "unix://$data/kine.sock" \
      --bind-address 0.0.0.0 --advertise-address 127.0.0.1 --secure-port "$port" \
      --endpoint-reconciler-type none \
      --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
      --client-ca-file "$pki/ca.crt" \
      --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
      --service-account-issuer https://kubernetes.default.svc \
      --service-account-key-file "$pki/sa.pub" \
      --service-account-signing-key-file "$pki/sa.key" \
      --api-audiences https://kubernetes.default.svc \
      --service-cluster-ip-range 10.43.0.0/16 \
      --enable-priority-and-fairness=false \
      --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
      --profiling=false --storage-media-type application/json
    local i
    for i in $(seq 1 240); do
      readyz && break
      if ! pid_alive kube-apiserver; then
        echo "kube-apiserver exited; last lines of $logs/kube-apiserver.log:" >&2
        tail -n 20 "$logs/kube-apiserver.log" >&2
        exit 1
      fi
      sleep 0.5
    done
    readyz || { echo "kube-apiserver not ready after 120 s; see $logs" >&2; exit 1; }
  fi
  start kube-controller-manager "$TOOLS_BIN/kube-controller-manager" \
    --kubeconfig "$kubeconfig" \
    --controllers garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller,node-lifecycle-controller \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 0
  echo "control plane ready at https://127.0.0.1:$port (logs in $logs)" >&2
  echo "export KUBECONFIG=$kubeconfig"
}

# stop_node: the node of hack/node.sh, if this control plane has one (its failure to stop
# must not keep the control plane running: that is stopped next either way).
stop_node() {
  [ -d "$data/node" ] || return 0
  CLUSTER_DIR="$data" bash "$root/hack/node.sh" down || echo "stopping the node failed; see $logs" >&2
}

down() { stop kube-controller-manager kube-apiserver kine; }

case "${1:-up}" in
  up) up ;;
  down) stop_node; down ;;
  reset) stop_node; down; rm -rf "$data" ;;
  status) if readyz; then echo "up: https://127.0.0.1:$port"; else echo "down"; exit 1; fi ;;
  *) echo "usage: $0 up|down|reset|status" >&2; exit 2 ;;
esac
