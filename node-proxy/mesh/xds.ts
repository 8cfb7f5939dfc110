// The node proxy's connection to the control plane: delta ADS over TLS on 15012 (the serving
// certificate verified against the mesh root), the node token as `authorization: Bearer`, and
// the certificate service on the same port.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { CaClient } from '../../common/identity/ca-client';
import type { Logger } from '../../common/log';
import { DeltaXdsClient } from '../../common/xds/client';
import { WORKLOAD_API_RESOURCE_TYPES } from '../state/resource-types';

export interface ControlConnection {
  /** host:port of the control plane's TLS gRPC port. */
  readonly control: string;
  /** PEM of the mesh root (`nodemesh ca root`). */
  readonly trustBundlePem: string;
  readonly tokenFile: string;
  readonly node: string;
  readonly log: Logger;
}

/** Reads the node token; the message says what to do when it is missing. */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the node token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; issue one with 'nodemesh ca issue-node-token --node <node> --out ${file}'`);
  }
  if (!text) throw new Error(`the node token file ${file} is empty; issue a token with 'nodemesh ca issue-node-token --node <node> --out ${file}'`);
  return text;
}

export function workloadXdsClient(c: ControlConnection): DeltaXdsClient {
  return new DeltaXdsClient({
    target: c.control,
    credentials: { kind: 'tls', trustBundlePem: c.trustBundlePem },
    node: { id: `node-proxy~${c.node}`, metadata: { NODE_NAME: c.node } },
    // Address, Authorization and PeerAuthentication (policyContext reads them from the state).
    types: WORKLOAD_API_RESOURCE_TYPES.map((type) => ({ type })),
    callMetadata: () => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${readToken(c.tokenFile)}`);
      return md;
    },
    logger: c.log.child({ component: 'xds' }),
  });
}

export function certificateClient(c: ControlConnection): CaClient {
  return new CaClient({ address: c.control, rootPem: c.trustBundlePem, tokenFile: c.tokenFile });
}
