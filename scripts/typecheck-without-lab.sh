#!/usr/bin/env bash
# The product without the lab: copies the tracked sources of common/, native/, api/, cli/command.ts,
# control/, node-proxy/ and waypoint/ (no lab/, bench/, test/, cli/main.ts) into a temporary tree,
# with the generated api/gen and node_modules linked in, and type-checks it there. Fails when the
# product needs anything of the lab (the import rule itself is test/structure/layers.unit.test.ts).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nm-nolab-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$root"
git ls-files -z -- common native/'*.ts' control node-proxy waypoint cli/command.ts tsconfig.json \
  | grep -zv '\.test\.ts$' | xargs -0 cp --parents -t "$tmp"
mkdir -p "$tmp/api"
ln -s "$root/api/gen" "$tmp/api/gen"
ln -s "$root/node_modules" "$tmp/node_modules"
[ ! -e "$tmp/lab" ] && [ ! -e "$tmp/bench" ] && [ ! -e "$tmp/cli/main.ts" ]
node "$root/node_modules/typescript/bin/tsc" -p "$tmp/tsconfig.json" --noEmit --incremental false
echo "typecheck-without-lab: control, node-proxy and waypoint type-check without lab/, bench/ and cli/main.ts"
