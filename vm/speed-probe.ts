// The speed factor a test VM's lab tier runs with (vm/guest/run.sh: `node dist/vm/speed-probe.js`).
// test/support/speed.ts measures CPU work (hashing, JSON, small syscalls); but the mesh's bytes cross
// the guest's TCP stack between processes and are sealed with AES-GCM, which under TCG run slower
// still than that CPU work: a 6.12 guest at factor 21.6 (03:20) moved a 64 MiB echo across nodes
// at ~0.5 MB/s each way and missed its limit (5 s on the reference machine, x 21.6 = 108 s), i.e.
// its data path ran over 26x slower than the reference machine's. So the guest also times a
// data-path sample — 8 MiB sealed with AES-256-GCM in 64 KiB chunks, written over loopback TCP to
// an echo server and read back — against what it takes on the reference machine, and the tier runs
// with the larger of the two factors.
import { createCipheriv } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { factorFrom, speedSample } from '../test/support/speed';

/**
 * Milliseconds dataPathSample takes on the reference machine: measured beside speedSample, as a
 * ratio to it (0.70-0.95 of its 25 ms on the development VM; approximate, since that VM was loaded
 * and the data path suffers more from waiting for a core than CPU work does).
 */
export const DATA_PATH_REFERENCE_MS = 18;

/** 8 MiB, each 64 KiB chunk sealed with AES-256-GCM, over loopback TCP to an echo server and back; resolves to the milliseconds it took. */
export function dataPathSample(total = 8 << 20): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => s.pipe(s));
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const t0 = process.hrtime.bigint();
      const c = connect((server.address() as AddressInfo).port, '127.0.0.1');
      const chunk = Buffer.alloc(64 * 1024, 7);
      const key = Buffer.alloc(32, 1);
      const expected = total + (total / chunk.length) * 16;
      let sent = 0;
      let got = 0;
      let n = 0;
      const pump = (): void => {
        while (sent < total) {
          const iv = Buffer.alloc(12);
          iv.writeUInt32BE(n++, 8);
          const seal = createCipheriv('aes-256-gcm', key, iv);
          const sealed = Buffer.concat([seal.update(chunk), seal.final(), seal.getAuthTag()]);
          sent += chunk.length;
          if (!c.write(sealed)) {
            c.once('drain', pump);
            return;
          }
        }
      };
      c.on('data', (d: Buffer) => {
        got += d.length;
        if (got < expected) return;
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        c.destroy();
        server.close();
        resolve(ms);
      });
      c.on('error', (err) => {
        server.close();
        reject(err);
      });
      c.on('connect', pump);
    });
  });
}

/**
 * The factors of both samples (the fastest of `rounds` each, after two rounds of warm-up) and the one
 * to run with: the larger. Under TCG every piece of code V8 generates is translated again by qemu, so
 * a sample's first rounds also measure the translation (a 6.12 guest read 38.6 with one round of
 * warm-up, where vitest's five rounds had read 21.6 an hour before): only the warm rounds count.
 */
export async function vmSpeedFactor(rounds = 8, budgetMs = 60_000): Promise<{ cpu: number; dataPath: number; factor: number; rounds: number }> {
  const t0 = Date.now();
  for (let i = 0; i < 2; i++) {
    speedSample();
    await dataPathSample();
  }
  const cpu: number[] = [];
  const data: number[] = [];
  // at most `rounds`, and no new one past the budget (a guest on a loaded host took 300 s for ten)
  for (let i = 0; i < rounds && (i === 0 || Date.now() - t0 < budgetMs); i++) {
    cpu.push(speedSample());
    data.push(await dataPathSample());
  }
  const c = factorFrom(cpu);
  const d = factorFrom(data, DATA_PATH_REFERENCE_MS);
  return { cpu: c, dataPath: d, factor: Math.max(c, d), rounds: cpu.length };
}

if (require.main === module) {
  vmSpeedFactor().then(
    (f) => process.stdout.write(`cpu=${f.cpu} datapath=${f.dataPath} factor=${f.factor} rounds=${f.rounds}\n`),
    (err: unknown) => {
      process.stderr.write(`speed-probe: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
