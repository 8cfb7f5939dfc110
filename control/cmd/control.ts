// `nodemesh control`: runs the control plane until SIGINT/SIGTERM.
import { CliError, type Command } from '../../cli/command';
import { createLogger } from '../../common/log';
import { defaultComponents } from '../components';
import { ControlPlane, DEFAULT_API_LISTEN, DEFAULT_DATA_DIR, type ControlPlaneComponent } from '../control-plane';
import { DEFAULT_TRUST_DOMAIN } from '../../common/identity/spiffe';
import { buildInfo } from '../../common/version';
import type { NodeAuthenticator } from '../ca/tokens';
import type { ConfigStore } from '../store/store';
import { parse, processContext, type CliContext } from './context';

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
  --waypoint-control ADDR
                       the control plane address waypoints dial (default
                       nodemesh-control.<POD_NAMESPACE or nodemesh-system>.svc:15012)
  --data-dir DIR       store, API token and CA files (env NODEMESH_DATA_DIR; default ${DEFAULT_DATA_DIR})
  --listen ADDR        config API address (default ${DEFAULT_API_LISTEN}; :15014 for every interface)
  --token-file FILE    API bearer token (default <data-dir>/token, generated with mode 0600)
  --service-cidr CIDR  range for Service clusterIPs that are not given (default 10.96.0.0/16)
  --log-level LEVEL    trace, debug, info, warn, error (env NODEMESH_LOG_LEVEL; default info)`;

export async function runControl(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values } = parse(
    'control',
    argv,
    {
      'data-dir': { type: 'string' },
      listen: { type: 'string' },
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
  for (const flag of ['kubeconfig', 'token-audience', 'node-proxy-service-account', 'waypoint-proxy', 'waypoint-image', 'envoy-image', 'waypoint-control'] as const) {
    if (values[flag] !== undefined && source !== 'kubernetes') throw new CliError(`--${flag} only applies with --config-source kubernetes`);
  }
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
        nodeProxyServiceAccounts: (values['node-proxy-service-account'] ?? `${ctx.env.POD_NAMESPACE || 'nodemesh-system'}/nodemesh-node`).split(',').map((s) => s.trim()),
        logger: log.child({ subsystem: 'ca' }),
      });
      const { WaypointController } = await import('../kubernetes/waypoints/controller.js');
      const trustDomain = ctx.env.NODEMESH_TRUST_DOMAIN || DEFAULT_TRUST_DOMAIN;
      const dataDir = values['data-dir'] ?? ctx.env.NODEMESH_DATA_DIR ?? DEFAULT_DATA_DIR;
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
    tokenFile: values['token-file'],
    serviceCIDR: values['service-cidr'],
    logger: log,
    components: await defaultComponents(),
  });
  if (waypoints) cp.use(waypoints);
  try {
    await cp.start();
  } catch (err) {
    await store?.close();
    throw new CliError(`the control plane did not start: ${(err as Error).message}`);
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
  await cp.stop();
  await store?.close();
  log.info('control plane stopped');
  return 0;
}

export const controlCommand: Command = { name: 'control', summary: 'run the control plane (config store, config API, xDS, CA)', run: (argv) => runControl(argv) };
