#!/bin/bash
# Stage 2 of a `vm/run-command` VM (instead of run.sh): the same mounts as a test VM, then the
# command the host wrote to /mnt/nm-out/command, run in the checkout with its output on the
# console; its exit code goes to /mnt/nm-out/rc. The VM powers off at the end, also on failure.
set -u
say() { echo "nm-vm: [$(cut -d" " -f1 /proc/uptime) s] $*"; }
finish() {
  sync
  echo 1 > /proc/sys/kernel/sysrq
  echo o > /proc/sysrq-trigger
  sleep 30
}
trap finish EXIT
DIR=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^nm\.dir=//p' | head -1)
OUT=/mnt/nm-out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb NO_COLOR=1
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
# fresh /run and /tmp, unless the checkout itself lives there
case "$DIR/" in /run/*) ;; *) mount -t tmpfs -o mode=0755 tmpfs /run ;; esac
mkdir -p /run/netns /run/lock
case "$DIR/" in /tmp/*) ;; *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;; esac
mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null || true
mount -t devpts devpts /dev/pts 2>/dev/null || true
ip link set lo up
hostname "nm-vm"
cd "$DIR" || exit 1
uname -r > "$OUT/release"
say "kernel $(uname -r), $(nproc) cpu(s), $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MiB; running the command"
bash "$OUT/command" 2>&1
echo $? > "$OUT/rc"
say "command done (exit $(cat "$OUT/rc"))"
