// How a client of the control plane proves who it is: a bearer token from a CredentialSource, read
// at every use (each new xDS stream, each certificate request), so a token that is replaced on
// disk — a re-issued node token, a projected ServiceAccount token that kubelet rotates — is picked
// up without a restart. The control plane checks it on its TLS port (15012).
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';

export interface CredentialSource {
  /** What it is, for logs and errors ("node token file /var/lib/…"). */
  readonly description: string;
  /** The current token; throws an Error that says what to do when there is none. */
  token(): string;
}

/** What to tell a user whose token file is missing or empty. */
export interface TokenFileHelp {
  /** How the file is named in errors (default "the node token file"). */
  readonly what?: string;
  /** How to get one (default: 'nodemesh ca issue-node-token'). */
  readonly fix?: string;
}

/** A token kept in a file (trimmed), read at every use. */
export function tokenFileCredential(file: string, help: TokenFileHelp = {}): CredentialSource {
  const what = help.what ?? 'the node token file';
  const fix = help.fix ?? `issue one with 'nodemesh ca issue-node-token --node <node> --out ${file}'`;
  return {
    description: `${what} ${file}`,
    token(): string {
      let text: string;
      try {
        text = readFileSync(file, 'utf8').trim();
      } catch (err) {
        throw new Error(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; ${fix}`);
      }
      if (!text) throw new Error(`${what} ${file} is empty; ${fix.replace(/^issue one/, 'issue a token')}`);
      return text;
    },
  };
}

/** A token given as it is (tests, a token from the environment). */
export function staticCredential(token: string, description = 'a token given directly'): CredentialSource {
  if (!token) throw new Error(`${description} is empty`);
  return { description, token: () => token };
}

/** gRPC call metadata carrying the token: `authorization: Bearer <token>`. */
export function bearerMetadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}
