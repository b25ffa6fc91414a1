# Sourced by hack/image.sh and agent/image/build.sh: a static musl build of one binary of the
# workspace, as both images need it. The caller defines `log`, `root`, `CARGO`, `target_dir`
# and `TARGET` (x86_64-unknown-linux-musl).

# Installs Debian packages (apt lists refreshed when empty or stale).
apt_install() {
  command -v apt-get >/dev/null || { log "missing $*: install it with your package manager"; return 1; }
  [ "$(id -u)" = 0 ] || { log "missing $*: install it (apt-get install $*) or run this as root"; return 1; }
  log "installing Debian packages: $*"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]; then
    apt-get update -qq >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2; }
}

# Builds binary $2 of package $1 for $TARGET (release, --locked) and checks that it is static:
# $target_dir/$TARGET/release/$2.
build_static() {
  local package="$1" name="$2"
  if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    log "adding the rust target $TARGET"
    rustup target add "$TARGET" >&2
  fi
  command -v musl-gcc >/dev/null || apt_install musl-tools
  command -v file >/dev/null || apt_install file
  log "building $name for $TARGET (release)"
  # What an outer `cargo test` or `cargo run` puts in the environment would make this build
  # dirty (ring's build script watches CARGO_MANIFEST_DIR): a subshell without it.
  (
    while IFS= read -r v; do unset "$v"; done < <(compgen -e |
      grep -E '^CARGO_(MANIFEST_|PKG_|CRATE_NAME$|PRIMARY_PACKAGE$|BIN_NAME$|TARGET_TMPDIR$|RUSTC_CURRENT_DIR$)')
    cd "$root" && "$CARGO" build --release --locked --target "$TARGET" -p "$package" --bin "$name"
  ) >&2
  local bin="$target_dir/$TARGET/release/$name" desc
  desc="$(file -b "$bin")"
  case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) log "$bin is not static: $desc"; return 1 ;;
  esac
  if ldd "$bin" 2>&1 | grep -q '=>'; then
    log "$bin links shared libraries: $(ldd "$bin" 2>&1)"
    return 1
  fi
}
