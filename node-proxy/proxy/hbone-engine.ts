// Which HBONE engine carries the node proxy's tunnels (docs/hbone.md, "The native engine"):
//   - `native` (default): the addon's engine (native/hbone*.ts): TLS, HTTP/2 and the bytes on its
//     own threads, both ways — outbound tunnels (the client) and 15008 (the server);
//   - `node`: node:tls + node:http2 in the event loop (common/hbone/) — kept for a node proxy whose
//     addon cannot run the engine, and to compare the two (bench/mesh --engines node,native).
// Chosen once per process with NODEMESH_HBONE_ENGINE; the wire is the same, so node proxies of
// either engine interoperate. Unset, a node proxy whose native engine cannot start falls back to
// `node` and says why; NODEMESH_HBONE_ENGINE=native asked for explicitly refuses to start instead.
import { nativeHboneUnavailable } from '../../native/hbone';

export type HboneEngine = 'node' | 'native';

export const HBONE_ENGINE_ENV = 'NODEMESH_HBONE_ENGINE';

export interface HboneEngineChoice {
  readonly engine: HboneEngine;
  /** Set when the default (native) could not start and `node` carries the tunnels instead: why, and what to do. */
  readonly fallback?: string;
}

/**
 * The engine named by `value` (NODEMESH_HBONE_ENGINE). `unavailable` says why the native engine
 * cannot run here (undefined when it can; it starts the engine's threads). Unset: native, or node
 * with `fallback` saying why. Throws, saying what to do, on an unknown engine or on an explicit
 * `native` that cannot start.
 */
export function chooseHboneEngine(
  value: string | undefined = process.env[HBONE_ENGINE_ENV],
  unavailable: () => string | undefined = nativeHboneUnavailable,
): HboneEngineChoice {
  const v = (value ?? '').trim().toLowerCase();
  if (v === 'node') return { engine: 'node' };
  if (v !== '' && v !== 'native') throw new Error(`${HBONE_ENGINE_ENV}=${value} is not an HBONE engine: use 'native' (the default) or 'node'`);
  const why = unavailable();
  if (why === undefined) return { engine: 'native' };
  if (v === 'native') {
    throw new Error(
      `${HBONE_ENGINE_ENV}=native, but the native HBONE engine cannot start: ${why}. Rebuild the addon with \`bash scripts/setup.sh\`, or set ${HBONE_ENGINE_ENV}=node`,
    );
  }
  return {
    engine: 'node',
    fallback: `the native HBONE engine (the default) cannot start: ${why}. Tunnels run on the node engine (node:tls + node:http2), slower; rebuild the addon with \`bash scripts/setup.sh\`, or set ${HBONE_ENGINE_ENV}=node to choose it`,
  };
}
