// `nodemesh control`: runs the control plane until SIGINT/SIGTERM.
import { createServer, type Server } from 'node:http';
import { CliError, type Command } from '../../cli/command';
import { createLogger } from '../../common/log';
import { defaultComponents } from '../components';
import { ControlPlane, DEFAULT_API_LISTEN, DEFAULT_DATA_DIR, type ControlPlaneComponent } from '../control-plane';
import { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe';
import { buildInfo } from '../../common/version';
import type { NodeAuthenticator } from '../ca/tokens';
import type { ConfigStore } from '../store/store';
import { startMetricsListener, type MetricsListener } from '../metrics-listener';
import type { Explainer } from '../api/explain';
import { parse, processContext, type CliContext } from './context';
import { apiLimitsFromEnv, type ApiLimits } from '../limits';

const HELP = `usage: nodemesh control [--data-dir DIR] [--listen ADDR] [--token-file FILE] [--service-cidr CIDR]
                        [--config-source file|kubernetes] [--kubeconfig PATH]
Runs the control plane: the config store, the config API (HTTP) and the xDS/CA server.
  --config-source SRC  file (default): the embedded store under --data-dir; kubernetes: mirror the
                       Kubernetes API server (read-only here: change config with kubectl)
  --kubeconfig PATH    with --config-source kubernetes: the cluster to use (default: in-cluster)
  --token-audience AUD with --config-source kubernetes: the audience of the ServiceAccount tokens
                       node proxies and waypoints present to the CA (default nodemesh-ca)
  --node-proxy-service-account NS/NAME[,…]
                       with --config-source kubernetes: the node proxies' ServiceAccount(s); any
                       other token gets only its own identity (default <POD_NAMESPACE or
                       nodemesh-system>/nodemesh-node)
  --waypoint-proxy P   with --config-source kubernetes: what waypoint Deployments run: nodemesh
                       (default, 'nodemesh waypoint run') or envoy ('nodemesh waypoint bootstrap' + Envoy)
  --waypoint-image I   the image waypoints run (default nodemesh/nodemesh:<version>)
  --envoy-image I      the Envoy image for --waypoint-proxy envoy (default envoyproxy/envoy:v1.33-latest)
  --trust-domain TD    the mesh's trust domain (env NODEMESH_TRUST_DOMAIN; default cluster.local)
  --plaintext-xds      serve plaintext xDS (15010, proxyless gRPC clients) on every interface, not
                       only on loopback
  --ready-port N       also answer /healthz/ready on this port (e.g. 15021 for kubelet probes)
  --metrics-port N     also serve Prometheus /metrics, and nothing else, in plain HTTP on this port
                       of every interface (the chart: 15020; the config API's own /metrics is HTTPS
                       off loopback, which annotation-based scraping cannot verify)
  --ca-secret NAME     with --config-source kubernetes: keep the CA root in this Secret of the
                       control plane's namespace (POD_NAMESPACE), so a restart keeps it
  --waypoint-control ADDR
                       the control plane address waypoints dial (default
                       nodemesh-control.<POD_NAMESPACE or nodemesh-system>.svc:15012)
  --data-dir DIR       store, API token and CA files (env NODEMESH_DATA_DIR; default ${DEFAULT_DATA_DIR})
  --listen ADDR        config API address (default ${DEFAULT_API_LISTEN}; :15014 for every interface).
                       Loopback is plain HTTP; any other address is HTTPS with a certificate from
                       the mesh CA (clients verify it with 'nodemesh ca root' / <data-dir>/ca/root-cert.pem)
  --api-plaintext-remote  serve plain HTTP on a non-loopback --listen (the bearer token then
                       crosses the network in the clear; only behind TLS of your own)
  --token-file FILE    API bearer token (default <data-dir>/token, generated with mode 0600)
  --service-cidr CIDR  range for Service clusterIPs that are not given (default 10.96.0.0/16)
  --log-level LEVEL    trace, debug, info, warn, error (env NODEMESH_LOG_LEVEL; default info)`;

/** What the process lends the control plane from layers above control/ (cli/main.ts wires explain/ in). */
export interface ControlExtras {
  readonly explain?: Explainer;
}

export async function runControl(argv: string[], ctx: CliContext = processContext(), extras: ControlExtras = {}): Promise<number> {
  const { values } = parse(
    'control',
    argv,
    {
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
      'api-plaintext-remote': { type: 'boolean' },
      'token-file': { type: 'string' },
      'service-cidr': { type: 'string' },
      'config-source': { type: 'string' },
      kubeconfig: { type: 'string' },
      'token-audience': { type: 'string' },
      'node-proxy-service-account': { type: 'string' },
      'waypoint-proxy': { type: 'string' },
      'waypoint-image': { type: 'string' },
      'envoy-image': { type: 'string' },
      'waypoint-control': { type: 'string' },
      'trust-domain': { type: 'string' },
      'plaintext-xds': { type: 'boolean' },
      'ready-port': { type: 'string' },
      'metrics-port': { type: 'string' },
      'ca-secret': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    false,
  );
  if (values.help) {
    ctx.stdout.write(HELP + '\n');
    return 0;
  }
  const log = createLogger('control', values['log-level'] ?? ctx.env.NODEMESH_LOG_LEVEL ?? 'info');
  const source = values['config-source'] ?? 'file';
  if (source !== 'file' && source !== 'kubernetes') throw new CliError(`--config-source must be "file" or "kubernetes", got "${source}"`);
  for (const flag of [
    'kubeconfig',
    'token-audience',
    'node-proxy-service-account',
    'waypoint-proxy',
    'waypoint-image',
    'envoy-image',
    'waypoint-control',
    'ca-secret',
  ] as const) {
    if (values[flag] !== undefined && source !== 'kubernetes') throw new CliError(`--${flag} only applies with --config-source kubernetes`);
  }
  // The components read their settings from the environment (control/xds/component.ts).
  if (values['trust-domain']) process.env.NODEMESH_TRUST_DOMAIN = values['trust-domain'];
  if (values['plaintext-xds']) {
    process.env.NODEMESH_XDS_PLAINTEXT_LISTEN ??= ':15010';
    process.env.NODEMESH_XDS_PLAINTEXT_REMOTE = '1';
  }
  const portFlag = (flag: 'ready-port' | 'metrics-port'): number | undefined => {
    const text = values[flag];
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!(/^\d+$/.test(text) && n < 65536)) throw new CliError(`--${flag} must be a port number, got "${text}"`);
    return n;
  };
  const readyPort = portFlag('ready-port');
  const metricsPort = portFlag('metrics-port');
  const waypointProxy = values['waypoint-proxy'] ?? 'nodemesh';
  if (waypointProxy !== 'nodemesh' && waypointProxy !== 'envoy') throw new CliError(`--waypoint-proxy must be "nodemesh" or "envoy", got "${waypointProxy}"`);
  const ownNamespace = ctx.env.POD_NAMESPACE || 'nodemesh-system';
  let store: ConfigStore | undefined;
  let nodes: NodeAuthenticator | undefined;
  let waypoints: ControlPlaneComponent | undefined;
  if (source === 'kubernetes') {
    const { KubernetesStore } = await import('../kubernetes/store.js');
    const { TokenReviewAuthenticator } = await import('../kubernetes/token-review.js');
    try {
      const k8sStore = await KubernetesStore.open({ kubeconfig: values.kubeconfig, serviceCIDR: values['service-cidr'], logger: log });
      store = k8sStore;
      nodes = await TokenReviewAuthenticator.create({
        kubeConfig: k8sStore.kubeConfig,
        audience: values['token-audience'],
        nodeProxyServiceAccounts: (values['node-proxy-service-account'] ?? `${ctx.env.POD_NAMESPACE || 'nodemesh-system'}/nodemesh-node`)
          .split(',')
          .map((s) => s.trim()),
        logger: log.child({ subsystem: 'ca' }),
      });
      const { WaypointController } = await import('../kubernetes/waypoints/controller.js');
      const trustDomain = values['trust-domain'] || ctx.env.NODEMESH_TRUST_DOMAIN || DEFAULT_TRUST_DOMAIN;
      const dataDir = values['data-dir'] ?? ctx.env.NODEMESH_DATA_DIR ?? DEFAULT_DATA_DIR;
      const svc = `nodemesh-control.${ownNamespace}`;
      process.env.NODEMESH_XDS_DNS_NAMES = [process.env.NODEMESH_XDS_DNS_NAMES, svc, `${svc}.svc`, `${svc}.svc.cluster.local`].filter(Boolean).join(',');
      if (values['ca-secret']) {
        const { syncRootWithSecret } = await import('../kubernetes/ca-secret.js');
        await syncRootWithSecret(k8sStore.kubeConfig, ownNamespace, values['ca-secret'], dataDir, trustDomain, log.child({ subsystem: 'ca' }));
      }
      waypoints = new WaypointController({
        store: k8sStore,
        proxy: waypointProxy,
        image: values['waypoint-image'] ?? `nodemesh/nodemesh:${buildInfo().version}`,
        envoyImage: values['envoy-image'] ?? 'envoyproxy/envoy:v1.33-latest',
        controlAddress: values['waypoint-control'] ?? `nodemesh-control.${ownNamespace}.svc:15012`,
        trustDomain,
        tokenAudience: values['token-audience'],
        ownNamespace,
        // The xDS component (started before this one) has opened or created the CA under dataDir.
        rootPem: async () => (await (await import('../ca/authority.js')).CertificateAuthority.open({ trustDomain, dataDir })).trustBundlePem.join(''),
        logger: log.child({ subsystem: 'waypoint-controller' }),
      });
    } catch (err) {
      await store?.close();
      throw new CliError(`the Kubernetes config source did not start: ${(err as Error).message}`);
    }
  }
  const cp = new ControlPlane({
    store,
    nodes,
    dataDir: values['data-dir'] ?? ctx.env.NODEMESH_DATA_DIR ?? DEFAULT_DATA_DIR,
    listen: values.listen,
    allowPlaintextRemote: values['api-plaintext-remote'] === true || ctx.env.NODEMESH_API_PLAINTEXT_REMOTE === '1',
    apiLimits: apiLimitsOrUsage(ctx.env),
    tokenFile: values['token-file'],
    serviceCIDR: values['service-cidr'],
    logger: log,
    components: await defaultComponents(),
    explain: extras.explain,
  });
  if (waypoints) cp.use(waypoints);
  try {
    await cp.start();
  } catch (err) {
    await store?.close();
    throw new CliError(`the control plane did not start: ${(err as Error).message}`);
  }
  let readyServer: Server | undefined;
  if (readyPort !== undefined) {
    // kubelet's probes: the config API's own readiness, on a port of its own.
    readyServer = createServer((req, res) => {
      if (req.url !== '/healthz/ready') {
        res.writeHead(404).end();
        return;
      }
      fetch(`${cp.apiURL}/healthz/ready`).then(
        (r) => res.writeHead(r.status).end(r.ok ? 'ready\n' : 'not ready\n'),
        () => res.writeHead(503).end('not ready\n'),
      );
    });
    await new Promise<void>((resolve, reject) => {
      readyServer?.once('error', (err) => reject(new CliError(`cannot listen on :${readyPort} for readiness: ${err.message}`)));
      readyServer?.listen(readyPort, () => resolve());
    }).catch(async (err: unknown) => {
      await cp.stop();
      await store?.close();
      throw err;
    });
  }
  let metricsListener: MetricsListener | undefined;
  if (metricsPort !== undefined) {
    try {
      metricsListener = await startMetricsListener(cp.registry, { port: metricsPort });
      log.info({ port: metricsListener.port }, 'metrics listening (plain HTTP, /metrics only)');
    } catch (err) {
      readyServer?.close();
      await cp.stop();
      await store?.close();
      throw new CliError((err as Error).message);
    }
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'stopping the control plane');
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  readyServer?.close();
  await metricsListener?.close();
  await cp.stop();
  await store?.close();
  log.info('control plane stopped');
  return 0;
}

/** `nodemesh control` with what the dispatcher lends it (GET /v1/explain's evaluation). */
export function controlCommandWith(extras: ControlExtras): Command {
  return { name: 'control', summary: 'run the control plane (config store, config API, xDS, CA)', run: (argv) => runControl(argv, processContext(), extras) };
}

export const controlCommand: Command = controlCommandWith({});

/** The config API's timeouts from NODEMESH_API_*_TIMEOUT_MS; a bad value is a usage error. */
function apiLimitsOrUsage(env: NodeJS.ProcessEnv): Partial<ApiLimits> {
  try {
    return apiLimitsFromEnv(env);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}
