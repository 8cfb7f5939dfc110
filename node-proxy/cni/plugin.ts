// The nodemesh CNI plugin (CNI spec 1.0), chained after the cluster's own plugins as istio-cni is:
// it changes nothing in the network — ADD prints the previous plugin's result unchanged — but tells
// the node proxy about the pod over the node-local socket and, for a pod the node proxy captures,
// returns only once capture is in place, so the pod's first packet is already captured.
//
// Failure policy (docs/kubernetes.md "The CNI plugin"):
// - node proxy unreachable or not answering on ADD: fail with code 11 ("try again later"); kubelet
//   retries the sandbox, so no pod of a mesh namespace starts uncaptured. `failOpen: true` in the
//   plugin config lets pods start uncaptured instead. Namespaces in `excludeNamespaces` (default
//   kube-system) never wait for the node proxy, so the cluster's own pods start without it.
// - DEL never fails because the node proxy is away: a DEL error would block the pod's teardown;
//   the node proxy releases the pod anyway once its netns is gone (reconcile).
// Builtins only, so the executable starts fast.
import { connect } from 'node:net';
import { DEFAULT_CNI_SOCKET, encodeMessage, LineReader, validateReply, type PodEvent, type PodEventKind, type PodEventReply } from './protocol';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;
export const PLUGIN_TYPE = 'nodemesh';
const DEFAULT_TIMEOUT_S = 30;
const MAX_TIMEOUT_S = 300;

/** CNI error codes used here (spec 1.0, "Error"). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
  }
}

export interface PluginConfig {
  readonly cniVersion: string;
  readonly name: string;
  readonly socketPath: string;
  readonly timeoutMs: number;
  readonly excludeNamespaces: readonly string[];
  readonly failOpen: boolean;
  readonly prevResult?: Record<string, unknown>;
}

export interface PluginOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Parses CNI_ARGS ("K=V;K=V"). */
export function parseCniArgs(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? '').split(';')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.InvalidEnv, `CNI_ARGS has a malformed pair '${pair.slice(0, 80)}' (expected KEY=VALUE)`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function parseConfig(stdin: string): PluginConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch {
    throw new CniError(CniCode.DecodeFailure, 'the network configuration on stdin is not valid JSON');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new CniError(CniCode.DecodeFailure, 'the network configuration must be a JSON object');
  const c = raw as Record<string, unknown>;
  const cniVersion = typeof c.cniVersion === 'string' ? c.cniVersion : '';
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `CNI version '${cniVersion}' is not supported by ${PLUGIN_TYPE} (supported: ${SUPPORTED_VERSIONS.join(', ')})`,
    );
  }
  const name = typeof c.name === 'string' ? c.name : '';
  // `socket` is the name the chart's installer writes; `socketPath` is accepted too.
  const socketPath = c.socket ?? c.socketPath ?? DEFAULT_CNI_SOCKET;
  if (typeof socketPath !== 'string' || !socketPath.startsWith('/')) throw new CniError(CniCode.InvalidConfig, "'socket' must be an absolute path");
  const timeoutS = c.timeoutSeconds === undefined ? DEFAULT_TIMEOUT_S : c.timeoutSeconds;
  if (typeof timeoutS !== 'number' || !(timeoutS > 0) || timeoutS > MAX_TIMEOUT_S)
    throw new CniError(CniCode.InvalidConfig, `'timeoutSeconds' must be a number of seconds from 1 to ${MAX_TIMEOUT_S}`);
  const ex = c.excludeNamespaces === undefined ? ['kube-system'] : c.excludeNamespaces;
  if (!Array.isArray(ex) || !ex.every((n) => typeof n === 'string'))
    throw new CniError(CniCode.InvalidConfig, "'excludeNamespaces' must be a list of namespace names");
  if (c.failOpen !== undefined && typeof c.failOpen !== 'boolean') throw new CniError(CniCode.InvalidConfig, "'failOpen' must be true or false");
  const prev = c.prevResult;
  if (prev !== undefined && (!prev || typeof prev !== 'object' || Array.isArray(prev)))
    throw new CniError(CniCode.InvalidConfig, "'prevResult' must be an object");
  return {
    cniVersion,
    name,
    socketPath,
    timeoutMs: timeoutS * 1000,
    excludeNamespaces: ex as string[],
    failOpen: c.failOpen === true,
    prevResult: prev as Record<string, unknown> | undefined,
  };
}

/** The pod's addresses in a CNI result (`ips[].address`, prefix length dropped). */
export function resultAddresses(result: Record<string, unknown> | undefined): string[] {
  const ips = result && Array.isArray(result.ips) ? (result.ips as unknown[]) : [];
  const out: string[] = [];
  for (const ip of ips) {
    const a = ip && typeof ip === 'object' ? (ip as Record<string, unknown>).address : undefined;
    if (typeof a === 'string' && a.includes('/')) out.push(a.split('/')[0] as string);
  }
  return out;
}

