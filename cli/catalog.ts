// What the top-level help and shell completion know without loading any component: each
// command's one-line summary and its subcommands. A command missing here still runs; it is listed
// without a summary.
export interface CommandEntry {
  readonly summary: string;
  readonly subcommands?: readonly string[];
}

export const CATALOG: Readonly<Record<string, CommandEntry>> = {
  lab: {
    summary: 'the netns lab: a multi-node mesh on this machine (up, down, status, exec, app)',
    subcommands: ['up', 'down', 'status', 'exec', 'app', 'controller'],
  },
  'node-proxy': { summary: 'run the per-node daemon: eBPF capture, HBONE tunnel, L4 policy' },
  doctor: { summary: 'check that this kernel has everything capture needs' },
  control: { summary: 'run the control plane (config store, config API, xDS, CA)' },
  apply: { summary: 'create or update resources from YAML/JSON files' },
  get: {
    summary: 'show resources (table, yaml or json)',
    subcommands: ['namespaces', 'services', 'workloads', 'authorizationpolicies', 'peerauthentications', 'gateways', 'httproutes'],
  },
  delete: { summary: 'delete resources by name or by file' },
  namespace: { summary: 'enroll or unenroll a namespace in the mesh', subcommands: ['enroll', 'unenroll'] },
  waypoint: { summary: 'waypoints: run one; apply, list and delete them', subcommands: ['run', 'apply', 'list', 'delete', 'bootstrap', 'cert-agent'] },
  'proxy-config': {
    summary: "a waypoint's listeners, routes, clusters, endpoints, secrets (like istioctl proxy-config); what xDS clients were sent and acknowledged",
    subcommands: ['listeners', 'routes', 'clusters', 'endpoints', 'secrets', 'xds'],
  },
  'node-config': {
    summary: "a node proxy's own view: workloads, services, policies, certificates, connections (like istioctl ztunnel-config)",
    subcommands: ['workloads', 'services', 'policies', 'certificates', 'connections'],
  },
  xds: { summary: 'inspect the workload API the control plane serves', subcommands: ['get'] },
  ca: { summary: 'node tokens and the mesh root certificate', subcommands: ['issue-node-token', 'revoke-node-token', 'list-node-tokens', 'root'] },
  analyze: { summary: 'find configuration that is valid alone but wrong together (missing Services, waypoints, node proxies)' },
  'proxy-status': { summary: 'every proxy connected over xDS and whether it acknowledged its config' },
  explain: { summary: 'why a connection FROM -> TO is allowed, denied or sent where (path, identities, waypoint route, policies, verdict)' },
  version: { summary: "this CLI's version and the control plane's" },
  dashboard: { summary: "open the mesh's live page (/ui): graph, policies, explain, proxies" },
  completion: { summary: 'shell completion script: nodemesh completion bash|zsh', subcommands: ['bash', 'zsh'] },
  install: { summary: "print the Helm chart's manifests for kubectl: nodemesh install --dry-run | kubectl apply --server-side -f -" },
  vm: {
    summary: 'run the kernel and lab test tiers on other Linux kernels in qemu VMs (test, matrix, list)',
    subcommands: ['test', 'matrix', 'list'],
  },
  'cni-install': { summary: "chain the nodemesh CNI plugin into the node's CNI configuration (run by the nodemesh-cni DaemonSet)" },
};

/** The top-level help: every command with its summary, aligned. */
export function topLevelHelp(names: readonly string[]): string {
  const sorted = [...names].sort();
  const width = Math.max(...sorted.map((n) => n.length));
  const lines = sorted.map((n) => `  ${n.padEnd(width)}  ${CATALOG[n]?.summary ?? ''}`.trimEnd());
  return `usage: nodemesh <command> [options]

commands:
${lines.join('\n')}

run 'nodemesh <command> --help' for a command's options and subcommands`;
}

/** Completion candidates for the word being typed, given the words before it (after 'nodemesh'). */
export function completions(names: readonly string[], before: readonly string[], current: string): string[] {
  const pick = (xs: readonly string[]) => xs.filter((x) => x.startsWith(current)).sort();
  if (before.length === 0) return pick([...names, '--help']);
  const entry = CATALOG[before[0]!];
  if (before.length === 1 && entry?.subcommands) return pick([...entry.subcommands, '--help']);
  return current.startsWith('-') ? pick(['--help']) : [];
}

/** The shell code that asks `nodemesh __complete` for candidates. */
export function completionScript(shell: string): string {
  if (shell === 'bash') {
    return `# nodemesh bash completion: source <(nodemesh completion bash)
_nodemesh() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  COMPREPLY=( $(nodemesh __complete "\${COMP_WORDS[@]:1:COMP_CWORD-1}" -- "$cur" 2>/dev/null) )
}
complete -o default -F _nodemesh nodemesh
`;
  }
  if (shell === 'zsh') {
    return `#compdef nodemesh
# nodemesh zsh completion: source <(nodemesh completion zsh)
_nodemesh() {
  local -a words_before candidates
  words_before=("\${(@)words[2,CURRENT-1]}")
  candidates=("\${(@f)$(nodemesh __complete "\${words_before[@]}" -- "\${words[CURRENT]}" 2>/dev/null)}")
  compadd -a candidates
}
compdef _nodemesh nodemesh
`;
  }
  throw new Error(`unsupported shell '${shell}': use bash or zsh`);
}
