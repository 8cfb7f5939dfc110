// Invokes a CNI network configuration list exactly as a container runtime (containerd through
// libcni) does: each plugin is an executable found on CNI_PATH by its `type`, run with the CNI_*
// environment and its own config on stdin — the list's `cniVersion` and `name` injected, and for
// every plugin after the first the previous plugin's result as `prevResult`. ADD runs the plugins
// in order, DEL in reverse with the cached ADD result as prevResult. The plugins run in the node's
// network namespace (`nsenter --net`), where the runtime would run them.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface CniPluginConf {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface CniConfList {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: readonly CniPluginConf[];
}

export interface CniInvocation {
  readonly containerId: string;
  /** Path of the pod's netns (e.g. /run/netns/nm-…-cni-…). */
  readonly netns: string;
  readonly ifName: string;
  /** CNI_ARGS pairs, e.g. K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID. */
  readonly args: Readonly<Record<string, string>>;
}

/** A CNI error result (spec: code, msg, details) from a plugin that failed. */
export class CniPluginError extends Error {
  override name = 'CniPluginError';
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly code: number | undefined,
    readonly msg: string,
    readonly details?: string,
  ) {
    super(`CNI ${command} failed in plugin '${plugin}'${code !== undefined ? ` (code ${code})` : ''}: ${msg}${details ? ` — ${details}` : ''}`);
  }
}

export type CniResult = Record<string, unknown>;

export class CniChain {
  constructor(
    private readonly conf: CniConfList,
    /** Directories searched for plugin executables, in order (CNI_PATH). */
    private readonly binDirs: readonly string[],
    /** The runtime's (node's) netns path, or undefined to run in the caller's. */
    private readonly hostNetnsPath?: string,
    private readonly timeoutMs = 60_000,
  ) {}

  private find(type: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(type)) throw new Error(`CNI plugin type '${type}' is not a file name`);
    for (const d of this.binDirs) {
      const p = join(d, type);
      if (existsSync(p)) return p;
    }
    throw new Error(`CNI plugin '${type}' not found on CNI_PATH ${this.binDirs.join(':')} (Debian: apt-get install containernetworking-plugins)`);
  }

  private exec(plugin: CniPluginConf, command: 'ADD' | 'DEL' | 'CHECK', inv: CniInvocation, prevResult?: CniResult): Promise<CniResult | undefined> {
    const bin = this.find(plugin.type);
    const stdin = JSON.stringify({ ...plugin, cniVersion: this.conf.cniVersion, name: this.conf.name, ...(prevResult ? { prevResult } : {}) });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: inv.containerId,
      CNI_NETNS: inv.netns,
      CNI_IFNAME: inv.ifName,
      CNI_ARGS: Object.entries(inv.args)
        .map(([k, v]) => `${k}=${v}`)
        .join(';'),
      CNI_PATH: this.binDirs.join(':'),
    };
    const argv = this.hostNetnsPath ? ['nsenter', `--net=${this.hostNetnsPath}`, '--', bin] : [bin];
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new CniPluginError(plugin.type, command, undefined, `did not finish within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      child.on('error', (e) => (clearTimeout(timer), reject(e)));
      child.on('close', (code) => {
        clearTimeout(timer);
        let parsed: Record<string, unknown> | undefined;
        try {
          parsed = out.trim() ? (JSON.parse(out) as Record<string, unknown>) : undefined;
        } catch {
          parsed = undefined;
        }
        if (code !== 0) {
          const msg = typeof parsed?.msg === 'string' ? parsed.msg : err.trim() || out.trim() || `exit code ${code}`;
          reject(
            new CniPluginError(
              plugin.type,
              command,
              typeof parsed?.code === 'number' ? parsed.code : undefined,
              msg,
              typeof parsed?.details === 'string' ? parsed.details : undefined,
            ),
          );
          return;
        }
        if (command === 'ADD' && !parsed) {
          reject(new CniPluginError(plugin.type, command, undefined, `printed no result (stdout '${out.trim()}', stderr '${err.trim()}')`));
          return;
        }
        resolve(parsed);
      });
      child.stdin.end(stdin);
    });
  }

  /** ADD through every plugin in order; the last plugin's result is the network's result. */
  async add(inv: CniInvocation): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const p of this.conf.plugins) prev = await this.exec(p, 'ADD', inv, prev);
    return prev as CniResult;
  }

  /** CHECK through every plugin in order, each with the cached ADD result. */
  async check(inv: CniInvocation, cached: CniResult): Promise<void> {
    for (const p of this.conf.plugins) await this.exec(p, 'CHECK', inv, cached);
  }

  /** DEL through every plugin in reverse order, each with the cached ADD result (if any). */
  async del(inv: CniInvocation, cached?: CniResult): Promise<void> {
    for (const p of [...this.conf.plugins].reverse()) await this.exec(p, 'DEL', inv, cached);
  }
}

/** IPv4 addresses (without prefix length) of a CNI result's `ips`. */
export function resultIps(result: CniResult): string[] {
  const ips = Array.isArray(result.ips) ? (result.ips as Array<{ address?: unknown }>) : [];
  return ips.map((i) => (typeof i.address === 'string' ? i.address.split('/')[0] : '')).filter(Boolean) as string[];
}