/** Sends one event to the node proxy and waits for its reply (bounded by timeoutMs). */
export function sendPodEvent(socketPath: string, ev: PodEvent, timeoutMs: number): Promise<PodEventReply> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    const reader = new LineReader();
    let done = false;
    const finish = (err: Error | undefined, reply?: PodEventReply): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply as PodEventReply);
    };
    const timer = setTimeout(() => finish(new Error(`no answer from the node proxy within ${timeoutMs / 1000} s`)), timeoutMs);
    sock.on('connect', () => sock.write(encodeMessage(ev)));
    sock.on('data', (chunk: Buffer) => {
      try {
        const v = reader.push(chunk);
        if (v !== undefined) finish(undefined, validateReply(v));
      } catch (err) {
        finish(new Error(`bad answer from the node proxy: ${(err as Error).message}`));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => finish(new Error(`cannot reach the node proxy at ${socketPath}: ${err.code ?? err.message}`)));
    sock.on('close', () => finish(new Error('the node proxy closed the connection without an answer')));
  });
}

const errorOut = (cniVersion: string, e: CniError): PluginOutput => ({
  code: 1,
  stdout: JSON.stringify({ cniVersion, code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) }) + '\n',
  stderr: '',
});

export type Sender = typeof sendPodEvent;

/** One plugin invocation: environment + stdin in, what to print and the exit code out. */
export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string, send: Sender = sendPodEvent): Promise<PluginOutput> {
  let cniVersion = '1.0.0';
  try {
    const command = env.CNI_COMMAND;
    if (command === 'VERSION') {
      let requested = '1.0.0';
      try {
        const v = (JSON.parse(stdin || '{}') as { cniVersion?: unknown }).cniVersion;
        if (typeof v === 'string' && v) requested = v;
      } catch {
        /* VERSION may come without a config */
      }
      return { code: 0, stdout: JSON.stringify({ cniVersion: requested, supportedVersions: SUPPORTED_VERSIONS }) + '\n', stderr: '' };
    }
    const conf = parseConfig(stdin);
    cniVersion = conf.cniVersion;
    if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK') {
      throw new CniError(CniCode.InvalidEnv, `CNI_COMMAND '${command ?? ''}' is not supported (ADD, DEL, CHECK, VERSION)`);
    }
    for (const v of ['CNI_CONTAINERID', 'CNI_IFNAME'] as const) if (!env[v]) throw new CniError(CniCode.InvalidEnv, `${v} is not set`);
    if (command !== 'DEL' && !env.CNI_NETNS) throw new CniError(CniCode.InvalidEnv, 'CNI_NETNS is not set');
    if (command !== 'DEL' && !conf.prevResult) {
      throw new CniError(CniCode.InvalidConfig, `${PLUGIN_TYPE} must be chained after the cluster's network plugin (no prevResult in its configuration)`);
    }
    const args = parseCniArgs(env.CNI_ARGS);
    const passThrough: PluginOutput = {
      code: 0,
      stdout: command === 'ADD' ? JSON.stringify({ ...conf.prevResult, cniVersion }) + '\n' : '',
      stderr: '',
    };
    const namespace = args.K8S_POD_NAMESPACE;
    const name = args.K8S_POD_NAME;
    if (!namespace || !name) return passThrough; // not a Kubernetes pod: nothing for the mesh to do
    if (conf.excludeNamespaces.includes(namespace)) return passThrough;
    const ev: PodEvent = {
      kind: command as PodEventKind,
      namespace,
      name,
      uid: args.K8S_POD_UID ?? '',
      containerId: env.CNI_CONTAINERID as string,
      netns: env.CNI_NETNS ?? '',
      ips: resultAddresses(conf.prevResult),
    };
    let reply: PodEventReply;
    try {
      reply = await send(conf.socketPath, ev, conf.timeoutMs);
    } catch (err) {
      const why = (err as Error).message;
      if (command === 'DEL')
        return {
          ...passThrough,
          stderr: `${PLUGIN_TYPE}: DEL of ${namespace}/${name} not delivered (${why}); the node proxy releases the pod when its netns is gone\n`,
        };
      if (conf.failOpen) return { ...passThrough, stderr: `${PLUGIN_TYPE}: ${why}; failOpen is set, so ${namespace}/${name} starts without capture\n` };
      throw new CniError(
        CniCode.TryAgainLater,
        `nodemesh node proxy not ready for pod ${namespace}/${name}: ${why}`,
        'the pod sandbox is retried by kubelet; check the node proxy on this node (kubectl -n nodemesh-system get pods -o wide)',
      );
    }
    if (!reply.ok) {
      if (command === 'DEL') return { ...passThrough, stderr: `${PLUGIN_TYPE}: node proxy: ${reply.error}\n` };
      throw new CniError(reply.retry ? CniCode.TryAgainLater : CniCode.IoFailure, `nodemesh: ${reply.error}`);
    }
    return passThrough;
  } catch (err) {
    if (err instanceof CniError) return errorOut(cniVersion, err);
    return errorOut(cniVersion, new CniError(CniCode.IoFailure, (err as Error).message));
  }
}
