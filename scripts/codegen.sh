#!/usr/bin/env bash
# Generate TypeScript from protos into api/gen/ (git-ignored; scripts/setup.sh runs this when
# api/proto or this script changes).
#
#   1. every .proto under api/proto/ (our own APIs: workload, CA, …)
#   2. Envoy's xDS discovery service and the Envoy v3 resource types the mesh serves, from the
#      copies shipped in node_modules/@grpc/grpc-js-xds/deps/
#
# protoc comes from the `protoc` npm package (binary + well-known types), the generator is ts-proto
# (gRPC services for @grpc/grpc-js, a type registry for packing google.protobuf.Any). ts-proto also
# emits every file the requested ones import, so the output is self-contained.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { printf '\033[31m[codegen] %s\033[0m\n' "$*" >&2; exit 1; }

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) protoc_bin=protoc-linux-x86_64 ;;
  Linux-aarch64 | Linux-arm64) protoc_bin=protoc-linux-aarch_64 ;;
  Darwin-x86_64) protoc_bin=protoc-osx-x86_64 ;;
  Darwin-arm64) protoc_bin=protoc-osx-aarch_64 ;;
  *) die "no protoc binary in the protoc npm package for $(uname -s)-$(uname -m)" ;;
esac
protoc="node_modules/protoc/bin/$protoc_bin"
wkt="node_modules/protoc/include"
plugin="node_modules/.bin/protoc-gen-ts_proto"
deps="node_modules/@grpc/grpc-js-xds/deps"
[ -x "$protoc" ] || die "$protoc is missing: run 'npm ci' (the protoc package ships the binary)"
[ -x "$plugin" ] || die "$plugin is missing: run 'npm ci' (ts-proto is a dev dependency)"
[ -d "$deps/envoy-api" ] || die "$deps/envoy-api is missing: run 'npm ci' (@grpc/grpc-js-xds ships the Envoy protos)"

out="api/gen"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nm-codegen.XXXXXX")"
# Generate next to the final place (same filesystem, a dot-directory tsc does not pick up) and swap
# it in at the end, so a concurrent tsc never sees a half-written api/gen.
stage="api/.gen-stage.$$"
trap 'rm -rf "$tmp" "$stage" "api/.gen-old.$$"' EXIT

# The validate.proto in grpc-js-xds predates StringRules.ignore_empty (field 26), which some Envoy
# files (config/core/v3/protocol.proto among them) set. Build a patched copy that adds the field;
# it is put first on the include path so it shadows the shipped one.
mkdir -p "$tmp/patches/validate"
awk '
  /^message StringRules \{/ { in_rules = 1 }
  in_rules && /^\}/ {
    print "  // Added by nodemesh codegen: skip the rules when the value is empty."
    print "  optional bool ignore_empty = 26;"
    in_rules = 0
  }
  { print }
' "$deps/protoc-gen-validate/validate/validate.proto" >"$tmp/patches/validate/validate.proto"
grep -q 'ignore_empty = 26' "$tmp/patches/validate/validate.proto" ||
  die "could not patch validate.proto (StringRules not found in $deps/protoc-gen-validate/validate/validate.proto)"

# Our own protos: everything under api/proto.
mapfile -t own < <(cd api/proto && find . -name '*.proto' -printf '%P\n' | sort)

# Envoy: discovery services and the resource types the control plane serves.
envoy_dirs=(
  envoy/service/discovery/v3
  envoy/config/listener/v3
  envoy/config/route/v3
  envoy/config/cluster/v3
  envoy/config/endpoint/v3
  envoy/config/core/v3
  envoy/config/rbac/v3
  envoy/extensions/filters/network/http_connection_manager/v3
  envoy/extensions/filters/network/tcp_proxy/v3
  envoy/extensions/filters/http/router/v3
  envoy/extensions/filters/http/rbac/v3
  envoy/extensions/filters/http/fault/v3
  envoy/extensions/filters/http/local_ratelimit/v3
  envoy/extensions/transport_sockets/tls/v3
  # Envoy as a waypoint (control/envoy): its bootstrap, internal listeners, L4 RBAC on TCP ports.
  envoy/config/bootstrap/v3
  envoy/extensions/bootstrap/internal_listener/v3
  envoy/extensions/filters/network/rbac/v3
  envoy/extensions/upstreams/http/v3
)
envoy=()
for d in "${envoy_dirs[@]}"; do
  [ -d "$deps/envoy-api/$d" ] || die "$deps/envoy-api/$d is missing (grpc-js-xds version changed?)"
  while IFS= read -r f; do envoy+=("$d/$f"); done < <(cd "$deps/envoy-api/$d" && ls *.proto)
done

rm -rf "$stage"
mkdir -p "$stage"

opts=(
  outputServices=grpc-js
  esModuleInterop=true
  env=node
  useOptionals=messages
  oneof=unions-value
  outputTypeRegistry=true
  useExactTypes=false
  outputJsonMethods=true
  useDate=false
  exportCommonSymbols=false
)
opt_string="$(IFS=,; echo "${opts[*]}")"

"$protoc" \
  --plugin=protoc-gen-ts_proto="$plugin" \
  --ts_proto_out="$stage" \
  --ts_proto_opt="$opt_string" \
  -I "$tmp/patches" \
  -I api/proto \
  -I "$deps/envoy-api" \
  -I "$deps/xds" \
  -I "$deps/googleapis" \
  -I "$deps/protoc-gen-validate" \
  -I "$wkt" \
  "${own[@]}" "${envoy[@]}"

[ -d "$out" ] && mv "$out" "api/.gen-old.$$"
mv "$stage" "$out"
rm -rf "api/.gen-old.$$"

count="$(find "$out" -name '*.ts' | wc -l)"
printf '\033[1m[codegen]\033[0m %s TypeScript files in %s (%s own protos, %s Envoy protos requested)\n' \
  "$count" "$out" "${#own[@]}" "${#envoy[@]}" >&2
