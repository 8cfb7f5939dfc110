// Checks encoded Envoy resources against the protoc-gen-validate rules in Envoy's own .proto files
// (the checks Envoy runs on every config it loads before anything else): required fields and
// oneofs, string lengths and header-name/value patterns, number and duration bounds, defined
// enums, list sizes; recursing into nested messages and into google.protobuf.Any by type URL (an
// Any whose type is not a known Envoy type is a violation too).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';

const root = join(__dirname, '..', '..');
const deps = join(root, 'node_modules/@grpc/grpc-js-xds/deps');
const INCLUDES = [
  join(deps, 'envoy-api'),
  join(deps, 'xds'),
  join(deps, 'googleapis'),
  join(deps, 'protoc-gen-validate'),
  join(root, 'node_modules/protoc/include'),
];
const DIRS = [
  'envoy/config/listener/v3',
  'envoy/config/route/v3',
  'envoy/config/cluster/v3',
  'envoy/config/endpoint/v3',
  'envoy/config/bootstrap/v3',
  'envoy/extensions/filters/network/http_connection_manager/v3',
  'envoy/extensions/filters/network/tcp_proxy/v3',
  'envoy/extensions/filters/network/rbac/v3',
  'envoy/extensions/filters/http/router/v3',
  'envoy/extensions/filters/http/rbac/v3',
  'envoy/extensions/filters/http/fault/v3',
  'envoy/extensions/filters/http/local_ratelimit/v3',
  'envoy/extensions/transport_sockets/tls/v3',
  'envoy/extensions/bootstrap/internal_listener/v3',
  'envoy/extensions/upstreams/http/v3',
];

type Rules = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- protoc-gen-validate rule trees are untyped JSON

let loaded: protobuf.Root | undefined;
function envoyRoot(): protobuf.Root {
  if (loaded) return loaded;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => INCLUDES.map((d) => join(d, target)).find((p) => existsSync(p)) ?? target;
  const files = DIRS.flatMap((d) =>
    readdirSync(join(deps, 'envoy-api', d))
      .filter((f) => f.endsWith('.proto'))
      .map((f) => `${d}/${f}`),
  );
  r.loadSync(files, { keepCase: true });
  r.resolveAll();
  return (loaded = r);
}

// protobufjs declares parsedOptions as `{ [k: string]: any[] }`, but at run time it is null or an
// array of `{ '(option.name)': value }` objects (src/object.js setParsedOption): read it as that.
const parsedOptionsOf = (o: protobuf.ReflectionObject): Record<string, unknown>[] =>
  (o.parsedOptions as unknown as Record<string, unknown>[] | null | undefined) ?? [];

function rulesOf(o: protobuf.ReflectionObject, key = '(validate.rules)'): Rules | undefined {
  let out: Rules | undefined;
  for (const opt of parsedOptionsOf(o)) if (key in opt) out = { ...(out ?? {}), ...(opt[key] as Rules) };
  return out;
}

const num = (v: unknown): number => (v && typeof v === 'object' && 'toNumber' in v ? (v as { toNumber(): number }).toNumber() : Number(v ?? 0));
const durationSeconds = (v: Rules | undefined): number => (v ? num(v.seconds) + num(v.nanos) / 1e9 : 0);

const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_VALUE_LOOSE = /^[^\u0000\u000A\u000D]*$/;

class Checker {
  readonly violations: string[] = [];
  constructor(private readonly r: protobuf.Root) {}

  message(type: protobuf.Type, msg: protobuf.Message & Record<string, unknown>, path: string): void {
    if (type.fullName === '.google.protobuf.Any') return this.any(msg, path);
    for (const oneof of type.oneofsArray) {
      const required = parsedOptionsOf(oneof).some((o) => o['(validate.required)'] === true);
      if (required && !oneof.oneof.some((f) => has(msg, f))) this.fail(path, `one of ${oneof.oneof.join(', ')} is required`);
    }
    for (const field of type.fieldsArray) this.field(field, msg, `${path}.${field.name}`);
  }

  private any(msg: Record<string, unknown>, path: string): void {
    const url = String(msg.type_url ?? '');
    const name = url.slice(url.lastIndexOf('/') + 1);
    let inner: protobuf.Type;
    try {
      inner = this.r.lookupType(name);
    } catch {
      return this.fail(path, `Any of type ${url || '(none)'} is not an Envoy type loaded here`);
    }
    this.message(
      inner,
      inner.decode((msg.value as Uint8Array) ?? new Uint8Array()) as protobuf.Message & Record<string, unknown>,
      `${path}<${name.split('.').pop()}>`,
    );
  }

  private field(field: protobuf.Field, msg: Record<string, unknown>, path: string): void {
    field.resolve();
    const rules = rulesOf(field);
    const present = has(msg, field.name);
    // A oneof member's rules apply only when it is the one set.
    if (field.partOf && !present) return;
    const value = msg[field.name];
    if (field.map) {
      const entries = Object.entries((value as Record<string, unknown>) ?? {});
      if (rules?.map?.min_pairs !== undefined && entries.length < num(rules.map.min_pairs)) this.fail(path, `needs at least ${rules.map.min_pairs} entries`);
      if (field.resolvedType instanceof protobuf.Type)
        for (const [k, v] of entries) this.message(field.resolvedType, v as protobuf.Message & Record<string, unknown>, `${path}[${k}]`);
      return;
    }
    if (field.repeated) {
      const list = (value as unknown[]) ?? [];
      const r = rules?.repeated as Rules | undefined;
      if (r?.min_items !== undefined && list.length < num(r.min_items)) this.fail(path, `needs at least ${r.min_items} items`);
      if (r?.max_items !== undefined && list.length > num(r.max_items)) this.fail(path, `allows at most ${r.max_items} items`);
      list.forEach((v, i) => this.value(field, v, true, r?.items as Rules | undefined, `${path}[${i}]`));
      return;
    }
    this.value(field, value, present, rules, path);
  }

