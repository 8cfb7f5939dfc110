import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeTokens } from './tokens';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nm-tokens-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('NodeTokens', () => {
  it('authenticates a token as its node and stores only a hash, in a 0600 file', () => {
    const tokens = NodeTokens.forDataDir(dir);
    const t1 = tokens.issue('node-1');
    const t2 = tokens.issue('node-2');
    expect(t1).not.toBe(t2);
    expect(tokens.authenticate(t1)).toBe('node-1');
    expect(tokens.authenticate(t2)).toBe('node-2');
    expect(tokens.authenticate(t1 + 'x')).toBeUndefined();
    expect(tokens.authenticate('')).toBeUndefined();
    const text = readFileSync(tokens.file, 'utf8');
    expect(text).not.toContain(t1.slice(4));
    expect(statSync(tokens.file).mode & 0o777).toBe(0o600);
  });

  it('re-issuing replaces the old token; revoking removes it', () => {
    const tokens = NodeTokens.forDataDir(dir);
    const old = tokens.issue('node-1');
    const fresh = tokens.issue('node-1');
    expect(tokens.authenticate(old)).toBeUndefined();
    expect(tokens.authenticate(fresh)).toBe('node-1');
    expect(tokens.revoke('node-1')).toBe(true);
    expect(tokens.authenticate(fresh)).toBeUndefined();
    expect(tokens.revoke('node-1')).toBe(false);
  });

  it('sees tokens issued by another process (another instance on the same file) without a restart', () => {
    const server = NodeTokens.forDataDir(dir);
    expect(server.authenticate('nmt_x')).toBeUndefined(); // caches the empty state
    const cli = NodeTokens.forDataDir(dir);
    const t = cli.issue('node-7');
    expect(server.authenticate(t)).toBe('node-7');
    cli.revoke('node-7');
    expect(server.authenticate(t)).toBeUndefined();
  });

  it('refuses invalid node names', () => {
    expect(() => NodeTokens.forDataDir(dir).issue('Node_1')).toThrow(/not a valid node name/);
  });
});
