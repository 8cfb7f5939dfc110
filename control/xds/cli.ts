// `nodemesh xds get`: subscribe to the control plane's delta ADS like a node proxy does and print
// what it serves (the workload API, or any type URL) as JSON — one line per resource, and with
// --watch one line per change. For operators and for debugging node proxies and waypoints.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient } from '../../api/gen/envoy/service/discovery/v3/ads';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../../api/gen/envoy/service/discovery/v3/discovery';
import { messageTypeRegistry } from '../../api/gen/typeRegistry';
import { CliError, type Command } from '../../cli/command';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../workload/publisher';
import { ipText } from '../workload/addresses';
import { XDS_PLAINTEXT_PORT } from '../../common/contracts/ports';
// Loaded for their entries in the type registry, so Envoy resources (and the Anys inside them)
// print as JSON too.
import '../../api/gen/envoy/config/cluster/v3/cluster';
import '../../api/gen/envoy/config/endpoint/v3/endpoint';
import '../../api/gen/envoy/config/listener/v3/listener';
import '../../api/gen/envoy/config/route/v3/route';
import '../../api/gen/envoy/extensions/filters/http/fault/v3/fault';
import '../../api/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit';
import '../../api/gen/envoy/extensions/filters/http/rbac/v3/rbac';
import '../../api/gen/envoy/extensions/filters/http/router/v3/router';
import '../../api/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager';
import '../../api/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy';
import '../../api/gen/envoy/extensions/transport_sockets/tls/v3/tls';

const TYPES: Record<string, string> = {
  addresses: ADDRESS_TYPE_URL,
  address: ADDRESS_TYPE_URL,
  authorizations: AUTHORIZATION_TYPE_URL,
  authorization: AUTHORIZATION_TYPE_URL,
};

const USAGE = `usage: nodemesh xds get [addresses|authorizations|TYPE_URL] [options]
Subscribes to the control plane's delta ADS and prints each resource as one JSON line
({"name","version","resource"}; removals as {"name","removed":true}).
  --server HOST:PORT   the xDS server (default 127.0.0.1:15010, the plaintext loopback port)
  --tls                use TLS (the 15012 port); verify it with --ca-file
  --ca-file FILE       PEM roots for --tls (e.g. from 'nodemesh ca root')
  --token-file FILE    node token to send as 'authorization: Bearer …' (when the server asks for one)
  --name NAME          subscribe to this resource only (repeatable); default: every resource
  --node ID            node id to present (default nodemesh-cli)
  --watch              keep the stream open and print changes as they come
  --timeout SECONDS    give up waiting for the first response after this long (default 10)`;

export interface XdsCliIo {
  stdout: NodeJS.WritableStream;
}

/** Bytes fields of the workload API as IP text, so the JSON is readable. */
function readable(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => readable(v, key));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = readable(v, k);
    return out;
  }
  if (typeof value === 'string' && (key === 'address' || key === 'addresses')) {
    const bytes = Buffer.from(value, 'base64');
    if (bytes.length === 4 || bytes.length === 16) return ipText(bytes);
  }
  return value;
}

export function decodeResource(typeUrl: string, value: Uint8Array): unknown {
  const type = messageTypeRegistry.get(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  if (!type) return { undecoded: Buffer.from(value).toString('base64') };
  try {
    return readable(type.toJSON(type.decode(value)));
  } catch (err) {
    return { undecoded: Buffer.from(value).toString('base64'), error: (err as Error).message };
  }
}

export async function runXdsGet(argv: string[], io: XdsCliIo = { stdout: process.stdout }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: 'string', default: `127.0.0.1:${XDS_PLAINTEXT_PORT}` },
        tls: { type: 'boolean', default: false },
        'ca-file': { type: 'string' },
        'token-file': { type: 'string' },
        name: { type: 'string', multiple: true },
        node: { type: 'string', default: 'nodemesh-cli' },
        watch: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '10' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new CliError(`xds get: ${(err as Error).message}\n${USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(USAGE + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new CliError(`xds get takes one type, got ${positionals.join(' ')}\n${USAGE}`, 2);
  const typeArg = positionals[0] ?? 'addresses';
  const typeUrl = TYPES[typeArg] ?? (typeArg.includes('/') ? typeArg : undefined);
  if (!typeUrl) throw new CliError(`unknown type '${typeArg}': use addresses, authorizations or a full type URL`, 2);
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new CliError(`--timeout must be a positive number of seconds, got ${values.timeout}`, 2);

  let credentials = grpc.credentials.createInsecure();
  if (values.tls) {
    let roots: Buffer | undefined;
    if (values['ca-file']) {
      try {
        roots = readFileSync(values['ca-file']);
      } catch (err) {
        throw new CliError(`cannot read --ca-file: ${(err as Error).message}`);
      }
    }
    credentials = grpc.credentials.createSsl(roots);
  }
  const metadata = new grpc.Metadata();
  if (values['token-file']) {
    try {
      metadata.set('authorization', `Bearer ${readFileSync(values['token-file'], 'utf8').trim()}`);
    } catch (err) {
      throw new CliError(`cannot read --token-file: ${(err as Error).message}`);
    }
  }

  const client = new AggregatedDiscoveryServiceClient(values.server!, credentials, { 'grpc.max_receive_message_length': 256 * 1024 * 1024 });
  const stream = client.deltaAggregatedResources(metadata);
  const print = (r: DeltaDiscoveryResponse): void => {
    for (const res of r.resources) {
      io.stdout.write(
        JSON.stringify({ name: res.name, version: res.version, resource: decodeResource(r.typeUrl, res.resource?.value ?? new Uint8Array()) }) + '\n',
      );
    }
    for (const name of r.removedResources) io.stdout.write(JSON.stringify({ name, removed: true }) + '\n');
  };
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new CliError(
              `no answer from the xDS server at ${values.server} within ${values.timeout} s: is the control plane running, and is this the right port (${values.tls ? 'TLS 15012' : 'plaintext 15010'})?`,
            ),
          ),
        timeoutMs,
      );
      stream.on('data', (r: DeltaDiscoveryResponse) => {
        clearTimeout(timer);
        print(r);
        stream.write(DeltaDiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, responseNonce: r.nonce }));
        if (!values.watch) resolve(0);
      });
      stream.on('error', (err: grpc.ServiceError) => {
        clearTimeout(timer);
        if (err.code === grpc.status.CANCELLED) resolve(0);
        else reject(new CliError(`the xDS server at ${values.server} ended the stream: ${grpc.status[err.code] ?? err.code} ${err.details}`));
      });
      stream.write(DeltaDiscoveryRequest.fromPartial({ node: { id: values.node }, typeUrl, resourceNamesSubscribe: values.name ?? [] }));
    });
  } finally {
    stream.cancel();
    client.close();
  }
}

export const xdsCommand: Command = {
  name: 'xds',
  summary: 'inspect what the control plane serves over xDS (the workload API)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'get') return runXdsGet(rest);
    if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
      process.stdout.write(USAGE + '\n');
      return sub ? 0 : 2;
    }
    throw new CliError(`unknown subcommand 'xds ${sub}'\n${USAGE}`, 2);
  },
};
