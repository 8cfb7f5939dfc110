// Identity on Kubernetes: node proxies and waypoints present projected ServiceAccount tokens
// (audience `nodemesh-ca`, bound to their pod) to the CA, which checks each with a TokenReview
// against the API server:
// - the review must authenticate the token for the audience (else UNAUTHENTICATED, with the API
//   server's reason), and the token must be bound to a pod (the pod-name/pod-uid extras);
// - the caller's node is that pod's spec.nodeName, read from the API server (its UID must be the
//   one in the token);
// - a ServiceAccount named as the node proxies' (`<namespace>/<name>`, e.g.
//   nodemesh-system/nodemesh-node) may obtain identities of workloads scheduled on its node;
// - any other ServiceAccount (a waypoint) may obtain only its own identity, and only while a pod
//   of that ServiceAccount runs on its node.
// Successful reviews are remembered for 30 s (at most 1024 tokens, keyed by the token's SHA-256),
// so a node proxy fetching certificates for many pods costs one review; a refused token is asked
// again every time.
import { createHash } from 'node:crypto';
import type { Logger } from '../../common/log';
import { CallerRefusedError, type Caller, type NodeAuthenticator } from '../ca/tokens';
import { kubeModule, type K8s } from './client';

export const CA_TOKEN_AUDIENCE = 'nodemesh-ca';
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const CACHE_MS = 30_000;
const CACHE_MAX = 1024;

export interface TokenReviewOptions {
  readonly kubeConfig: K8s.KubeConfig;
  /** The audience tokens must be for (default nodemesh-ca). */
  readonly audience?: string;
  /** ServiceAccounts (`namespace/name`) of the node proxies. */
  readonly nodeProxyServiceAccounts: readonly string[];
  readonly logger?: Logger;
}

export class TokenReviewAuthenticator implements NodeAuthenticator {
  private readonly cache = new Map<string, { caller: Caller; until: number }>();

  private constructor(
    private readonly auth: K8s.AuthenticationV1Api,
    private readonly core: K8s.CoreV1Api,
    private readonly audience: string,
    private readonly nodeProxies: ReadonlySet<string>,
    private readonly log?: Logger,
  ) {}

  static async create(opts: TokenReviewOptions): Promise<TokenReviewAuthenticator> {
    const k8s = await kubeModule();
    for (const sa of opts.nodeProxyServiceAccounts) {
      if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(sa)) throw new Error(`node proxy service account "${sa}" must be <namespace>/<name>`);
    }
    return new TokenReviewAuthenticator(
      opts.kubeConfig.makeApiClient(k8s.AuthenticationV1Api),
      opts.kubeConfig.makeApiClient(k8s.CoreV1Api),
      opts.audience ?? CA_TOKEN_AUDIENCE,
      new Set(opts.nodeProxyServiceAccounts),
      opts.logger,
    );
  }

  async authenticate(token: string): Promise<string | undefined> {
    try {
      return (await this.authenticateCaller(token)).node;
    } catch (err) {
      if (err instanceof CallerRefusedError) return undefined;
      throw err;
    }
  }

  async authenticateCaller(token: string): Promise<Caller> {
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.caller;
    const caller = await this.review(token);
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, { caller, until: Date.now() + CACHE_MS });
    return caller;
  }

  private async review(token: string): Promise<Caller> {
    let review: K8s.V1TokenReview;
    try {
      review = await this.auth.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } },
      });
    } catch (err) {
      // Not the caller's fault: the API server could not be asked. Surfaces as INTERNAL.
      throw new Error(
        `the TokenReview could not be made: ${(err as Error).message}; check the control plane's access to the Kubernetes API (RBAC: create tokenreviews)`,
      );
    }
    const status = review.status;
    if (!status?.authenticated)
      throw new CallerRefusedError(`the ServiceAccount token was not accepted for audience ${this.audience}: ${status?.error || 'not authenticated'}`);
    if (status.audiences && !status.audiences.includes(this.audience)) {
      throw new CallerRefusedError(`the ServiceAccount token is not for audience ${this.audience} (it is for ${status.audiences.join(', ')})`);
    }
    const username = status.user?.username ?? '';
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
    if (!m) throw new CallerRefusedError(`the token belongs to "${username}", not to a ServiceAccount: present a projected ServiceAccount token`);
    const [, namespace, serviceAccount] = m as unknown as [string, string, string];
    const podName = status.user?.extra?.[POD_NAME]?.[0];
    const podUid = status.user?.extra?.[POD_UID]?.[0];
    if (!podName || !podUid) {
      throw new CallerRefusedError(
        `the token of ${namespace}/${serviceAccount} is not bound to a pod: mount a projected ServiceAccount token (serviceAccountToken volume source, audience ${this.audience})`,
      );
    }
    let pod: K8s.V1Pod;
    try {
      pod = await this.core.readNamespacedPod({ name: podName, namespace });
    } catch (err) {
      if ((err as { code?: number }).code === 404) throw new CallerRefusedError(`the token's pod ${namespace}/${podName} no longer exists`);
      throw new Error(`cannot read the token's pod ${namespace}/${podName}: ${(err as Error).message}`);
    }
    if (pod.metadata?.uid !== podUid)
      throw new CallerRefusedError(`the token's pod ${namespace}/${podName} was replaced (uid ${pod.metadata?.uid}, the token names ${podUid})`);
    const node = pod.spec?.nodeName;
    if (!node) throw new CallerRefusedError(`the token's pod ${namespace}/${podName} is not scheduled to a node`);
    const isNodeProxy = this.nodeProxies.has(`${namespace}/${serviceAccount}`);
    const caller: Caller = isNodeProxy
      ? { node, who: `node proxy pod ${namespace}/${podName} on node '${node}'` }
      : { node, only: { namespace, serviceAccount }, who: `pod ${namespace}/${podName} (service account ${serviceAccount}) on node '${node}'` };
    this.log?.debug({ who: caller.who }, 'ServiceAccount token reviewed');
    return caller;
  }
}
