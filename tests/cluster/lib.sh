# Sourced by build, up and down: where the test cluster lives and how to
# recognise its processes. Everything is under target/cluster/ of the
# checkout these scripts belong to; the node's network namespace and cgroup
# are named after a hash of that path, so several checkouts never meet.
# shellcheck shell=bash

# need, ours, pids_of from the control plane's helpers (its paths are
# replaced below; its lock() is not used here).
# shellcheck source-path=SCRIPTDIR source=../control-plane/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../control-plane/lib.sh"

# shellcheck disable=SC2034 # used by the scripts that source this
{
  cp_here=$here # tests/control-plane: builds etcd, kube-apiserver, kubectl
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  cl="$root/target/cluster"
  bin="$cl/bin"
  pki="$cl/pki"
  run="$cl/run"
  logs="$cl/logs"
  images="$cl/images"
  kubeconfig="$cl/kubeconfig"

  id=$(printf '%s' "$root" | sha256sum | cut -c1-8)
  netns="cmk-$id"                     # ip netns name: /run/netns/cmk-XXXXXXXX
  cgroup_root="/cmk-$id"              # kubelet's cgroupRoot, in every hierarchy
  node=cmk-node                       # node name; resolves through /etc/hosts in the netns
  node_ip=10.213.0.2                  # on an interface inside the netns only
  service_ip=10.0.0.1                 # the kubernetes Service, also on that interface
  pod_cidr=10.214.0.0/24 pod_gateway=10.214.0.1 # Pods, on a bridge inside the netns
  cni_bin=/usr/lib/cni                # Debian's containernetworking-plugins
  # Inside the namespace nothing else listens, so the ports are fixed.
  apiserver_port=443 etcd_port=2379 etcd_peer_port=2380
}

# The machine's own values of the kernel settings kubelet changes on start,
# saved by the first test cluster up on this machine (any checkout) and put
# back by the last one down; /run empties at boot, as the settings reset.
# shellcheck disable=SC2034 # used by up and down
sysctl_saved=/run/cmk-test-cluster.sysctl
other_kubelets() { # pids of any checkout's test-cluster kubelet
  local p argv0
  for p in /proc/[0-9]*; do
    IFS= read -r -d '' argv0 2>/dev/null <"$p/cmdline" || continue
    [[ $argv0 == */target/cluster/bin/kubelet ]] && echo "${p#/proc/}"
  done
  return 0
}

# Serialises up and down of this checkout's cluster. A caller that already
# holds the lock (up calling down) sets CMK_CLUSTER_LOCKED.
cluster_lock() {
  [ -n "${CMK_CLUSTER_LOCKED:-}" ] && return 0
  mkdir -p "$cl"
  exec 9>"$cl/.lock"
  flock -w 1800 9 ||
    { echo "error: another cluster script still holds $cl/.lock" >&2; exit 1; }
  export CMK_CLUSTER_LOCKED=1
}

# Pid from run/NAME.pid when it still runs our bin/NAME.
alive() { # name
  local pid
  [ -f "$run/$1.pid" ] || return 1
  pid=$(cat "$run/$1.pid")
  ours "$pid" "$bin/$1"
}

# The cgroup hierarchies kubelet will use: every v1 controller mount, or the
# unified one.
cgroup_dirs() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo /sys/fs/cgroup
  else
    local d
    for d in /sys/fs/cgroup/*/; do
      d=${d%/}
      [ -L "$d" ] && continue # cpu -> cpu,cpuacct and the like
      [ "${d##*/}" = unified ] && continue
      echo "$d"
    done
  fi
}
