// Runs the real kubectl (1.32 on these machines; Debian's kubernetes-client otherwise) against a
// kubeconfig, asynchronously (a test process may host servers whose event loop must not block).
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { scaled } from '../speed';

export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

/**
 * `kubectl --kubeconfig <kubeconfig> <args…>`, with `input` on stdin; never throws on a non-zero exit.
 * Killed after 30 s on the reference machine, scaled (in a 5.10 VM under TCG one apply outlasted a
 * fixed 30 s); a killed kubectl reads as exit 1 with the reason in stderr.
 * Its discovery cache lives beside the kubeconfig, not in ~/.kube/cache: that one is keyed by
 * host:port, and a stand-in started later on a reused port would be answered from an earlier
 * server's discovery (a group it does not serve read as served: "could not find the requested
 * resource" instead of "no matches for kind").
 */
export function kubectl(kubeconfig: string, args: readonly string[], input?: string): Promise<KubectlResult> {
  const limit = scaled(30_000);
  return new Promise((resolve, reject) => {
    const child = execFile(
      KUBECTL,
      ['--kubeconfig', kubeconfig, '--cache-dir', join(dirname(kubeconfig), '.kube-cache'), ...args],
      { timeout: limit, env: { ...process.env, KUBECONFIG: kubeconfig, HOME: process.env.HOME ?? '/root' } },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(new Error(`cannot run ${KUBECTL}: ${err.message}`));
        if (err?.killed) return resolve({ code: 1, stdout, stderr: `${stderr}kubectl did not finish within ${limit} ms (killed)\n` });
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}
