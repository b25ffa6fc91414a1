#!/usr/bin/env bash
# A real node for the local control plane (hack/cluster.sh): containerd (Debian's, with its CRI
# plugin) and runc run the Pods, kubelet (built from the same k8s.io/kubernetes pin as the API
# server) registers the node `hero-node`, kube-scheduler places Pods on it, and the CNI plugins
# (github.com/containernetworking/plugins from the Go module proxy) give Pods a bridge network.
# Needs root (containers, cgroups, mounts). The sandbox ("pause") image is built here from the
# pause.c of the same Kubernetes source, so no registry is needed.
#
#   hack/node.sh up      start (or reuse) the node; waits until it is Ready
#   hack/node.sh down    stop kubelet, kube-scheduler and containerd (Pods stop with them)
#   hack/node.sh import ARCHIVE   import an OCI image archive for the kubelet (namespace k8s.io)
#   hack/node.sh tag IMAGE NEW    give an imported image another name (e.g. a new tag)
#
# On this machine (cgroup v1; root without CAP_SYS_RESOURCE) the kubelet runs with the cgroupfs
# driver, failCgroupV1: false and failSwapOn: false, and containerd with restrict_oom_score_adj;
# containerd 1.6 does not answer the CRI RuntimeConfig call, so the kubelet uses its own
# cgroupDriver (it says so in its log).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"
# shellcheck source=hack/ports.sh
source "$root/hack/ports.sh"
cluster="${CLUSTER_DIR:-$root/.run/cluster}"
data="$cluster/node"
pki="$cluster/pki"
logs="$cluster/logs"
node_name=hero-node
sock="$data/containerd/containerd.sock"
pause_image=hero.local/pause:v1.37

log() { echo "node.sh: $*" >&2; }
kubectl() { "$TOOLS_BIN/kubectl" --kubeconfig "$cluster/kubeconfig" "$@"; }

node_cert() {
  [ -f "$pki/node.crt" ] && return 0
  (
    cd "$pki"
    printf 'extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:%s\n' "$node_name" > node.ext
    openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr \
      -subj "/O=system:nodes/CN=system:node:$node_name" 2>/dev/null
    openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out node.crt \
      -days 3650 -extfile node.ext 2>/dev/null
    rm -f node.csr node.ext
  )
}

