// Golden files for pure translations: `expectGolden(dir, name, value)` compares `value` as JSON
// with <dir>/<name>.json. UPDATE_GOLDEN=1 rewrites the files (review the diff before committing);
// a missing file is written on a developer's machine and is an error under CI=true.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

export function expectGolden(dir: string, name: string, actual: unknown): void {
  const file = join(dir, `${name}.json`);
  const text = JSON.stringify(actual, null, 2) + '\n';
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
    if (process.env.CI === 'true' && !existsSync(file)) throw new Error(`golden file ${file} is missing; run with UPDATE_GOLDEN=1 and commit it`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, text);
  }
  expect(JSON.parse(text)).toEqual(JSON.parse(readFileSync(file, 'utf8')));
}
