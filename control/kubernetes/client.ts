// Loading `@kubernetes/client-node` (an ES module, loaded with import() from this CommonJS build)
// and its configuration: a kubeconfig file, or the in-cluster ServiceAccount (token and CA under
// /var/run/secrets/kubernetes.io/serviceaccount, the API server from KUBERNETES_SERVICE_HOST).
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

export type KubeModule = typeof K8s;
export type { K8s };

let loaded: Promise<KubeModule> | undefined;

export function kubeModule(): Promise<KubeModule> {
  loaded ??= import('@kubernetes/client-node');
  return loaded;
}

export class KubeConfigError extends Error {}

/** The client configuration: `kubeconfig` if given, else in-cluster. */
export async function loadKubeConfig(kubeconfig: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<K8s.KubeConfig> {
  const k8s = await kubeModule();
  const kc = new k8s.KubeConfig();
  if (kubeconfig) {
    try {
      kc.loadFromFile(kubeconfig);
    } catch (err) {
      throw new KubeConfigError(`cannot load the kubeconfig ${kubeconfig}: ${(err as Error).message}`);
    }
    if (!kc.getCurrentCluster()) throw new KubeConfigError(`the kubeconfig ${kubeconfig} has no current context with a cluster; set current-context`);
    return kc;
  }
  if (!env.KUBERNETES_SERVICE_HOST) {
    throw new KubeConfigError('not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set) and no --kubeconfig given: pass --kubeconfig PATH');
  }
  try {
    kc.loadFromCluster();
  } catch (err) {
    throw new KubeConfigError(`cannot load the in-cluster configuration: ${(err as Error).message}`);
  }
  return kc;
}

/** The API server's URL, for messages. */
export function serverOf(kc: K8s.KubeConfig): string {
  return kc.getCurrentCluster()?.server ?? '(no cluster)';
}
