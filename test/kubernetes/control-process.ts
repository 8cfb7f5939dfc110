// `nodemesh control` as a real process for the Kubernetes tests (needs the build, dist/): run a
// CLI command to completion, or start the control plane and wait until its config API is up.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { cliEntry } from '../../common/paths';
import type { Cleanup } from '../support/cleanups';

export function run(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

export function startControl(
  cleanup: (c: Cleanup) => void,
  args: string[],
  dataDir: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [cliEntry, 'control', '--data-dir', dataDir, ...(args.some((a) => a.startsWith('--listen')) ? [] : ['--listen', '127.0.0.1:0']), ...args],
      {
        env: { ...process.env, NODEMESH_XDS_LISTEN: '127.0.0.1:0', NODEMESH_XDS_PLAINTEXT_LISTEN: 'off', ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    cleanup(
      () =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGTERM');
        }),
    );
    let log = '';
    const timer = setTimeout(() => reject(new Error(`nodemesh control did not start within 45 s; its log:\n${log}`)), 45_000);
    child.stderr?.on('data', (c: Buffer) => {
      log += c.toString();
      const m = /"address":"([^"]+)","tls":(true|false).*"msg":"config API listening"/.exec(log);
      if (m && /control plane ready/.test(log)) {
        clearTimeout(timer);
        resolve({ child, url: `${m[2] === 'true' ? 'https' : 'http'}://${m[1]}` });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nodemesh control exited with ${code}; its log:\n${log}`));
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
