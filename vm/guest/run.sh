#!/bin/bash
# Stage 2 of a nodemesh test VM, in the guest on the host's root (read-only, under a tmpfs
# overlay): the mounts the tests expect (cgroup v2, bpffs, tmpfs /run and /tmp), then
# `nodemesh doctor` and the chosen tier against this checkout as built on the host. Results go
# to /mnt/nm-out (a share the host reads): doctor.txt, doctor.rc, report.json, tier.rc. The VM
# powers off at the end, also when something fails.
set -u
say() { echo "nm-vm: [$(cut -d" " -f1 /proc/uptime) s] $*"; }
finish() {
  sync
  echo 1 > /proc/sys/kernel/sysrq
  echo o > /proc/sysrq-trigger
  sleep 30
}
trap finish EXIT
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^nm\.$1=//p" | head -1; }
DIR=$(arg dir)
TIER=$(arg tier)
# vitest file filters (nm.files=a,b), as `nodemesh vm test --files` gives them
FILES=$(arg files | tr ',' ' ')
OUT=/mnt/nm-out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true TERM=dumb NO_COLOR=1
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
# fresh /run and /tmp, unless the checkout itself lives there (a CI clone in /tmp)
case "$DIR/" in /run/*) ;; *) mount -t tmpfs -o mode=0755 tmpfs /run ;; esac
mkdir -p /run/netns /run/lock
case "$DIR/" in /tmp/*) ;; *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;; esac
mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null || true
mount -t devpts devpts /dev/pts 2>/dev/null || true
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
ip link set lo up
hostname "nm-vm"
cd "$DIR" || exit 1
uname -r > "$OUT/release"
say "kernel $(uname -r), $(nproc) cpu(s), $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MiB; checkout $DIR"
node dist/cli/main.js doctor > "$OUT/doctor.txt" 2>&1
echo $? > "$OUT/doctor.rc"
sed 's/^/doctor: /' "$OUT/doctor.txt"
if [ "$TIER" = kernel ] || [ "$TIER" = lab ]; then
  # The machine-speed factor the tier's time limits scale by (test/support/speed.ts): given by the
  # host (nm.speed=, from the runner's NODEMESH_SPEED_FACTOR), else for the lab tier measured here
  # with a data-path sample beside the CPU one (vm/speed-probe.ts: under TCG the mesh's data path is
  # far slower than CPU work); the kernel tier measures CPU work only, as on any machine.
  SPEED=$(arg speed)
  if [ -n "$SPEED" ]; then
    say "speed factor $SPEED (given by the host)"
  elif [ "$TIER" = lab ]; then
    PROBE=$(node dist/vm/speed-probe.js) || PROBE=
    SPEED=$(echo "$PROBE" | sed -n 's/.*factor=\([0-9.]*\).*/\1/p')
    say "speed factor ${SPEED:-not measured, test/support/speed.ts measures it} ($PROBE)"
  fi
  [ -n "$SPEED" ] && export NODEMESH_SPEED_FACTOR=$SPEED
  say "running the $TIER tier"
  # The mesh processes' logs, for a post-mortem on the host (the guest's /tmp goes with the VM):
  # the lab tests that take a log dir write there; those that keep logs only after a failure write
  # them to /tmp/nm-*-logs-*, copied below. The runner moves kept/ into its cache's logs dir.
  KEPT=$OUT/kept
  export NMDP_LOG_DIR=$KEPT/dataplane NMKA_LOG_DIR=$KEPT/kube-api NMKP_LOG_DIR=$KEPT/kube-pods NMWP_LOG_DIR=$KEPT/waypoint-path NMWQ_LOG_DIR=$KEPT/protocols
  # One vitest run for all the files of the part (its start-up and the transforms over 9p are
  # paid once), in the order given; vm/guest/vitest.config.mjs adds a reporter that writes each
  # file's result to $OUT/files/ as the file ends, so a VM stopped at its time limit keeps every
  # file that finished. Each test's line is streamed as it ends (verbose).
  if [ "$TIER" = lab ]; then
    # the lab tier's files, picked and ordered by vm/guest/lab-files.sh (find: `vitest list` is slow under TCG)
    # shellcheck disable=SC2086 # FILES: the filters, split on spaces
    SEL=$(bash vm/guest/lab-files.sh $FILES)
    [ -n "$SEL" ] || say "no lab test file matches '$FILES'"
  else
    SEL=$FILES
  fi
  if [ "$TIER" = kernel ] || [ -n "$SEL" ]; then
    say "$TIER files: $(echo $SEL)"
    # shellcheck disable=SC2086 # SEL: the files, split on whitespace
    NM_VM_REPORT_DIR=$OUT NM_VM_KEPT_DIR=$KEPT NM_VM_ORDER=$(echo $SEL | tr ' ' ',') node node_modules/vitest/vitest.mjs run --config vm/guest/vitest.config.mjs --project "$TIER" $SEL
    echo $? > "$OUT/tier.rc"
  else
    echo 1 > "$OUT/tier.rc"
  fi
  # (again: the config copied them after each file; into the same dir, not nested in it)
  for d in /tmp/nm-*-logs-*; do [ -d "$d" ] && mkdir -p "$KEPT/${d#/tmp/}" && cp -r "$d/." "$KEPT/${d#/tmp/}/"; done
fi
say "done"
