// Parses listen addresses: `127.0.0.1:15014`, `[::1]:15014`, `:15014` (all interfaces), `15014`.
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListen(text: string, defaultHost = '127.0.0.1'): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`invalid listen address "${text}": expected HOST:PORT, [IPv6]:PORT or :PORT, e.g. 127.0.0.1:15014`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? (/^:/.test(text) ? '0.0.0.0' : defaultHost) : host, port };
}

export function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
