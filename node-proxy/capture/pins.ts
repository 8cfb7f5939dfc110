// Where the node proxy pins things in the bpffs and keeps its enrolment records, so capture stays in
// place across a restart and a restart finds exactly what the previous run set up:
//
//   /sys/fs/bpf/nodemesh/<node>/                    maps, pinned by name (LIBBPF_PIN_BY_NAME)
//   /sys/fs/bpf/nodemesh/<node>/workloads/<ns>_<name>/<attach>   one bpf_link per attach point
//   /run/nodemesh/node-proxy/<node>/enrolment.json  what was enrolled (netns cookie, inodes, settings)
//
// `_` cannot appear in a Kubernetes namespace or name, so `<ns>_<name>` is unambiguous. The bpffs
// refuses any name containing '.', so a '.' (allowed in Kubernetes names) is written as '+'.
import { join } from 'node:path';

export const BPFFS_ROOT = '/sys/fs/bpf';
export const PIN_BASE = join(BPFFS_ROOT, 'nodemesh');
export const STATE_BASE = process.env.NODEMESH_NODE_PROXY_STATE_ROOT ?? '/run/nodemesh/node-proxy';

/** Attach points of one workload, named as their link pins. */
export const ATTACH_POINTS = ['connect4', 'connect6', 'sockops', 'sk_lookup'] as const;
export type AttachPoint = (typeof ATTACH_POINTS)[number];

export interface NodeLayout {
  /** The pin root for maps (libbpf pin_root_path). */
  readonly pinRoot: string;
  readonly workloadsDir: string;
  readonly stateDir: string;
  readonly recordsFile: string;
}

const NODE_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/** A name as the bpffs accepts it ('.' is not allowed there). */
export const pinName = (name: string): string => name.replace(/\./g, '+');

export function nodeLayout(node: string, pinRoot: string = join(PIN_BASE, pinName(node))): NodeLayout {
  if (!NODE_NAME_RE.test(node)) {
    throw new Error(`node name '${node}' is not valid: use lower-case letters, digits, '-' and '.' (like a Kubernetes node name)`);
  }
  const stateDir = join(STATE_BASE, node);
  return { pinRoot, workloadsDir: join(pinRoot, 'workloads'), stateDir, recordsFile: join(stateDir, 'enrolment.json') };
}

export function workloadPinDir(layout: NodeLayout, key: string): string {
  const [ns, name] = key.split('/');
  return join(layout.workloadsDir, pinName(`${ns}_${name}`));
}

/** `<ns>_<name>` back to `ns/name` (undefined for a name the node proxy would not have made). */
export function keyFromPinDir(dirName: string): string | undefined {
  const name = dirName.replace(/\+/g, '.');
  const i = name.indexOf('_');
  return i > 0 && i < name.length - 1 ? `${name.slice(0, i)}/${name.slice(i + 1)}` : undefined;
}

export function linkPinPath(layout: NodeLayout, key: string, point: AttachPoint): string {
  return join(workloadPinDir(layout, key), point);
}
