// gateway.networking.k8s.io/v1 HTTPRoute in Gateway API's mesh profile: attached to a Service by
// parentRef, it routes requests to that Service (at its waypoint) by path, headers, query
// parameters and method, with filters, weighted backends, timeouts and retries.
import { z } from 'zod';
import { dnsLabel, dnsSubdomain, duration, durationMs, portNumber } from './fields';
import type { Resource } from './meta';

const HEADER_NAME_RE = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const headerName = z.string().min(1).max(256).regex(HEADER_NAME_RE, 'must be an HTTP header name (RFC 7230 token characters)');

/** A Service reference; the mesh profile only routes to Services. */
const serviceGroup = z
  .string()
  .refine((g) => g === '' || g === 'core', { message: 'must be "" (the core API group): only Services are supported' })
  .default('');
const serviceKind = z.literal('Service', { message: 'must be Service' }).default('Service');

export const parentRef = z.strictObject({
  group: serviceGroup,
  kind: serviceKind,
  name: dnsSubdomain,
  namespace: dnsLabel.optional(),
  port: portNumber.optional(),
  sectionName: z.string().optional(),
});
export type ParentRef = z.output<typeof parentRef>;

export const backendObjectRef = z.strictObject({
  group: serviceGroup,
  kind: serviceKind,
  name: dnsSubdomain,
  namespace: dnsLabel.optional(),
  port: portNumber.optional(),
});

const pathMatch = z
  .strictObject({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression'], { message: 'must be Exact, PathPrefix or RegularExpression' }).default('PathPrefix'),
    value: z.string().max(1024).default('/'),
  })
  .superRefine((m, ctx) => {
    if (m.type === 'RegularExpression') {
      try {
        new RegExp(m.value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['value'], message: `invalid regular expression: ${(err as Error).message}` });
      }
    } else if (!m.value.startsWith('/')) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: 'must start with "/"' });
    } else if (/\/\/|\/\.\.?(\/|$)|[?#]/.test(m.value)) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: 'must not contain "//", "/./", "/../", "?" or "#"' });
    }
  });

const valueMatch = (what: string) =>
  z
    .strictObject({
      type: z.enum(['Exact', 'RegularExpression'], { message: 'must be Exact or RegularExpression' }).default('Exact'),
      name: what === 'header' ? headerName : z.string().min(1).max(256),
      value: z.string().max(4096),
    })
    .superRefine((m, ctx) => {
      if (m.type !== 'RegularExpression') return;
      try {
        new RegExp(m.value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['value'], message: `invalid regular expression: ${(err as Error).message}` });
      }
    });

export const httpRouteMatch = z.strictObject({
  path: pathMatch.optional(),
  headers: z.array(valueMatch('header')).max(16).optional(),
  queryParams: z.array(valueMatch('query')).max(16).optional(),
  method: z
    .enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'], { message: 'must be an HTTP method in upper case, e.g. GET' })
    .optional(),
});
export type HTTPRouteMatch = z.output<typeof httpRouteMatch>;

const headerValue = z.strictObject({ name: headerName, value: z.string().max(4096) });
const headerModifier = z.strictObject({
  set: z.array(headerValue).max(16).optional(),
  add: z.array(headerValue).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
});
export type HeaderModifier = z.output<typeof headerModifier>;

