// `nodemesh waypoint <subcommand>`: `run` starts the L7 proxy (this folder); `bootstrap` (the Envoy
// bootstrap for running a real Envoy as the waypoint) is added by control/envoy.
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../cli/command';
import { createLogger } from '../common/log';
import { meshIdentity, startWaypoint, type MeshIdentity, type RunningWaypoint } from './run';
import { ADMIN_PORT, HBONE_PORT, METRICS_PORT, READY_PORT, XDS_PLAINTEXT_PORT } from '../common/contracts/ports';
import { XdsRelay } from './relay';
import { MAX_HELD_LIMIT, MAX_WARMING_MS, warmingOptionsError, type WarmingOptions } from './proxy/warming';
import { credentialsFromPrimary, parseWorkers, runPrimary, serveAsWorker, workerIndex, workerRelay, type Primary } from './workers';

const RUN_USAGE = `usage: nodemesh waypoint run --name NAME -n NAMESPACE [--control HOST:PORT] [options]
  --name NAME            the Gateway (gatewayClassName nodemesh-waypoint) this waypoint serves
  --control ADDR         the control plane: its TLS port (xDS + certificates, e.g. 10.199.0.254:15012)
                         with --token-file/--trust-bundle; else a plaintext xDS port (default 127.0.0.1:15010)
  --token-file FILE      this node's token ('nodemesh ca issue-node-token --node NODE --out FILE')
  --trust-bundle FILE    the mesh root ('nodemesh ca root'): verifies the control plane and HBONE peers
  --trust-domain TD      trust domain (default cluster.local)
  --service-account SA   the waypoint's identity spiffe://TD/ns/NAMESPACE/sa/SA (default: NAME); a Workload
                         with this serviceAccount must be scheduled on the token's node
  --cert-ttl SECONDS     requested certificate lifetime (default: the CA's, 24 h); renewed at half-life
  --server-name NAME     name to verify in the control plane's certificate when ADDR's host is not in it
  --hbone-port N         HBONE (mTLS HTTP/2 CONNECT) port with a certificate (default 15008)
  --ip IP                this waypoint's address (xDS node id; informational)
  --listen-address IP    address the listeners bind (default 0.0.0.0)
  --admin-port N         admin (config dump), loopback (default 15000)
  --metrics-port N       Prometheus metrics (default 15020)
  --ready-port N         readiness /healthz/ready (default 15021)
  --otlp-endpoint URL    export spans over OTLP/HTTP JSON to URL/v1/traces
  --workers N            N waypoint processes sharing the listeners (default 1; e.g. the node's cores)
  --warming-timeout-ms MS  how long a request that arrives before its listener's routes (or, after a
                         start, before the first complete xDS state) is held before a 503
                         (1-600000, default 15000: Envoy's initial_fetch_timeout)
  --warming-max-held N   requests held that way at once; one more is answered 503 at once
                         (0-100000, default 1024; 0: never hold)
Without --token-file/--trust-bundle the waypoint has no identity: plaintext listeners only, no HBONE.`;

