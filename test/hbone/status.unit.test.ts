// What a client sees when the server does not open the tunnel, and resets both ways.
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { deny } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { allow } from '../../common/hbone/server';
import { startMesh, tcpServer, type Mesh } from './fixture';

function refusal(p: Promise<unknown>): Promise<TunnelRefusedError> {
  return p.then(
    () => {
      throw new Error('the tunnel opened but should have been refused');
    },
    (e: unknown) => {
      expect(e).toBeInstanceOf(TunnelRefusedError);
      return e as TunnelRefusedError;
    },
  );
}

describe('HBONE refusals and resets', () => {
  let mesh: Mesh;
  let closedPort: number;
  let resetPort: number;
  let closeResetter: () => Promise<void>;
  beforeAll(async () => {
    // A port with nothing listening: bind one, note it, close it.
    const tmp = await tcpServer(() => undefined);
    closedPort = tmp.port;
    await tmp.close();
    const resetter = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    resetPort = resetter.port;
    closeResetter = resetter.close;
    mesh = await startMesh({
      decide: async (r, connect) => {
        if (r.target.port === 1001) return deny(403, 'policy: not allowed');
        if (r.target.port === 1002) return deny(401, 'policy: needs identity');
        if (r.target.port === closedPort || r.target.port === resetPort) return allow(await connectUpstream(r.target));
        if (r.target.port === 1003) return allow(new Socket().connect({ host: '127.0.0.1', port: closedPort }));
        return connect();
      },
    });
  });
  afterAll(async () => {
    await mesh?.close();
    await closeResetter?.();
  });

  it('passes a policy denial to the client as 403', async () => {
    const err = await refusal(mesh.client.open(mesh.openOptions({ authority: '127.0.0.1:1001' })));
    expect(err.status).toBe(403);
    expect(err.message).toContain('403');
    expect(mesh.server.stats().streamsRefused[403]).toBe(1);
  });

  it('passes 401 as 401', async () => {
    expect((await refusal(mesh.client.open(mesh.openOptions({ authority: '127.0.0.1:1002' })))).status).toBe(401);
  });

  it('answers 503 when the upstream refuses the connection (handler rejects)', async () => {
    expect((await refusal(mesh.client.open(mesh.openOptions({ authority: `127.0.0.1:${closedPort}` })))).status).toBe(503);
  });

  it('answers 503 when an upstream socket handed over still connecting then fails', async () => {
    expect((await refusal(mesh.client.open(mesh.openOptions({ authority: '127.0.0.1:1003' })))).status).toBe(503);
  });

  it('resets the client stream when the upstream resets its connection', async () => {
    const stream = await mesh.client.open(mesh.openOptions({ authority: `127.0.0.1:${resetPort}` }));
    const err = await new Promise<Error | undefined>((resolve) => {
      stream.on('error', resolve);
      stream.on('close', () => resolve(undefined));
      stream.resume();
      stream.write('trigger');
    });
    expect(stream.rstCode).toBe(0x0a); // CONNECT_ERROR
    expect(err?.message).toMatch(/NGHTTP2_CONNECT_ERROR/);
  });

  it('keeps the pooled connection usable after refusals', async () => {
    const stream = await mesh.client.open(mesh.openOptions());
    stream.end('x');
    const back = await new Promise<string>((r) => {
      let s = '';
      stream.on('data', (c: Buffer) => (s += c.toString()));
      stream.on('end', () => r(s));
    });
    expect(back).toBe('x');
    expect(mesh.client.connectionCount()).toBe(1);
  });
});
