// TLS over a connection someone else opens (a socket inside a lab netns, or Node's own TCP
// connect): wraps a `createConnection` so http.request speaks HTTPS over it, verifying the server
// against `ca` (the mesh trust bundle) and the URL's host — an IP address must be one of the
// certificate's IP SANs, a name one of its DNS SANs.
import type { ClientRequestArgs } from 'node:http';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

type CreateConnection = NonNullable<ClientRequestArgs['createConnection']>;

export function tlsConnector(ca: string | Buffer, inner?: CreateConnection): CreateConnection {
  return (opts, oncreate) => {
    const host = String(opts.host ?? opts.hostname ?? 'localhost').replace(/^\[|\]$/g, '');
    const secure = (raw: Socket): void => {
      const t = tlsConnect({ socket: raw, ca, host, servername: isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], minVersion: 'TLSv1.2' });
      const onError = (err: Error): void => {
        raw.destroy();
        oncreate(err, undefined as unknown as Socket);
      };
      t.once('error', onError);
      t.once('secureConnect', () => {
        t.off('error', onError);
        oncreate(null, t);
      });
    };
    if (inner) {
      const direct = inner(opts, (err, s) => (err ? oncreate(err, undefined as unknown as Socket) : secure(s as Socket)));
      if (direct) secure(direct as Socket);
    } else {
      const s = tcpConnect({ host, port: Number(opts.port ?? 443) });
      s.once('connect', () => secure(s));
      s.once('error', (err) => oncreate(err, undefined as unknown as Socket));
    }
    return undefined as unknown as Socket; // the socket comes through oncreate
  };
}
