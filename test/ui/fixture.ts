// A control plane with the observer and the /ui page on loopback, and a store of N workloads over
// a few namespaces and nodes (each namespace with a Service and policies), for the page's tests.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/log';
import { ControlPlane } from '../../control/control-plane';
import type { ConnectedClient } from '../../control/observe';
import { uiComponents } from '../../control/ui/component';

export interface UiFixture {
  readonly cp: ControlPlane;
  readonly url: string;
  readonly token: string;
  stop(): Promise<void>;
}

export const quiet = () => createLogger('ui-test', 'silent');

/** Resources: `namespaces` enrolled namespaces, `workloads` Workloads spread over `nodes` nodes. */
export function meshDocs(workloads: number, namespaces = 10, nodes = 5): unknown[] {
  const docs: unknown[] = [];
  for (let n = 0; n < namespaces; n++) {
    const ns = `ns${n}`;
    docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'nodemesh.io/dataplane-mode': 'ambient' } } });
    docs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'api', namespace: ns },
      spec: { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    docs.push({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: ns },
      spec: { mtls: { mode: 'STRICT' } },
    });
    docs.push({
      apiVersion: 'security.nodemesh.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'api-allow', namespace: ns },
      spec: { selector: { matchLabels: { app: 'api' } }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: [ns] } }] }] },
    });
  }
  for (let i = 0; i < workloads; i++) {
    const ns = `ns${i % namespaces}`;
    docs.push({
      apiVersion: 'nodemesh.io/v1alpha1',
      kind: 'Workload',
      metadata: { name: `w${i}`, namespace: ns, labels: { app: i % 3 === 0 ? 'api' : 'web' } },
      spec: {
        node: `node${(i % nodes) + 1}`,
        serviceAccount: i % 3 === 0 ? 'api' : 'web',
        addresses: [`10.${100 + Math.floor(i / 60000)}.${Math.floor(i / 250) % 250}.${(i % 250) + 2}`],
        ports: [{ port: 8080 }],
      },
    });
  }
  return docs;
}

export async function startUiControlPlane(opts: { workloads?: number; clients?: () => ConnectedClient[]; env?: NodeJS.ProcessEnv } = {}): Promise<UiFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'nm-ui-'));
  const env = { NODEMESH_OBSERVE_INTERVAL_MS: '0', ...opts.env };
  const components = await uiComponents(env);
  const clients = opts.clients;
  if (clients)
    components.unshift({
      name: 'fake-xds-clients',
      start: async () => undefined,
      stop: async () => undefined,
      debug: (p) => (p === 'xds' ? { clients: clients() } : undefined),
    });
  const cp = new ControlPlane({ dataDir: dir, listen: '127.0.0.1:0', logger: quiet(), components });
  await cp.start();
  if (opts.workloads) await cp.store.applyAll(meshDocs(opts.workloads));
  return {
    cp,
    url: cp.apiURL,
    token: readFileSync(cp.tokenFile, 'utf8').trim(),
    stop: async () => {
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Logs in the way a browser does: a code with the token, then /ui/login; returns the session cookie. */
export async function login(f: UiFixture): Promise<string> {
  const code = (await (await fetch(`${f.url}/ui/login-code`, { method: 'POST', headers: { authorization: `Bearer ${f.token}` } })).json()) as { code: string };
  const res = await fetch(`${f.url}/ui/login?code=${code.code}`, { redirect: 'manual' });
  const set = res.headers.get('set-cookie') ?? '';
  return set.split(';')[0]!;
}
