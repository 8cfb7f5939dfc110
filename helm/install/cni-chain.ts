// Pure: chaining the nodemesh CNI plugin into the cluster's CNI configuration and taking it out
// again, as istio-cni does. The container runtime uses the first file (by name) of the conf
// directory ending in .conflist, .conf or .json; nodemesh goes last in its plugin list, so it runs
// after the cluster's own plugins have set the pod's network up (and receives their prevResult).

export const PLUGIN_TYPE = 'nodemesh';

export interface PluginEntry {
  readonly type: typeof PLUGIN_TYPE;
  /** The node-local socket of the node proxy, as a path on the host. */
  readonly socket: string;
  readonly logLevel?: string;
  /** The plugin lets a pod start uncaptured when the node proxy cannot be reached (absent: false). */
  readonly failOpen?: boolean;
}

export type CniConfig = { [key: string]: unknown };

/** The file the runtime reads: the first of `names` (sorted) with a CNI configuration extension. */
export function primaryConfigFile(names: readonly string[]): string | undefined {
  return [...names].filter((n) => /\.(conflist|conf|json)$/.test(n) && !n.startsWith('.')).sort()[0];
}

function parseConfig(file: string, text: string): CniConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); fix the cluster's CNI configuration first`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${file} is not a CNI configuration (a JSON object)`);
  return doc as CniConfig;
}

/** A conflist from either form: a `.conf` holds one plugin, which becomes the list's only entry. */
export function asConflist(file: string, text: string): CniConfig {
  const conf = parseConfig(file, text);
  if (Array.isArray(conf.plugins)) return conf;
  if (typeof conf.type !== 'string') throw new Error(`${file} has neither "plugins" nor "type": not a CNI configuration`);
  const { cniVersion, name, ...plugin } = conf;
  return { cniVersion, name, plugins: [plugin] };
}

const isOurs = (p: unknown) => typeof p === 'object' && p !== null && (p as { type?: unknown }).type === PLUGIN_TYPE;

/** `conflist` with exactly one nodemesh entry, the last one (replacing an older one). */
export function chain(conflist: CniConfig, entry: PluginEntry): CniConfig {
  const plugins = (conflist.plugins as unknown[]).filter((p) => !isOurs(p));
  return { ...conflist, plugins: [...plugins, { ...entry }] };
}

/** `conflist` without nodemesh entries. */
export function unchain(conflist: CniConfig): CniConfig {
  return { ...conflist, plugins: (conflist.plugins as unknown[]).filter((p) => !isOurs(p)) };
}

export function isChained(conflist: CniConfig, entry: PluginEntry): boolean {
  const plugins = conflist.plugins as unknown[];
  const last = plugins[plugins.length - 1];
  return plugins.filter(isOurs).length === 1 && JSON.stringify(last) === JSON.stringify(entry);
}