async function run(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        control: { type: 'string' },
        'token-file': { type: 'string' },
        'trust-bundle': { type: 'string' },
        'trust-domain': { type: 'string' },
        'service-account': { type: 'string' },
        'cert-ttl': { type: 'string' },
        'server-name': { type: 'string' },
        'hbone-port': { type: 'string' },
        ip: { type: 'string' },
        'listen-address': { type: 'string' },
        'admin-port': { type: 'string' },
        'metrics-port': { type: 'string' },
        'ready-port': { type: 'string' },
        'otlp-endpoint': { type: 'string' },
        workers: { type: 'string' },
        'warming-timeout-ms': { type: 'string' },
        'warming-max-held': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new CliError(`${err instanceof Error ? err.message : String(err)}\n${RUN_USAGE}`, 2);
  }
  if (v.help) {
    process.stdout.write(RUN_USAGE + '\n');
    return 0;
  }
  if (!v.name || !v.namespace) throw new CliError(`--name and -n/--namespace are required\n${RUN_USAGE}`, 2);
  const port = (s: string | undefined, d: number, what: string): number => {
    if (s === undefined) return d;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`${what} ${s} is not a port number (0-65535)`, 2);
    return n;
  };
  const meshMode = v['token-file'] !== undefined || v['trust-bundle'] !== undefined;
  if (meshMode && (!v['token-file'] || !v['trust-bundle'])) {
    throw new CliError(
      'give both --token-file and --trust-bundle (the waypoint gets its certificate from the control plane), or neither (plaintext mode, no HBONE)',
      2,
    );
  }
  const control = v.control ?? (meshMode ? undefined : `127.0.0.1:${XDS_PLAINTEXT_PORT}`);
  if (!control)
    throw new CliError(
      `--control HOST:PORT (the control plane's TLS port, e.g. 10.199.0.254:15012) is required with --token-file/--trust-bundle\n${RUN_USAGE}`,
      2,
    );
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(control)) throw new CliError(`--control must be HOST:PORT (e.g. 10.199.0.254:15012), got '${control}'`, 2);
  let certTtl: number | undefined;
  if (v['cert-ttl'] !== undefined) {
    certTtl = Number(v['cert-ttl']);
    if (!Number.isInteger(certTtl) || certTtl < 0) throw new CliError(`--cert-ttl ${v['cert-ttl']} is not a whole number of seconds`, 2);
  }
  const routeWarming = parseWarming(v['warming-timeout-ms'], v['warming-max-held']);
  const workers = parseWorkers(v.workers);
  if (typeof workers === 'string') throw new CliError(`${workers}\n${RUN_USAGE}`, 2);
  const logger = createLogger('waypoint');
  const listenAddress = v['listen-address'];
  const metricsPort = port(v['metrics-port'], METRICS_PORT, '--metrics-port');
  const readyPort = port(v['ready-port'], READY_PORT, '--ready-port');
  const worker = workerIndex();
  const mesh = meshMode
    ? {
        tokenFile: v['token-file']!,
        trustBundleFile: v['trust-bundle']!,
        trustDomain: v['trust-domain'],
        serviceAccount: v['service-account'],
        certTtlSeconds: certTtl,
        serverName: v['server-name'],
      }
    : undefined;
  if (workers > 1 && worker === undefined) {
    // The primary: holds the xDS stream and the certificate, forks the workers (this same command
    // line) and serves metrics and readiness.
    let ident: MeshIdentity | undefined;
    let relay: XdsRelay | undefined;
    let primary: Primary;
    try {
      if (mesh) ident = await meshIdentity({ control, name: v.name, namespace: v.namespace, logger }, mesh);
      relay = new XdsRelay({
        name: v.name,
        namespace: v.namespace,
        ip: v.ip,
        control,
        controlCredentials: ident?.cp.xdsCredentials,
        controlToken: ident ? () => ident!.cp.credential.token() : undefined,
        logger,
      });
      await relay.start();
      primary = await runPrimary({
        workers,
        metricsPort,
        readyPort,
        listenAddress: listenAddress ?? '0.0.0.0',
        logger,
        relay,
        credentials: ident?.identity,
      });
    } catch (err) {
      await relay?.stop();
      ident?.close();
      throw new CliError(`the waypoint could not start: ${err instanceof Error ? err.message : String(err)}`);
    }
    logger.info({ name: v.name, namespace: v.namespace, workers, ports: primary.ports, identity: ident?.identity.spiffeId }, 'waypoint started with workers');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await primary.stop();
    await relay.stop();
    ident?.close();
    return 0;
  }
  // A worker's xDS and certificate come from its primary.
  const relayed = worker !== undefined ? workerRelay() : undefined;
  let running: RunningWaypoint;
  try {
    running = await startWaypoint({
      name: v.name,
      namespace: v.namespace,
      control: relayed?.control ?? control,
      ip: v.ip,
      listenAddress,
      hbonePort: port(v['hbone-port'], HBONE_PORT, '--hbone-port'),
      adminPort: port(v['admin-port'], ADMIN_PORT, '--admin-port'),
      metricsPort,
      readyPort,
      // A worker leaves metrics and readiness to the primary; worker 0 serves the admin port.
      serve: worker === undefined ? undefined : { admin: worker === 0, metrics: false, ready: false },
      otlpEndpoint: v['otlp-endpoint'],
      routeWarming,
      logger,
      credentials: relayed?.certificate ? await credentialsFromPrimary(30_000) : undefined,
      mesh: relayed ? undefined : mesh,
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const inUse = /EADDRINUSE/.test(msg)
      ? ' (another process uses one of its ports: pick others with --hbone-port/--admin-port/--metrics-port/--ready-port)'
      : '';
    throw new CliError(`the waypoint could not start: ${msg}${inUse}`);
  }
  const wp = running.waypoint;
  if (worker !== undefined) serveAsWorker(wp.metrics.registry, () => wp.xds.status().synced);
  logger.info(
    { name: v.name, namespace: v.namespace, control, identity: running.identity?.spiffeId, ports: wp.ports, worker },
    'waypoint started; waiting for xDS',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await running.stop();
  // A worker's IPC channel to the primary would keep it alive: let go of it so the process ends.
  if (worker !== undefined && process.connected) process.disconnect();
  return 0;
}

/** --warming-timeout-ms / --warming-max-held: whole numbers in their ranges, else a usage error naming the flag. */
export function parseWarming(timeout: string | undefined, maxHeld: string | undefined): WarmingOptions {
  const whole = (flag: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    if (!/^\d+$/.test(s.trim())) throw new CliError(`${flag} ${JSON.stringify(s)} is not a whole number\n${RUN_USAGE}`, 2);
    return Number(s);
  };
  const o: WarmingOptions = { timeoutMs: whole('--warming-timeout-ms', timeout), maxHeld: whole('--warming-max-held', maxHeld) };
  if (o.timeoutMs !== undefined && (o.timeoutMs < 1 || o.timeoutMs > MAX_WARMING_MS))
    throw new CliError(`--warming-timeout-ms ${timeout} is out of range: give 1 to ${MAX_WARMING_MS} milliseconds (default 15000)`, 2);
  if (o.maxHeld !== undefined && o.maxHeld > MAX_HELD_LIMIT)
    throw new CliError(`--warming-max-held ${maxHeld} is out of range: give 0 (never hold) to ${MAX_HELD_LIMIT} (default 1024)`, 2);
  const bad = warmingOptionsError(o);
  if (bad) throw new CliError(bad, 2);
  return o;
}

const WAYPOINT_USAGE = `usage: nodemesh waypoint <subcommand> [options]

subcommands:
  run        run a waypoint proxy for a Gateway (HBONE in, xDS-configured L7 routing and policy)
  apply      create or update a waypoint Gateway (-n NS [--name N] [--for service|workload|all] [--enroll-namespace])
  list       the waypoints, where they run and whether they are ready (-n NS | -A)
  delete     delete a waypoint Gateway (NAME -n NS)
  bootstrap  an Envoy bootstrap that makes a real Envoy the waypoint instead
  cert-agent keep an Envoy waypoint's certificate files current (beside Envoy in its pod)

run 'nodemesh waypoint <subcommand> --help' for its options`;

const subcommands: Record<string, (argv: string[]) => Promise<number>> = {
  run,
  apply: async (argv) => (await import('./ops/commands.js')).waypointApply(argv),
  list: async (argv) => (await import('./ops/commands.js')).waypointList(argv),
  delete: async (argv) => (await import('./ops/commands.js')).waypointDelete(argv),
  bootstrap: async (argv) => (await import('../control/envoy/cli.js')).runWaypointBootstrap(argv),
  'cert-agent': async (argv) => (await import('./cert-agent.js')).runCertAgent(argv),
};

export const waypointCommand: Command = {
  name: 'waypoint',
  summary: 'the L7 waypoint proxy: run it; apply, list and delete waypoints (Gateways) through the config API',
  async run(argv) {
    const [sub, ...rest] = argv;
    const f = sub ? subcommands[sub] : undefined;
    if (!f) {
      const help = sub === undefined || sub === '--help' || sub === '-h' || sub === 'help';
      (help ? process.stdout : process.stderr).write(`${help ? '' : `nodemesh: waypoint: unknown subcommand '${sub}'\n`}${WAYPOINT_USAGE}\n`);
      return help ? 0 : 2;
    }
    return f(rest);
  },
};
