// The layers of the tree point down only:
//   common, api (generated), cli/command.ts  <-  native  <-  {control, node-proxy, waypoint}  <-  explain  <-  {lab, helm}  <-  {bench, fuzz}  <-  cli/main.ts
// explain/ evaluates connections with the node proxy's and the waypoint's own code over the control
// plane's translations, so it sits above all three; control/ gets it injected (an Explainer).
// The product (control plane, node proxy, waypoint) runs on plain hosts and on Kubernetes without
// the netns lab; what the lab lends the product goes through product-side interfaces (a
// WorkloadSource, a ControlPlaneDialer) that the dispatcher wires in. This test reads the imports
// of every source file (tests excepted: they sit on top) and fails on one that points up, and checks
// that nothing control, node-proxy or waypoint load reaches lab/ or bench/.
// `bash scripts/typecheck-without-lab.sh` (run by `npm run typecheck`) type-checks them in a copy
// of the tree without lab/, bench/ and cli/main.ts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

/** Rank of a file's layer; an import may only go to a rank at or below its own. */
export function layerOf(rel: string): { name: string; rank: number } | undefined {
  const p = rel
    .split(sep)
    .join('/')
    .replace(/\.(ts|js)$/, '');
  if (p === 'cli/command') return { name: 'cli/command', rank: 0 }; // the Command contract every component's cli implements
  if (p.startsWith('cli/')) return { name: 'cli', rank: 5 };
  const top = p.split('/')[0];
  // helm/ (install manifests) and fuzz/ (fast-check targets) sit on the product like the lab and bench.
  const ranks: Record<string, number> = {
    common: 0,
    api: 0,
    native: 1,
    control: 2,
    'node-proxy': 2,
    waypoint: 2,
    explain: 2.5,
    lab: 3,
    helm: 3,
    bench: 4,
    fuzz: 4,
    test: 6,
  };
  return top in ranks ? { name: top, rank: ranks[top] } : undefined;
}

const SKIP_DIRS = new Set(['node_modules', 'dist', 'build', '.git', '.nm-stamps', 'test']);

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name) && !(dir === ROOT && e.name === 'scripts')) sourceFiles(join(dir, e.name), out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !/\.test\.ts$/.test(e.name) && dir !== ROOT) {
      out.push(join(dir, e.name));
    }
  }
  return out;
}

/** Every relative import (static, `export … from`, dynamic `import()`, `require`) of a file. */
function relativeImports(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName).filter((n) => n.startsWith('.'));
}

describe('layers', () => {
  it('classifies the layers as documented', () => {
    expect(layerOf('common/hbone/client.ts')?.rank).toBe(0);
    expect(layerOf('cli/command.ts')?.rank).toBe(0);
    expect(layerOf('native/netns.ts')?.rank).toBe(1);
    expect(layerOf('node-proxy/cli.ts')?.rank).toBeLessThan(layerOf('lab/cli.ts')!.rank);
    expect(layerOf('control/api/server.ts')?.rank).toBeLessThan(layerOf('explain/evaluate.ts')!.rank);
    expect(layerOf('waypoint/proxy/filters.ts')?.rank).toBeLessThan(layerOf('explain/evaluate.ts')!.rank);
    expect(layerOf('explain/evaluate.ts')?.rank).toBeLessThan(layerOf('lab/cli.ts')!.rank);
    expect(layerOf('lab/cli.ts')?.rank).toBeLessThan(layerOf('bench/mesh.ts')!.rank);
    expect(layerOf('bench/mesh.ts')?.rank).toBeLessThan(layerOf('cli/main.ts')!.rank);
  });

  it('no source file imports a layer above its own', () => {
    const files = sourceFiles(ROOT);
    expect(files.length).toBeGreaterThan(100);
    const upward: string[] = [];
    for (const file of files) {
      const from = relative(ROOT, file);
      const own = layerOf(from);
      if (!own) continue;
      for (const spec of relativeImports(file)) {
        const to = relative(ROOT, resolve(dirname(file), spec));
        const target = layerOf(to);
        if (target && target.rank > own.rank) upward.push(`${from} (${own.name}) imports ${spec} (${target.name})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('nothing control, node-proxy, waypoint or explain load reaches lab/, bench/ or cli/main.ts', () => {
    // tsc type-checks a file set with its transitive imports only, so this closure is what makes
    // 'delete lab/ and type-check' hold; scripts/typecheck-without-lab.sh does exactly that.
    const seen = new Set<string>();
    const stack = sourceFiles(ROOT).filter((f) => /^(control|node-proxy|waypoint|explain)\//.test(relative(ROOT, f).split(sep).join('/')));
    const reached: string[] = [];
    while (stack.length) {
      const file = stack.pop() as string;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const spec of relativeImports(file)) {
        const base = resolve(dirname(file), spec).replace(/\.js$/, '');
        const target = [`${base}.ts`, join(base, 'index.ts')].find((c) => existsSync(c));
        if (!target) continue; // a JSON file or a path outside the sources
        const rel = relative(ROOT, target).split(sep).join('/');
        if (/^(lab|bench|test)\//.test(rel) || rel === 'cli/main.ts') reached.push(`${relative(ROOT, file)} -> ${rel}`);
        else stack.push(target);
      }
    }
    expect(seen.size).toBeGreaterThan(100);
    expect(reached).toEqual([]);
  });
});
