// The connection-rate generator, run as `node -e CONNGEN -- host port ms concurrency size` inside
// a pod (so capture applies to it): CONCURRENCY connections at a time, each connect, write SIZE
// bytes, read SIZE bytes back (a TCP echo), close; a new one starts as soon as one ends, for MS
// milliseconds. Prints one JSON line: done, errors, seconds, perSecond.

export interface ConnRate {
  done: number;
  errors: number;
  seconds: number;
  perSecond: number;
}

export const CONNGEN = `
const net = require('node:net');
const [host, port, ms, concurrency, size] = process.argv.slice(1).filter((a) => a !== '--').map((v, i) => (i === 0 ? v : Number(v)));
const payload = Buffer.alloc(size, 121);
let done = 0, errors = 0, running = 0, stopping = false;
const t0 = performance.now();
function one() {
  running++;
  let got = 0, over = false;
  const s = net.connect({ host, port });
  s.setNoDelay(true);
  const end = (ok) => {
    if (over) return;
    over = true; running--;
    if (ok) done++; else errors++;
    s.destroy();
    if (!stopping) one(); else if (running === 0) finish();
  };
  s.on('connect', () => s.write(payload));
  s.on('data', (d) => { got += d.length; if (got >= size) end(true); });
  s.on('error', () => end(false));
  s.on('close', () => end(got >= size));
}
function finish() {
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ done, errors, seconds, perSecond: done / seconds }));
  process.exit(0);
}
for (let i = 0; i < concurrency; i++) one();
setTimeout(() => { stopping = true; if (running === 0) finish(); }, ms);
setTimeout(() => { console.log(JSON.stringify({ done, errors: errors + running, seconds: (performance.now() - t0) / 1000, perSecond: 0 })); process.exit(1); }, ms + 20000);
`;
