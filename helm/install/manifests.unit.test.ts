// Every object `nodemesh install --dry-run` prints (and so, by helm-template.unit.test.ts, every
// object the chart renders) matches the Kubernetes OpenAPI schemas, and the node proxy gets exactly
// the privileges docs/kubernetes.md explains — no more.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { validateKubernetesObject } from '../../test/support/kube-schemas';
import { runInstall } from './cli';
import { execFile } from 'node:child_process';
import { underNodeOptions } from '../../test/support/node-options';
import { cliEntry } from '../../common/paths';
import { renderWaypoint } from '../../control/kubernetes/waypoints/render';
import { renderInstall, type Manifest } from './manifests';
import { resolveValues } from './values';
import { NODE_PROXY_ENV, NODE_PROXY_NODE_OPTIONS } from '../../node-proxy/process-flags';

async function installOutput(argv: string[]): Promise<Manifest[]> {
  let text = '';
  const out = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
  expect(await runInstall(argv, out)).toBe(0);
  return parseAllDocuments(text).map((d) => d.toJS() as Manifest);
}

// any: the assertions walk deep into pod specs; their shape is checked by the schema test above.
type Loose = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface PodArgs {
  containers: { image: string; args: string[] }[];
  initContainers?: { image: string; args: string[] }[];
}

function find(ms: readonly Manifest[], kind: string, name: string): Manifest & { spec: Loose } {
  const m = ms.find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) throw new Error(`${kind} ${name} not printed`);
  return m as Manifest & { spec: Loose };
}

