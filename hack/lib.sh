# Shared settings of the hack/ scripts. Sourced, not run.
# Built tools live outside the work tree so that every clone on this machine shares them and a
# second run (or CI's fresh clone) skips the build.
TOOLS_BIN="${HERO_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/hero-sandbox/bin}"
export TOOLS_BIN

# Background processes of the cluster and node scripts: pid files in $data, logs in $logs
# (both set by the sourcing script).

# pid_alive NAME: the process of $data/NAME.pid runs.
pid_alive() { [ -f "$data/$1.pid" ] && kill -0 "$(cat "$data/$1.pid")" 2>/dev/null; }

# start NAME CMD...: runs CMD in the background (unless NAME runs), logging to $logs/NAME.log.
start() {
  local name="$1"; shift
  pid_alive "$name" && return 0
  # 9>&- : the children must not inherit the caller's lock, or they would hold it forever.
  nohup "$@" >"$logs/$name.log" 2>&1 9>&- &
  echo $! > "$data/$name.pid"
}

# stop NAME...: SIGTERM, up to 10 s to go, then SIGKILL; the pid files go too.
stop() {
  local name
  for name in "$@"; do
    if pid_alive "$name"; then
      kill "$(cat "$data/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do pid_alive "$name" || break; sleep 0.2; done
      pid_alive "$name" && kill -9 "$(cat "$data/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$data/$name.pid"
  done
}
