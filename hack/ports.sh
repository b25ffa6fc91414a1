# Port helpers of the hack/ scripts. Sourced, not run.
#
# Several checkouts of this repository can run on one machine: each picks free ports for what it
# starts and records them in its own .run/, and when a port it needs is held by something else,
# it says in one line who holds it and how to stop that.

# port_in_use PORT [HOST]: something accepts connections on HOST:PORT (default 127.0.0.1).
port_in_use() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# free_port FROM: the first port from FROM (at most 500 further) that nothing listens on.
free_port() {
  local p
  for p in $(seq "$1" $(( $1 + 500 ))); do
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  echo "no free port between $1 and $(( $1 + 500 ))" >&2
  return 1
}

# port_holder PORT: "PID NAME" of the process listening on PORT, when it can be told.
port_holder() {
  local line pid
  line="$(ss -ltnpH "sport = :$1" 2>/dev/null | head -1)"
  pid="$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line" | head -1)"
  [ -n "$pid" ] && echo "$pid $(cat "/proc/$pid/comm" 2>/dev/null)"
}

# taken_message PORT WHAT STOP-TARGET: one line saying who holds PORT and how to stop it: the
# checkout whose `make STOP-TARGET` stops it when the holder runs from a checkout's .run/, the
# data folder of a control plane started elsewhere, or else the process.
taken_message() {
  local port="$1" what="$2" target="$3" holder pid name args kine runp checkout=""
  holder="$(port_holder "$port")"
  if [ -z "$holder" ]; then
    echo "port $port ($what) is taken by a process this user cannot see; free it or choose another port"
    return
  fi
  read -r pid name <<<"$holder"
  args="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)"
  # No match is normal (a kubelet has no kine socket): under pipefail grep's 1 must not end
  # the script before it says who holds the port.
  kine="$(grep -o '/[^ ]*/kine\.sock' <<<"$args" | head -1 | sed 's#^/*#/#' || true)"
  kine="${kine%/kine.sock}"
  runp="$(grep -o '/[^ ]*/\.run/' <<<"$args" | head -1 || true)"
  case "$kine" in
    */.run/*) checkout="${kine%%/.run/*}" ;;
    "") [ -n "$runp" ] && checkout="${runp%%/.run/*}" ;;
  esac
  if [ -n "$checkout" ] && [ -f "$checkout/Makefile" ]; then
    echo "port $port ($what) is taken by $name (pid $pid) of the checkout $checkout; stop it with: make -C $checkout $target"
  elif [ -n "$kine" ]; then
    echo "port $port ($what) is taken by $name (pid $pid), a control plane with its data in $kine; stop it with: CLUSTER_DIR=$kine $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster.sh down"
  else
    echo "port $port ($what) is taken by $name (pid $pid); stop it (kill $pid) or choose another port"
  fi
}
