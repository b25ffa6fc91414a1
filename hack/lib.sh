# Shared settings of the hack/ scripts. Sourced, not run.
# Built tools live outside the work tree so that every clone on this machine shares them and a
# second run (or CI's fresh clone) skips the build.
TOOLS_BIN="${HERO_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/hero-sandbox/bin}"
export TOOLS_BIN