const pathModifier = z
  .strictObject({
    type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch'], { message: 'must be ReplaceFullPath or ReplacePrefixMatch' }),
    replaceFullPath: z.string().max(1024).optional(),
    replacePrefixMatch: z.string().max(1024).optional(),
  })
  .superRefine((m, ctx) => {
    const field = m.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
    const other = m.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
    if (m[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required when type is ${m.type}` });
    if (m[other] !== undefined) ctx.addIssue({ code: 'custom', path: [other], message: `must not be set when type is ${m.type}` });
  });

export const httpRouteFilter = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }),
    z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }),
    z.strictObject({
      type: z.literal('RequestRedirect'),
      requestRedirect: z.strictObject({
        scheme: z.enum(['http', 'https'], { message: 'must be http or https' }).optional(),
        hostname: z.string().min(1).max(253).optional(),
        path: pathModifier.optional(),
        port: portNumber.optional(),
        statusCode: z
          .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], { message: 'must be 301, 302, 303, 307 or 308' })
          .default(302),
      }),
    }),
    z.strictObject({
      type: z.literal('URLRewrite'),
      urlRewrite: z.strictObject({ hostname: z.string().min(1).max(253).optional(), path: pathModifier.optional() }),
    }),
    z.strictObject({
      type: z.literal('RequestMirror'),
      requestMirror: z
        .strictObject({
          backendRef: backendObjectRef,
          percent: z.number().int().min(0).max(100).optional(),
          fraction: z.strictObject({ numerator: z.number().int().min(0), denominator: z.number().int().min(1).default(100) }).optional(),
        })
        .refine((m) => m.percent === undefined || m.fraction === undefined, { message: 'percent and fraction are mutually exclusive' }),
    }),
  ],
  { error: () => 'type must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror' },
);
export type HTTPRouteFilter = z.output<typeof httpRouteFilter>;

export const httpBackendRef = backendObjectRef.extend({
  weight: z.number().int().min(0, 'must be 0 or more').max(1_000_000).default(1),
  filters: z.array(httpRouteFilter).max(16).optional(),
});
export type HTTPBackendRef = z.output<typeof httpBackendRef>;

export const httpRouteRule = z
  .strictObject({
    name: dnsLabel.optional(),
    matches: z
      .array(httpRouteMatch)
      .max(64)
      .default([{ path: { type: 'PathPrefix', value: '/' } }]),
    filters: z.array(httpRouteFilter).max(16).optional(),
    backendRefs: z.array(httpBackendRef).optional(),
    timeouts: z.strictObject({ request: duration.optional(), backendRequest: duration.optional() }).optional(),
    retry: z
      .strictObject({
        codes: z.array(z.number().int().min(400).max(599)).optional(),
        attempts: z.number().int().min(0).max(100).optional(),
        backoff: duration.optional(),
      })
      .optional(),
  })
  .superRefine((rule, ctx) => {
    const types = (rule.filters ?? []).map((f) => f.type);
    if (types.includes('RequestRedirect') && types.includes('URLRewrite')) {
      ctx.addIssue({ code: 'custom', path: ['filters'], message: 'RequestRedirect and URLRewrite cannot be used in the same rule' });
    }
    for (const t of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']) {
      if (types.filter((x) => x === t).length > 1) ctx.addIssue({ code: 'custom', path: ['filters'], message: `${t} may appear at most once per rule` });
    }
    const usesPrefixRewrite = (rule.filters ?? []).some(
      (f) =>
        (f.type === 'URLRewrite' && f.urlRewrite.path?.type === 'ReplacePrefixMatch') ||
        (f.type === 'RequestRedirect' && f.requestRedirect.path?.type === 'ReplacePrefixMatch'),
    );
    if (usesPrefixRewrite && !rule.matches.every((m) => (m.path?.type ?? 'PathPrefix') === 'PathPrefix')) {
      ctx.addIssue({ code: 'custom', path: ['filters'], message: 'ReplacePrefixMatch needs every match of the rule to be a PathPrefix path match' });
    }
    const t = rule.timeouts;
    if (t?.request && t.backendRequest) {
      const request = durationMs(t.request);
      if (request !== 0 && durationMs(t.backendRequest) > request) {
        ctx.addIssue({ code: 'custom', path: ['timeouts', 'backendRequest'], message: 'must not be longer than timeouts.request' });
      }
    }
  });
export type HTTPRouteRule = z.output<typeof httpRouteRule>;

export const httpRouteSpec = z.strictObject({
  parentRefs: z.array(parentRef).min(1, 'a mesh HTTPRoute needs a Service parentRef').max(32),
  hostnames: z.array(z.string().min(1).max(253)).max(16).optional(),
  rules: z
    .array(httpRouteRule)
    .max(16)
    .default([{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }]),
});
export type HTTPRouteSpec = z.output<typeof httpRouteSpec>;
export type HTTPRoute = Resource<'HTTPRoute', HTTPRouteSpec>;
