// Benchmark (not a test): what reading and checking a peer's identity costs per mTLS handshake —
// the server's verifyTlsPeer and the client's checkServerIdentity (clientVerification), as HBONE
// calls them — in this build, and with `--baseline OTHER/dist` in another build in the same rounds.
//
//   node dist/bench/peer-identity.js [--rounds 5] [--calls 2000] [--handshakes 300] [--firsts 50] [--baseline DIR]
//
// Figures per round, for each build (order rotated per round):
//   verify µs     verifyTlsPeer on an established connection, the peer's certificate seen before
//                 (every handshake with a peer whose certificate has not rotated)
//   first µs      verifyPeerChain of a chain never seen (a new certificate each call, PEM as the
//                 certificate manager passes it): what a peer's first handshake pays
//   handshake µs  CPU (user + system, both ends are in this process) per loopback mTLS handshake
//                 (TLS 1.3, P-256) with both sides' checks, one after another
// Medians over the rounds with their range, ratios of the medians with the per-round range, and
// the load average at start and end (the machine is shared: compare builds within one run).
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { createTestCa } from '../common/hbone/testing/pki';
import { splitPem } from '../common/identity/pem';
import * as current from '../common/identity/verify';
import { formatRatio, formatSpread, ratio, roundOrder, spread } from './support/rounds';

type VerifyModule = Pick<typeof current, 'verifyTlsPeer' | 'verifyPeerChain' | 'clientVerification' | 'serverVerification' | 'trustBundle'>;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}
const count = (name: string, fallback: number): number => {
  const v = Number(option(name, String(fallback)));
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive whole number`);
  return v;
};

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const rounds = count('rounds', 5);
  const calls = count('calls', 2000);
  const handshakes = count('handshakes', 300);
  const firsts = count('firsts', 50);
  const baselineDir = option('baseline', '');
  const builds: Array<{ name: string; v: VerifyModule }> = [{ name: 'this build', v: current }];
  if (baselineDir) {
    const dir = resolve(baselineDir);
    builds.push({ name: `baseline (${dir})`, v: require(join(dir, 'common/identity/verify.js')) as VerifyModule });
  }
  process.stdout.write(`peer identity per handshake: ${rounds} rounds, ${cpus().length} cores, load ${load()} at start\n`);

  const ca = await createTestCa();
  const server = await ca.issue('default', 'httpbin');
  const client = await ca.issue('default', 'sleep');
  const results = new Map(builds.map((b) => [b.name, { verify: [] as number[], first: [] as number[], handshake: [] as number[] }]));

  for (let round = 0; round < rounds; round++) {
    for (const b of roundOrder(builds, round)) {
      const r = results.get(b.name)!;
      // never-seen peers for the "first" figure (issued before the clock starts)
      const fresh: string[][] = [];
      for (let i = 0; i < firsts; i++) fresh.push(splitPem((await ca.issue('default', `new-${round}-${i}`)).certChain));
      const bundle = b.v.trustBundle('cluster.local', ca.bundle.pem);
      const serverIdentity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'httpbin' };
      let verified = 0;
      const srv = tls.createServer({ key: server.key, cert: server.certChain, minVersion: 'TLSv1.3', ...b.v.serverVerification(bundle) }, (sock) => {
        b.v.verifyTlsPeer(sock, bundle, { role: 'client' });
        verified++;
        sock.end();
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as AddressInfo).port;
      const connect = (): Promise<tls.TLSSocket> =>
        new Promise((resolveSocket, reject) => {
          const s = tls.connect({
            host: '127.0.0.1',
            port,
            key: client.key,
            cert: client.certChain,
            minVersion: 'TLSv1.3',
            ...b.v.clientVerification(bundle, serverIdentity),
          });
          s.once('secureConnect', () => resolveSocket(s));
          s.once('error', reject);
        });

      // whole handshakes, one after another (the server verifies, then closes)
      const t0 = process.cpuUsage();
      for (let i = 0; i < handshakes; i++) {
        const s = await connect();
        await new Promise<void>((done) => s.once('close', () => done()).resume());
      }
      const used = process.cpuUsage(t0);
      r.handshake.push((used.user + used.system) / handshakes);
      if (verified !== handshakes) throw new Error(`${b.name}: the server verified ${verified} of ${handshakes} peers`);

      // the server's check alone, on one established connection
      const held = new Promise<tls.TLSSocket>((r) => srv.once('secureConnection', r));
      const c = await connect();
      const sock = await held;
      const t1 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) b.v.verifyTlsPeer(sock, bundle, { role: 'client' });
      r.verify.push(Number(process.hrtime.bigint() - t1) / 1e3 / calls);
      const t2 = process.hrtime.bigint();
      for (const chain of fresh) b.v.verifyPeerChain(chain, bundle, { role: 'client' });
      r.first.push(Number(process.hrtime.bigint() - t2) / 1e3 / fresh.length);
      c.destroy();
      await new Promise<void>((r2) => srv.close(() => r2()));
    }
  }

  const rows: string[][] = [['build', 'verify µs (seen before)', 'first µs (never seen)', 'handshake CPU µs']];
  for (const b of builds) {
    const r = results.get(b.name)!;
    rows.push([b.name, formatSpread(spread(r.verify), 2), formatSpread(spread(r.first), 1), formatSpread(spread(r.handshake), 0)]);
  }
  const width = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((c, i) => c.padEnd(width[i]!)).join('  ')}\n`);
  if (builds.length > 1) {
    const a = results.get(builds[0]!.name)!;
    const z = results.get(builds[1]!.name)!;
    process.stdout.write(
      `this build / baseline: verify ${formatRatio(ratio(a.verify, z.verify))}, first ${formatRatio(ratio(a.first, z.first))}, handshake ${formatRatio(ratio(a.handshake, z.handshake))}\n`,
    );
  }
  process.stdout.write(`load ${load()} at end\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`peer-identity: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