  private value(field: protobuf.Field, value: unknown, present: boolean, rules: Rules | undefined, path: string): void {
    const t = field.resolvedType;
    if (t instanceof protobuf.Type) {
      const required = rules?.message?.required || rules?.any?.required || rules?.duration?.required || rules?.timestamp?.required;
      if (!present) {
        if (required) this.fail(path, 'is required');
        return;
      }
      if (t.fullName === '.google.protobuf.Duration' && rules?.duration) this.duration(value as Rules, rules.duration as Rules, path);
      const wrapped = /^\.google\.protobuf\.(U?Int(32|64)|Double|Float)Value$/.test(t.fullName);
      if (wrapped && rules) this.number((value as Rules).value, rules, path);
      if (rules?.message?.skip) return;
      this.message(t, value as protobuf.Message & Record<string, unknown>, path);
      return;
    }
    if (t instanceof protobuf.Enum) {
      if (rules?.enum?.defined_only && !Object.values(t.values).includes(num(value))) this.fail(path, `${String(value)} is not a defined ${t.name} value`);
      return;
    }
    if (!rules) return;
    if (field.type === 'string') {
      const s = String(value ?? '');
      const r = rules.string as Rules | undefined;
      if (!r || (r.ignore_empty && s === '')) return;
      if (r.min_len !== undefined && [...s].length < num(r.min_len)) this.fail(path, `must be at least ${r.min_len} characters`);
      if (r.max_len !== undefined && [...s].length > num(r.max_len)) this.fail(path, `must be at most ${r.max_len} characters`);
      if (r.min_bytes !== undefined && Buffer.byteLength(s) < num(r.min_bytes)) this.fail(path, `must be at least ${r.min_bytes} bytes`);
      if (r.max_bytes !== undefined && Buffer.byteLength(s) > num(r.max_bytes)) this.fail(path, `must be at most ${r.max_bytes} bytes`);
      if (r.prefix !== undefined && !s.startsWith(r.prefix)) this.fail(path, `must start with ${r.prefix}`);
      if (r.in && !(r.in as string[]).includes(s)) this.fail(path, `must be one of ${(r.in as string[]).join(', ')}`);
      if (r.well_known_regex === 'HTTP_HEADER_NAME' && s !== '' && !HEADER_NAME.test(s)) this.fail(path, `"${s}" is not an HTTP header name`);
      if (r.well_known_regex === 'HTTP_HEADER_VALUE' && !(r.strict === false ? HEADER_VALUE_LOOSE : HEADER_VALUE_STRICT).test(s))
        this.fail(path, 'is not a valid HTTP header value');
      return;
    }
    this.number(value, rules, path);
  }

  private number(value: unknown, rules: Rules, path: string): void {
    const r = (rules.uint32 ?? rules.int32 ?? rules.uint64 ?? rules.int64 ?? rules.double ?? rules.float ?? rules.sint32) as Rules | undefined;
    if (!r) return;
    const v = num(value);
    if (r.gt !== undefined && !(v > num(r.gt))) this.fail(path, `${v} must be > ${r.gt}`);
    if (r.gte !== undefined && !(v >= num(r.gte))) this.fail(path, `${v} must be >= ${r.gte}`);
    if (r.lt !== undefined && !(v < num(r.lt))) this.fail(path, `${v} must be < ${r.lt}`);
    if (r.lte !== undefined && !(v <= num(r.lte))) this.fail(path, `${v} must be <= ${r.lte}`);
    if (r.const !== undefined && v !== num(r.const)) this.fail(path, `${v} must be ${r.const}`);
  }

  private duration(value: Rules, r: Rules, path: string): void {
    const v = durationSeconds(value);
    if (r.gt !== undefined && !(v > durationSeconds(r.gt))) this.fail(path, `duration ${v}s must be > ${durationSeconds(r.gt)}s`);
    if (r.gte !== undefined && !(v >= durationSeconds(r.gte))) this.fail(path, `duration ${v}s must be >= ${durationSeconds(r.gte)}s`);
    if (r.lt !== undefined && !(v < durationSeconds(r.lt))) this.fail(path, `duration ${v}s must be < ${durationSeconds(r.lt)}s`);
    if (r.lte !== undefined && !(v <= durationSeconds(r.lte))) this.fail(path, `duration ${v}s must be <= ${durationSeconds(r.lte)}s`);
  }

  private fail(path: string, why: string): void {
    this.violations.push(`${path}: ${why}`);
  }
}

function has(msg: Record<string, unknown>, name: string): boolean {
  if (!Object.prototype.hasOwnProperty.call(msg, name)) return false;
  const v = msg[name];
  if (Array.isArray(v)) return v.length > 0;
  return v !== undefined && v !== null;
}

/** The protoc-gen-validate violations of an encoded message of Envoy type `fullName` (empty: valid). */
export function pgvViolations(fullName: string, bytes: Uint8Array): string[] {
  const r = envoyRoot();
  const type = r.lookupType(fullName);
  const checker = new Checker(r);
  checker.message(type, type.decode(bytes) as protobuf.Message & Record<string, unknown>, type.name);
  return checker.violations;
}
