#!/usr/bin/env bash
# Installs Debian's chromium (for the gate's headless sign-in test) when it is missing.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (apt-get).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
# A lock so that two test processes never run apt-get at the same time.
exec 9>/tmp/gate-chromium-install.lock
flock 9
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "installing Debian chromium (first run only)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
