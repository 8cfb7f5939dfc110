// The sample client's command line as the lab builds it (lab/mesh/traffic.ts), run for real against
// a loopback echo server. Needs the build (dist/).
import { execFile } from 'node:child_process';
import type { Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientReport } from '../app/client';
import { boundAddress, startEchoServer } from '../app/servers';
import { clientArgv, defaultDrive } from './traffic';

function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe('clientArgv', () => {
  let echo: Server;
  beforeAll(async () => {
    echo = await startEchoServer(0, '127.0.0.1');
  });
  afterAll(() => echo.close());

  it('a run limit scaled past the client bound (60 s x a speed factor of 20) still runs, within the bound', async () => {
    const argv = clientArgv(`127.0.0.1:${boundAddress(echo).port}`, 'tcp', { connections: 2, concurrency: 1, size: 1000, timeoutMs: 1_200_000 });
    expect(argv[argv.indexOf('--timeout-ms') + 1]).toBe('600000');
    const r = await run(argv);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as ClientReport;
    expect(report).toMatchObject({ connections: 2, ok: 2, bytesReceived: 2000 });
  });
});

describe('the demo drive', () => {
  it('gives an edge 15 s on an ordinary machine and scales it by the speed factor (a TCG guest took over 25 s)', () => {
    expect(defaultDrive({}).timeoutMs).toBe(15_000);
    expect(defaultDrive({ NODEMESH_SPEED_FACTOR: '1' }).timeoutMs).toBe(15_000);
    expect(defaultDrive({ NODEMESH_SPEED_FACTOR: '12' }).timeoutMs).toBe(180_000);
    expect(defaultDrive({ NODEMESH_SPEED_FACTOR: '12' })).toMatchObject({ connections: 5, concurrency: 5, size: 2048 });
  });
});
