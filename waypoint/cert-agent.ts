// `nodemesh waypoint cert-agent`: the certificate agent beside an Envoy waypoint (the waypoint
// controller's `--waypoint-proxy envoy` pods). Envoy cannot ask nodemesh's CA for a certificate,
// so this agent does what `waypoint run` does for itself: a fresh key and CSR for the waypoint's
// identity (spiffe://<td>/ns/<ns>/sa/<service account>), signed by the control plane's CA over
// TLS with the pod's projected ServiceAccount token (re-read per request, as kubelet rotates it),
// renewed at half-life. It writes what `nodemesh waypoint bootstrap --certs DIR` and the waypoint
// listeners point Envoy at: DIR/cert-chain.pem, DIR/key.pem, DIR/root-cert.pem, and the two SDS
// files that deliver them (DIR/sds-default.json, DIR/sds-rootca.json, control/envoy/sds-file.ts).
//
// The files are swapped atomically as kubelet writes Secret volumes: each certificate goes into a
// new hidden directory DIR/..<time>/, the symlink DIR/..data is replaced by rename(2) to point at
// it, and the three names are symlinks through ..data — so a reader never sees a key of one
// certificate with the chain of another, and Envoy, watching DIR for moves (the SDS Secrets'
// `watched_directory`), sees one move per rotation and re-reads the pair. `--once` writes the first certificate and exits (an init container,
// so the files exist before Envoy starts); without it the agent keeps renewing until SIGTERM.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError } from '../cli/command';
import { controlPlaneClient } from '../common/control-client/bootstrap';
import { tokenFileCredential } from '../common/control-client/credential';
import { CertificateManager, type WorkloadCertificate } from '../common/identity/manager';
import { assertTrustDomain, DEFAULT_TRUST_DOMAIN, formatSpiffeId, identity, type Identity } from '../common/identity/spiffe';
import { createLogger } from '../common/log';
import { sdsFileDocuments } from '../control/envoy/sds-file';

export const CERT_FILES = ['cert-chain.pem', 'key.pem', 'root-cert.pem'] as const;
const DATA_LINK = '..data';

const USAGE = `usage: nodemesh waypoint cert-agent -n NAMESPACE --service-account SA --control HOST:PORT
                                   --token-file FILE --trust-bundle FILE [--dir DIR] [--once]
Gets the waypoint's certificate from the control plane's CA and keeps DIR/cert-chain.pem, key.pem
and root-cert.pem current (renewed at half-life, swapped atomically), for an Envoy waypoint.
  -n, --namespace NS        the waypoint's namespace (required)
  --service-account SA      its ServiceAccount: the identity spiffe://<td>/ns/<NS>/sa/<SA> (required)
  --control HOST:PORT       the control plane's TLS port (e.g. nodemesh-control.nodemesh-system.svc:15012)
  --token-file FILE         the projected ServiceAccount token (audience nodemesh-ca), re-read per request
  --trust-bundle FILE       the mesh root(s), PEM (the ConfigMap nodemesh-ca-root)
  --trust-domain TD         default ${DEFAULT_TRUST_DOMAIN}
  --dir DIR                 where to write (default /var/run/nodemesh/certs)
  --cert-ttl SECONDS        requested lifetime (default: the CA's, 24 h)
  --once                    write the first certificate and exit (an init container)
  --log-level LEVEL         trace, debug, info, warn, error (default info)`;

