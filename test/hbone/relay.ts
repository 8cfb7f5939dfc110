// A TCP relay on loopback in front of an HBONE server, whose connections can fail the ways a
// network path fails without closing anything (for the liveness tests):
// - blackhole(): every byte both ways is read and dropped; nothing is ever closed (half-dead TCP:
//   a host gone, a netns removed, a neighbour entry pointing nowhere);
// - stallUp(): only the client's bytes are dropped (the server's still arrive, as when the
//   client's PING waits behind what a slow peer has not read yet);
// - freeze(): the relay stops reading both ways, so each end's writes back up in TCP (a peer that
//   stopped reading: its write stays pending);
// - restore(): new connections are relayed normally (those from before stay as they were).
import { connect as tcpConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface Relay {
  readonly port: number;
  /** Connections the relay accepted so far (client side). */
  readonly accepted: number;
  blackhole(): void;
  stallUp(): void;
  freeze(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function relay(target: number): Promise<Relay> {
  let epoch = 0;
  let dark = false;
  let upStalled = false;
  let frozen = false;
  let accepted = 0;
  const sockets = new Set<Socket>();
  const pairs: Array<{ epoch: number; down: Socket; up: Socket }> = [];
  const server: Server = createServer((down) => {
    accepted++;
    const mine = epoch;
    const up = tcpConnect({ host: '127.0.0.1', port: target });
    pairs.push({ epoch: mine, down, up });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    const live = (): boolean => !(dark || frozen || mine !== epoch);
    down.on('data', (c: Buffer) => live() && !upStalled && up.write(c));
    up.on('data', (c: Buffer) => live() && down.write(c));
    down.on('end', () => live() && up.end());
    up.on('end', () => live() && down.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return accepted;
    },
    blackhole: () => {
      dark = true;
    },
    stallUp: () => {
      upStalled = true;
    },
    freeze: () => {
      frozen = true;
      for (const p of pairs) if (p.epoch === epoch) for (const s of [p.down, p.up]) s.pause();
    },
    restore: () => {
      epoch++; // connections from before stay as they are
      dark = false;
      upStalled = false;
      frozen = false;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
