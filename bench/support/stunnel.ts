// stunnel4 as the same two-hop mutual-TLS tunnel as the mesh's: a client in the source pod, a
// server in the destination pod, TLS 1.3, client certificates from a throwaway CA.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface StunnelService {
  name: string;
  accept: string;
  connect: string;
}

/** A throwaway CA and one certificate for each stunnel end (ECDSA P-256). */
export function makeCerts(dir: string): void {
  const ossl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ossl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=nm-bench-ca',
  ]);
  for (const who of ['server', 'client']) {
    ossl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=nm-bench-${who}`,
    ]);
    ossl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1']);
  }
}

export function stunnelConf(dir: string, side: 'client' | 'server', services: readonly StunnelService[]): string {
  const lines = ['foreground = yes', 'pid =', 'debug = 3', `output = ${join(dir, `stunnel-${side}.log`)}`];
  for (const s of services) {
    lines.push(
      `[${s.name}]`,
      ...(side === 'client' ? ['client = yes'] : []),
      `accept = ${s.accept}`,
      `connect = ${s.connect}`,
      `cert = ${join(dir, `${side}.pem`)}`,
      `key = ${join(dir, `${side}.key`)}`,
      `CAfile = ${join(dir, 'ca.pem')}`,
      'verifyChain = yes',
      'requireCert = yes',
      'sslVersionMin = TLSv1.3',
    );
  }
  return lines.join('\n') + '\n';
}
