// Node credentials for the lab and other non-Kubernetes runs: one bearer token per node. Only a
// SHA-256 of each token is stored (<dataDir>/ca/node-tokens.json, 0600), so the file does not
// let anyone act as a node; a presented token is hashed and compared in constant time against
// every stored hash. Issuing a token for a node replaces (revokes) its previous one. The file is
// re-read when it changes, so `nodemesh ca issue-node-token` works while the control plane runs.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './material';

const TOKEN_PREFIX = 'nmt_';
const NODE_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

interface TokenFile {
  version: 1;
  nodes: Record<string, { sha256: string; issuedAt: string }>;
}

/** Who a node credential belongs to; `undefined` when it is unknown. May be async (e.g. TokenReview). */
export interface NodeAuthenticator {
  authenticate(token: string): string | undefined | Promise<string | undefined>;
  /**
   * The richer answer the certificate service uses when an authenticator has it (Kubernetes
   * ServiceAccount tokens): the caller's node and, for a caller that is not a node proxy (a
   * waypoint), the one identity it may obtain. Throws CallerRefusedError when the credential is
   * not valid, with the reason.
   */
  authenticateCaller?(token: string): Promise<Caller>;
}

/** An authenticated caller of the certificate service. */
export interface Caller {
  /** The node it runs on: it may only obtain identities of workloads scheduled there. */
  readonly node: string;
  /** When set, the only identity it may obtain (a waypoint: its own ServiceAccount). */
  readonly only?: { readonly namespace: string; readonly serviceAccount: string };
  /** For messages and logs, e.g. `pod nodemesh-system/nodemesh-node-x (node proxy on node1)`. */
  readonly who: string;
}

/** A credential that does not authenticate (UNAUTHENTICATED), and why. */
export class CallerRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CallerRefusedError';
  }
}

/**
 * Who presents `token`: the authenticator's richer answer when it has one, else the node the
 * token belongs to. Throws CallerRefusedError (with the reason) for a credential that is not valid;
 * other errors mean the check itself failed (e.g. the Kubernetes API is unreachable).
 */
export async function callerOf(nodes: NodeAuthenticator, token: string): Promise<Caller> {
  if (nodes.authenticateCaller) return nodes.authenticateCaller(token);
  const node = await nodes.authenticate(token);
  if (node === undefined) {
    throw new CallerRefusedError(
      'the node token is not known to this control plane (revoked, replaced by a newer one, or issued for another data dir); issue a new one with nodemesh ca issue-node-token',
    );
  }
  return { node, who: `node '${node}'` };
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function nodeTokensFile(dataDir: string): string {
  return join(dataDir, 'ca', 'node-tokens.json');
}

export class NodeTokens implements NodeAuthenticator {
  private cache: { stamp: string; entries: Array<{ node: string; hash: Buffer }> } | undefined;

  constructor(readonly file: string) {}

  static forDataDir(dataDir: string): NodeTokens {
    return new NodeTokens(nodeTokensFile(dataDir));
  }

  private read(): TokenFile {
    if (!existsSync(this.file)) return { version: 1, nodes: {} };
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (err) {
      throw new Error(`cannot read the node token file ${this.file}: ${(err as Error).message}; fix or remove it and issue the node tokens again`);
    }
    const f = parsed as Partial<TokenFile>;
    if (f.version !== 1 || typeof f.nodes !== 'object' || f.nodes === null) {
      throw new Error(`${this.file} is not a nodemesh node token file (version 1); remove it and issue the node tokens again`);
    }
    return f as TokenFile;
  }

  /** Makes a new token for `node` (replacing any earlier one) and returns it; only its hash is kept. */
  issue(node: string): string {
    if (!NODE_NAME_RE.test(node)) throw new Error(`'${node}' is not a valid node name (lower-case letters, digits, '-' and '.', at most 253 characters)`);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const f = this.read();
    f.nodes[node] = { sha256: hashToken(token).toString('hex'), issuedAt: new Date().toISOString() };
    writeFileAtomic(this.file, JSON.stringify(f, null, 2) + '\n', 0o600);
    this.cache = undefined;
    return token;
  }

  /** Removes a node's token; true if it had one. */
  revoke(node: string): boolean {
    const f = this.read();
    if (!(node in f.nodes)) return false;
    delete f.nodes[node];
    writeFileAtomic(this.file, JSON.stringify(f, null, 2) + '\n', 0o600);
    this.cache = undefined;
    return true;
  }

  nodes(): string[] {
    return Object.keys(this.read().nodes).sort();
  }

  private entries(): Array<{ node: string; hash: Buffer }> {
    let stamp = 'absent';
    if (existsSync(this.file)) {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    }
    if (!this.cache || this.cache.stamp !== stamp) {
      const f = this.read();
      this.cache = { stamp, entries: Object.entries(f.nodes).map(([node, e]) => ({ node, hash: Buffer.from(e.sha256, 'hex') })) };
    }
    return this.cache.entries;
  }

  /** The node a token belongs to, or undefined. Compares against every entry in constant time. */
  authenticate(token: string): string | undefined {
    const presented = hashToken(token);
    let found: string | undefined;
    for (const e of this.entries()) {
      if (e.hash.length === presented.length && timingSafeEqual(e.hash, presented) && found === undefined) found = e.node;
    }
    return found;
  }
}
