// `nodemesh install --dry-run [-n NS] [--name NAME] [-f values.yaml]… [--set k=v]…`: prints the
// manifests of the Helm chart helm/nodemesh for people without Helm, to pipe into
// `kubectl apply --server-side -f -`. Same values file, same schema, same objects as
// `helm template --include-crds` (checked by helm/install/helm-template.unit.test.ts).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { CliError, type Command } from '../../cli/command';
import { renderInstall } from './manifests';
import { resolveValues, ValuesError } from './values';

const USAGE = `usage: nodemesh install --dry-run [-n NAMESPACE] [--name RELEASE] [-f VALUES.yaml]... [--set KEY=VALUE]...
Prints every manifest of the nodemesh Helm chart (CRDs, the namespace, RBAC, the control plane,
the node proxy DaemonSet, the CNI installer) as multi-document YAML, for
  nodemesh install --dry-run | kubectl apply --server-side -f -
  -n, --namespace NS   namespace of the mesh (default nodemesh-system)
  --name RELEASE       release name, as 'helm install RELEASE' (default nodemesh)
  -f, --values FILE    values file merged over the chart's values.yaml (repeatable, in order)
  --set KEY=VALUE      one value, Helm's syntax: a.b=1,c[0]=x (repeatable, after the files)
  --no-namespace       do not print the Namespace object (it exists already)
Only --dry-run exists: nodemesh never talks to the API server to install itself.`;

export async function runInstall(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        'dry-run': { type: 'boolean' },
        namespace: { type: 'string', short: 'n' },
        name: { type: 'string' },
        values: { type: 'string', short: 'f', multiple: true },
        set: { type: 'string', multiple: true },
        'no-namespace': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n${USAGE}`, 2);
  }
  const v = parsed.values;
  if (v.help) {
    out.write(USAGE + '\n');
    return 0;
  }
  if (!v['dry-run'])
    throw new CliError(
      `--dry-run is required: 'nodemesh install' only prints manifests (pipe them to 'kubectl apply --server-side -f -', or use 'helm install nodemesh helm/nodemesh')\n${USAGE}`,
      2,
    );
  const namespace = v.namespace ?? 'nodemesh-system';
  const name = v.name ?? 'nodemesh';
  const dns = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (!dns.test(namespace) || namespace.length > 63) throw new CliError(`--namespace '${namespace}' is not a valid namespace name (a DNS-1123 label)`, 2);
  if (!dns.test(name) || name.length > 53) throw new CliError(`--name '${name}' is not a valid release name (a DNS-1123 label of at most 53 characters)`, 2);
  const files = (v.values ?? []).map((f) => {
    try {
      return { name: f, text: readFileSync(f, 'utf8') };
    } catch (err) {
      throw new CliError(`cannot read values file ${f}: ${(err as Error).message}`, 2);
    }
  });
  let values;
  try {
    values = resolveValues({ files, sets: v.set ?? [] });
  } catch (err) {
    if (err instanceof ValuesError) throw new CliError(`${err.message}\nsee helm/nodemesh/values.yaml for every value and its meaning`, 2);
    throw new CliError((err as Error).message, 2);
  }
  const docs = renderInstall(values, { name, namespace }, { namespaceObject: !v['no-namespace'] });
  out.write(docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n'));
  return 0;
}

export const installCommand: Command = {
  name: 'install',
  summary: "print the Helm chart's manifests for kubectl (install --dry-run)",
  run: (argv) => runInstall(argv),
};
