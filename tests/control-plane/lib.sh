# Sourced by build, up and down: where things live and how to recognise our
# own processes. Everything is under target/ of the checkout these scripts
# belong to, so several checkouts on one machine never touch each other.
# shellcheck shell=bash

# shellcheck disable=SC2034 # used by the scripts that source this
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cp="$root/target/control-plane"
bin="$cp/bin"
pki="$cp/pki"
run="$cp/run"
logs="$cp/logs"
kubeconfig="$cp/kubeconfig"

need() { # command, why, Debian package
  command -v "$1" >/dev/null ||
    { echo "error: '$1' is needed $2; install it (Debian/Ubuntu: apt-get install $3)" >&2; exit 1; }
}

# Serialises callers (parallel test binaries, CI and a demo at once) on one
# lock file outside run/, which --purge deletes. A caller that already holds
# it (up calling down) sets CMK_CP_LOCKED so the child does not wait on it.
lock() {
  [ -n "${CMK_CP_LOCKED:-}" ] && return 0
  mkdir -p "$cp"
  exec 9>"$cp/.lock"
  flock -w 1800 9 ||
    { echo "error: another control-plane script still holds $cp/.lock" >&2; exit 1; }
  export CMK_CP_LOCKED=1
}

# True when pid runs this checkout's binary (its argv[0] is the exact path we
# start it with): a stale pid file whose pid now belongs to something else,
# or another checkout's control plane, is never mistaken for ours.
ours() { # pid, binary path
  local argv0
  IFS= read -r -d '' argv0 2>/dev/null <"/proc/$1/cmdline" || return 1
  [ "$argv0" = "$2" ]
}

# Pids running this checkout's binary, pid file or not (orphans included).
pids_of() { # binary path
  local p
  for p in /proc/[0-9]*; do
    ours "${p#/proc/}" "$1" && echo "${p#/proc/}"
  done
  return 0
}

# Pid from run/NAME.pid when it still runs our NAME binary.
alive() { # name
  local pid
  [ -f "$run/$1.pid" ] || return 1
  pid=$(cat "$run/$1.pid")
  ours "$pid" "$bin/$1"
}
