#!/usr/bin/env bash
# A single-node SLURM (munge + slurmctld + slurmd on 127.0.0.1) for CI and tests, on Debian 12,
# as root, without systemd. Written from the recipe in ../shared/slurm-notes.md.
#
# Usage: slurm-single-node.sh start|stop|status|install
# Environment:
#   SLURM_BASE        state, spool, logs, pid files and slurm.conf (default /tmp/slurm-ci)
#   SLURM_PORT        slurmctld port; slurmd uses SLURM_PORT+1 (default 6817)
#   SLURM_NODENAME    node name (default: `hostname -s`, or localhost when that does not resolve)
# After "start":  export SLURM_CONF=$SLURM_BASE/slurm.conf   (sbatch/squeue/sinfo need it)
set -euo pipefail
BASE=${SLURM_BASE:-/tmp/slurm-ci}
PORT=${SLURM_PORT:-6817}
NODE=${SLURM_NODENAME:-}
export SLURM_CONF=$BASE/slurm.conf

install_pkgs() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return 0
  # --no-install-recommends: 8 packages instead of 41 (hdf5, rocm-smi, influxdb plugins ...)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    munge slurmctld slurmd slurm-client >/dev/null
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  # Debian's munge postinst creates the key; create it only if missing
  if [ ! -s /etc/munge/munge.key ]; then mungekey -c -k /etc/munge/munge.key; fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge; chmod 0600 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge    # systemd's RuntimeDirectory, made by hand
  if munge_ok; then return 0; fi                      # already running (shared with others)
  # as root munged refuses its log file (owner check): run it as the munge user; it forks
  runuser -u munge -- /usr/sbin/munged
  touch "$BASE/run/munged.ours"                       # stop only a munged we started
  for _ in $(seq 50); do munge_ok && return 0; sleep 0.1; done
  echo "munged did not come up; see /var/log/munge/munged.log" >&2; return 1
}

node_name() {
  # slurmd must find its NodeName; a host name that does not resolve: run the node as localhost
  if [ -z "$NODE" ]; then
    NODE=$(hostname -s)
    getent hosts "$NODE" >/dev/null || NODE=localhost
  fi
}

write_conf() {
  local mem node
  node_name
  # CPUs/Boards/Sockets/Cores/Threads exactly as slurmd detects them; RealMemory = 90% of MemAvailable
  node=$(slurmd -C | sed -n -E "1{s/ RealMemory=[0-9]+//;s/^NodeName=[^ ]+/NodeName=$NODE/p}")
  mem=$(( $(awk '/^MemAvailable:/{print $2}' /proc/meminfo) / 1024 * 90 / 100 ))
  # proctrack/linuxproc + task/none: no cgroups (portable to cgroup-v2-only or read-only runners)
  cat > "$SLURM_CONF" <<CONF
ClusterName=ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
${node} NodeAddr=127.0.0.1 RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_slurm() {
  # a second slurmctld on a taken port dies, while sinfo still answers from the old one
  if port_busy "$PORT" || port_busy $((PORT + 1)); then
    echo "port $PORT or $((PORT + 1)) already in use (another slurmctld/slurmd?); set SLURM_PORT" >&2
    return 1
  fi
  # both fork and write the PidFiles named in slurm.conf; -c: start with empty state
  slurmctld -c
  slurmd -N "$NODE"
  for _ in $(seq 120); do
    if [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; then
      kill -0 "$(cat "$BASE/run/slurmctld.pid")" && kill -0 "$(cat "$BASE/run/slurmd.pid")" && return 0
    fi
    sleep 0.25
  done
  echo "node not idle:" >&2; sinfo -N -l >&2 || true; tail -20 "$BASE"/log/*.log >&2; return 1
}

# a zombie counts as gone (some init processes reap orphans only every few seconds)
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

stop_pid() {
  local pid
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
}

stop_all() {
  [ -f "$SLURM_CONF" ] || return 0
  if [ -s "$BASE/run/slurmctld.pid" ] && alive "$(cat "$BASE/run/slurmctld.pid")"; then
    scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 40); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
  fi
  # let slurmstepd report job ends to slurmd before slurmd goes away
  for _ in $(seq 40); do pgrep -x slurmstepd >/dev/null || break; sleep 0.25; done
  stop_pid "$BASE/run/slurmd.pid"
  stop_pid "$BASE/run/slurmctld.pid"
  rm -f "$BASE/run/slurmd.pid" "$BASE/run/slurmctld.pid"
  if [ -f "$BASE/run/munged.ours" ]; then
    stop_pid /run/munge/munged.pid
    rm -f "$BASE/run/munged.ours"
  fi
}

case "${1:-start}" in
  install) install_pkgs ;;
  start)   install_pkgs
           mkdir -p "$BASE"/{state,spool,log,run}
           start_munge; write_conf; start_slurm
           echo "SLURM up. export SLURM_CONF=$SLURM_CONF" ;;
  stop)    stop_all ;;
  status)  sinfo; squeue ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
