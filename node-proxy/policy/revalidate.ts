// When policy changes, connections that were allowed may no longer be: given the open connections
// and a way to find the policy context of each one's destination under the new policy set, return
// those that must be closed, each with the verdict that says why.
import { evaluate } from './evaluate';
import type { PolicyConnection, PolicyContext, Verdict } from './model';

export interface OpenConnection<Id> {
  readonly id: Id;
  readonly connection: PolicyConnection;
  /** The destination workload's uid (what the context is looked up by). */
  readonly destination: string;
}

export interface ConnectionToClose<Id> {
  readonly id: Id;
  readonly verdict: Verdict;
}

/**
 * `contextFor` returns the destination's policy context under the new policies, or undefined when
 * the destination is no longer known (its connections are left to the workload-removal path).
 */
export function connectionsNoLongerAllowed<Id>(
  open: Iterable<OpenConnection<Id>>,
  contextFor: (destinationUid: string, port: number) => PolicyContext | undefined,
): ConnectionToClose<Id>[] {
  const contexts = new Map<string, PolicyContext | undefined>();
  const out: ConnectionToClose<Id>[] = [];
  for (const c of open) {
    const key = `${c.destination}|${c.connection.destinationPort}`;
    let ctx = contexts.get(key);
    if (!contexts.has(key)) contexts.set(key, (ctx = contextFor(c.destination, c.connection.destinationPort)));
    if (!ctx) continue;
    const verdict = evaluate(c.connection, ctx);
    if (!verdict.allowed) out.push({ id: c.id, verdict });
  }
  return out;
}
