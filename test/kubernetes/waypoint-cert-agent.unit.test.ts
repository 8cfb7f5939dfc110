// The Envoy waypoint's certificate agent, as the waypoint controller renders it, run as the real
// `nodemesh waypoint cert-agent` against the real CA (TLS gRPC, TokenReview on the stand-in API
// server) with the waypoint pod's projected-style token: it writes the waypoint's certificate
// where the real `nodemesh waypoint bootstrap` (same rendered args) points Envoy — SDS files
// (Envoy's protoc-gen-validate rules pass) whose Secrets name the certificate files and the
// directory whose moves reload them —, swaps it atomically on renewal, and the files are what
// Envoy needs: a chain that verifies to the mesh root with the waypoint's SPIFFE ID and the key of
// its leaf. No Envoy binary here: the files and the bootstrap are checked, not Envoy's handshake
// or its reload. Needs the build (dist/).
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { identity } from '../../common/identity/spiffe';
import { trustBundle, verifyPeerChain } from '../../common/identity/verify';
import { Bootstrap } from '../../api/gen/envoy/config/bootstrap/v3/bootstrap';
import { Secret } from '../../api/gen/envoy/extensions/transport_sockets/tls/v3/secret';
import { DiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { unpack } from '../../control/envoy/any';
import { DEFAULT_ENVOY_OPTIONS } from '../../control/envoy/model';
import { sdsFilePaths } from '../../control/envoy/sds-file';
import { renderWaypoint, CERTS_DIR } from '../../control/kubernetes/waypoints/render';
import { pgvViolations } from '../envoy/pgv';
// Registers the generated types the bootstrap's Any fields hold (Bootstrap.fromJSON needs them).
import '../../control/envoy/bootstrap';
import { cliEntry } from '../../common/paths';
import { cleanupAfterEach } from '../support/cleanups';
import { until } from '../support/until';
import { run } from './control-process';
import { startIdentityCluster } from './identity-fixture';

const cleanup = cleanupAfterEach();

interface Container {
  name: string;
  args: string[];
}

function envoyPod(control: string) {
  const r = renderWaypoint(
    { name: 'waypoint', namespace: 'demo', uid: 'g-1', apiVersion: 'gateway.networking.k8s.io/v1' },
    { proxy: 'envoy', image: 'nodemesh/nodemesh:test', envoyImage: 'envoyproxy/envoy:test', controlAddress: control, trustDomain: 'cluster.local' },
  );
  return (r.deployment.spec as { template: { spec: { initContainers: Container[]; containers: Container[] } } }).template.spec;
}

/** The container's args with the pod's paths mapped to the test's files. */
function localArgs(args: readonly string[], files: Record<string, string>): string[] {
  return args.map((a) => {
    const m = /^(--[a-z-]+)=(.*)$/.exec(a);
    return m && files[m[1]] !== undefined ? `${m[1]}=${files[m[1]]}` : a;
  });
}

function pem(dir: string, name: string): string {
  return readFileSync(join(dir, name), 'utf8');
}

/** Asserts the three files are one consistent credential for the waypoint, and returns the leaf. */
function checkFiles(dir: string): X509Certificate {
  const roots = trustBundle('cluster.local', pem(dir, 'root-cert.pem'));
  const chain = pem(dir, 'cert-chain.pem').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g) ?? [];
  expect(verifyPeerChain(chain, roots, { expected: identity('demo', 'waypoint') }).spiffeId).toBe('spiffe://cluster.local/ns/demo/sa/waypoint');
  const leaf = new X509Certificate(chain[0] ?? '');
  expect(leaf.checkPrivateKey(createPrivateKey(pem(dir, 'key.pem')))).toBe(true);
  expect(statSync(join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
  return leaf;
}

/** `nodemesh <args>` running until the test's cleanup stops it (SIGTERM). */
function spawnAgent(args: readonly string[]) {
  const child = spawn(process.execPath, [cliEntry, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (b: Buffer) => (log += b.toString()));
  cleanup(
    () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  );
  return { child, log: () => log };
}

describe('nodemesh waypoint cert-agent (Envoy waypoints)', { timeout: 60_000 }, () => {
  it('writes the certificate the bootstrap points Envoy at, before Envoy starts (init container, --once)', async () => {
    const c = await startIdentityCluster(cleanup);
    const pod = envoyPod(c.control);
    const work = mkdtempSync(join(tmpdir(), 'nm-k8s-certagent-'));
    cleanup(() => rmSync(work, { recursive: true, force: true }));
    const tokenFile = join(work, 'token');
    const bundleFile = join(work, 'root-cert.pem');
    writeFileSync(tokenFile, c.podToken(c.waypoint));
    writeFileSync(bundleFile, c.rootPem);
    const certs = join(work, 'certs');
    const files = { '--token-file': tokenFile, '--trust-bundle': bundleFile, '--dir': certs, '--certs': certs, '--ip': '10.200.2.9' };

    // Init containers in order: the bootstrap, then the agent once.
    expect(pod.initContainers.map((x) => x.name)).toEqual(['bootstrap', 'cert-agent-init']);
    const boot = await run(localArgs(pod.initContainers[0].args, files));
    expect(boot.stderr).toBe('');
    const once = await run(localArgs(pod.initContainers[1].args, files));
    expect(once.code, once.stderr).toBe(0);
    checkFiles(certs);
    // Every file Envoy's bootstrap reads is one the agent wrote: the SDS files, and the
    // certificate files their Secrets name, reloaded on moves in the directory.
    const bootstrap = Bootstrap.fromJSON(JSON.parse(boot.stdout));
    expect(pgvViolations(Bootstrap.$type, Bootstrap.encode(bootstrap).finish())).toEqual([]);
    const sdsPaths: string[] = [];
    JSON.stringify(JSON.parse(boot.stdout), (k, v: unknown) => {
      if (k === 'filename') throw new Error(`the bootstrap names a file inline (${String(v)}): Envoy would not reload it`);
      if (k === 'pathConfigSource') sdsPaths.push((v as { path: string }).path);
      return v;
    });
    expect(sdsPaths.sort()).toEqual([join(certs, 'sds-default.json'), join(certs, 'sds-rootca.json')]);
    const secretFiles: string[] = [];
    for (const path of sdsPaths) {
      const response = DiscoveryResponse.fromJSON(JSON.parse(readFileSync(path, 'utf8')));
      expect(response.resources).toHaveLength(1);
      const secret = unpack(Secret, response.resources[0]!);
      expect(pgvViolations(Secret.$type, Secret.encode(secret).finish())).toEqual([]);
      const t = secret.type;
      if (t?.$case === 'tlsCertificate') {
        expect(secret.name).toBe('default');
        expect(t.value.watchedDirectory?.path).toBe(certs);
        for (const d of [t.value.certificateChain, t.value.privateKey]) if (d?.specifier?.$case === 'filename') secretFiles.push(d.specifier.value);
      } else if (t?.$case === 'validationContext') {
        expect(secret.name).toBe('ROOTCA');
        expect(t.value.watchedDirectory?.path).toBe(certs);
        if (t.value.trustedCa?.specifier?.$case === 'filename') secretFiles.push(t.value.trustedCa.specifier.value);
      } else throw new Error(`unexpected secret ${secret.name}`);
    }
    expect(secretFiles.sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem'].map((n) => join(certs, n)));
    // The waypoint listeners the control plane sends Envoy take the same SDS files in the pod.
    expect(sdsFilePaths(DEFAULT_ENVOY_OPTIONS.certFiles)).toEqual({ cert: join(CERTS_DIR, 'sds-default.json'), root: join(CERTS_DIR, 'sds-rootca.json') });
    expect(pod.initContainers[0].args).toContain(`--certs=${CERTS_DIR}`);
    expect(pod.initContainers[1].args).toContain(`--dir=${CERTS_DIR}`);

    // A token that is not the waypoint's (another node's proxy) gets nothing: no files, and the
    // agent keeps retrying, saying why.
    writeFileSync(tokenFile, c.podToken(c.proxy1));
    const other = join(work, 'other');
    const agent = spawnAgent(localArgs(pod.initContainers[1].args, { ...files, '--dir': other }));
    await until('the refusal logged', () => /waypoint certificate request failed; retrying/.test(agent.log()), 20_000, 100);
    expect(agent.log()).toMatch(/PERMISSION_DENIED|permission/i);
    expect(existsSync(join(other, 'key.pem'))).toBe(false);
  });

  it('beside Envoy, renews at half-life and swaps the files atomically', async () => {
    const c = await startIdentityCluster(cleanup);
    const pod = envoyPod(c.control);
    const sidecar = pod.containers.find((x) => x.name === 'cert-agent');
    if (!sidecar) throw new Error('no cert-agent container beside Envoy');
    expect(pod.containers.find((x) => x.name === 'envoy')).toBeDefined();
    const work = mkdtempSync(join(tmpdir(), 'nm-k8s-certagent-'));
    cleanup(() => rmSync(work, { recursive: true, force: true }));
    writeFileSync(join(work, 'token'), c.podToken(c.waypoint));
    writeFileSync(join(work, 'root-cert.pem'), c.rootPem);
    const certs = join(work, 'certs');
    const args = localArgs(sidecar.args, { '--token-file': join(work, 'token'), '--trust-bundle': join(work, 'root-cert.pem'), '--dir': certs });
    // The CA back-dates notBefore by 60 s: a 66 s certificate reaches half-life ~3 s after issue.
    const { child, log } = spawnAgent([...args, '--cert-ttl=66']);
    await until('the first certificate', () => existsSync(join(certs, 'key.pem')), 20_000, 50);
    const first = checkFiles(certs);
    const firstVersion = readlinkSync(join(certs, '..data'));
    // It keeps running after its first certificate (until SIGTERM), to renew it.
    await new Promise((r) => setTimeout(r, 500));
    expect(child.exitCode).toBeNull();
    const sdsInode = statSync(join(certs, 'sds-default.json')).ino;
    // The names are links through ..data; one version directory at a time.
    expect(readlinkSync(join(certs, 'cert-chain.pem'))).toBe('..data/cert-chain.pem');
    await until('a renewed certificate', () => readlinkSync(join(certs, '..data')) !== firstVersion, 20_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}; the agent's log:\n${log()}`);
    });
    const second = checkFiles(certs);
    expect(second.serialNumber).not.toBe(first.serialNumber);
    // The agent removes the old version right after the rename of ..data: wait for it (a loaded
    // machine can run this between the two), then exactly the current version is left.
    const versions = () => readdirSync(certs).filter((e) => e.startsWith('..') && e !== '..data');
    await until('the old version removed', () => versions().length === 1, 5_000, 20);
    expect(versions()).toEqual([readlinkSync(join(certs, '..data'))]);
    // The SDS files stay as they are: Envoy reloads on the ..data move, not on them.
    expect(statSync(join(certs, 'sds-default.json')).ino).toBe(sdsInode);
    await until('the renewal logged', () => (log().match(/waypoint certificate written/g) ?? []).length >= 2, 5_000, 50);
    // One renewal per half-life (~3 s here), not a loop.
    expect((log().match(/waypoint certificate written/g) ?? []).length).toBeLessThanOrEqual(3);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
  });
});
