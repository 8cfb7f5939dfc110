// `nodemesh install --dry-run` and `helm template --include-crds` print the same objects: the real
// Helm 3 renders helm/nodemesh for several value sets (defaults, every switch off, a values file
// with lists/maps, another release and namespace) and each object must equal the TypeScript one.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { helm, helmTemplate } from '../../test/support/helm';
import { renderInstall, type Manifest } from './manifests';
import { chartDir, resolveValues } from './values';

const dir = mkdtempSync(join(tmpdir(), 'nm-helm-values-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const K3S_VALUES = `
image:
  repository: registry.example/nodemesh
  tag: dev-1
  pullPolicy: Never
imagePullSecrets:
  - name: regcred
control:
  replicas: 2
  nodeSelector: {}
  tolerations:
    - key: node-role.kubernetes.io/control-plane
      operator: Exists
      effect: NoSchedule
nodeProxy:
  nodeSelector:
    kubernetes.io/os: linux
    nodemesh.io/node: "true"
  runDir: /var/run/nodemesh
cni:
  binDir: /var/lib/rancher/k3s/data/cni
  confDir: /var/lib/rancher/k3s/agent/etc/cni/net.d
`;

function key(m: Manifest): string {
  return `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`;
}

function byKey(ms: readonly Manifest[]): Map<string, Manifest> {
  const out = new Map<string, Manifest>();
  for (const m of ms) {
    expect(out.has(key(m)), `${key(m)} printed twice`).toBe(false);
    out.set(key(m), m);
  }
  return out;
}

function helmObjects(release: string, namespace: string, args: string[]): Manifest[] {
  const text = helmTemplate(chartDir, [release, '--namespace', namespace, '--include-crds', ...args]);
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

const cases: { name: string; release: string; namespace: string; files: string[]; sets: string[] }[] = [
  { name: 'defaults', release: 'nodemesh', namespace: 'nodemesh-system', files: [], sets: [] },
  {
    name: 'every switch off',
    release: 'nodemesh',
    namespace: 'nodemesh-system',
    files: [],
    sets: [
      'cni.enabled=false,control.plaintextXds=false',
      'prometheus.scrape=false',
      'control.podDisruptionBudget.enabled=false,waypoint.gatewayClass=false',
      'logLevel=debug',
    ],
  },
  {
    name: 'values file (k3s, lists and maps) plus --set',
    release: 'mesh',
    namespace: 'mesh-a',
    files: [K3S_VALUES],
    sets: ['trustDomain=example.org,control.caSecret=my-root', 'nodeProxy.tolerations[0].operator=Exists'],
  },
  { name: 'cni.failOpen on', release: 'nodemesh', namespace: 'nodemesh-system', files: [], sets: ['cni.failOpen=true'] },
];

describe('helm template and nodemesh install --dry-run print the same objects', () => {
  for (const c of cases) {
    it(c.name, () => {
      const fileArgs = c.files.map((text, i) => {
        const path = join(dir, `${c.release}-${i}.yaml`);
        writeFileSync(path, text);
        return path;
      });
      const helm = byKey(helmObjects(c.release, c.namespace, [...fileArgs.flatMap((f) => ['-f', f]), ...c.sets.flatMap((s) => ['--set', s])]));
      const values = resolveValues({ files: c.files.map((text, i) => ({ name: `file ${i}`, text })), sets: c.sets });
      const ours = byKey(renderInstall(values, { name: c.release, namespace: c.namespace }));
      expect([...ours.keys()].sort()).toEqual([...helm.keys()].sort());
      for (const [k, m] of ours) expect(m, k).toEqual(helm.get(k));
      expect(helm.size).toBeGreaterThanOrEqual(c.name === 'every switch off' ? 12 : 16);
      // cni.failOpen reaches the installer (which writes it into the conflist) only when set.
      const installer = helm.get(`DaemonSet/${c.namespace}/nodemesh-cni`);
      const args = (installer?.spec as { template: { spec: { containers: { args: string[] }[] } } } | undefined)?.template.spec.containers[0]?.args;
      if (c.name !== 'every switch off') expect(args?.includes('--fail-open'), JSON.stringify(args)).toBe(c.sets.includes('cni.failOpen=true'));
    });
  }

  it('helm lint --strict passes with the defaults and with every switch off', () => {
    expect(helm(['lint', '--strict', chartDir])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(helm(['lint', '--strict', chartDir, '--set', 'cni.enabled=false,waypoint.gatewayClass=false,control.podDisruptionBudget.enabled=false'])).toMatch(
      /0 chart\(s\) failed/,
    );
  });

  it('both refuse the same bad values, naming the field', () => {
    expect(() => helmTemplate(chartDir, ['x', '--set', 'control.replicas=0'])).toThrow(/control\.replicas/);
    expect(() => resolveValues({ sets: ['control.replicas=0'] })).toThrow(/control\.replicas/);
    expect(() => helmTemplate(chartDir, ['x', '--set', 'nodeProxy.privileged=true'])).toThrow(/privileged/);
    expect(() => resolveValues({ sets: ['nodeProxy.privileged=true'] })).toThrow(/nodeProxy\.privileged: unknown field/);
    expect(() => helmTemplate(chartDir, ['x', '--set', 'image.pullPolicy=Sometimes'])).toThrow(/image\.pullPolicy/);
    expect(() => resolveValues({ sets: ['image.pullPolicy=Sometimes'] })).toThrow(/image\.pullPolicy/);
  });
});
