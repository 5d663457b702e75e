#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying `launcher=submitit_slurm` and for CI's
# tests/test_slurm.py. Debian/Ubuntu, as root:
#
#   sudo bash scripts/slurm_single_node.sh          # install (when missing), configure, start
#   sudo bash scripts/slurm_single_node.sh stop     # stop slurmctld, slurmd and munged
#
# It installs Debian's slurm-wlm and munge with apt when they are missing, writes
# /etc/slurm/slurm.conf for this host (one node with all its cores, one default partition
# "debug"; proctrack/linuxproc, task/none and select/cons_tres, so no cgroups or systemd are
# needed), starts munged, slurmctld and slurmd, and waits until the node takes jobs. A cluster
# that already answers is left alone, and a slurm.conf this script did not write is never
# overwritten. Exit status 0: the cluster is up; 1: it is not, and the last line says why.
set -euo pipefail

MARKER="# written by cvlab scripts/slurm_single_node.sh"
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

fail() {
    echo "slurm_single_node: $*" >&2
    exit 1
}
trap 'echo "slurm_single_node: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

cluster_up() {
    command -v sinfo > /dev/null || return 1
    local states
    states=$(timeout 10 sinfo -h -N -o %T 2> /dev/null) || return 1
    grep -qE '^(idle|mixed|allocated|completing)' <<< "$states"
}

stop_cluster() {
    if command -v scontrol > /dev/null; then
        timeout 20 scontrol shutdown > /dev/null 2>&1 || true
    fi
    if [ -f /run/munge/munged.pid ]; then
        kill "$(cat /run/munge/munged.pid)" 2> /dev/null || true
    fi
    echo "slurm_single_node: stopped"
}

install_packages() {
    command -v apt-get > /dev/null || fail "slurm-wlm is not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    local apt_options=(-q -y -o Acquire::Retries=1 -o Acquire::http::Timeout=20
                       -o Dpkg::Use-Pty=0 --no-install-recommends)
    echo "slurm_single_node: installing slurm-wlm and munge (apt)"
    if ! timeout 300 apt-get install "${apt_options[@]}" slurm-wlm munge > /tmp/slurm_apt.log 2>&1
    then
        # Stale package lists are the usual cause: refresh them once and retry.
        timeout 120 apt-get update -q -o Acquire::Retries=1 -o Acquire::http::Timeout=20 \
            >> /tmp/slurm_apt.log 2>&1 \
            || fail "apt-get update failed (offline?); see /tmp/slurm_apt.log"
        timeout 300 apt-get install "${apt_options[@]}" slurm-wlm munge >> /tmp/slurm_apt.log 2>&1 \
            || fail "apt-get install slurm-wlm munge failed; see /tmp/slurm_apt.log"
    fi
}

start_munge() {
    if munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key > /dev/null \
            || fail "could not create /etc/munge/munge.key"
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged || fail "munged did not start (see /var/log/munge)"
    munge -n | unmunge > /dev/null || fail "munge does not authenticate"
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        fail "$CONF exists and was not written by this script; not touching it"
    fi
    local node
    node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=... of this machine
    [[ $node == NodeName=* ]] || fail "slurmd -C did not describe this node: $node"
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    cat > "$CONF.tmp" <<CONF
$MARKER
ClusterName=cvlab
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    mv "$CONF.tmp" "$CONF"
}

start_daemons() {
    if ! timeout 10 scontrol ping 2> /dev/null | grep -q UP; then
        slurmctld || fail "slurmctld did not start; see /var/log/slurm/slurmctld.log"
    fi
    if [ ! -f /run/slurmd.pid ] || ! kill -0 "$(cat /run/slurmd.pid)" 2> /dev/null; then
        slurmd || fail "slurmd did not start; see /var/log/slurm/slurmd.log"
    fi
    for _ in $(seq 60); do
        cluster_up && return 0
        if timeout 10 sinfo -h -N -o %T 2> /dev/null | grep -qE '^(down|drain)'; then
            scontrol update NodeName="$HOST" State=RESUME > /dev/null 2>&1 || true
        fi
        sleep 1
    done
    fail "the node did not become idle within 60 s; see /var/log/slurm/"
}

if [ "${1:-start}" = stop ]; then
    stop_cluster
    exit 0
fi
[ "${1:-start}" = start ] || fail "unknown action '$1' (allowed: start, stop)"
[ "$(id -u)" = 0 ] || fail "needs root (apt, /etc/slurm and the daemons)"
if cluster_up; then
    echo "slurm_single_node: a cluster already answers:"
    sinfo
    exit 0
fi
if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null \
        || ! command -v munged > /dev/null; then
    install_packages
fi
start_munge
write_config
start_daemons
echo "slurm_single_node: cluster up"
sinfo
