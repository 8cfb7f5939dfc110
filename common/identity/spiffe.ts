// SPIFFE identities of workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
// Pure parsing, formatting and validation; every error says what is wrong and what a valid ID
// looks like. Rules follow the SPIFFE ID specification (lower-case trust domain of letters,
// digits, '.', '-', '_'; path segments of letters, digits, '.', '-', '_', never '.' or '..';
// no port, user info, query or fragment; at most 2048 bytes).

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const SPIFFE_SCHEME = 'spiffe://';
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;

/** A workload identity: the service account `serviceAccount` in `namespace` of `trustDomain`. */
export interface Identity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

export class IdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityError';
  }
}

const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
const SHAPE = `expected ${SPIFFE_SCHEME}<trust-domain>/ns/<namespace>/sa/<service-account>`;

/** Why `trustDomain` is not a valid SPIFFE trust domain, or undefined when it is. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain.length === 0) return 'the trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (!TRUST_DOMAIN_RE.test(trustDomain)) {
    return `trust domain '${trustDomain}' may contain only lower-case letters, digits, '.', '-' and '_'`;
  }
  return undefined;
}

export function assertTrustDomain(trustDomain: string): string {
  const problem = trustDomainProblem(trustDomain);
  if (problem) throw new IdentityError(problem);
  return trustDomain;
}

function segmentProblem(what: string, value: string): string | undefined {
  if (value.length === 0) return `the ${what} is empty`;
  if (value === '.' || value === '..') return `the ${what} may not be '${value}'`;
  if (!SEGMENT_RE.test(value)) return `${what} '${value}' may contain only letters, digits, '.', '-' and '_'`;
  return undefined;
}

/** Builds and validates an identity; the trust domain defaults to cluster.local. */
export function identity(namespace: string, serviceAccount: string, trustDomain = DEFAULT_TRUST_DOMAIN): Identity {
  const problem = trustDomainProblem(trustDomain) ?? segmentProblem('namespace', namespace) ?? segmentProblem('service account', serviceAccount);
  if (problem) throw new IdentityError(`invalid identity: ${problem}`);
  return { trustDomain, namespace, serviceAccount };
}

/** Why `uri` is not a workload SPIFFE ID, or undefined when it is one. */
function parseProblem(uri: string): { problem: string } | { id: Identity } {
  if (uri.length > MAX_ID_LENGTH) return { problem: `it is longer than ${MAX_ID_LENGTH} characters` };
  if (!uri.startsWith(SPIFFE_SCHEME)) {
    const lower = uri.slice(0, SPIFFE_SCHEME.length).toLowerCase();
    return {
      problem: lower === SPIFFE_SCHEME ? 'the scheme must be written in lower case' : `it does not start with '${SPIFFE_SCHEME}'`,
    };
  }
  const rest = uri.slice(SPIFFE_SCHEME.length);
  if (/[?#]/.test(rest)) return { problem: 'a SPIFFE ID has no query or fragment' };
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  if (authority.includes('@')) return { problem: 'a SPIFFE ID has no user info' };
  if (authority.includes(':')) return { problem: 'a SPIFFE ID has no port' };
  const tdProblem = trustDomainProblem(authority);
  if (tdProblem) return { problem: tdProblem };
  if (slash < 0 || slash === rest.length - 1) return { problem: 'it names only a trust domain, not a workload' };
  const segments = rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return { problem: `the path '/${segments.join('/')}' is not /ns/<namespace>/sa/<service-account>` };
  }
  const [, namespace, , serviceAccount] = segments as [string, string, string, string];
  const segProblem = segmentProblem('namespace', namespace) ?? segmentProblem('service account', serviceAccount);
  if (segProblem) return { problem: segProblem };
  return { id: { trustDomain: authority, namespace, serviceAccount } };
}

/** Parses a workload SPIFFE ID; throws IdentityError naming what is wrong. */
export function parseSpiffeId(uri: string): Identity {
  const r = parseProblem(uri);
  if ('problem' in r) throw new IdentityError(`'${uri}' is not a workload SPIFFE ID: ${r.problem} (${SHAPE})`);
  return r.id;
}

/** Parses a workload SPIFFE ID, or returns undefined. */
export function tryParseSpiffeId(uri: string): Identity | undefined {
  const r = parseProblem(uri);
  return 'id' in r ? r.id : undefined;
}

export function formatSpiffeId(id: Identity): string {
  return `${SPIFFE_SCHEME}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}

/** Accepts an Identity or its SPIFFE ID string and returns the Identity (validated). */
export function toIdentity(id: Identity | string): Identity {
  return typeof id === 'string' ? parseSpiffeId(id) : identity(id.namespace, id.serviceAccount, id.trustDomain);
}
