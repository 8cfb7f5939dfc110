// Request mirroring (shadowing): once the request body is complete (and fit the buffer), a copy
// goes to the mirror cluster with "-shadow" appended to the host, as Envoy does; fire and forget,
// its response discarded, cut after 10 s.
import type { MutableHeaders } from '../config/headers';
import type { BodyTee } from './body-tee';
import type { ConfigState } from './state';
import type { AttemptListener, UpstreamHead, UpstreamTransport } from './upstream';

const MIRROR_TIMEOUT_MS = 10_000;

export function mirrorRequest(
  state: ConfigState,
  transport: UpstreamTransport,
  cluster: string,
  suffix: boolean,
  req: { method: string; path: string; authority: string; headers: MutableHeaders },
  tee: BodyTee,
): void {
  // The headers as they are now: the original request's object goes on to its own upstream.
  const headers: MutableHeaders = {};
  for (const k in req.headers) if (k !== 'host' && k.charCodeAt(0) !== 58) headers[k] = req.headers[k];
  void tee.complete().then((body) => {
    if (body === undefined) return; // too large to mirror
    const rt = state.clusters.get(cluster);
    if (!rt) return;
    const ep = rt.balancer.pick();
    if (!ep) return;
    const host = suffix ? shadowHost(req.authority) : req.authority;
    let timer: NodeJS.Timeout | undefined;
    const discard: AttemptListener = {
      onHead(h: UpstreamHead) {
        h.body.resume();
        h.body.once('end', () => clearTimeout(timer));
        h.body.once('close', () => clearTimeout(timer));
      },
      onFailure() {
        clearTimeout(timer);
      },
    };
    try {
      const att = transport.send(rt.config, ep.endpoint, { method: req.method, path: req.path, authority: host, headers }, discard);
      att.sink.on('error', () => undefined);
      att.sink.end(body);
      timer = setTimeout(() => att.abort(), MIRROR_TIMEOUT_MS);
    } catch {
      // fire and forget
    }
  });
}

function stripPort(authority: string): string {
  const i = authority.lastIndexOf(':');
  return i > 0 && !authority.endsWith(']') && /^\d+$/.test(authority.slice(i + 1)) ? authority.slice(0, i) : authority;
}

/** Envoy appends "-shadow" to the host part of the authority. */
export function shadowHost(authority: string): string {
  const host = stripPort(authority);
  return `${host}-shadow${authority.slice(host.length)}`;
}
