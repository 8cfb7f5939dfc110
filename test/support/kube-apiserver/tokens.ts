// ServiceAccount tokens as the stand-in API server issues and reviews them: JWTs (HS256 with a key
// only this server holds — a real API server signs RS256; reviewers never see the difference, they
// ask TokenReview) carrying the claims a projected token carries: sub
// `system:serviceaccount:<ns>:<sa>`, aud, exp, and the bound pod (name, uid) and node.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

export interface TokenRequest {
  namespace: string;
  serviceAccount: string;
  audiences: readonly string[];
  /** Seconds until expiry (default 3600). */
  expirationSeconds?: number;
  /** The pod the token is bound to (what kubelet's projected tokens carry). */
  pod?: { name: string; uid: string };
  node?: { name: string; uid?: string };
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
    node?: { name: string; uid?: string };
  };
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export class TokenSigner {
  private readonly key = randomBytes(32);
  constructor(readonly issuer = 'https://kubernetes.default.svc.cluster.local') {}

  sign(req: TokenRequest, serviceAccountUid: string, now = Date.now()): string {
    const iat = Math.floor(now / 1000);
    const claims: TokenClaims = {
      iss: this.issuer,
      sub: `system:serviceaccount:${req.namespace}:${req.serviceAccount}`,
      aud: [...req.audiences],
      iat,
      exp: iat + (req.expirationSeconds ?? 3600),
      jti: randomUUID(),
      'kubernetes.io': {
        namespace: req.namespace,
        serviceaccount: { name: req.serviceAccount, uid: serviceAccountUid },
        ...(req.pod ? { pod: req.pod } : {}),
        ...(req.node ? { node: req.node } : {}),
      },
    };
    const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64(JSON.stringify(claims));
    const sig = createHmac('sha256', this.key).update(`${head}.${body}`).digest();
    return `${head}.${body}.${b64(sig)}`;
  }

  /** The claims if the signature is ours, else undefined (expiry and audience are checked by the caller). */
  verify(token: string): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const want = createHmac('sha256', this.key).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    try {
      return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as TokenClaims;
    } catch {
      return undefined;
    }
  }
}