/** Writes the three files for `c` into `dir`, replacing the previous set atomically (see above). */
export function writeCertificateFiles(dir: string, c: Pick<WorkloadCertificate, 'certChainPem' | 'privateKeyPem'> & { trustBundlePem: string }): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const version = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${process.pid}.${Math.random().toString(36).slice(2, 8)}`;
  const target = join(dir, version);
  mkdirSync(target, { mode: 0o755 });
  writeFileSync(join(target, 'cert-chain.pem'), c.certChainPem, { mode: 0o644 });
  writeFileSync(join(target, 'key.pem'), c.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(target, 'root-cert.pem'), c.trustBundlePem, { mode: 0o644 });
  const tmpLink = join(dir, `${DATA_LINK}_tmp`);
  rmSync(tmpLink, { force: true });
  symlinkSync(version, tmpLink);
  renameSync(tmpLink, join(dir, DATA_LINK));
  for (const name of CERT_FILES) {
    const path = join(dir, name);
    let isLink = false;
    try {
      isLink = lstatSync(path).isSymbolicLink();
    } catch {
      // not there yet
    }
    if (!isLink) {
      rmSync(path, { force: true });
      symlinkSync(join(DATA_LINK, name), path);
    }
  }
  // The SDS files Envoy's TLS contexts name (control/envoy/sds-file.ts): the same every time, so
  // written only when missing or different, by rename.
  const names = { chain: join(dir, 'cert-chain.pem'), key: join(dir, 'key.pem'), roots: join(dir, 'root-cert.pem') };
  for (const [path, text] of sdsFileDocuments(names)) {
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // not there yet
    }
    if (current !== text) {
      writeFileSync(`${path}.tmp`, text, { mode: 0o644 });
      renameSync(`${path}.tmp`, path);
    }
  }
  // Earlier versions: nothing points at them any more.
  for (const entry of readdirSync(dir))
    if (entry.startsWith('..') && entry !== DATA_LINK && entry !== version) rmSync(join(dir, entry), { recursive: true, force: true });
}

export async function runCertAgent(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        namespace: { type: 'string', short: 'n' },
        'service-account': { type: 'string' },
        control: { type: 'string' },
        'token-file': { type: 'string' },
        'trust-bundle': { type: 'string' },
        'trust-domain': { type: 'string' },
        dir: { type: 'string' },
        'cert-ttl': { type: 'string' },
        once: { type: 'boolean' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new CliError(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`, 2);
  }
  if (v.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  for (const flag of ['namespace', 'service-account', 'control', 'token-file', 'trust-bundle'] as const)
    if (!v[flag]) throw new CliError(`--${flag} is required\n${USAGE}`, 2);
  const control = v.control as string;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(control)) throw new CliError(`--control must be HOST:PORT, got '${control}'`, 2);
  const ttl = v['cert-ttl'] === undefined ? 0 : Number(v['cert-ttl']);
  if (!Number.isInteger(ttl) || ttl < 0) throw new CliError(`--cert-ttl ${v['cert-ttl']} is not a whole number of seconds`, 2);
  const dir = v.dir ?? '/var/run/nodemesh/certs';
  const log = createLogger('waypoint-cert-agent', v['log-level'] ?? process.env.NODEMESH_LOG_LEVEL ?? 'info');
  let id: Identity;
  let cp;
  try {
    id = identity(v.namespace as string, v['service-account'] as string, assertTrustDomain(v['trust-domain'] ?? DEFAULT_TRUST_DOMAIN));
    cp = controlPlaneClient({ control, trustBundleFile: v['trust-bundle'] as string, credential: tokenFileCredential(v['token-file'] as string) });
  } catch (err) {
    throw new CliError(`waypoint cert-agent: ${(err as Error).message}`, 2);
  }
  const spiffeId = formatSpiffeId(id);
  const certs = new CertificateManager({ source: cp.ca, trustDomain: id.trustDomain, ttlSeconds: ttl });
  const write = (c: WorkloadCertificate): void => {
    try {
      writeCertificateFiles(dir, { certChainPem: c.certChainPem, privateKeyPem: c.privateKeyPem, trustBundlePem: c.trustBundle.pem });
      log.info({ spiffeId: c.spiffeId, dir, notAfter: c.notAfter.toISOString(), renewAt: c.renewAt.toISOString() }, 'waypoint certificate written');
    } catch (err) {
      log.error({ dir, err: (err as Error).message }, 'cannot write the waypoint certificate files; the next renewal tries again');
    }
  };
  certs.on('failed', (f: { spiffeId: string; error: Error; attempt: number; retryInMs: number }) =>
    log.warn(
      { spiffeId: f.spiffeId, err: f.error.message, attempt: f.attempt, retryInMs: f.retryInMs },
      'waypoint certificate request failed; retrying (the token must be the pod ServiceAccount token with audience nodemesh-ca, and the identity its own)',
    ),
  );
  const stop = () => {
    certs.close();
    cp.close();
  };
  try {
    write(await certs.ready(id));
  } catch (err) {
    stop();
    throw new CliError(`waypoint cert-agent: no certificate for ${spiffeId}: ${(err as Error).message}`);
  }
  if (v.once) {
    stop();
    return 0;
  }
  certs.on('issued', (c: WorkloadCertificate) => {
    if (c.spiffeId === spiffeId) write(c);
  });
  // The manager's renewal timer is unref'd (it must not keep a node proxy alive): hold the process
  // open until a signal.
  const alive = setInterval(() => undefined, 1 << 30);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(alive);
  stop();
  return 0;
}
