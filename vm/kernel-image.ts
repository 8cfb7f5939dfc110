// A matrix kernel made bootable: its Debian package fetched through a private apt configuration
// (the host's own sources and package state are never touched), unpacked, its modules indexed,
// and an initramfs holding a static busybox, the modules the guest needs to reach its root over 9p
// (virtio_pci, 9pnet_virtio, 9p, overlay and their dependencies) and vm/guest/init. Everything is
// cached under the cache dir (default /var/cache/nodemesh/vm), outside the repository.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { MatrixKernel } from './matrix';
import { commandPath, DEBIAN_KEYRING, run } from './host-tools';

export interface BootableKernel {
  name: string;
  /** uname -r of the kernel */
  release: string;
  /** the Debian package file it came from */
  deb: string;
  vmlinuz: string;
  /** the directory holding <release>/ (what the guest binds on /lib/modules) */
  modulesRoot: string;
  initramfs: string;
}

export const GUEST_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];
const LIST_MAX_AGE_MS = 24 * 3600_000;

export function cacheDir(): string {
  return process.env.NODEMESH_VM_CACHE || '/var/cache/nodemesh/vm';
}

function aptOptions(suiteDir: string): string[] {
  return [
    '-o',
    `Dir::Etc::sourcelist=${join(suiteDir, 'sources.list')}`,
    '-o',
    'Dir::Etc::sourceparts=-',
    '-o',
    `Dir::State::Lists=${join(suiteDir, 'lists')}`,
    '-o',
    `Dir::Cache=${join(suiteDir, 'cache')}`,
    '-o',
    `Dir::State::status=${join(suiteDir, 'status')}`,
    '-o',
    'APT::Get::List-Cleanup=0',
    '-o',
    'APT::Sandbox::User=root',
  ];
}

/** The sources.list of a suite: the suite itself and, for a release name, its security suite. */
export function sourcesList(suite: string, mirror: string, security: string, keyring = DEBIAN_KEYRING): string {
  const lines = [`deb [signed-by=${keyring}] ${mirror} ${suite} main`];
  if (/^[a-z]+$/.test(suite) && !['sid', 'unstable', 'experimental'].includes(suite)) {
    lines.push(`deb [signed-by=${keyring}] ${security} ${suite}-security main`);
  }
  return lines.join('\n') + '\n';
}

