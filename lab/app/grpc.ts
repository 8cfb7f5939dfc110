// The sample gRPC service `nodemesh.lab.Sample` (a hand-built grpc-js service definition; messages
// are raw bytes, so no .proto has to ship with dist/):
//   Echo   (unary)            request: any bytes; reply: JSON of who answered and what it saw
//                             (the HttpReply shape: method = the gRPC path, headers = metadata,
//                             body size and sha256), as the HTTP servers answer.
//   Stream (server streaming) request: JSON {"bytes": N, "chunk": C}; reply: N random bytes in
//                             messages of at most C bytes; initial metadata x-app/x-pod/x-version,
//                             trailers x-body-bytes/x-body-sha256 of what was sent.
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { AppIdentity } from './identity';
import type { HttpReply } from './servers';

export const SAMPLE_SERVICE = 'nodemesh.lab.Sample';
export const ECHO_PATH = `/${SAMPLE_SERVICE}/Echo`;
export const STREAM_PATH = `/${SAMPLE_SERVICE}/Stream`;
/** Largest Stream message and the default chunk. */
export const STREAM_CHUNK = 64 * 1024;
/** Largest Stream a single call may ask for. */
export const STREAM_MAX = 1024 ** 3;

const same = (b: Buffer): Buffer => b;
const method = (path: string, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: same,
  requestDeserialize: same,
  responseSerialize: same,
  responseDeserialize: same,
});

export const sampleService: grpc.ServiceDefinition = { Echo: method(ECHO_PATH, false), Stream: method(STREAM_PATH, true) };

function metadataObject(md: grpc.Metadata): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
  return out;
}

/** Parses a Stream request; throws a message fit for INVALID_ARGUMENT. */
export function parseStreamRequest(body: Buffer): { bytes: number; chunk: number } {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new Error('the Stream request must be JSON {"bytes": N, "chunk": C}');
  }
  const o = (v ?? {}) as { bytes?: unknown; chunk?: unknown };
  const bytes = o.bytes;
  const chunk = o.chunk ?? STREAM_CHUNK;
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 0 || bytes > STREAM_MAX)
    throw new Error(`"bytes" must be a whole number from 0 to ${STREAM_MAX}`);
  if (typeof chunk !== 'number' || !Number.isInteger(chunk) || chunk < 1 || chunk > STREAM_CHUNK)
    throw new Error(`"chunk" must be a whole number from 1 to ${STREAM_CHUNK}`);
  return { bytes, chunk };
}

function handlers(id: AppIdentity): grpc.UntypedServiceImplementation {
  return {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const peer = call.getPeer();
      const i = peer.lastIndexOf(':');
      const reply: HttpReply = {
        ...id,
        request: {
          method: ECHO_PATH,
          url: ECHO_PATH,
          httpVersion: '2.0',
          headers: metadataObject(call.metadata),
          bodyBytes: call.request.length,
          bodySha256: createHash('sha256').update(call.request).digest('hex'),
        },
        peer: { address: i > 0 ? peer.slice(0, i) : peer, port: i > 0 ? Number(peer.slice(i + 1)) : 0 },
        local: { address: '', port: 0 },
      };
      const md = new grpc.Metadata();
      md.set('x-app', id.app);
      md.set('x-pod', id.pod);
      md.set('x-version', id.version);
      call.sendMetadata(md);
      cb(null, Buffer.from(JSON.stringify(reply)));
    },
    Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      let req: { bytes: number; chunk: number };
      try {
        req = parseStreamRequest(call.request);
      } catch (e) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
        return;
      }
      const md = new grpc.Metadata();
      md.set('x-app', id.app);
      md.set('x-pod', id.pod);
      md.set('x-version', id.version);
      call.sendMetadata(md);
      const hash = createHash('sha256');
      let sent = 0;
      let cancelled = false;
      call.on('cancelled', () => (cancelled = true));
      const pump = (): void => {
        while (!cancelled && sent < req.bytes) {
          const chunk = randomBytes(Math.min(req.chunk, req.bytes - sent));
          hash.update(chunk);
          sent += chunk.length;
          if (!call.write(chunk)) {
            call.once('drain', pump);
            return;
          }
        }
        if (cancelled) return;
        const trailer = new grpc.Metadata();
        trailer.set('x-body-bytes', String(sent));
        trailer.set('x-body-sha256', hash.digest('hex'));
        call.end(trailer);
      };
      pump();
    },
  };
}

/** The sample gRPC server on host:port (plaintext h2c); resolves with the bound port. */
export async function startGrpcServer(id: AppIdentity, port: number, host: string): Promise<{ server: grpc.Server; port: number }> {
  // Echo takes bodies of any size the client may send (--size up to 1 GiB)
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1 });
  server.addService(sampleService, handlers(id));
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port: bound };
}

/** The name of a gRPC status code ("OK", "PERMISSION_DENIED", …), or its number when unknown. */
export function grpcStatusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code); // the enum's reverse mapping
}
