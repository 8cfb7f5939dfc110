// `npm run bench [-- NAME… [--option value…]]`: runs every benchmark module in bench/ (each a script
// of its own, run one after another so they never share the machine), or only the named ones.
// Everything from the first `--option` on is passed to each named benchmark (e.g.
// `npm run bench -- mesh --seconds 5 --rate 1000`). `chaos` and `soak` run only when named.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

const here = __dirname;
const all = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'main.js')
  .map((f) => basename(f, '.js'))
  .sort();
// Long resilience runs (minutes, kill processes on purpose) run only when named.
const ON_REQUEST = ['chaos', 'soak'];
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
  process.stdout.write(
    `usage: npm run bench [-- NAME… [--option value…]]\n` +
      `benchmarks: ${all.join(', ')} (${ON_REQUEST.join(' and ')} run only when named)\n` +
      `the options of one: npm run bench -- NAME --help\n`,
  );
  process.exit(0);
}
const firstOption = argv.findIndex((a) => a.startsWith('-'));
const wanted = firstOption < 0 ? argv : argv.slice(0, firstOption);
const options = firstOption < 0 ? [] : argv.slice(firstOption);
if (options.length && !wanted.length) {
  process.stderr.write(`bench: options (${options.join(' ')}) need the benchmark they are for: npm run bench -- NAME ${options.join(' ')}\n`);
  process.exit(2);
}
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  process.stderr.write(`bench: no benchmark named ${unknown.join(', ')} (have: ${all.join(', ')})\n`);
  process.exit(2);
}
const failed: string[] = [];
for (const name of wanted.length ? wanted : all.filter((n) => !ON_REQUEST.includes(n))) {
  process.stdout.write(`\n=== bench/${name} ===\n`);
  const r = spawnSync(process.execPath, [join(here, `${name}.js`), ...options], { stdio: 'inherit' });
  if (r.status !== 0) failed.push(`${name} (${r.signal ?? `exit ${r.status}`})`);
}
if (failed.length) {
  process.stderr.write(`\nbench: failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
