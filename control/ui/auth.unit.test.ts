import { describe, expect, it } from 'vitest';
import { cookieValue, LOGIN_CODE_TTL_MS, SESSION_TTL_MS, sessionCookie, UiAuth } from './auth';

describe('the page’s login', () => {
  it('a code works once and only within a minute; a session lasts 12 h', () => {
    let now = 1_000_000;
    const a = new UiAuth(() => now);
    const { code } = a.issueCode();
    const late = a.issueCode().code;
    const s = a.redeem(code)!;
    expect(s).toMatch(/^[\w-]{43}$/);
    expect(a.redeem(code)).toBeUndefined();
    expect(a.hasSession(`other=1; nm_ui=${s}`)).toBe(true);
    expect(a.hasSession('nm_ui=forged')).toBe(false);
    now += LOGIN_CODE_TTL_MS + 1;
    expect(a.redeem(late)).toBeUndefined();
    now += SESSION_TTL_MS;
    expect(a.hasSession(`nm_ui=${s}`)).toBe(false);
  });

  it('the cookie is HttpOnly, SameSite=Strict, scoped to /ui, Secure over TLS', () => {
    expect(sessionCookie('x', false)).toBe('nm_ui=x; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=43200');
    expect(sessionCookie('x', true)).toMatch(/; Secure$/);
    expect(cookieValue('a=1; nm_ui=abc ; b=2', 'nm_ui')).toBe('abc');
  });
});
