#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for rnnbench's integration test, without systemd:
#   bash .ci/slurm.sh start   install munge + slurmctld + slurmd + slurm-client if missing, start them
#   bash .ci/slurm.sh stop    stop the daemons by the PIDs they wrote
# Needs root and Debian's packages. No accounting database: rnnbench waits on `squeue` and reads
# the results files, never `sacct`, so slurmdbd and MariaDB are not needed.
# Pitfalls handled: the package scripts cannot start services in a container (we start the
# daemons ourselves); munged writes its own PID file (/run/munge/munged.pid); a PID 1 that does
# not reap leaves stopped daemons as zombies, which count as stopped here.
set -euo pipefail
ACTION="${1:-start}"
PIDDIR=/run/rnnbench-slurm
CONF=/etc/slurm/slurm.conf
mkdir -p "$PIDDIR"

alive() {  # a zombie counts as dead
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z* ]]
}

stop_daemons() {
  for pidfile in "$PIDDIR/slurmd.pid" "$PIDDIR/slurmctld.pid" /run/munge/munged.pid; do
    [[ -s "$pidfile" ]] || continue
    pid=$(head -n1 "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [[ "$ACTION" == stop ]]; then
  stop_daemons
  echo "slurm: stopped"
  exit 0
fi

start=$(date +%s)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  timeout 180 apt-get update -qq
  timeout 600 apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
fi
installed=$(date +%s)
echo "slurm: install $((installed - start)) s"

# munge: a key, and the daemon as the munge user
if [[ ! -s /etc/munge/munge.key ]]; then
  /usr/sbin/mungekey --create --force 2>/dev/null \
    || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
stop_daemons
runuser -u munge -- /usr/sbin/munged --force
for _ in $(seq 50); do [[ -S /run/munge/munge.socket.2 ]] && break; sleep 0.1; done
munge -n | unmunge >/dev/null

# one node, this host, every core; jobs ask for their memory (CR_Core_Memory)
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF" <<EOF
ClusterName=rnnbench-ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${PIDDIR}/slurmctld.pid
SlurmdPidFile=${PIDDIR}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=60
KillWait=5
Waittime=0
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF

/usr/sbin/slurmctld -i  # -i: forget the state of earlier runs
/usr/sbin/slurmd
for _ in $(seq 150); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 0.2
done
sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)' || { echo "slurm: the node did not come up"; exit 1; }
echo "slurm: start $(( $(date +%s) - installed )) s"
sinfo
