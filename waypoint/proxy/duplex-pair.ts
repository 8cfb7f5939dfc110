// Two connected in-memory Duplex streams (what one writes, the other reads), with backpressure and
// half-close: the HBONE tunnel stream is spliced to one end and the HTTP server reads the other.
import { Duplex } from 'node:stream';

export function duplexPair(): [Duplex, Duplex] {
  const sides: Array<{ stream: Duplex; waiting: (() => void) | undefined }> = [];
  const make = (i: number): Duplex => {
    const peer = (): (typeof sides)[number] => sides[1 - i]!;
    return new Duplex({
      allowHalfOpen: true,
      read() {
        // Our reader wants more: release the peer's pending write.
        const me = sides[i]!;
        const w = me.waiting;
        me.waiting = undefined;
        w?.();
      },
      write(chunk: Buffer, _enc, cb) {
        const p = peer();
        if (p.stream.push(chunk)) cb();
        else sides[1 - i]!.waiting = cb;
      },
      final(cb) {
        peer().stream.push(null);
        cb();
      },
      destroy(err, cb) {
        const p = peer().stream;
        if (!p.destroyed) p.destroy(err ?? undefined);
        cb(err);
      },
    });
  };
  sides.push({ stream: make(0), waiting: undefined }, { stream: make(1), waiting: undefined });
  return [sides[0]!.stream, sides[1]!.stream];
}
