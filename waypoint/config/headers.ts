// Header mutations (request_headers_to_add/remove, response_headers_to_add/remove) as Envoy
// applies them: at each level removals first, then additions with the level's append action;
// levels apply from the most specific (weighted cluster, route) to the least (virtual host, route
// configuration), so by default the outer level has the last word.
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from '../../api/gen/envoy/config/core/v3/base';
import { ConfigError } from './errors';

export type MutableHeaders = Record<string, string | string[] | undefined>;

type Action = 'append' | 'add-if-absent' | 'overwrite-or-add' | 'overwrite-if-exists';

interface Addition {
  readonly key: string;
  readonly value: string;
  readonly action: Action;
  readonly keepEmpty: boolean;
}

export interface HeaderMutation {
  readonly remove: readonly string[];
  readonly add: readonly Addition[];
}

export const NO_MUTATION: HeaderMutation = { remove: [], add: [] };

/** Headers a route may never touch (Envoy refuses these). */
const PROTECTED = new Set([':method', ':path', ':scheme', ':authority', 'host', ':status']);

export function compileMutation(add: readonly HeaderValueOption[], remove: readonly string[]): HeaderMutation {
  if (add.length === 0 && remove.length === 0) return NO_MUTATION;
  const additions: Addition[] = add.map((o) => {
    const key = (o.header?.key ?? '').toLowerCase();
    if (!key) throw new ConfigError('header to add has an empty key');
    if (PROTECTED.has(key)) throw new ConfigError(`header ${key} cannot be set by headers_to_add`);
    let action: Action;
    if (o.append !== undefined) action = o.append ? 'append' : 'overwrite-or-add';
    else {
      switch (o.appendAction) {
        case HeaderValueOption_HeaderAppendAction.ADD_IF_ABSENT:
          action = 'add-if-absent';
          break;
        case HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD:
          action = 'overwrite-or-add';
          break;
        case HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS:
          action = 'overwrite-if-exists';
          break;
        default:
          action = 'append';
      }
    }
    const value = o.header?.value || (o.header?.rawValue?.length ? Buffer.from(o.header.rawValue).toString('latin1') : '');
    return { key, value, action, keepEmpty: o.keepEmptyValue };
  });
  const removals = remove.map((r) => r.toLowerCase());
  for (const r of removals) if (PROTECTED.has(r)) throw new ConfigError(`header ${r} cannot be removed by headers_to_remove`);
  return { remove: removals, add: additions };
}

/** Apply one level's mutation to a header object with lower-case keys. */
export function applyMutation(headers: MutableHeaders, m: HeaderMutation): void {
  for (const r of m.remove) delete headers[r];
  for (const a of m.add) {
    if (a.value === '' && !a.keepEmpty) continue;
    const cur = headers[a.key];
    switch (a.action) {
      case 'append':
        if (cur === undefined) headers[a.key] = a.value;
        else headers[a.key] = Array.isArray(cur) ? [...cur, a.value] : [cur, a.value];
        break;
      case 'add-if-absent':
        if (cur === undefined) headers[a.key] = a.value;
        break;
      case 'overwrite-or-add':
        headers[a.key] = a.value;
        break;
      case 'overwrite-if-exists':
        if (cur !== undefined) headers[a.key] = a.value;
        break;
    }
  }
}

/** Apply levels in order (most specific first). */
export function applyMutations(headers: MutableHeaders, levels: readonly HeaderMutation[]): void {
  for (const m of levels) if (m !== NO_MUTATION) applyMutation(headers, m);
}
