// `nodemesh namespace enroll|unenroll NS`: sets or clears nodemesh.io/dataplane-mode=ambient on the
// Namespace (creating it when enrolling a namespace that does not exist). Conditional updates,
// retried when someone else changed the Namespace in between.
import { CliError, type Command } from '../../cli/command';
import { ApiError, type ApiClient } from '../api/client';
import { kindInfo, type KindInfo } from '../resources/kinds';
import { DATAPLANE_MODE_LABEL, ISTIO_LABELS } from '../resources/labels';
import type { Namespace } from '../resources/namespace';
import { clientFrom, CONNECTION_HELP, connectionOptions, parse, processContext, type CliContext } from './context';

const HELP = `usage: nodemesh namespace enroll NAMESPACE
       nodemesh namespace unenroll NAMESPACE
enroll sets ${DATAPLANE_MODE_LABEL}=ambient on the namespace (creating it if needed), so its
workloads are captured by the mesh; unenroll removes the label.
${CONNECTION_HELP}`;

const NS = kindInfo('Namespace') as KindInfo;

async function getNamespace(client: ApiClient, name: string): Promise<Namespace | undefined> {
  try {
    return await client.get<Namespace>(NS, name);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** Sets (`ambient`) or removes (undefined) the label; returns what happened, for the message. */
export async function setDataplaneMode(client: ApiClient, name: string, mode: 'ambient' | undefined): Promise<'changed' | 'unchanged' | 'absent'> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const ns = await getNamespace(client, name);
    if (!ns) {
      if (mode === undefined) return 'absent';
      try {
        await client.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { [DATAPLANE_MODE_LABEL]: mode } } }]);
        return 'changed';
      } catch (err) {
        if (err instanceof ApiError && err.status === 409) continue;
        throw err;
      }
    }
    const labels = { ...(ns.metadata.labels ?? {}) };
    if (labels[DATAPLANE_MODE_LABEL] === mode) return 'unchanged';
    if (mode !== undefined) labels[DATAPLANE_MODE_LABEL] = mode;
    // Unenrolling a namespace that Istio's label enrols takes an explicit "none" (ours wins).
    else if (labels[ISTIO_LABELS[DATAPLANE_MODE_LABEL]] === 'ambient') {
      if (labels[DATAPLANE_MODE_LABEL] === 'none') return 'unchanged';
      labels[DATAPLANE_MODE_LABEL] = 'none';
    } else delete labels[DATAPLANE_MODE_LABEL];
    try {
      await client.put(NS, { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels, resourceVersion: ns.metadata.resourceVersion }, spec: ns.spec });
      return 'changed';
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) continue; // changed meanwhile: read again
      throw err;
    }
  }
  throw new CliError(`namespace ${name} kept changing while it was being updated; try again`);
}

export async function runNamespace(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { values, positionals } = parse('namespace', argv, { ...connectionOptions, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    ctx.stdout.write(HELP + '\n');
    return 0;
  }
  const [action, name, extra] = positionals;
  if ((action !== 'enroll' && action !== 'unenroll') || !name || extra) throw new CliError(`namespace: usage: nodemesh namespace enroll|unenroll NAMESPACE`, 2);
  const client = clientFrom(values, ctx);
  try {
    const result = await setDataplaneMode(client, name, action === 'enroll' ? 'ambient' : undefined);
    if (action === 'enroll') {
      ctx.stdout.write(result === 'unchanged' ? `namespace/${name} is already enrolled\n` : `namespace/${name} enrolled (${DATAPLANE_MODE_LABEL}=ambient)\n`);
    } else {
      ctx.stdout.write(
        result === 'absent'
          ? `namespace/${name} does not exist; nothing to unenroll\n`
          : result === 'unchanged'
            ? `namespace/${name} was not enrolled\n`
            : `namespace/${name} unenrolled\n`,
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError((err as Error).message);
  }
}

export const namespaceCommand: Command = { name: 'namespace', summary: 'enroll or unenroll a namespace in the mesh', run: (argv) => runNamespace(argv) };
