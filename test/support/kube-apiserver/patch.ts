// The PATCH bodies the stand-in API server accepts:
// - application/merge-patch+json (RFC 7386): what `kubectl label`/`annotate` send, and what
//   `kubectl apply` sends for custom resources;
// - application/strategic-merge-patch+json, for the simple cases kubectl sends: maps merge as in a
//   merge patch; `$patch: delete|replace` on a map, `$retainKeys` and `$setElementOrder/<list>` are
//   honoured or dropped; a list of objects with a merge key known here (containers/ports/env/
//   volumes/... by `name`, ports by `port` or `containerPort`) merges element-wise; any other list
//   is replaced whole (as for a list without a patch strategy);
// - application/json-patch+json (RFC 6902): add, remove, replace, test.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const MERGE_KEYS: Record<string, readonly string[]> = {
  containers: ['name'],
  initContainers: ['name'],
  env: ['name'],
  volumes: ['name'],
  volumeMounts: ['mountPath'],
  ports: ['port', 'containerPort', 'name'],
  conditions: ['type'],
  ownerReferences: ['uid'],
  imagePullSecrets: ['name'],
};

function mergeList(key: string, target: Json[] | undefined, patch: Json[]): Json[] {
  const keys = MERGE_KEYS[key];
  if (!keys || !patch.every(isObject) || !(target ?? []).every(isObject)) return patch.filter((p) => !(isObject(p) && p.$patch === 'delete'));
  const out = [...(target ?? [])] as Record<string, Json>[];
  for (const p of patch as Record<string, Json>[]) {
    const mk = keys.find((k) => p[k] !== undefined);
    const i = mk === undefined ? -1 : out.findIndex((o) => o[mk] === p[mk]);
    if (p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = strategicMergePatch(out[i], p) as Record<string, Json>;
    else out.push(strategicMergePatch(undefined, p) as Record<string, Json>);
  }
  return out;
}

export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  if (patch.$patch === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return rest;
  }
  if (patch.$patch === 'delete') return null;
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  const retain = Array.isArray(patch.$retainKeys) ? new Set(patch.$retainKeys.map(String)) : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else if (Array.isArray(v)) out[k] = mergeList(k, Array.isArray(out[k]) ? (out[k] as Json[]) : undefined, v);
    else out[k] = strategicMergePatch(out[k], v);
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.has(k)) delete out[k];
  return out;
}

export class PatchError extends Error {}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be an array of operations');
  let doc = structuredClone(target);
  for (const op of ops as { op: string; path: string; value?: Json }[]) {
    const segs = pointer(op.path);
    if (segs.length === 0) {
      if (op.op === 'replace' || op.op === 'add') doc = structuredClone(op.value ?? null);
      continue;
    }
    let parent: Json = doc;
    for (const s of segs.slice(0, -1)) {
      const next: Json | undefined = Array.isArray(parent) ? parent[Number(s)] : isObject(parent) ? parent[s] : undefined;
      if (next === undefined) throw new PatchError(`path ${op.path} does not exist`);
      parent = next;
    }
    const last = segs[segs.length - 1];
    const get = (): Json | undefined => (Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? parent[last] : undefined);
    switch (op.op) {
      case 'test':
        if (JSON.stringify(get()) !== JSON.stringify(op.value)) throw new PatchError(`test failed at ${op.path}`);
        break;
      case 'remove':
        if (get() === undefined) throw new PatchError(`path ${op.path} does not exist`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else if (isObject(parent)) delete parent[last];
        break;
      case 'add':
      case 'replace':
        if (op.op === 'replace' && get() === undefined) throw new PatchError(`path ${op.path} does not exist`);
        if (Array.isArray(parent)) {
          if (last === '-') parent.push(structuredClone(op.value ?? null));
          else if (op.op === 'add') parent.splice(Number(last), 0, structuredClone(op.value ?? null));
          else parent[Number(last)] = structuredClone(op.value ?? null);
        } else if (isObject(parent)) parent[last] = structuredClone(op.value ?? null);
        break;
      default:
        throw new PatchError(`unsupported JSON patch op "${op.op}"`);
    }
  }
  return doc;
}
