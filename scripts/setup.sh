#!/usr/bin/env bash
# One idempotent set-up step for both README commands: system packages, npm packages, generated
# code, BPF objects, the native addon and the TypeScript. Every stage checks whether its inputs
# changed since the last run and skips itself when they did not, so a second run is fast.
#
#   scripts/setup.sh              everything
#   scripts/setup.sh --no-system  skip the system package check (build only)
#   scripts/setup.sh --remove-command  remove the `nodemesh` command this step put on the PATH
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamps="$root/.nm-stamps"
mkdir -p "$stamps"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

# hash_of PATHS... — a content hash of the given files and directories (sorted, stable).
hash_of() {
  find "$@" -type f \( ! -path '*/node_modules/*' \) -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
# fresh NAME HASH — true when stage NAME last ran with inputs HASH.
fresh() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }
mark() { printf '%s' "$2" >"$stamps/$1"; }

# Node.js itself is the one prerequisite the set-up step cannot install (see README).
node_ok="$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19)?"yes":"no")' 2>/dev/null || echo missing)"
case "$node_ok" in
  yes) ;;
  missing) die "Node.js is not installed: install Node.js 20.19 or newer (for example from your distribution or nodejs.org) and run again" ;;
  *) die "Node.js $(node --version) is too old: nodemesh needs 20.19 or newer (require() of ES modules, node:util parseArgs); upgrade Node.js and run again" ;;
esac

with_system=1
remove_command=0
for arg in "$@"; do
  case "$arg" in
    --no-system) with_system=0 ;;
    --remove-command) remove_command=1 ;;
    *) die "unknown option $arg (known: --no-system, --remove-command)" ;;
  esac
done

# The `nodemesh` command on the PATH: a two-line wrapper that runs this checkout's build with the
# Node.js that built it. As root it goes to /usr/local/bin (on every login's PATH, also inside the
# lab's pods, which inherit the caller's environment); otherwise to ~/.local/bin. A file there that
# this step did not write is never touched.
marker='# nodemesh command, written by scripts/setup.sh'
if [ "$(id -u)" = 0 ]; then bin_dir=/usr/local/bin; else bin_dir="${HOME:-/nonexistent}/.local/bin"; fi
command_path="$bin_dir/nodemesh"
ours() { [ -f "$1" ] && [ ! -L "$1" ] && grep -qF "$marker" "$1"; }
if [ "$remove_command" = 1 ]; then
  if ours "$command_path"; then
    rm -f "$command_path"
    say "removed $command_path"
  elif [ -e "$command_path" ]; then
    die "$command_path was not written by this set-up step; leaving it"
  else
    say "no nodemesh command at $command_path"
  fi
  exit 0
fi

# --- 1. system packages -------------------------------------------------------------------
# command -> Debian package that provides it
declare -A need_cmd=(
  [clang]=clang [llc]=llvm [bpftool]=bpftool [ip]=iproute2 [cmake]=cmake [g++]=g++ [make]=make
  [pkg-config]=pkg-config [nsenter]=util-linux [tcpdump]=tcpdump [iperf3]=iperf3 [curl]=curl [unzip]=unzip
  # headless Chromium for the /ui page's browser tests (test/ui, driven by puppeteer-core)
  [chromium]=chromium
)
missing_system() {
  local pkgs=()
  for c in "${!need_cmd[@]}"; do command -v "$c" >/dev/null 2>&1 || pkgs+=("${need_cmd[$c]}"); done
  # Debian's CNI plugins (bridge, host-local, loopback): the Kubernetes-shaped lab pods' network
  [ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
  pkg-config --exists libbpf 2>/dev/null || pkgs+=(libbpf-dev)
  pkg-config --exists libelf 2>/dev/null || pkgs+=(libelf-dev)
  pkg-config --exists zlib 2>/dev/null || pkgs+=(zlib1g-dev)
  # nghttp2's header for the native HBONE engine (native/src/hbone_engine.cc); the library itself is
  # node's own copy, resolved at load time
  [ -e /usr/include/nghttp2/nghttp2.h ] || pkgs+=(libnghttp2-dev)
  # gRPC C-core (Debian's python3-grpcio) is a second, older proxyless xDS client in the tests.
  /usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || pkgs+=(python3-grpcio)
  [ -e /usr/include/asm/types.h ] || [ -e "/usr/include/$(uname -m)-linux-gnu/asm/types.h" ] || pkgs+=(linux-libc-dev)
  printf '%s\n' "${pkgs[@]}" | sort -u | grep -v '^$' || true
}
if [ "$with_system" = 1 ]; then
  mapfile -t pkgs < <(missing_system)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
      [ "$(id -u)" = 0 ] || die "missing system packages: ${pkgs[*]}. Run this as root (sudo) so it can apt-get install them."
      say "installing system packages: ${pkgs[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    else
      die "missing system packages (Debian names): ${pkgs[*]}.
  This machine has no apt-get. Install the equivalents and run again, for example:
    Fedora/RHEL: dnf install clang llvm bpftool libbpf-devel elfutils-libelf-devel zlib-devel libnghttp2-devel iproute cmake gcc-c++ make pkgconf-pkg-config util-linux tcpdump iperf3 unzip containernetworking-plugins chromium
    Arch:        pacman -S clang llvm bpf libbpf libelf zlib libnghttp2 iproute2 cmake gcc make pkgconf util-linux tcpdump iperf3 unzip cni-plugins chromium"
    fi
  fi
fi

# --- 2. npm packages ------------------------------------------------------------------------
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)-$(node --version)"
if [ ! -d node_modules ] || ! fresh npm "$lock_hash"; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  mark npm "$lock_hash"
fi

