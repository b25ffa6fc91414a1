#!/usr/bin/env bash
# Installs the browser driver's npm packages (playwright-core, pinned in package-lock.json) into
# a cache directory outside the repository, keyed by the lock file's hash, and links
# hack/browser/node_modules to it. Skips everything when that exact lock is already installed,
# so tests may call it every time. Cache root: $BROWSER_NPM_CACHE, else
# ~/.cache/hero-sandbox/browser-npm.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
lock_hash="$(sha256sum "$here/package-lock.json" | cut -c1-16)"
cache_root="${BROWSER_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hero-sandbox/browser-npm}"
dir="$cache_root/$lock_hash"
mkdir -p "$cache_root"

exec 9>"$cache_root/.lock"
flock 9

if [ ! -f "$dir/.installed" ]; then
  echo "installing the browser driver's npm packages into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$dir/.installed"
fi

if [ "$(readlink "$here/node_modules" 2>/dev/null)" != "$dir/node_modules" ]; then
  rm -rf "$here/node_modules"
  ln -s "$dir/node_modules" "$here/node_modules"
fi
