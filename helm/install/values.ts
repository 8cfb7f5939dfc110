// The chart's values: their schema (zod, the one source of values.schema.json), the defaults (the
// chart's own values.yaml, read at run time so `nodemesh install` and Helm start from the same
// file), and how `-f FILE` and `--set a.b=c` are merged on top of them, as Helm merges them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { projectRoot } from '../../common/paths';
import { issuesFromZod, type ValidationIssue } from '../../control/resources/validation';

export const chartDir: string = join(projectRoot, 'helm', 'nodemesh');

const quantity = z.union([z.string().regex(/^[0-9.]+[a-zA-Z]*$/, 'must be a Kubernetes quantity such as 100m, 256Mi or 1'), z.number()]);
const resourceList = z.strictObject({ cpu: quantity.optional(), memory: quantity.optional() });
const resources = z.strictObject({ requests: resourceList.optional(), limits: resourceList.optional() });
const toleration = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});
const nodeSelector = z.record(z.string(), z.string());
const absolutePath = z.string().regex(/^\/.*[^/]$|^\/$/, 'must be an absolute path without a trailing "/"');
const dnsLabel = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label');

/** Every value the chart reads. Defaults live in values.yaml only; this schema has none. */
export const chartValues = z.strictObject({
  image: z.strictObject({
    repository: z.string().min(1, 'must name an image repository, e.g. nodemesh/nodemesh'),
    /** Empty: the chart's appVersion. */
    tag: z.string(),
    pullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']),
  }),
  imagePullSecrets: z.array(z.strictObject({ name: dnsLabel })),
  /** SPIFFE trust domain of every identity the CA issues. */
  trustDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a trust domain such as cluster.local'),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error']),
  prometheus: z.strictObject({
    /** prometheus.io/scrape, /port and /path annotations on the control plane and node proxy pods. */
    scrape: z.boolean(),
  }),
  control: z.strictObject({
    replicas: z.number().int().min(1),
    /** Secret (in the release namespace) that holds the CA root; created by the control plane on first start. */
    caSecret: dnsLabel,
    /** Serve plaintext xDS on 15010 for proxyless gRPC clients in the cluster. */
    plaintextXds: z.boolean(),
    resources,
    podDisruptionBudget: z.strictObject({ enabled: z.boolean(), maxUnavailable: z.number().int().min(0) }),
    nodeSelector,
    tolerations: z.array(toleration),
  }),
  nodeProxy: z.strictObject({
    resources,
    nodeSelector,
    tolerations: z.array(toleration),
    /** The host's bpffs mount (pins that keep capture in place across node proxy restarts). */
    bpffsPath: absolutePath,
    /** The host's cgroup v2 mount (kubelet's kubepods tree). */
    cgroupPath: absolutePath,
    /** Host directory: enrolment records (kept across restarts) and the CNI plugin's socket. */
    runDir: absolutePath,
  }),
  cni: z.strictObject({
    enabled: z.boolean(),
    /** The host's CNI plugin directory (k3s: /var/lib/rancher/k3s/data/cni). */
    binDir: absolutePath,
    /** The host's CNI configuration directory (k3s: /var/lib/rancher/k3s/agent/etc/cni/net.d). */
    confDir: absolutePath,
    /**
     * When the node proxy cannot be reached (down, restarting, not yet on the node), let the pod
     * start without capture instead of failing its sandbox (docs/kubernetes.md "CNI plugin").
     */
    failOpen: z.boolean(),
    resources,
  }),
  waypoint: z.strictObject({
    /** Create the GatewayClass nodemesh-waypoint (needs the Gateway API CRDs in the cluster). */
    gatewayClass: z.boolean(),
  }),
});
export type ChartValues = z.output<typeof chartValues>;

type Tree = Record<string, unknown>;

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Helm's merge: maps merge key by key, anything else (lists too) replaces; `null` deletes a key. */
export function mergeValues(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isTree(v) && isTree(out[k])) out[k] = mergeValues(out[k] as Tree, v);
    else out[k] = v;
  }
  return out;
}

