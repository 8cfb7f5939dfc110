// The control-plane client bootstrap: what it checks before anything connects (the messages a user
// acts on), and that the credential is read at every use, so a rotated token file is picked up.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { controlPlaneClient, readTrustBundle } from './bootstrap';
import { staticCredential, tokenFileCredential } from './credential';

const dir = mkdtempSync(join(tmpdir(), 'nm-control-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('control-plane client', () => {
  it('reads a token file at every use: a rotated token is picked up, a removed one explained', () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'first\n');
    const cred = tokenFileCredential(file);
    expect(cred.token()).toBe('first');
    writeFileSync(file, 'second\n');
    expect(cred.token()).toBe('second');
    rmSync(file);
    expect(() => cred.token()).toThrow(
      `cannot read the node token file ${file}: ENOENT; issue one with 'nodemesh ca issue-node-token --node <node> --out ${file}'`,
    );
    writeFileSync(file, '  \n');
    expect(() => cred.token()).toThrow(`the node token file ${file} is empty; issue a token with 'nodemesh ca issue-node-token --node <node> --out ${file}'`);
    const sa = tokenFileCredential(file, { what: 'the ServiceAccount token', fix: "check the pod's projected volume" });
    expect(() => sa.token()).toThrow(`the ServiceAccount token ${file} is empty; check the pod's projected volume`);
    expect(() => staticCredential('')).toThrow(/is empty/);
  });

  it('refuses a missing or non-PEM trust bundle, and a missing token, before connecting', () => {
    const bundle = join(dir, 'bundle.pem');
    expect(() => readTrustBundle(bundle)).toThrow(
      `cannot read the trust bundle ${bundle}: ENOENT; write it with 'nodemesh ca root > FILE' on the control plane's host`,
    );
    writeFileSync(bundle, 'not a certificate');
    expect(() => readTrustBundle(bundle)).toThrow(`the trust bundle ${bundle} holds no PEM certificate; write it with 'nodemesh ca root'`);
    writeFileSync(bundle, PEM);
    const missing = join(dir, 'no-token');
    expect(() => controlPlaneClient({ control: '127.0.0.1:1', trustBundleFile: bundle, credential: tokenFileCredential(missing) })).toThrow(
      /cannot read the node token file .*no-token: ENOENT/,
    );
  });

  it('puts the current token on every call as a bearer credential', () => {
    const bundle = join(dir, 'bundle2.pem');
    const file = join(dir, 'token2');
    writeFileSync(bundle, PEM);
    writeFileSync(file, 'one\n');
    const cp = controlPlaneClient({ control: '127.0.0.1:1', trustBundleFile: bundle, credential: tokenFileCredential(file) });
    try {
      expect(cp.trustBundlePem).toBe(PEM);
      expect(cp.xdsCredentials).toMatchObject({ kind: 'tls', trustBundlePem: PEM });
      expect(cp.callMetadata().get('authorization')).toEqual(['Bearer one']);
      writeFileSync(file, 'two\n');
      expect(cp.callMetadata().get('authorization')).toEqual(['Bearer two']);
    } finally {
      cp.close();
    }
  });
});
