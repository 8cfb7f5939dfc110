// The CA root on Kubernetes lives in a Secret (`--ca-secret NAME` in the control plane's
// namespace), so a restarted or rescheduled control plane — whose data dir is an emptyDir — keeps
// the root every issued certificate chains to. Before the CA opens: if the Secret exists, its
// root-key.pem / root-cert.pem are written into the data dir (the Secret wins over whatever the
// data dir held); if not, the data dir's root (made now if missing) is stored as the Secret. When
// another replica creates the Secret first (409), its root is taken instead of ours.
import { readFileSync } from 'node:fs';
import type { Logger } from '../../common/log';
import { loadOrCreateRoot, rootFiles, writeFileAtomic } from '../ca/material';
import { kubeModule, type K8s } from './client';

const KEY = 'root-key.pem';
const CERT = 'root-cert.pem';

export async function syncRootWithSecret(
  kc: K8s.KubeConfig,
  namespace: string,
  name: string,
  dataDir: string,
  trustDomain: string,
  log?: Logger,
): Promise<'from-secret' | 'stored'> {
  const k8s = await kubeModule();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { keyFile, certFile } = rootFiles(dataDir);
  const takeFrom = (secret: K8s.V1Secret): boolean => {
    const key = secret.data?.[KEY];
    const cert = secret.data?.[CERT];
    if (!key || !cert) return false;
    writeFileAtomic(keyFile, Buffer.from(key, 'base64').toString('utf8'), 0o600);
    writeFileAtomic(certFile, Buffer.from(cert, 'base64').toString('utf8'), 0o644);
    return true;
  };
  const read = async (): Promise<K8s.V1Secret | undefined> => {
    try {
      return await core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw new Error(
        `cannot read the CA Secret ${namespace}/${name}: ${(err as Error).message}; the control plane's ServiceAccount needs get/create on secrets in ${namespace}`,
      );
    }
  };
  const existing = await read();
  if (existing) {
    if (!takeFrom(existing)) throw new Error(`the CA Secret ${namespace}/${name} lacks ${KEY} or ${CERT}; fix it or delete it to store a new root`);
    log?.info({ secret: `${namespace}/${name}` }, 'CA root loaded from its Secret');
    return 'from-secret';
  }
  await loadOrCreateRoot(dataDir, trustDomain);
  const body: K8s.V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'nodemesh-control' } },
    type: 'Opaque',
    data: { [KEY]: readFileSync(keyFile).toString('base64'), [CERT]: readFileSync(certFile).toString('base64') },
  };
  try {
    await core.createNamespacedSecret({ namespace, body });
    log?.info({ secret: `${namespace}/${name}` }, 'CA root stored in a new Secret');
    return 'stored';
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw new Error(`cannot store the CA root in the Secret ${namespace}/${name}: ${(err as Error).message}`);
    const winner = await read();
    if (!winner || !takeFrom(winner)) throw new Error(`the CA Secret ${namespace}/${name} appeared meanwhile but is unusable`);
    log?.info({ secret: `${namespace}/${name}` }, 'CA root loaded from the Secret another replica stored');
    return 'from-secret';
  }
}
