# The nodemesh image: every component in one image (nodemesh control | node-proxy | cni-install |
# waypoint run | lab app), as the Helm chart helm/nodemesh runs it. Not published to a registry:
#   docker build -t nodemesh/nodemesh:0.1.0 .
# (the chart's default image is nodemesh/nodemesh:<appVersion>; see docs/kubernetes.md).
#
# The build stage builds the project exactly as scripts/setup.sh does on a Debian host (system
# packages with apt-get, npm ci, codegen, BPF objects, the native addon against the system libbpf,
# TypeScript); the run stage keeps what runs and the shared libraries the addon links.

FROM node:20-bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/setup.sh \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf native/build/CMakeFiles native/build/*.ninja

FROM node:20-bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libbpf1 libelf1 zlib1g iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nodemesh
# common/paths.ts finds the project root by package.json + scripts/setup.sh.
COPY --from=build /src/package.json ./
COPY --from=build /src/scripts/setup.sh ./scripts/setup.sh
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bpf/build ./bpf/build
COPY --from=build /src/native/build/Release ./native/build/Release
COPY --from=build /src/helm ./helm
COPY --from=build /src/control/ui/static ./control/ui/static
# The CNI plugin executable (copied to each host by `nodemesh cni-install`): a static C program
# (node-proxy/cni/c) that runs on the host without Node.js, built by scripts/setup.sh.
COPY --from=build /src/dist/cni-plugin/nodemesh ./cni-plugin/nodemesh
RUN ln -s /opt/nodemesh/dist/cli/main.js /usr/local/bin/nodemesh && chmod +x dist/cli/main.js
ENTRYPOINT ["node", "/opt/nodemesh/dist/cli/main.js"]
CMD ["--help"]
