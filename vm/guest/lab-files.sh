#!/bin/bash
# lab-files.sh [FILTER…]: the lab test files a VM's lab tier runs, one a line. A file is picked as
# vitest's lab project and filters pick it (**/*.lab.test.ts; with filters, a file whose path
# contains one of them), found with find (`vitest list` took 100 s under TCG). Order: the order of
# the filters (`vm test --files mesh.lab,dataplane/` runs mesh.lab first: a part cut at its time
# limit keeps the files its caller put first), paths sorted within a filter, each file once.
set -u
all=$(find . -name node_modules -prune -o -name dist -prune -o -name .git -prune -o -name '*.lab.test.ts' -print | sed 's|^\./||' | LC_ALL=C sort)
if [ "$#" -eq 0 ]; then
  [ -n "$all" ] && echo "$all"
  exit 0
fi
for p in "$@"; do
  for f in $all; do case "$f" in *"$p"*) echo "$f" ;; esac; done
done | awk '!seen[$0]++'
