// `nodemesh cni-install`: the nodemesh-cni DaemonSet's container. Copies the CNI plugin executable
// into the host's CNI bin directory, chains `nodemesh` last into the cluster's conflist, keeps it
// chained when the cluster's CNI rewrites its configuration (a watch plus a periodic check), and
// on SIGTERM/SIGINT (uninstall, or the pod's deletion) takes both out again.
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../../cli/command';
import { createLogger } from '../../common/log';
import { CNI_PLUGIN_EXECUTABLE } from '../../node-proxy/cni/install';
import { asConflist, chain, isChained, primaryConfigFile, unchain, type CniConfig, type PluginEntry } from './cni-chain';

export interface CniInstallOptions {
  readonly binDir: string;
  readonly confDir: string;
  /** The plugin executable to copy (it runs on the host, so it must not need anything of the image). */
  readonly plugin: string;
  readonly entry: PluginEntry;
}

/** Writes `text` to `path` atomically (a reader sees the old file or the new one, never half). */
function writeAtomic(path: string, text: string | Buffer, mode = 0o644): void {
  const tmp = join(path, '..', `.${path.split('/').pop()}.nodemesh-tmp`);
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export type Outcome = { file: string; changed: boolean } | { file: undefined; changed: false };

/** Copies the plugin (when it differs) into binDir/nodemesh. */
export function installPlugin(o: CniInstallOptions): boolean {
  const dest = join(o.binDir, 'nodemesh');
  const src = readFileSync(o.plugin);
  if (existsSync(dest) && readFileSync(dest).equals(src)) return false;
  const tmp = join(o.binDir, '.nodemesh.nodemesh-tmp');
  copyFileSync(o.plugin, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, dest);
  return true;
}

/** Chains nodemesh into the primary configuration of confDir; a no-op when it is there already. */
export function chainConfDir(o: CniInstallOptions): Outcome {
  const file = primaryConfigFile(readdirSync(o.confDir));
  if (!file) return { file: undefined, changed: false };
  const path = join(o.confDir, file);
  const original = readFileSync(path, 'utf8');
  const wasList = Array.isArray((JSON.parse(original) as CniConfig).plugins);
  const conflist = asConflist(file, original);
  if (wasList && isChained(conflist, o.entry)) return { file, changed: false };
  const target = wasList ? file : file.replace(/\.(conf|json)$/, '.conflist');
  writeAtomic(join(o.confDir, target), JSON.stringify(chain(conflist, o.entry), null, 2) + '\n');
  if (target !== file) rmSync(path);
  return { file: target, changed: true };
}

/** Takes nodemesh out of every configuration in confDir and removes the plugin executable. */
export function uninstall(o: CniInstallOptions): string[] {
  const changed: string[] = [];
  for (const file of readdirSync(o.confDir).filter((n) => /\.(conflist|json)$/.test(n) && !n.startsWith('.'))) {
    const path = join(o.confDir, file);
    let conf: CniConfig;
    try {
      conf = JSON.parse(readFileSync(path, 'utf8')) as CniConfig;
    } catch {
      continue; // not ours to repair
    }
    if (!Array.isArray(conf.plugins)) continue;
    const without = unchain(conf);
    if ((without.plugins as unknown[]).length !== conf.plugins.length) {
      writeAtomic(path, JSON.stringify(without, null, 2) + '\n');
      changed.push(file);
    }
  }
  rmSync(join(o.binDir, 'nodemesh'), { force: true });
  return changed;
}

/** Where the image keeps the CNI plugin executable (node-proxy/cni/c, built by scripts/setup.sh). */
const IMAGE_PLUGIN = '/opt/nodemesh/cni-plugin/nodemesh';

const USAGE = `usage: nodemesh cni-install --bin-dir DIR --conf-dir DIR --host-socket PATH [--fail-open] [--plugin FILE] [--resync-seconds N] [--log-level L]
Chains the nodemesh CNI plugin into the cluster's CNI configuration until stopped (the nodemesh-cni
DaemonSet runs it); on SIGTERM removes it again.
  --bin-dir DIR         the host's CNI bin directory, mounted (the plugin is copied there as 'nodemesh')
  --conf-dir DIR        the host's CNI configuration directory, mounted
  --host-socket PATH    the node proxy's CNI socket as a path on the host (written into the conflist)
  --fail-open           write failOpen: true into the conflist: a pod starts uncaptured when the node
                        proxy cannot be reached (default: its sandbox creation fails and kubelet retries)
  --plugin FILE         the plugin executable to copy (default /opt/nodemesh/cni-plugin/nodemesh in the
                        image, else the one scripts/setup.sh built in this checkout)
  --resync-seconds N    re-check the configuration every N seconds besides watching it (default 5)`;

export async function runCniInstall(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'bin-dir': { type: 'string' },
        'conf-dir': { type: 'string' },
        'host-socket': { type: 'string' },
        'fail-open': { type: 'boolean' },
        plugin: { type: 'string' },
        'resync-seconds': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  for (const flag of ['bin-dir', 'conf-dir', 'host-socket'] as const) {
    if (!values[flag]) throw new CliError(`--${flag} is required\n${USAGE}`, 2);
  }
  const resync = Number(values['resync-seconds'] ?? '5');
  if (!Number.isInteger(resync) || resync < 1 || resync > 3600)
    throw new CliError(`--resync-seconds must be a whole number from 1 to 3600, got '${values['resync-seconds']}'`, 2);
  const log = createLogger('cni-install', values['log-level'] ?? 'info');
  const o: CniInstallOptions = {
    binDir: values['bin-dir'] as string,
    confDir: values['conf-dir'] as string,
    plugin: values.plugin ?? (existsSync(IMAGE_PLUGIN) ? IMAGE_PLUGIN : CNI_PLUGIN_EXECUTABLE),
    entry: {
      type: 'nodemesh',
      socket: values['host-socket'] as string,
      ...(values['log-level'] ? { logLevel: values['log-level'] } : {}),
      ...(values['fail-open'] ? { failOpen: true } : {}),
    },
  };
  for (const dir of [o.binDir, o.confDir]) {
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new CliError(`${dir} is not a directory; mount the host's CNI directories there (cni.binDir / cni.confDir in the chart's values)`);
  }
  if (!existsSync(o.plugin))
    throw new CliError(
      `the CNI plugin executable ${o.plugin} is missing; build the image from the repository's Dockerfile (or run scripts/setup.sh in a checkout)`,
    );
  if (installPlugin(o)) log.info({ dest: join(o.binDir, 'nodemesh') }, 'installed the CNI plugin');
  const reconcile = () => {
    try {
      const r = chainConfDir(o);
      if (r.file === undefined) log.warn({ confDir: o.confDir }, 'no CNI configuration yet; waiting for the cluster CNI to write one');
      else if (r.changed) log.info({ file: join(o.confDir, r.file) }, 'chained nodemesh into the CNI configuration');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cannot chain nodemesh into the CNI configuration');
    }
  };
  reconcile();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(o.confDir, () => reconcile());
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot watch the CNI configuration directory; checking periodically only');
  }
  const timer = setInterval(reconcile, resync * 1000);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'stopping: removing nodemesh from the CNI configuration');
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  clearInterval(timer);
  watcher?.close();
  const changed = uninstall(o);
  log.info({ files: changed }, 'removed the nodemesh CNI plugin and its configuration entries');
  return 0;
}

export const cniInstallCommand: Command = {
  name: 'cni-install',
  summary: "chain the nodemesh CNI plugin into the node's CNI configuration (the nodemesh-cni DaemonSet)",
  run: (argv) => runCniInstall(argv),
};
