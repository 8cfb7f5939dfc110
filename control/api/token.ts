// The config API's bearer token: generated on first start into the data dir (mode 0600), or read
// from --token-file. Compared in constant time.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, statSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';

export const TOKEN_FILE = 'token';

/** Reads the token at `path`, creating it (0600) when it does not exist. */
export function loadOrCreateToken(path: string): { token: string; created: boolean } {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (!token) throw new Error(`the token file ${path} is empty; delete it to have a new token generated, or write one into it`);
    const mode = statSync(path).mode & 0o077;
    if (mode !== 0)
      throw new Error(`the token file ${path} is readable by group or others (mode ${(statSync(path).mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
    return { token, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  return { token, created: true };
}

/** Reads a token file a client was pointed at; the error says where tokens come from. */
export function readToken(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the API token from ${path}: ${(err as Error).message}; pass --token-file, or set NODEMESH_TOKEN`);
  }
  if (!token) throw new Error(`the token file ${path} is empty`);
  return token;
}

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined. The scheme is matched
 * case-insensitively on purpose: RFC 7235 §2.1 (to which RFC 6750 defers) makes auth-schemes
 * case-insensitive, so `bearer` and `BEARER` are the same credential; the token itself is exact.
 */
export function bearerTokenOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

/** True when the Authorization header carries `Bearer <token>` (constant-time comparison). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = bearerTokenOf(header);
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
