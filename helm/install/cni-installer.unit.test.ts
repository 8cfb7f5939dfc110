// The CNI installer on real directories (no privileges needed): chaining into the configurations
// clusters really write (k3s' flannel conflist, a single-plugin .conf), idempotence, re-chaining
// after the cluster's CNI rewrites its file, and the whole `nodemesh cni-install` process: chains,
// follows a rewrite, and on SIGTERM leaves the directories as they were before it came.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliEntry } from '../../common/paths';
import { until } from '../../test/support/until';
import { asConflist, chain, primaryConfigFile, unchain, type PluginEntry } from './cni-chain';
import { chainConfDir, installPlugin, uninstall, type CniInstallOptions } from './cni-installer';

const FLANNEL = {
  name: 'cbr0',
  cniVersion: '1.0.0',
  plugins: [
    { type: 'flannel', delegate: { hairpinMode: true, forceAddress: true, isDefaultGateway: true } },
    { type: 'portmap', capabilities: { portMappings: true } },
    { type: 'bandwidth', capabilities: { bandwidth: true } },
  ],
};
const BRIDGE_CONF = { cniVersion: '0.4.0', name: 'mynet', type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.22.0.0/16' } };
const ENTRY: PluginEntry = { type: 'nodemesh', socket: '/run/nodemesh/cni.sock' };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function hostDirs(): CniInstallOptions & { root: string } {
  const root = mkdtempSync(join(tmpdir(), 'nm-cni-install-'));
  dirs.push(root);
  const binDir = join(root, 'bin');
  const confDir = join(root, 'net.d');
  mkdirSync(binDir);
  mkdirSync(confDir);
  const plugin = join(root, 'plugin');
  writeFileSync(plugin, '#!/bin/sh\necho nodemesh-plugin\n');
  return { root, binDir, confDir, plugin, entry: ENTRY };
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

describe('chaining the nodemesh CNI plugin', () => {
  it('picks the file the runtime reads, appends nodemesh last, once, and takes it out again', () => {
    expect(primaryConfigFile(['99-other.conflist', '10-flannel.conflist', '.hidden.conf', 'README'])).toBe('10-flannel.conflist');
    const chained = chain(asConflist('10-flannel.conflist', JSON.stringify(FLANNEL)), ENTRY);
    expect((chained.plugins as { type: string }[]).map((p) => p.type)).toEqual(['flannel', 'portmap', 'bandwidth', 'nodemesh']);
    const twice = chain(chain(chained, { ...ENTRY, logLevel: 'debug' }), ENTRY);
    expect((twice.plugins as { type: string }[]).map((p) => p.type)).toEqual(['flannel', 'portmap', 'bandwidth', 'nodemesh']);
    expect(unchain(twice)).toEqual(FLANNEL);
    expect(asConflist('10-bridge.conf', JSON.stringify(BRIDGE_CONF))).toEqual({
      cniVersion: '0.4.0',
      name: 'mynet',
      plugins: [{ type: 'bridge', bridge: 'cni0', ipam: BRIDGE_CONF.ipam }],
    });
    expect(() => asConflist('bad.conflist', '{"plugins": ')).toThrow(/bad\.conflist is not valid JSON/);
  });

  it('on disk: a conflist is rewritten in place, a .conf becomes a .conflist; no change when already chained; uninstall restores', () => {
    const o = hostDirs();
    writeFileSync(join(o.confDir, '10-flannel.conflist'), JSON.stringify(FLANNEL));
    expect(chainConfDir(o)).toEqual({ file: '10-flannel.conflist', changed: true });
    expect(chainConfDir(o)).toEqual({ file: '10-flannel.conflist', changed: false });
    expect(readJson(join(o.confDir, '10-flannel.conflist')).plugins.at(-1)).toEqual(ENTRY);
    expect(installPlugin(o)).toBe(true);
    expect(installPlugin(o)).toBe(false);
    expect(statSync(join(o.binDir, 'nodemesh')).mode & 0o777).toBe(0o755);
    expect(uninstall(o)).toEqual(['10-flannel.conflist']);
    expect(readJson(join(o.confDir, '10-flannel.conflist'))).toEqual(FLANNEL);
    expect(existsSync(join(o.binDir, 'nodemesh'))).toBe(false);

    const b = hostDirs();
    writeFileSync(join(b.confDir, '10-bridge.conf'), JSON.stringify(BRIDGE_CONF));
    expect(chainConfDir(b)).toEqual({ file: '10-bridge.conflist', changed: true });
    expect(readdirSync(b.confDir)).toEqual(['10-bridge.conflist']);
    expect(readJson(join(b.confDir, '10-bridge.conflist')).plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'nodemesh']);
    expect(chainConfDir(hostDirs())).toEqual({ file: undefined, changed: false });
  });

  it('nodemesh cni-install: chains, re-chains after the cluster CNI rewrites its file, removes everything on SIGTERM', async () => {
    const o = hostDirs();
    const conflist = join(o.confDir, '10-flannel.conflist');
    writeFileSync(conflist, JSON.stringify(FLANNEL));
    const child = spawn(
      process.execPath,
      [
        cliEntry,
        'cni-install',
        `--bin-dir=${o.binDir}`,
        `--conf-dir=${o.confDir}`,
        `--host-socket=${ENTRY.socket}`,
        `--plugin=${o.plugin}`,
        '--resync-seconds=1',
        '--fail-open',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const chained = () => existsSync(conflist) && readFileSync(conflist, 'utf8').includes('"nodemesh"');
      await until(`nodemesh chained into ${conflist}`, chained, 15_000);
      expect(readFileSync(join(o.binDir, 'nodemesh'), 'utf8')).toContain('nodemesh-plugin');
      // --fail-open (the chart's cni.failOpen) reaches the plugin's configuration.
      expect(readJson(conflist).plugins.at(-1)).toEqual({ ...ENTRY, failOpen: true });
      writeFileSync(conflist, JSON.stringify(FLANNEL)); // the cluster's CNI writes its file again
      await until('nodemesh chained again after the rewrite', chained, 15_000);
      child.kill('SIGTERM');
      expect(await exited, output).toBe(0);
      expect(readJson(conflist)).toEqual(FLANNEL);
      expect(existsSync(join(o.binDir, 'nodemesh'))).toBe(false);
      expect(output).toContain('removed the nodemesh CNI plugin');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses to start without its directories or plugin, saying what to do', async () => {
    const o = hostDirs();
    const run = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const c = spawn(process.execPath, [cliEntry, 'cni-install', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d) => (err += d));
        c.on('exit', (code) => resolve({ code, err }));
      });
    expect((await run([`--conf-dir=${o.confDir}`, '--host-socket=/s'])).err).toMatch(/--bin-dir is required/);
    expect((await run([`--bin-dir=${join(o.root, 'nope')}`, `--conf-dir=${o.confDir}`, '--host-socket=/s', `--plugin=${o.plugin}`])).err).toMatch(
      /nope is not a directory; mount the host's CNI directories/,
    );
    expect((await run([`--bin-dir=${o.binDir}`, `--conf-dir=${o.confDir}`, '--host-socket=/s', `--plugin=${join(o.root, 'missing')}`])).err).toMatch(
      /CNI plugin executable .*missing is missing/,
    );
    expect(readdirSync(o.binDir)).toEqual([]);
  });
});
