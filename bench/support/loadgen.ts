// The latency load generator, run as `node -e LOADGEN -- host port rate ms conns size` inside a
// pod (so capture applies to it): SIZE-byte request/response on CONNS persistent connections at a
// fixed RATE for MS milliseconds. Sends are scheduled on a 1 ms timer; latency counts from the
// write of each request (the timer's own lateness would otherwise swamp sub-millisecond figures).
// Prints one JSON line: requests, done, errors, p50, p99, max (ms), seconds.

export interface Latency {
  requests: number;
  done: number;
  errors: number;
  p50: number;
  p99: number;
}

export const LOADGEN = `
const net = require('node:net');
const [host, port, rate, ms, conns, size] = process.argv.slice(1).filter((a) => a !== '--').map((v, i) => (i === 0 ? v : Number(v)));
const payload = Buffer.alloc(size, 120);
const lat = [];
let errors = 0, sent = 0;
const total = Math.round((rate * ms) / 1000);
const states = [];
const next = (st) => {
  if (st.busy || st.queue.length === 0) return;
  st.queue.shift(); st.start = performance.now(); st.busy = true; st.s.write(payload);
};
let connected = 0;
for (let i = 0; i < conns; i++) {
  const st = { s: net.connect({ host, port }), busy: false, queue: [], got: 0, start: 0 };
  st.s.setNoDelay(true);
  st.s.on('connect', () => { if (++connected === conns) go(); });
  st.s.on('data', (d) => {
    st.got += d.length;
    while (st.got >= size && st.busy) { st.got -= size; lat.push(performance.now() - st.start); st.busy = false; next(st); }
  });
  st.s.on('error', () => { errors++; });
  states.push(st);
}
function go() {
  const t0 = performance.now();
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
    while (sent < due) { const st = states[sent % conns]; st.queue.push(t0 + (sent * 1000) / rate); sent++; next(st); }
    if (sent >= total) { clearInterval(tick); finish(t0); }
  }, 1);
}
function finish(t0) {
  const deadline = performance.now() + 5000;
  const wait = setInterval(() => {
    if (lat.length + errors >= total || performance.now() > deadline) {
      clearInterval(wait);
      lat.sort((a, b) => a - b);
      const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : -1);
      console.log(JSON.stringify({ requests: total, done: lat.length, errors, p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] ?? -1, seconds: (performance.now() - t0) / 1000 }));
      for (const st of states) st.s.destroy();
      process.exit(0);
    }
  }, 20);
}
setTimeout(() => { console.log(JSON.stringify({ requests: total, done: lat.length, errors: errors + 1, p50: -1, p99: -1 })); process.exit(1); }, ms + 20000);
`;
