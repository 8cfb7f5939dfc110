// What a client sees when the server does not open the tunnel, and resets both ways.
import { constants as h2 } from 'node:http2';
import { Socket } from 'node:net';
import { abortSide, type SpliceResult } from '../../common/hbone/splice';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunnelRefusedError } from '../../common/hbone/errors';
import { deny } from '../../common/hbone/server';
import { connectUpstream } from '../../common/hbone/upstream';
import { allow } from '../../common/hbone/server';
import { eventually, startMesh, tcpServer, type Mesh } from './fixture';

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
  let watchPort: number;
  let closeWatcher: () => Promise<void>;
  const appSaw: { error?: string; ended: boolean; bytes: number }[] = [];
  const results: SpliceResult[] = [];
  beforeAll(async () => {
    // A port with nothing listening: bind one, note it, close it.
    const tmp = await tcpServer(() => undefined);
    closedPort = tmp.port;
    await tmp.close();
    const resetter = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
    resetPort = resetter.port;
    closeResetter = resetter.close;
    // An app that records how its connection ended.
    const watcher = await tcpServer((s) => {
      const seen = { error: undefined as string | undefined, ended: false, bytes: 0 };
      appSaw.push(seen);
      s.on('data', (c: Buffer) => (seen.bytes += c.length));
      s.on('end', () => {
        seen.ended = true;
        s.end();
      });
      s.on('error', (e: NodeJS.ErrnoException) => (seen.error = e.code));
    });
    watchPort = watcher.port;
    closeWatcher = watcher.close;
    mesh = await startMesh({
      decide: async (r, connect) => {
        if (r.target.port === 1001) return deny(403, 'policy: not allowed');
        if (r.target.port === 1002) return deny(401, 'policy: needs identity');
        if (r.target.port === closedPort || r.target.port === resetPort) return allow(await connectUpstream(r.target));
        if (r.target.port === 1004) throw Object.assign(new Error('a bug in the handler'), { code: 'ERR_INVALID_ARG_TYPE' });
        if (r.target.port === 1005) throw new Error('a bug without a code');
        if (r.target.port === 1003) return allow(new Socket().connect({ host: '127.0.0.1', port: closedPort }));
        if (r.target.port === watchPort) return allow(await connectUpstream(r.target), (res) => results.push(res));
        return connect();
      },
    });
  });
  afterAll(async () => {
    await mesh?.close();
    await closeResetter?.();
    await closeWatcher?.();
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

  it('answers 500 when the handler fails for a reason that is not the network', async () => {
    expect((await refusal(mesh.client.open(mesh.openOptions({ authority: '127.0.0.1:1004' })))).status).toBe(500);
    expect((await refusal(mesh.client.open(mesh.openOptions({ authority: '127.0.0.1:1005' })))).status).toBe(500);
  });

  it('resets the client stream when the upstream resets its connection', async () => {
    const stream = await mesh.client.open(mesh.openOptions({ authority: `127.0.0.1:${resetPort}` }));
    const err = await new Promise<Error | undefined>((resolve) => {
      stream.on('error', resolve);
      stream.on('close', () => resolve(undefined));
      stream.resume();
      stream.write('trigger');
    });
    // RST_STREAM (INTERNAL_ERROR while the server's side was open, see abortSide), never a clean end
    expect(stream.rstCode).toBe(h2.NGHTTP2_INTERNAL_ERROR);
    expect(err?.message).toMatch(/NGHTTP2_INTERNAL_ERROR/);
    expect(stream.readableEnded).toBe(false);
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
    // every refused, reset and finished stream gave its slot back
    const active = (): number => mesh.client.poolSnapshot().reduce((n, g) => n + g.sessions.reduce((m, s) => m + s.active, 0), 0);
    expect(await eventually(() => active() === 0)).toBe(true);
    expect(mesh.server.stats().streamsActive).toBe(0);
  });

  it('resets the app connection when the client resets the tunnel, and reports the tunnel as unclean', async () => {
    const stream = await mesh.client.open(mesh.openOptions({ authority: `127.0.0.1:${watchPort}` }));
    stream.on('error', () => undefined);
    stream.write(Buffer.alloc(1000));
    await new Promise((r) => setTimeout(r, 50));
    abortSide(stream); // as the node proxy does when the app's connection was reset
    await new Promise((r) => setTimeout(r, 100));
    expect(appSaw.at(-1)).toEqual({ error: 'ECONNRESET', ended: false, bytes: 1000 });
    expect(results.at(-1)).toMatchObject({ bytesToUpstream: 1000, bytesToDownstream: 0, clean: false });
  });

  it('reports a clean tunnel with its byte counts', async () => {
    const stream = await mesh.client.open(mesh.openOptions({ authority: `127.0.0.1:${watchPort}` }));
    const before = results.length;
    stream.resume();
    await new Promise<void>((resolve) => {
      stream.once('close', resolve);
      stream.end(Buffer.alloc(777));
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(appSaw.at(-1)).toEqual({ error: undefined, ended: true, bytes: 777 });
    expect(results.length).toBe(before + 1);
    expect(results.at(-1)).toMatchObject({ bytesToUpstream: 777, bytesToDownstream: 0, clean: true, error: undefined });
  });
});