describe('nodemesh install --dry-run', () => {
  it('prints CRDs, the namespace and every component, each valid against the Kubernetes schemas', async () => {
    const ms = await installOutput(['--dry-run']);
    expect(ms.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      'CustomResourceDefinition/authorizationpolicies.security.nodemesh.io',
      'CustomResourceDefinition/peerauthentications.security.nodemesh.io',
      'CustomResourceDefinition/workloads.nodemesh.io',
      'Namespace/nodemesh-system',
      'ServiceAccount/nodemesh-cni',
      'DaemonSet/nodemesh-cni',
      'ServiceAccount/nodemesh-control',
      'Deployment/nodemesh-control',
      'Service/nodemesh-control',
      'PodDisruptionBudget/nodemesh-control',
      'GatewayClass/nodemesh-waypoint',
      'ServiceAccount/nodemesh-node',
      'DaemonSet/nodemesh-node',
      'ClusterRole/nodemesh-control',
      'ClusterRoleBinding/nodemesh-control',
      'Role/nodemesh-control',
      'RoleBinding/nodemesh-control',
    ]);
    for (const m of ms) await validateKubernetesObject(m);
  });

  it('stays valid with other values (k3s paths, switches off, another namespace)', async () => {
    const variants = [
      resolveValues({
        sets: ['cni.binDir=/var/lib/rancher/k3s/data/cni,cni.confDir=/var/lib/rancher/k3s/agent/etc/cni/net.d', 'image.tag=dev,image.pullPolicy=Never'],
      }),
      resolveValues({
        sets: ['cni.enabled=false,prometheus.scrape=false,control.plaintextXds=false,control.podDisruptionBudget.enabled=false,control.replicas=3'],
      }),
    ];
    for (const v of variants)
      for (const m of renderInstall(v, { name: 'mesh', namespace: 'mesh-a' }, { namespaceObject: true })) await validateKubernetesObject(m);
  });

  it('the schema check is real: a wrong field type is refused with the field named', async () => {
    const ms = await installOutput(['--dry-run']);
    const ds = structuredClone(find(ms, 'DaemonSet', 'nodemesh-node'));
    ds.spec.template.spec.containers[0].ports[0].containerPort = '15020';
    await expect(validateKubernetesObject(ds)).rejects.toThrow(/containers\/0\/ports\/0\/containerPort must be integer/);
  });

  it('the node proxy: root with BPF, NET_ADMIN, SYS_ADMIN, SYS_PTRACE, SYS_RESOURCE only; hostPID; no API token; projected nodemesh-ca token', async () => {
    const ms = await installOutput(['--dry-run']);
    const pod = find(ms, 'DaemonSet', 'nodemesh-node').spec.template.spec;
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.automountServiceAccountToken).toBe(false);
    const [container] = pod.containers;
    expect(container.securityContext.privileged).toBe(false);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(container.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE', 'SYS_RESOURCE'] });
    const hostPaths = pod.volumes.filter((v: { hostPath?: unknown }) => v.hostPath).map((v: { hostPath: { path: string } }) => v.hostPath.path);
    expect(hostPaths).toEqual(['/sys/fs/bpf', '/sys/fs/cgroup', '/run/nodemesh']);
    expect(container.volumeMounts.find((m: { name: string }) => m.name === 'cgroup').readOnly).toBe(true);
    const token = pod.volumes.find((v: { name: string }) => v.name === 'nodemesh-token').projected.sources[0].serviceAccountToken;
    expect(token.audience).toBe('nodemesh-ca');
    expect(container.readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
    expect(find(ms, 'DaemonSet', 'nodemesh-node').spec.template.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '15020',
      'prometheus.io/path': '/metrics',
    });
  });

  it('the control plane and the CNI installer run with no capabilities; only the control plane has API access', async () => {
    const ms = await installOutput(['--dry-run', '-n', 'mesh', '--name', 'r1']);
    const cp = find(ms, 'Deployment', 'nodemesh-control').spec.template.spec;
    expect(cp.securityContext.runAsNonRoot).toBe(true);
    expect(cp.containers[0].securityContext.capabilities).toEqual({ drop: ['ALL'] });
    expect(cp.containers[0].args).toContain('--config-source=kubernetes');
    expect(cp.containers[0].readinessProbe.httpGet.port).toBe(15021);
    expect(find(ms, 'Service', 'nodemesh-control').spec.ports.map((p: { port: number }) => p.port)).toEqual([15012, 15014, 15020, 15010]);
    const cni = find(ms, 'DaemonSet', 'nodemesh-cni').spec.template.spec;
    expect(cni.containers[0].securityContext.capabilities).toEqual({ drop: ['ALL'] });
    expect(cni.hostPID).toBeUndefined();
    expect(cni.automountServiceAccountToken).toBe(false);
    const subjects = ms
      .filter((m) => m.kind.endsWith('Binding'))
      .flatMap((b) => (b as unknown as { subjects: { name: string; namespace: string }[] }).subjects);
    expect(new Set(subjects.map((s) => `${s.namespace}/${s.name}`))).toEqual(new Set(['mesh/nodemesh-control']));
    const role = find(ms, 'Role', 'nodemesh-control') as unknown as { rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[] };
    expect(role.rules.filter((r) => r.resources.includes('secrets'))).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['nodemesh-ca'], verbs: ['get'] },
    ]);
    const cr = find(ms, 'ClusterRole', 'nodemesh-control') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    const verbsOn = (group: string, resource: string) =>
      cr.rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs);
    expect(verbsOn('', 'secrets')).toEqual([]);
    expect(verbsOn('', 'pods')).toEqual(['get', 'list', 'watch']);
    expect(verbsOn('authentication.k8s.io', 'tokenreviews')).toEqual(['create']);
    expect(verbsOn('gateway.networking.k8s.io', 'gateways/status')).toEqual(['update']);
    // Only what the control plane calls: no deletes (the garbage collector deletes what a Gateway
    // owns), no events, no leases, no GatewayClass or HTTPRoute status.
    expect(cr.rules.flatMap((r) => r.verbs)).not.toContain('delete');
    expect(cr.rules.flatMap((r) => r.verbs)).not.toContain('patch');
    expect(cr.rules.flatMap((r) => r.resources).filter((r) => /events|leases|gatewayclasses|httproutes\/status/.test(r))).toEqual([]);
    expect(role.rules.flatMap((r) => r.resources)).toEqual(['secrets', 'secrets']);
  });

  it("runs each component with flags its command accepts: the real CLI parses every container's args", async () => {
    const ms = await installOutput(['--dry-run', '--set', 'cni.failOpen=true']); // every optional flag on
    const pods = ms
      .filter((m) => m.kind === 'Deployment' || m.kind === 'DaemonSet')
      .map((m) => (m as unknown as { spec: { template: { spec: PodArgs } } }).spec.template.spec);
    // The waypoint controller's Deployments too, for both waypoint proxies.
    const gw = { name: 'wp', namespace: 'demo', uid: 'u', apiVersion: 'gateway.networking.k8s.io/v1' };
    const wp = { image: 'i', envoyImage: 'e', controlAddress: 'nodemesh-control.nodemesh-system.svc:15012', trustDomain: 'cluster.local' };
    for (const proxy of ['nodemesh', 'envoy'] as const)
      pods.push((renderWaypoint(gw, { ...wp, proxy }).deployment.spec as { template: { spec: PodArgs } }).template.spec);
    const nodemeshArgs = pods
      .flatMap((p) => [...(p.initContainers ?? []), ...p.containers])
      .filter((c) => c.image !== 'e')
      .map((c) => c.args);
    expect(nodemeshArgs.map((a) => a.slice(0, a[0] === 'waypoint' ? 2 : 1).join(' ')).sort()).toEqual([
      'cni-install',
      'control',
      'node-proxy',
      'waypoint bootstrap',
      'waypoint cert-agent',
      'waypoint cert-agent',
      'waypoint run',
    ]);
    // `--help` after the args: each command parses its whole argv with its own strict parser
    // (unknown flag, a value on a boolean, a missing value: exit 2) before it prints its usage.
    // The CLIs start side by side (each loads the whole CLI: one after the other took 16-25 s on a
    // loaded machine).
    const parses = (args: readonly string[]) =>
      new Promise<{ status: number; stderr: string }>((resolve) => {
        execFile(process.execPath, [cliEntry, ...args, '--help'], { encoding: 'utf8' }, (err, _stdout, stderr) => {
          const code = err ? (err as { code?: unknown }).code : 0;
          resolve({ status: typeof code === 'number' ? code : -1, stderr });
        });
      });
    const [results, misspelt, boolValue, conflicting] = await Promise.all([
      Promise.all(nodemeshArgs.map(parses)),
      // The check can fail: a misspelt flag, or a value on a boolean flag, is refused.
      parses(['control', '--metrics-prot=15020']),
      parses(['control', '--plaintext-xds=yes']),
      parses(['node-proxy', '--pod-discovery=kubernetes', '--cni-sock=/run/x']),
    ]);
    results.forEach((r, i) => {
      expect(r.status, `nodemesh ${nodemeshArgs[i]!.join(' ')} is refused by its own flag parser: ${r.stderr}`).toBe(0);
    });
    expect(misspelt.stderr).toMatch(/unknown option --metrics-prot/);
    expect(boolValue.status).not.toBe(0);
    expect(conflicting.status).not.toBe(0);
  }, 60_000);

  it('starts the node proxy with its process flags (node-proxy/process-flags.ts), which node accepts in NODE_OPTIONS', async () => {
    const ms = await installOutput(['--dry-run']);
    const proxy = (find(ms, 'DaemonSet', 'nodemesh-node').spec.template.spec.containers as { name: string; env: { name: string; value?: string }[] }[]).find(
      (c) => c.name === 'node-proxy',
    );
    const env = Object.fromEntries((proxy?.env ?? []).map((e) => [e.name, e.value]));
    expect(env.NODE_OPTIONS).toBe(NODE_PROXY_NODE_OPTIONS);
    expect(env.UV_THREADPOOL_SIZE).toBe(NODE_PROXY_ENV.UV_THREADPOOL_SIZE);
    // node refuses a flag it does not allow in NODE_OPTIONS (exit 9): these start, and take effect
    const r = underNodeOptions(env.NODE_OPTIONS ?? '');
    expect(r.status, r.stderr).toBe(0);
    expect(r.newSpaceBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  it('refuses what it cannot print, saying what to do', async () => {
    await expect(runInstall([])).rejects.toThrow(/--dry-run is required/);
    await expect(runInstall(['--dry-run', '--set', 'cni.binDir=relative/path'])).rejects.toThrow(/cni\.binDir: must be an absolute path/);
    await expect(runInstall(['--dry-run', '-f', '/nonexistent/nm-values.yaml'])).rejects.toThrow(/cannot read values file \/nonexistent\/nm-values.yaml/);
    await expect(runInstall(['--dry-run', '-n', 'Bad_NS'])).rejects.toThrow(/not a valid namespace name/);
  });
});
