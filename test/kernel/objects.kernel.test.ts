// The addon on the real kernel: load the capture object, list programs and maps, round-trip map
// values (lookup / update / delete / iterate, LPM prefixes), pin / reuse / unpin, errors with errno.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { bpfObjectDir } from '../../common/paths';
import { BpfMap, BpfObject, BpfProgram, NativeError, UpdateFlags, layout, unpin } from '../../native';
import { privilegedDescribe } from '../support/privileged';
import { expectReleased, Scratch, sh } from './support';

const captureObject = join(bpfObjectDir, 'capture.o');

privilegedDescribe('kernel', 'native addon: BPF objects and maps', () => {
  let scratch: Scratch;
  const progIds: number[] = [];
  const mapIds: number[] = [];

  beforeAll(() => {
    sh('make', ['-s', '-C', join(bpfObjectDir, '..')]);
  });

  afterEach(async () => {
    scratch?.cleanup();
    await expectReleased(progIds.splice(0), mapIds.splice(0));
  });

  it('loads the capture object and lists its programs and maps with the layouts of maps.h', () => {
    scratch = new Scratch('nm-kobj');
    const obj = BpfObject.open(captureObject);
    try {
      const programs = obj.programs();
      expect(programs).toEqual(
        expect.arrayContaining([
          { name: 'nm_connect4', section: 'cgroup/connect4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet4_connect' },
          { name: 'nm_connect6', section: 'cgroup/connect6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet6_connect' },
          { name: 'nm_sockops', section: 'sockops', type: 'sock_ops', expectedAttachType: 'cgroup_sock_ops' },
          { name: 'nm_sk_lookup', section: 'sk_lookup', type: 'sk_lookup', expectedAttachType: 'sk_lookup' },
        ]),
      );
      const maps = obj.maps();
      for (const [name, sizes] of Object.entries(layout.Maps)) {
        const m = maps.find((x) => x.name === name);
        expect(m, name).toBeDefined();
        expect({ key: m?.keySize, value: m?.valueSize }, name).toEqual(sizes);
        expect(m?.pinPath, 'no pin without a pin root').toBeNull();
      }
      const prog = obj.program('nm_connect4');
      progIds.push(prog.info().id);
      expect(prog.info().type).toBe('cgroup_sock_addr');
      // bpftool sees the same program
      expect(sh('bpftool', ['prog', 'show', 'id', String(prog.info().id)])).toContain('nm_connect4');
      prog.close();
      for (const m of maps) {
        const map = obj.map(m.name);
        mapIds.push(map.info.id);
        map.close();
      }
      for (const p of programs) {
        const pr = obj.program(p.name);
        progIds.push(pr.info().id);
        pr.close();
      }
    } finally {
      obj.close();
    }
  });

  it('round-trips values: update, lookup, delete, iterate; flags; LPM prefixes', () => {
    scratch = new Scratch('nm-kobj');
    const obj = BpfObject.open(captureObject);
    const workloads = obj.map('nm_workloads');
    const cidrs = obj.map('nm_excl_cidrs');
    const orig = obj.map('nm_orig_dst');
    mapIds.push(workloads.info.id, cidrs.info.id, orig.info.id);
    obj.close(); // maps handed out stay usable
    try {
      const keys = [1n, 2n, 0xffff_ffff_ffffn];
      keys.forEach((k, i) => workloads.update(layout.encodeU64(k), layout.encodeWorkload({ flags: i + 1, outboundPort: 15001 + i })));
      expect(layout.decodeWorkload(workloads.lookup(layout.encodeU64(2n)) as Buffer)).toEqual({ flags: 2, outboundPort: 15002 });
      expect([...workloads.keys()].map(layout.decodeU64).sort()).toEqual([...keys].sort());
      expect(
        [...workloads.entries()].map(([k, v]) => [layout.decodeU64(k), layout.decodeWorkload(v).flags]).sort((a, b) => Number(a[1]) - Number(b[1])),
      ).toEqual([
        [1n, 1],
        [2n, 2],
        [0xffff_ffff_ffffn, 3],
      ]);

      // NOEXIST on an existing key and EXIST on a missing one fail with their errno
      const err1 = catchError(() => workloads.update(layout.encodeU64(1n), layout.encodeWorkload({ flags: 9, outboundPort: 1 }), UpdateFlags.NOEXIST));
      expect(err1).toBeInstanceOf(NativeError);
      expect((err1 as NativeError).code).toBe('EEXIST');
      expect((err1 as NativeError).message).toContain('nm_workloads');
      const err2 = catchError(() => workloads.update(layout.encodeU64(77n), layout.encodeWorkload({ flags: 9, outboundPort: 1 }), UpdateFlags.EXIST));
      expect((err2 as NativeError).code).toBe('ENOENT');

      expect(workloads.delete(layout.encodeU64(2n))).toBe(true);
      expect(workloads.delete(layout.encodeU64(2n))).toBe(false);
      expect(workloads.lookup(layout.encodeU64(2n))).toBeUndefined();
      // delete while iterating
      for (const k of workloads.keys()) workloads.delete(k);
      expect([...workloads.keys()]).toEqual([]);

      // a wrong-size key is refused before it reaches the kernel
      expect(() => workloads.lookup(Buffer.alloc(4))).toThrow(/key is 4 bytes, the map's key size is 8/);

      // LPM: a /16 exclusion matches hosts inside it, for its netns only
      cidrs.update(layout.encodeCidrKey({ netnsCookie: 5n, cidr: '10.96.0.0/16' }), layout.PRESENT);
      cidrs.update(layout.encodeCidrKey({ netnsCookie: 5n, cidr: 'fd00:1::/32' }), layout.PRESENT);
      expect(cidrs.lookup(layout.encodeCidrKey({ netnsCookie: 5n, cidr: '10.96.200.7/32' }))).toEqual(layout.PRESENT);
      expect(cidrs.lookup(layout.encodeCidrKey({ netnsCookie: 5n, cidr: '10.97.0.1/32' }))).toBeUndefined();
      expect(cidrs.lookup(layout.encodeCidrKey({ netnsCookie: 6n, cidr: '10.96.0.1/32' }))).toBeUndefined();
      expect(cidrs.lookup(layout.encodeCidrKey({ netnsCookie: 5n, cidr: 'fd00:1:ab::9/128' }))).toEqual(layout.PRESENT);
      expect([...cidrs.keys()].map((k) => layout.decodeCidrKey(k).cidr).sort()).toEqual(['10.96.0.0/16', 'fd00:1::/32']);

      // struct values with addresses
      const key = layout.encodeConnKey({ netnsCookie: 9n, address: '127.0.0.1', port: 40000 });
      orig.update(key, layout.encodeSockAddr({ address: '10.96.0.12', port: 8080, family: 4 }));
      expect(layout.decodeSockAddr(orig.lookup(key) as Buffer)).toEqual({ address: '10.96.0.12', port: 8080, family: 4 });
    } finally {
      workloads.close();
      cidrs.close();
      orig.close();
    }
  });

  it('pins maps and programs, reuses pinned maps through a pin root, and unpins', () => {
    scratch = new Scratch('nm-kobj');
    const pins = scratch.pinDir();
    const root = join(pins, 'node');
    const a = BpfObject.open(captureObject, { pinRoot: root });
    const b = BpfObject.open(captureObject, { pinRoot: root });
    try {
      expect(a.maps().find((m) => m.name === 'nm_workloads')?.pinPath).toBe(join(root, 'nm_workloads'));
      const wa = a.map('nm_workloads');
      const wb = b.map('nm_workloads');
      mapIds.push(wa.info.id);
      expect(wb.info.id).toBe(wa.info.id); // the second load reused the pinned map
      wa.update(layout.encodeU64(11n), layout.encodeWorkload({ flags: 1, outboundPort: 0 }));
      expect(wb.lookup(layout.encodeU64(11n))).toBeDefined();
      wa.close();
      wb.close();

      // a map opened from its pin after both objects are gone still holds the data
      a.close();
      b.close();
      const pinned = BpfMap.fromPin(join(root, 'nm_workloads'));
      expect(layout.decodeWorkload(pinned.lookup(layout.encodeU64(11n)) as Buffer).flags).toBe(1);

      // explicit pin of a map and a program; pinning twice names EEXIST
      pinned.pin(join(pins, 'extra', 'workloads'));
      const err = catchError(() => pinned.pin(join(pins, 'extra', 'workloads')));
      expect(err).toBeInstanceOf(NativeError);
      expect((err as NativeError).code).toBe('EEXIST');
      expect((err as NativeError).message).toContain(join(pins, 'extra', 'workloads'));
      pinned.close();

      const obj = BpfObject.open(captureObject);
      const prog = obj.program('nm_sk_lookup');
      obj.close();
      progIds.push(prog.info().id);
      prog.pin(join(pins, 'prog'));
      prog.close();
      const again = BpfProgram.fromPin(join(pins, 'prog'), 'sk_lookup');
      expect(again.info().name).toBe('nm_sk_lookup');
      again.close();

      unpin(join(pins, 'prog'));
      unpin(root);
      unpin(join(pins, 'extra'));
      expect(existsSync(join(pins, 'prog'))).toBe(false);
      expect(existsSync(join(root, 'nm_workloads'))).toBe(false);
      // unpinning something absent is not an error
      unpin(join(pins, 'prog'));
    } finally {
      a.close();
      b.close();
    }
  });

  it('a program the verifier refuses fails to load with errno and the verifier log tail', () => {
    scratch = new Scratch('nm-kobj');
    const dir = mkdtempSync(join(tmpdir(), 'nm-kbad-'));
    scratch.defer(() => rmSync(dir, { recursive: true, force: true }));
    const src = join(dir, 'bad.c');
    // reads past the end of the context: the verifier must refuse it
    writeFileSync(
      src,
      '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n' +
        'SEC("cgroup/connect4") int nm_bad(struct bpf_sock_addr *ctx) { return *(volatile __u32 *)((char *)ctx + 4096); }\n' +
        'char LICENSE[] SEC("license") = "GPL";\n',
    );
    sh('clang', [
      '-O2',
      '-g',
      '-target',
      'bpf',
      `-I/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`,
      '-c',
      src,
      '-o',
      join(dir, 'bad.o'),
    ]);
    const err = catchError(() => BpfObject.open(join(dir, 'bad.o')));
    expect(err).toBeInstanceOf(NativeError);
    expect(['EACCES', 'EINVAL']).toContain((err as NativeError).code);
    expect((err as NativeError).op).toBe('load BPF object');
    expect((err as NativeError).message).toContain('libbpf log');
    expect((err as NativeError).message).toMatch(/invalid bpf_context access|nm_bad/);
  });

  it('names errno, the operation and the object in errors', () => {
    scratch = new Scratch('nm-kobj');
    const e1 = catchError(() => BpfMap.fromPin('/sys/fs/bpf/nm-k-does-not-exist'));
    expect(e1).toBeInstanceOf(NativeError);
    expect(e1).toMatchObject({ code: 'ENOENT', errno: 2, object: '/sys/fs/bpf/nm-k-does-not-exist' });

    const e2 = catchError(() => BpfObject.open('/nonexistent/nm-k.o'));
    expect(e2).toMatchObject({ code: 'ENOENT' });
    expect((e2 as Error).message).toMatch(/scripts\/setup\.sh/);

    // attaching a cgroup program to something that is not a cgroup
    const obj = BpfObject.open(captureObject);
    const prog = obj.program('nm_connect4');
    progIds.push(prog.info().id);
    obj.close();
    try {
      const e3 = catchError(() => prog.attachCgroup('/proc/self/ns/net'));
      expect(e3).toBeInstanceOf(NativeError);
      expect((e3 as NativeError).errno).toBeGreaterThan(0);
      expect((e3 as NativeError).message).toContain('nm_connect4');
    } finally {
      prog.close();
    }
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
