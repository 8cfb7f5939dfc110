// Which HBONE engine carries the node proxy's tunnels (docs/hbone.md, "The native engine"):
//   - `node` (default): node:tls + node:http2 in the event loop (common/hbone/);
//   - `native`: the addon's engine (native/hbone*.ts): TLS, HTTP/2 and the bytes on its own
//     threads, both ways — outbound tunnels (the client) and 15008 (the server).
// Chosen once per process with NODEMESH_HBONE_ENGINE; the wire is the same, so node proxies of
// either engine interoperate.
import { nativeHboneAvailable } from '../../native/hbone';

export type HboneEngine = 'node' | 'native';

export const HBONE_ENGINE_ENV = 'NODEMESH_HBONE_ENGINE';

/** The engine named by `value` (NODEMESH_HBONE_ENGINE); throws, saying what to do, on anything else. */
export function hboneEngine(value: string | undefined = process.env[HBONE_ENGINE_ENV], available: () => boolean = nativeHboneAvailable): HboneEngine {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'node') return 'node';
  if (v !== 'native') throw new Error(`${HBONE_ENGINE_ENV}=${value} is not an HBONE engine: use 'node' (the default) or 'native'`);
  if (!available()) throw new Error(`${HBONE_ENGINE_ENV}=native, but the native addon has no HBONE engine: rebuild it with \`bash scripts/setup.sh\``);
  return 'native';
}
