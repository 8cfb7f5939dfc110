// A started stand-in API server with a temporary directory and a kubeconfig pointing at it; both
// go away with the test's cleanups.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup } from '../cleanups';
import { StandInApiServer, type StandInApiServerOptions } from './server';

export interface StandIn {
  readonly api: StandInApiServer;
  /** A temporary directory (nm-<name>-…) for the test's files. */
  readonly dir: string;
  readonly kubeconfig: string;
}

export async function startStandIn(cleanup: (c: Cleanup) => void, name: string, opts: StandInApiServerOptions = {}): Promise<StandIn> {
  const api = await new StandInApiServer(opts).start();
  const dir = mkdtempSync(join(tmpdir(), `nm-${name}-`));
  cleanup(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { api, dir, kubeconfig: api.writeKubeconfig(join(dir, 'kubeconfig')) };
}