# --- 3. generated code (protos -> TypeScript) -----------------------------------------------
if [ -x scripts/codegen.sh ] || [ -f scripts/codegen.sh ]; then
  gen_hash="$(hash_of api/proto scripts/codegen.sh)-$lock_hash"
  if [ ! -d api/gen ] || ! fresh codegen "$gen_hash"; then
    say "generating code from protos"
    bash scripts/codegen.sh
    mark codegen "$gen_hash"
  fi
fi

# --- 4. BPF objects -------------------------------------------------------------------------
if [ -f bpf/Makefile ]; then
  make -s -C bpf >/dev/null
fi

# --- 5. the native addon --------------------------------------------------------------------
if [ -f native/CMakeLists.txt ]; then
  native_hash="$(hash_of native/src native/CMakeLists.txt)-$lock_hash"
  if [ ! -f native/build/Release/nodemesh_native.node ] || ! fresh native "$native_hash"; then
    say "building the native addon (cmake-js, system libbpf)"
    # Node's headers come from the running Node's own installation (<prefix>/include/node),
    # never from a download: cmake-js takes that directory from npm_config_nodedir.
    node_prefix="$(dirname "$(dirname "$(node -p 'process.execPath')")")"
    [ -f "$node_prefix/include/node/node_api.h" ] ||
      die "Node's headers are missing ($node_prefix/include/node/node_api.h); install the Node.js headers (Debian: libnode-dev or nodejs from nodesource) and run again"
    # A configure step that failed earlier leaves a cache without a build file: start clean then.
    [ -f native/build/CMakeCache.txt ] && [ ! -f native/build/build.ninja ] && [ ! -f native/build/Makefile ] && rm -rf native/build
    native_log="$(mktemp)"
    if ! (cd native && npm_config_nodedir="$node_prefix" npx --no-install cmake-js build --log-level error --directory . \
      --out build --CDCMAKE_BUILD_TYPE=Release) >"$native_log" 2>&1; then
      grep -v '^npm warn' "$native_log" >&2 || true
      rm -f "$native_log"
      die "building the native addon failed (compiler output above)"
    fi
    rm -f "$native_log"
    mark native "$native_hash"
  fi
fi

# --- 5b. the CNI plugin executable (C, no Node.js: it runs on the host) ----------------------
if [ -f node-proxy/cni/c/nodemesh-cni.c ]; then
  cni_hash="$(hash_of node-proxy/cni/c)"
  if [ ! -x dist/cni-plugin/nodemesh ] || ! fresh cni-plugin "$cni_hash"; then
    mkdir -p dist/cni-plugin
    cc_bin="$(command -v cc || command -v gcc || true)"
    [ -n "$cc_bin" ] || die "no C compiler (cc/gcc) to build the CNI plugin; install gcc (Debian: build-essential)"
    # Static, so the executable runs on any Linux host whatever its libc; dynamic if this
    # system has no static libc (Fedora: glibc-static), with a note.
    if ! "$cc_bin" -std=c11 -O2 -Wall -Wextra -static -o dist/cni-plugin/nodemesh.tmp node-proxy/cni/c/nodemesh-cni.c 2>/dev/null; then
      say "no static libc here: the CNI plugin is linked dynamically (it needs glibc on the hosts it is copied to)"
      "$cc_bin" -std=c11 -O2 -Wall -Wextra -o dist/cni-plugin/nodemesh.tmp node-proxy/cni/c/nodemesh-cni.c ||
        die "building the CNI plugin (node-proxy/cni/c/nodemesh-cni.c) failed (compiler output above)"
    fi
    strip dist/cni-plugin/nodemesh.tmp 2>/dev/null || true
    mv -f dist/cni-plugin/nodemesh.tmp dist/cni-plugin/nodemesh
    mark cni-plugin "$cni_hash"
  fi
fi

# --- 6. TypeScript --------------------------------------------------------------------------
node node_modules/typescript/bin/tsc -p tsconfig.json
chmod +x dist/cli/main.js 2>/dev/null || true
# What `nodemesh version` reports: the commit this build comes from.
commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
[ "$commit" != unknown ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit+dirty"
printf '{"commit":"%s"}\n' "$commit" >dist/build-info.json

# --- 7. the `nodemesh` command --------------------------------------------------------------
wrapper="#!/bin/sh
$marker for $root
# (remove it with: bash $root/scripts/setup.sh --remove-command)
exec '$(node -p 'process.execPath')' '$root/dist/cli/main.js' \"\$@\""
if [ -e "$command_path" ] && ! ours "$command_path"; then
  say "not installing the nodemesh command: $command_path exists and was not written by this step; use 'node $root/dist/cli/main.js'"
elif [ "$(cat "$command_path" 2>/dev/null)" != "$wrapper" ]; then
  mkdir -p "$bin_dir"
  tmp="$(mktemp "$bin_dir/.nodemesh.XXXXXX")"
  printf '%s\n' "$wrapper" >"$tmp"
  chmod 755 "$tmp"
  mv -f "$tmp" "$command_path"
  say "installed the nodemesh command: $command_path -> $root"
fi
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) say "$bin_dir is not on your PATH: add it (export PATH=\"$bin_dir:\$PATH\") to run 'nodemesh'" ;;
esac
