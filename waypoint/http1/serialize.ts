// Writing HTTP/1.1 heads: header names must be tokens and values free of CR, LF and other control
// characters (so nothing a route or an upstream supplies can split a message), as node:http's
// own checks. Each head is one latin1 string, written with the first body bytes in one write.
import { STATUS_CODES } from 'node:http';
import { HeadError, isToken, isValidValue } from './parse';

export type OutgoingHeaders = Record<string, string | string[] | number | undefined>;

/** `name: value\r\n` for each header (lists as repeated lines); throws HeadError on an invalid one. */
export function headerLines(headers: OutgoingHeaders): string {
  let out = '';
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined) out += headerLine(name, v);
  }
  return out;
}

/** The line(s) of one header (a list as repeated lines); throws HeadError on an invalid name or value. */
export function headerLine(name: string, v: string | string[] | number): string {
  if (!isToken(name)) throw new HeadError(500, `invalid header name ${JSON.stringify(name)}`);
  if (typeof v === 'string') return oneLine(name, v);
  if (typeof v === 'number') return `${name}: ${v}\r\n`;
  let out = '';
  for (const one of v) out += oneLine(name, one);
  return out;
}

function oneLine(name: string, value: string): string {
  if (!isValidValue(value)) throw new HeadError(500, `invalid character in the value of header ${name}`);
  return `${name}: ${value}\r\n`;
}

/** Status lines made so far, by status (100-999: writeHead refuses others). */
const statusLines: string[] = [];

export function statusLine(status: number): string {
  return (statusLines[status] ??= `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`);
}

let dateAt = 0;
let dateText = '';
/** The Date header's value, formatted at most once a second. */
export function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000);
    dateText = new Date(dateAt).toUTCString();
  }
  return dateText;
}

/** `s` and then `body` as one buffer (one write for a head and a small body). */
export function joined(s: string, body: Buffer | undefined): Buffer {
  const n = s.length;
  if (!body || body.length === 0) return Buffer.from(s, 'latin1');
  const out = Buffer.allocUnsafe(n + body.length);
  out.write(s, 0, n, 'latin1');
  body.copy(out, n);
  return out;
}