write_configs() {
  local port
  port="$(cat "$cluster/port")"
  mkdir -p "$data/containerd/root" "$data/containerd/state" "$data/cni/net.d" "$data/kubelet"
  cat > "$data/kubelet.kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: hero-sandbox
  cluster: {server: "https://127.0.0.1:$port", certificate-authority: "$pki/ca.crt"}
users:
- name: node
  user: {client-certificate: "$pki/node.crt", client-key: "$pki/node.key"}
contexts:
- name: node
  context: {cluster: hero-sandbox, user: node}
current-context: node
EOT
  cat > "$data/containerd/config.toml" <<EOT
version = 2
root = "$data/containerd/root"
state = "$data/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$data/containerd/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  enable_cdi = false
  # This machine withholds CAP_SYS_RESOURCE, so no process may lower its oom_score_adj below
  # containerd's own; the sandboxes' -998 would make runc fail ("failed to update
  # /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$TOOLS_BIN/cni"
    conf_dir = "$data/cni/net.d"
EOT
  cat > "$data/cni/net.d/10-hero.conflist" <<EOT
{
  "cniVersion": "1.0.0",
  "name": "hero",
  "plugins": [
    {"type": "bridge", "bridge": "hero0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$data/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOT
  cat > "$data/kubelet.yaml" <<EOT
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$pki/node.crt"
tlsPrivateKeyFile: "$pki/node.key"
containerRuntimeEndpoint: "unix://$sock"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
EOT
}

# The pause binary from the Kubernetes source of the pin, static, in a one-file image.
pause_image() {
  ctr -a "$sock" -n k8s.io images ls -q "name==$pause_image" 2>/dev/null | grep -q . && return 0
  local src out="$data/pause"
  src="$(cd "$root/hack/tools/kubernetes" && GOWORK=off GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  mkdir -p "$out"
  gcc -Os -static -DVERSION=v1.37 -o "$out/pause" "$src"
  bash "$root/hack/image.sh" writer >/dev/null
  "$TOOLS_BIN/oci-image" -name "${pause_image%:*}" -tag "${pause_image##*:}" -epoch 0 \
    -user 65535:65535 -entrypoint /pause -add "/pause=$out/pause:0755" -out "$out/pause.oci.tar" >/dev/null
  ctr -a "$sock" -n k8s.io images import --platform linux/amd64 "$out/pause.oci.tar" >&2
}

up() {
  [ "$(id -u)" = 0 ] || { log "a node needs root (containers, cgroups, mounts)"; exit 1; }
  command -v containerd >/dev/null && command -v runc >/dev/null ||
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc >&2; }
  bash "$root/hack/build-tools.sh" node
  eval "$(bash "$root/hack/cluster.sh" up)" >/dev/null
  mkdir -p "$data" "$logs"
  exec 9>"$data/.lock"
  flock 9
  # One node per machine: its kubelet ports and its bridge (10.88.0.0/16) are fixed.
  if ! pid_alive kubelet && port_in_use 10250; then
    taken_message 10250 "the kubelet of a node; one node runs per machine" cluster-down >&2
    exit 1
  fi
  node_cert
  write_configs
  swapoff -a 2>/dev/null || true
  if ! ctr -a "$sock" version >/dev/null 2>&1; then
    rm -f "$sock" "$sock.ttrpc"
    start containerd containerd --config "$data/containerd/config.toml"
    for _ in $(seq 1 100); do ctr -a "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
    ctr -a "$sock" version >/dev/null 2>&1 || { log "containerd did not start; see $logs/containerd.log"; tail -n 20 "$logs/containerd.log" >&2; exit 1; }
  fi
  pause_image
  start kube-scheduler "$TOOLS_BIN/kube-scheduler" --kubeconfig "$cluster/kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0
  start kubelet "$TOOLS_BIN/kubelet" --config "$data/kubelet.yaml" \
    --kubeconfig "$data/kubelet.kubeconfig" --root-dir "$data/kubelet" \
    --hostname-override "$node_name" --node-ip 127.0.0.1
  for _ in $(seq 1 240); do
    [ "$(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
    pid_alive kubelet || { log "kubelet exited; last lines of $logs/kubelet.log:"; tail -n 30 "$logs/kubelet.log" >&2; exit 1; }
    sleep 0.5
  done
  [ "$(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] ||
    { log "node $node_name not Ready after 120 s; see $logs/kubelet.log"; exit 1; }
  log "node $node_name Ready (containerd at $sock)"
  echo "CONTAINERD_ADDRESS=$sock"
}

down() {
  local id
  # The kubelet first, so that it restarts nothing; then every container of the node, so that
  # their mounts (rootfs, shm, volumes) and network namespaces go with them.
  if pid_alive kubelet; then kill "$(cat "$data/kubelet.pid")" 2>/dev/null || true; fi
  if ctr -a "$sock" version >/dev/null 2>&1; then
    for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$sock" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr -a "$sock" -n k8s.io containers ls -q 2>/dev/null); do
      for _ in $(seq 1 20); do
        ctr -a "$sock" -n k8s.io tasks delete "$id" >/dev/null 2>&1 || true
        ctr -a "$sock" -n k8s.io containers delete "$id" >/dev/null 2>&1 && break
        sleep 0.1
      done
    done
  fi
  stop kubelet kube-scheduler containerd
  # Whatever outlived containerd: its shims, and mounts under the node's folder.
  pkill -9 -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  { grep -o " $data/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  import) ctr -a "$sock" -n k8s.io images import --platform linux/amd64 "$2" >&2 ;;
  tag) ctr -a "$sock" -n k8s.io images tag --force "$2" "$3" >&2 ;;
  *) echo "usage: $0 up|down|import ARCHIVE|tag IMAGE NEW-NAME" >&2; exit 2 ;;
esac
