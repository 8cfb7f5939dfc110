// Runs the real kubectl (1.32 on these machines; Debian's kubernetes-client otherwise) against a
// kubeconfig, asynchronously (a test process may host servers whose event loop must not block).
import { execFile } from 'node:child_process';

export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

/** `kubectl --kubeconfig <kubeconfig> <args…>`, with `input` on stdin; never throws on a non-zero exit. */
export function kubectl(kubeconfig: string, args: readonly string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      KUBECTL,
      ['--kubeconfig', kubeconfig, ...args],
      { timeout: 30_000, env: { ...process.env, KUBECONFIG: kubeconfig, HOME: process.env.HOME ?? '/root' } },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(new Error(`cannot run ${KUBECTL}: ${err.message}`));
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}
