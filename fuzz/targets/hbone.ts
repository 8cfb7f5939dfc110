// The HBONE server's CONNECT header handling: the :authority parser, the tunnel headers it reads
// (forwarded, traceparent, baggage) and the node proxy's use of `forwarded`. Properties: nothing
// throws; an accepted authority is an IP of its family with a port in 1..65535 and round-trips
// through formatAuthority; the source a node proxy records always has the tunnel peer's address
// (a client cannot make itself look like another address with `forwarded`).
import { isIP } from 'node:net';
import fc from 'fast-check';
import { formatAuthority, isTarget, parseAuthority } from '../../common/hbone/authority';
import { forwardedEndpoint, requestHeaders, tunnelHeadersOf } from '../../common/hbone/headers';
import { streamSource } from '../../node-proxy/mesh/forwarded';
import { target } from '../target';

const PIECES = [
  '[',
  ']',
  ':',
  '::',
  '1',
  '0',
  '65535',
  '65536',
  '80',
  '127.0.0.1',
  '10.200.1.5',
  '::1',
  'fe80::1%eth0',
  '::ffff:10.0.0.1',
  'for=',
  '"',
  ';',
  ',',
  'by=',
  'proto=http',
  ' ',
  '\t',
  'x',
  '_hidden',
  'unknown',
  '%',
  '/',
  '\u0000',
];
const soup = fc.array(fc.constantFrom(...PIECES), { maxLength: 12 }).map((p) => p.join(''));
const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), soup);
const headerValue = fc.oneof(text, fc.array(text, { maxLength: 3 }), fc.constant(undefined));

interface Input {
  readonly authority: string;
  readonly forwarded: string | string[] | undefined;
  readonly traceparent: string | string[] | undefined;
  readonly baggage: string | string[] | undefined;
  readonly peer: { address: string; port: number };
}

export const hboneTarget = target({
  name: 'hbone-connect',
  what: 'parseAuthority, tunnelHeadersOf/requestHeaders, forwardedEndpoint and the node proxy streamSource on arbitrary CONNECT header values',
  arbitrary: fc.record({
    authority: text,
    forwarded: headerValue,
    traceparent: headerValue,
    baggage: headerValue,
    peer: fc.record({ address: fc.constantFrom('10.200.1.5', '10.200.2.7', '::1', 'fd00::5', '::ffff:10.200.1.5'), port: fc.integer({ min: 1, max: 65535 }) }),
  }),
  unitRuns: 2_000,
  check: (i: Input) => {
    const t = parseAuthority(i.authority);
    if (isTarget(t)) {
      if (isIP(t.host) !== t.family) throw new Error(`accepted host ${t.host} is not IPv${t.family}`);
      if (!(t.port >= 1 && t.port <= 65535)) throw new Error(`accepted port ${t.port}`);
      const again = parseAuthority(formatAuthority(t.host, t.port));
      if (!isTarget(again) || again.host !== t.host || again.port !== t.port) throw new Error(`${i.authority} does not round-trip`);
    } else if (typeof t.problem !== 'string' || t.problem === '') {
      throw new Error('a refusal without a problem');
    }
    const headers = tunnelHeadersOf({ forwarded: i.forwarded, traceparent: i.traceparent, baggage: i.baggage });
    requestHeaders(headers);
    const client = forwardedEndpoint(headers.forwarded)?.address;
    if (client !== undefined && isIP(client) === 0) throw new Error(`forwardedEndpoint gave ${client}`);
    const src = streamSource(i.peer, headers.forwarded);
    if (src.address !== i.peer.address) throw new Error(`forwarded ${headers.forwarded} moved the source to ${src.address}`);
  },
});
