#!/usr/bin/env node
// Entry of the `nodemesh` CNI plugin executable the container runtime runs (through the small wrapper
// that `writeCniPluginWrapper` installs in the CNI bin dir): stdin and the CNI_* environment in,
// the result or a CNI error on stdout, exit status 0 or 1.
import { runPlugin } from './plugin';

const MAX_STDIN = 1 << 20;

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    process.stdin.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_STDIN) reject(new Error(`network configuration larger than ${MAX_STDIN} bytes`));
      else chunks.push(c);
    });
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

readStdin()
  .then((stdin) => runPlugin(process.env, stdin))
  .catch((err: Error) => ({ code: 1, stdout: JSON.stringify({ cniVersion: '1.0.0', code: 5, msg: err.message }) + '\n', stderr: '' }))
  .then((out) => {
    if (out.stderr) process.stderr.write(out.stderr);
    process.stdout.write(out.stdout, () => process.exit(out.code));
  });
