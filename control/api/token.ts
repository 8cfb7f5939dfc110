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
    if (mode !== 0) throw new Error(`the token file ${path} is readable by group or others (mode ${(statSync(path).mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
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

/** True when the Authorization header carries `Bearer <token>`. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = Buffer.from(m[1]);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
