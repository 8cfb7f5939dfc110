// How a browser gets into /ui without the long-lived API token ever being in a URL: a holder of
// the token (the CLI: `nodemesh dashboard`) asks POST /ui/login-code for a one-time code (random,
// single use, valid 60 s), the browser opens /ui/login?code=…, and the answer sets an HttpOnly,
// SameSite=Strict session cookie (random id, 12 h) and redirects to /ui/. A code in a logged URL
// is worthless once used or a minute later. Sessions are bounded (the oldest is dropped) and
// only grant the page's read-only views: the cookie is never accepted by the config API.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'nm_ui';
export const LOGIN_CODE_TTL_MS = 60_000;
export const SESSION_TTL_MS = 12 * 3600_000;
const MAX_CODES = 64;
const MAX_SESSIONS = 256;

const secret = (): string => randomBytes(32).toString('base64url');

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class UiAuth {
  private readonly codes = new Map<string, number>();
  private readonly sessions = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A new one-time login code. */
  issueCode(): { code: string; expiresInSeconds: number } {
    this.expire();
    if (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value as string);
    const code = secret();
    this.codes.set(code, this.now() + LOGIN_CODE_TTL_MS);
    return { code, expiresInSeconds: LOGIN_CODE_TTL_MS / 1000 };
  }

  /** Consumes a login code; a new session id when it was valid, else undefined. */
  redeem(code: string | null): string | undefined {
    this.expire();
    if (!code) return undefined;
    let found: string | undefined;
    for (const c of this.codes.keys()) if (same(c, code)) found = c;
    if (found === undefined) return undefined;
    this.codes.delete(found);
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
    const id = secret();
    this.sessions.set(id, this.now() + SESSION_TTL_MS);
    return id;
  }

  /** Whether the Cookie header carries a live session. */
  hasSession(cookieHeader: string | undefined): boolean {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (!id) return false;
    const until = this.sessions.get(id);
    if (until === undefined) return false;
    if (until <= this.now()) {
      this.sessions.delete(id);
      return false;
    }
    return true;
  }

  /** Ends the session the Cookie header names. */
  logout(cookieHeader: string | undefined): void {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (id) this.sessions.delete(id);
  }

  private expire(): void {
    const t = this.now();
    for (const [c, until] of this.codes) if (until <= t) this.codes.delete(c);
    for (const [s, until] of this.sessions) if (until <= t) this.sessions.delete(s);
  }
}

/** The value of cookie `name` in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie header of a new session (Secure when the page is served over TLS). */
export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure ? '; Secure' : ''}`;
}
