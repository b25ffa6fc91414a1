#!/usr/bin/env bash
# Installs what the tests need besides the Go-built tools: the browser driver's npm packages
# (playwright-core, pinned, cached outside the tree) and Debian's Chromium (for the headless
# sign-in test). Each step is skipped when already done, so a second run takes a moment.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/hack/browser/install.sh"
bash "$root/hack/chromium.sh"
