#!/usr/bin/env bash
# Runs the benchmarks (make bench builds the release binaries first). The bench starts a control
# plane of its own under .run/bench-cluster (on a free port; the shared one is never touched),
# gridshim, the OIDC provider and the release controller, prints one table, and writes the same
# numbers as JSON to bench/results/latest.json (BENCH_OUT to change). Knobs: BENCH_SCALE,
# BENCH_ONLY, BENCH_QUIET_SECS, BENCH_CONCURRENCY, BENCH_KUBE_QPS, BENCH_GRID_QPS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CARGO_TARGET_DIR:-$root/target}/release/bench"
if [ ! -x "$bin" ]; then
  echo "$bin is not built; run: cargo build --release --workspace --bins (make bench does)" >&2
  exit 1
fi
# The bench picks its own cluster; a KUBECONFIG of the caller must not redirect it.
unset KUBECONFIG
BENCH_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" exec "$bin" "$@"
