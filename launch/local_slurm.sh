#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, from Debian's packages, for trying the
# cluster path (`hydra/launcher=slurm`) and for CI. Needs root (it installs packages, writes
# /etc/slurm/slurm.conf and starts daemons).
#
#   launch/local_slurm.sh start    # install if needed, configure, start munged/slurmctld/slurmd
#   launch/local_slurm.sh status   # sinfo + squeue
#   launch/local_slurm.sh stop     # stop the daemons (configuration and packages stay)
#
# One node named after this host, all its CPUs, one partition `debug` (the default).
# Settings that work without cgroups or systemd (containers, CI):
# proctrack/linuxproc, task/none, select/cons_tres.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
STATE=/var/spool/slurm-local
LOGS=/var/log/slurm-local
NODE=$(hostname -s)

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    echo "local_slurm: installing slurmctld slurmd slurm-client munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
        >/dev/null
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
    cat >"$CONF" <<EOF
# written by gansweep's launch/local_slurm.sh
ClusterName=gansweep-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job (preemption, time limit) may start again after 10 s instead of 120 s
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=10
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- munged
}

wait_for_node() {
    local deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        if timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            return 0
        fi
        sleep 1
    done
    echo "local_slurm: the node did not come up within 60 s; see $LOGS/" >&2
    timeout 5 sinfo -N -l >&2 || true
    return 1
}

stop_daemon() {  # and wait until it is gone, so that a following start really starts it
    pkill -x "$1" || return 0
    for _ in $(seq 30); do pgrep -x "$1" >/dev/null || return 0; sleep 1; done
    pkill -9 -x "$1" || true
}

start() {
    install_packages
    write_config
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    wait_for_node
    echo "local_slurm: up: node $NODE, $(nproc) CPUs, partition debug"
}

stop() {
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    echo "local_slurm: stopped"
}

status() {
    sinfo -N -l
    squeue
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
