// Envoy's matchers compiled to closures: RE2-style regular expressions (whole-string match),
// StringMatcher, HeaderMatcher and QueryParameterMatcher. A matcher Envoy would reject (a regex
// RE2 cannot compile, a custom extension) throws ConfigError, which NACKs the resource.
import type { HeaderMatcher, QueryParameterMatcher } from '../../api/gen/envoy/config/route/v3/route_components';
import type { RegexMatcher } from '../../api/gen/envoy/type/matcher/v3/regex';
import type { StringMatcher } from '../../api/gen/envoy/type/matcher/v3/string';
import { ConfigError } from './errors';
import { queryParams, type RequestView } from './request';

export type StringMatch = (value: string) => boolean;
export type RequestMatch = (req: RequestView) => boolean;

/** Constructs RE2 does not have (it guarantees linear time): look-around and back-references. */
const NOT_RE2 = /\(\?<?[=!]|\\[1-9]|\\k</;

/** A regex as Envoy compiles it (RE2); `anchored` wraps it so it must match the whole input. */
export function compileRegex(m: RegexMatcher | undefined, anchored = true, flags = ''): RegExp {
  const source = m?.regex ?? '';
  if (!source) throw new ConfigError('regex is empty');
  if (NOT_RE2.test(source)) throw new ConfigError(`regex ${JSON.stringify(source)} uses look-around or back-references, which RE2 does not support`);
  try {
    return new RegExp(anchored ? `^(?:${source})$` : source, flags);
  } catch (err) {
    throw new ConfigError(`regex ${JSON.stringify(source)} does not compile: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function compileStringMatcher(m: StringMatcher | undefined): StringMatch {
  const p = m?.matchPattern;
  if (!p) throw new ConfigError('string matcher has no match_pattern');
  const ic = m.ignoreCase;
  const norm = ic ? (s: string): string => s.toLowerCase() : (s: string): string => s;
  switch (p.$case) {
    case 'exact': {
      const want = norm(p.value);
      return (v) => norm(v) === want;
    }
    case 'prefix': {
      const want = norm(p.value);
      return (v) => norm(v).startsWith(want);
    }
    case 'suffix': {
      const want = norm(p.value);
      return (v) => norm(v).endsWith(want);
    }
    case 'contains': {
      const want = norm(p.value);
      return (v) => norm(v).includes(want);
    }
    case 'safeRegex': {
      const re = compileRegex(p.value);
      return (v) => re.test(v);
    }
    default:
      throw new ConfigError(`string matcher ${p.$case} is not supported by the nodemesh waypoint`);
  }
}

export function compileHeaderMatcher(m: HeaderMatcher): RequestMatch {
  const name = m.name.toLowerCase();
  if (!name) throw new ConfigError('header matcher has no name');
  const spec = m.headerMatchSpecifier;
  let test: (value: string | undefined) => boolean;
  if (!spec) {
    // No specifier: the header must be present.
    test = (v) => v !== undefined;
  } else {
    switch (spec.$case) {
      case 'presentMatch': {
        const want = spec.value;
        test = (v) => (v !== undefined) === want;
        break;
      }
      case 'exactMatch': {
        const want = spec.value;
        test = (v) => v === want;
        break;
      }
      case 'prefixMatch': {
        const want = spec.value;
        test = (v) => v !== undefined && v.startsWith(want);
        break;
      }
      case 'suffixMatch': {
        const want = spec.value;
        test = (v) => v !== undefined && v.endsWith(want);
        break;
      }
      case 'containsMatch': {
        const want = spec.value;
        test = (v) => v !== undefined && v.includes(want);
        break;
      }
      case 'safeRegexMatch': {
        const re = compileRegex(spec.value);
        test = (v) => v !== undefined && re.test(v);
        break;
      }
      case 'stringMatch': {
        const sm = compileStringMatcher(spec.value);
        test = (v) => v !== undefined && sm(v);
        break;
      }
      case 'rangeMatch': {
        const start = Number(spec.value.start);
        const end = Number(spec.value.end);
        test = (v) => {
          if (v === undefined || !/^-?\d+$/.test(v)) return false;
          const n = Number(v);
          return n >= start && n < end;
        };
        break;
      }
      default:
        throw new ConfigError(`header matcher ${(spec as { $case: string }).$case} is not supported`);
    }
  }
  const invert = m.invertMatch;
  const missingAsEmpty = m.treatMissingHeaderAsEmpty;
  const isPresence = spec?.$case === 'presentMatch' || !spec;
  return (req) => {
    let v = req.header(name);
    if (v === undefined && missingAsEmpty) v = '';
    // Envoy: a missing header fails a value matcher even when inverted (unless treated as empty).
    if (v === undefined && !isPresence) return false;
    return test(v) !== invert;
  };
}

export function compileQueryParameterMatcher(m: QueryParameterMatcher): (params: Map<string, string>) => boolean {
  const name = m.name;
  if (!name) throw new ConfigError('query parameter matcher has no name');
  const spec = m.queryParameterMatchSpecifier;
  if (!spec) return (p) => p.has(name);
  if (spec.$case === 'presentMatch') {
    const want = spec.value;
    return (p) => p.has(name) === want;
  }
  const sm = compileStringMatcher(spec.value);
  return (p) => {
    const v = p.get(name);
    return v !== undefined && sm(v);
  };
}

export { queryParams };
