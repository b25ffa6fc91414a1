#!/usr/bin/env bash
# Starts the test OIDC provider in the foreground (installing it first when needed).
# Port: $OIDC_PORT or the first argument (default 0 = any free port); see provider.mjs for
# the other settings and the test accounts. Prints "OIDC_READY issuer=..." once listening.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/install.sh"
if [ $# -gt 0 ]; then export OIDC_PORT="$1"; fi
exec node "$here/provider.mjs"