/** A scalar from --set as Helm types it: true/false, null, integers; everything else a string. */
function setScalar(text: string): unknown {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null') return null;
  if (/^-?(0|[1-9][0-9]*)$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
  return text;
}

/** Splits on `sep` not preceded by a backslash; the backslash escapes are removed afterwards. */
function splitUnescaped(text: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      cur += c + text[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

const unescape = (s: string) => s.replace(/\\(.)/g, '$1');

/**
 * Applies one `--set` argument (`a.b=1,c.d[0]=x`, `\,` and `\.` escape) to `values` in place, as
 * Helm's strvals does for the forms this chart needs: dotted keys, list indices, `{a,b}` lists.
 */
export function applySet(values: Tree, arg: string): void {
  for (const assignment of splitUnescaped(arg, ',').reduce<string[]>((acc, part) => {
    // `{a,b}` list values contain commas: glue the pieces back together.
    const last = acc[acc.length - 1];
    if (last !== undefined && /=\{[^}]*$/.test(last)) acc[acc.length - 1] = `${last},${part}`;
    else acc.push(part);
    return acc;
  }, [])) {
    if (assignment === '') continue;
    const eq = assignment.search(/(?<!\\)=/);
    if (eq <= 0) throw new Error(`--set ${arg}: "${assignment}" is not key=value (e.g. --set control.replicas=2)`);
    const keyText = assignment.slice(0, eq);
    const valueText = assignment.slice(eq + 1);
    const value = /^\{.*\}$/.test(valueText)
      ? splitUnescaped(valueText.slice(1, -1), ',')
          .filter((s) => s !== '')
          .map((s) => setScalar(unescape(s)))
      : setScalar(unescape(valueText));
    const path: (string | number)[] = [];
    for (const seg of splitUnescaped(keyText, '.')) {
      const m = /^(.*?)((\[\d+\])*)$/.exec(seg);
      const name = unescape(m?.[1] ?? seg);
      if (name === '') throw new Error(`--set ${arg}: empty key in "${keyText}"`);
      path.push(name);
      for (const idx of (m?.[2] ?? '').match(/\d+/g) ?? []) path.push(Number(idx));
    }
    let node: Tree | unknown[] = values;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i];
      const nextIsIndex = typeof path[i + 1] === 'number';
      const cur = (node as Record<string | number, unknown>)[key];
      const fresh = nextIsIndex ? (Array.isArray(cur) ? cur : []) : isTree(cur) ? cur : {};
      (node as Record<string | number, unknown>)[key] = fresh;
      node = fresh as Tree | unknown[];
    }
    const lastKey = path[path.length - 1];
    if (value === null && !Array.isArray(node)) delete (node as Tree)[lastKey as string];
    else (node as Record<string | number, unknown>)[lastKey] = value;
  }
}

export class ValuesError extends Error {
  constructor(readonly issues: readonly ValidationIssue[]) {
    super(`the chart's values are invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.name = 'ValuesError';
  }
}

/** Validates merged values; throws ValuesError naming each bad field. */
export function validateValues(values: unknown): ChartValues {
  const r = chartValues.safeParse(values);
  if (!r.success) throw new ValuesError(issuesFromZod(r.error));
  return r.data;
}

export function readYamlTree(text: string, what: string): Tree {
  const doc: unknown = parseYaml(text);
  if (doc === null || doc === undefined) return {};
  if (!isTree(doc)) throw new Error(`${what} must be a YAML mapping of values`);
  return doc;
}

/** The chart's defaults (values.yaml), then each `-f` file, then each `--set`, as Helm orders them. */
export function resolveValues(opts: { files?: readonly { name: string; text: string }[]; sets?: readonly string[]; defaultsText?: string }): ChartValues {
  let values = readYamlTree(opts.defaultsText ?? readFileSync(join(chartDir, 'values.yaml'), 'utf8'), 'values.yaml');
  for (const f of opts.files ?? []) values = mergeValues(values, readYamlTree(f.text, f.name));
  for (const s of opts.sets ?? []) applySet(values, s);
  return validateValues(values);
}