/** The newest package file of the kernel (resolving a metapackage such as linux-image-amd64). */
function fetchDeb(suite: string, pkg: string, log: (l: string) => void): string {
  const dir = join(cacheDir(), 'apt', suite);
  for (const d of ['lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, d), { recursive: true });
  const mirror = process.env.NODEMESH_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
  const security = process.env.NODEMESH_DEBIAN_SECURITY_MIRROR || 'http://deb.debian.org/debian-security';
  writeFileSync(join(dir, 'sources.list'), sourcesList(suite, mirror, security));
  if (!existsSync(join(dir, 'status'))) writeFileSync(join(dir, 'status'), '');
  const stamp = join(dir, 'updated');
  if (!existsSync(stamp) || Date.now() - statSync(stamp).mtimeMs > LIST_MAX_AGE_MS) {
    log(`apt-get update for ${suite} (private lists in ${dir})`);
    run('apt-get', ['-q', ...aptOptions(dir), 'update']);
    writeFileSync(stamp, new Date().toISOString() + '\n');
  }
  let name = pkg;
  for (let i = 0; i < 3 && !/^linux-image-\d/.test(name); i++) {
    const deps = run('apt-cache', [...aptOptions(dir), 'depends', name]);
    const next = /Depends: (linux-image-\d\S*)/.exec(deps)?.[1];
    if (!next) throw new Error(`${pkg} in ${suite}: no linux-image-<version> package among its dependencies`);
    name = next;
  }
  const debs = join(cacheDir(), 'debs');
  mkdirSync(debs, { recursive: true });
  const version = /Version: (\S+)/.exec(run('apt-cache', [...aptOptions(dir), 'show', name]))?.[1];
  const file = version && readdirSync(debs).find((f) => f.startsWith(`${name}_${version.replace(/^\d+:/, '')}_`) && f.endsWith('.deb'));
  if (file) return join(debs, file);
  log(`downloading ${name} ${version ?? ''} from ${suite}`);
  run('apt-get', ['-q', ...aptOptions(dir), 'download', name], { cwd: debs });
  const got = readdirSync(debs).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb') && (!version || f.includes(version.replace(/^\d+:/, ''))));
  if (!got) throw new Error(`apt-get download ${name} left no package file in ${debs}`);
  return join(debs, got);
}

interface Unpacked {
  release: string;
  vmlinuz: string;
  modulesRoot: string;
  /** the root depmod/modprobe take with -d/-b (modulesRoot minus lib/modules) */
  depRoot: string;
}

function unpack(deb: string, log: (l: string) => void): Unpacked {
  const dir = join(cacheDir(), 'kernels', basename(deb, '.deb'));
  const done = join(dir, 'unpacked.json');
  if (existsSync(done)) return JSON.parse(readFileSync(done, 'utf8')) as Unpacked;
  log(`unpacking ${basename(deb)}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    run('dpkg-deb', ['-x', deb, tmp]);
    const image = readdirSync(join(tmp, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!image) throw new Error(`${basename(deb)} holds no boot/vmlinuz-*`);
    const release = image.slice('vmlinuz-'.length);
    // Debian 13 keeps modules under usr/lib/modules, older releases under lib/modules
    const depRel = existsSync(join(tmp, 'usr/lib/modules', release)) ? 'usr' : '.';
    if (!existsSync(join(tmp, depRel, 'lib/modules', release))) throw new Error(`${basename(deb)} holds no modules for ${release}`);
    log(`depmod ${release}`);
    run('depmod', ['-b', join(tmp, depRel), release]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const release = readdirSync(join(dir, 'boot'))
    .find((f) => f.startsWith('vmlinuz-'))
    ?.slice('vmlinuz-'.length) as string;
  const depRoot = existsSync(join(dir, 'usr/lib/modules', release)) ? join(dir, 'usr') : dir;
  const u: Unpacked = { release, vmlinuz: join(dir, 'boot', `vmlinuz-${release}`), modulesRoot: join(depRoot, 'lib/modules'), depRoot };
  writeFileSync(done, JSON.stringify(u, null, 2) + '\n');
  return u;
}

/** The module files (in load order) the initramfs needs, skipping what is built in. */
export function moduleLoadOrder(showDepends: string[]): string[] {
  const order: string[] = [];
  for (const out of showDepends) {
    for (const line of out.split('\n')) {
      const m = /^insmod (\S+)/.exec(line.trim());
      if (m && !order.includes(m[1] as string)) order.push(m[1] as string);
    }
  }
  return order;
}

function buildInitramfs(u: Unpacked, initScript: string, log: (l: string) => void): string {
  const hash = createHash('sha256').update(initScript).update(u.release).update(GUEST_MODULES.join(',')).digest('hex').slice(0, 12);
  const out = join(cacheDir(), 'initramfs', `${u.release}-${hash}.cpio`);
  if (existsSync(out)) return out;
  log(`building the initramfs for ${u.release}`);
  mkdirSync(join(cacheDir(), 'initramfs'), { recursive: true });
  const stage = `${out}.stage-${process.pid}`;
  rmSync(stage, { recursive: true, force: true });
  try {
    for (const d of ['bin', 'dev', 'proc', 'sys', 'lower', 'rw', 'newroot', 'modules']) mkdirSync(join(stage, d), { recursive: true });
    copyFileSync(commandPath('busybox'), join(stage, 'bin/busybox'));
    const files = moduleLoadOrder(GUEST_MODULES.map((m) => run('modprobe', ['-d', u.depRoot, '-S', u.release, '--show-depends', m])));
    const names: string[] = [];
    files.forEach((f, i) => {
      const name = `${String(i).padStart(2, '0')}-${basename(f).replace(/\.(xz|zst|gz)$/, '')}`;
      if (f.endsWith('.zst')) run('zstd', ['-q', '-d', f, '-o', join(stage, 'modules', name)]);
      else if (f.endsWith('.xz')) run('sh', ['-c', 'xz -dc "$0" > "$1"', f, join(stage, 'modules', name)]);
      else if (f.endsWith('.gz')) run('sh', ['-c', 'gzip -dc "$0" > "$1"', f, join(stage, 'modules', name)]);
      else copyFileSync(f, join(stage, 'modules', name));
      names.push(name);
    });
    writeFileSync(join(stage, 'modules/order'), names.join('\n') + '\n');
    writeFileSync(join(stage, 'init'), initScript, { mode: 0o755 });
    run('sh', ['-c', 'cd "$0" && find . -print0 | cpio --null -o -H newc --quiet > "$1"', stage, `${out}.tmp`]);
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(`${out}.tmp`, { force: true });
  }
  return out;
}

/** Fetches (or finds in the cache) a Debian matrix kernel and builds its initramfs. */
export function prepareKernel(k: MatrixKernel, initScript: string, log: (l: string) => void): BootableKernel {
  if (k.source.kind !== 'debian') throw new Error(`kernel ${k.name} is not a Debian package`);
  const deb = fetchDeb(k.source.suite, k.source.pkg, log);
  const u = unpack(deb, log);
  return { name: k.name, release: u.release, deb, vmlinuz: u.vmlinuz, modulesRoot: u.modulesRoot, initramfs: buildInitramfs(u, initScript, log) };
}
