// The embedded store: the whole state in one JSON file under the data dir, rewritten atomically
// on every commit — write a temp file, fsync it, rename it over state.json, fsync the directory.
// A crash at any point leaves either the old or the new state.json, never a mix; temp files left
// by a crash are removed at the next start. One process per data dir (store.lock).
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BaseStore, initialState, type BaseStoreOptions, type PersistedState } from './base-store';
import { StoreUnavailableError } from './errors';
import { DataDirLock } from './lock';

export const STATE_FILE = 'state.json';
const FORMAT = 'nodemesh.io/store/v1';

export interface FileStoreOptions extends BaseStoreOptions {
  dataDir: string;
  /**
   * Fault injection for tests: called after the temp file is written and fsynced, before the
   * rename. If it throws, the store behaves as if the process died there: the temp file stays,
   * nothing is renamed, and the store refuses all further calls.
   */
  crashBeforeRename?: () => void;
}

async function fsyncPath(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export class FileStore extends BaseStore {
  private seq = 0;
  private crashed = false;

  private constructor(
    state: PersistedState,
    private readonly dataDir: string,
    private readonly lock: DataDirLock,
    private readonly opts: FileStoreOptions,
  ) {
    super(state, opts);
  }

  static async open(opts: FileStoreOptions): Promise<FileStore> {
    const dir = opts.dataDir;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreUnavailableError(`cannot create the data dir ${dir}: ${(err as Error).message}; pass a writable --data-dir`);
    }
    const lock = DataDirLock.acquire(dir);
    try {
      for (const f of await readdir(dir)) {
        if (f.startsWith(`${STATE_FILE}.tmp-`)) {
          opts.logger?.warn({ file: join(dir, f) }, 'removing a temp file left by an interrupted write; the previous state is intact');
          await unlink(join(dir, f));
        }
      }
      let state = await FileStore.load(join(dir, STATE_FILE));
      const fresh = !state;
      state ??= initialState();
      const store = new FileStore(state, dir, lock, opts);
      if (fresh) await store.persist(state);
      opts.logger?.info({ dataDir: dir, revision: state.revision, resources: state.resources.length }, fresh ? 'config store created' : 'config store loaded');
      return store;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  private static async load(path: string): Promise<PersistedState | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreUnavailableError(`cannot read the store file ${path}: ${(err as Error).message}`);
    }
    try {
      const data = JSON.parse(text) as PersistedState & { format?: string };
      if (data.format !== FORMAT) throw new Error(`unknown format "${String(data.format)}", expected "${FORMAT}"`);
      if (!Number.isInteger(data.revision) || !Array.isArray(data.resources) || !Array.isArray(data.history)) {
        throw new Error('missing revision, resources or history');
      }
      return { revision: data.revision, oldestRevision: data.oldestRevision ?? 0, resources: data.resources, history: data.history };
    } catch (err) {
      throw new StoreUnavailableError(
        `the store file ${path} is unreadable (${(err as Error).message}); restore it from a backup, or move it away to start with an empty store`,
      );
    }
  }

  protected async persist(next: PersistedState): Promise<void> {
    if (this.crashed) throw new StoreUnavailableError('the config store stopped after a simulated crash');
    const final = join(this.dataDir, STATE_FILE);
    const tmp = `${final}.tmp-${process.pid}-${++this.seq}`;
    const body = JSON.stringify({ format: FORMAT, ...next });
    const h = await open(tmp, 'wx', 0o600);
    try {
      await h.writeFile(body, 'utf8');
      await h.sync();
    } catch (err) {
      await h.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw new StoreUnavailableError(`cannot write the store file ${tmp}: ${(err as Error).message}; nothing was changed`);
    }
    await h.close();
    if (this.opts.crashBeforeRename) {
      try {
        this.opts.crashBeforeRename();
      } catch (err) {
        this.crashed = true;
        this.closed = true;
        this.lock.abandon();
        throw err;
      }
    }
    try {
      await rename(tmp, final);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new StoreUnavailableError(`cannot replace the store file ${final}: ${(err as Error).message}; nothing was changed`);
    }
    try {
      await fsyncPath(this.dataDir);
    } catch (err) {
      // The new file is in place (readers after a restart see it), so the write counts as
      // committed; only its durability across a power loss is in doubt.
      this.log?.error({ err, dataDir: this.dataDir }, 'could not fsync the data dir after a store write; the write may not survive a power loss');
    }
  }

  protected override async release(): Promise<void> {
    if (!this.crashed) this.lock.release();
  }
}
