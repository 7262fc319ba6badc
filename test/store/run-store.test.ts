/**
 * RunStore behaviour on every implementation that can run in Node: OPFS (over an in-memory FileSystemDirectoryHandle
 * with createWritable's swap-file semantics and a quota), IndexedDB (over an in-memory transactional IDBFactory with
 * auto-commit and a quota) and the Node folder store. The same suite runs on each: save/list/load/rename/delete,
 * export → import, keep-N pruning, a failure mid-save leaves the previous checkpoint loadable, a full quota gives a
 * StorageQuotaError with the bytes needed and loses nothing, damaged data falls back to the previous checkpoint.
 * The real browser APIs are exercised by the UI's browser tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import type { ModelConfig } from '../../src/engine/config';
import { openBrowserRunStore } from '../../src/store/browser';
import { FileTreeRunStore } from '../../src/store/file-tree-store';
import { IndexedDbRunStore } from '../../src/store/indexeddb';
import { NodeRunStore } from '../../src/store/node';
import { OpfsFileTree, openOpfsRunStore } from '../../src/store/opfs';
import { StorageQuotaError } from '../../src/store/quota';
import { newRunId, validateRunId, type RunStore } from '../../src/store/run-store';
import { encodeCheckpointFiles, type SessionCheckpoint } from '../../src/train/checkpoint';
import { FinetuneSession } from '../../src/train/session';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';
import { ToyTokenizer } from '../data/toy-tokenizer';

// ---------------------------------------------------------------------------------------------------------
// In-memory OPFS

const domError = (name: string, msg = name) => new DOMException(msg, name);

class FakeOpfs {
  quota = Infinity;
  /** Called before each chunk is written (path, bytes); throw to simulate a failure. */
  onWrite: ((path: string, bytes: number) => void) | null = null;
  usage(): number {
    let n = 0;
    const walk = (d: FakeDir) => {
      for (const c of d.children.values()) {
        if (c instanceof FakeDir) walk(c);
        else n += c.data.length + c.pending;
      }
    };
    walk(this.root);
    return n;
  }
  readonly root: FakeDir = new FakeDir(this, '');
}

class FakeFile {
  readonly kind = 'file';
  data = new Uint8Array(0);
  pending = 0;
  constructor(
    readonly fs: FakeOpfs,
    readonly name: string,
    readonly path: string,
  ) {}
  async getFile(): Promise<File> {
    return new File([this.data], this.name);
  }
  async createWritable() {
    const chunks: Uint8Array[] = [];
    let open = true;
    const self = this;
    return {
      async write(d: Uint8Array) {
        if (!open) throw domError('InvalidStateError');
        self.fs.onWrite?.(self.path, d.length);
        if (self.fs.usage() + d.length > self.fs.quota)
          throw domError('QuotaExceededError', 'The quota has been exceeded.');
        chunks.push(Uint8Array.from(d));
        self.pending += d.length;
      },
      async close() {
        if (!open) throw domError('InvalidStateError');
        open = false;
        const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
        let o = 0;
        for (const c of chunks) {
          out.set(c, o);
          o += c.length;
        }
        self.pending = 0;
        self.data = out; // the swap file replaces the file only now
      },
      async abort() {
        open = false;
        self.pending = 0;
      },
    };
  }
}

class FakeDir {
  readonly kind = 'directory';
  readonly children = new Map<string, FakeDir | FakeFile>();
  constructor(
    readonly fs: FakeOpfs,
    readonly path: string,
  ) {}
  async getDirectoryHandle(name: string, opts: { create?: boolean } = {}): Promise<FakeDir> {
    const c = this.children.get(name);
    if (c instanceof FakeDir) return c;
    if (c) throw domError('TypeMismatchError');
    if (!opts.create) throw domError('NotFoundError');
    const d = new FakeDir(this.fs, `${this.path}/${name}`);
    this.children.set(name, d);
    return d;
  }
  async getFileHandle(name: string, opts: { create?: boolean } = {}): Promise<FakeFile> {
    const c = this.children.get(name);
    if (c instanceof FakeFile) return c;
    if (c) throw domError('TypeMismatchError');
    if (!opts.create) throw domError('NotFoundError');
    const f = new FakeFile(this.fs, name, `${this.path}/${name}`);
    this.children.set(name, f);
    return f;
  }
  async removeEntry(name: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const c = this.children.get(name);
    if (!c) throw domError('NotFoundError');
    if (c instanceof FakeDir && c.children.size && !opts.recursive) throw domError('InvalidModificationError');
    this.children.delete(name);
  }
  async *entries(): AsyncIterable<[string, FakeDir | FakeFile]> {
    for (const e of [...this.children]) yield e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// In-memory IndexedDB (the subset the store uses, with transactions that commit or abort whole)

type Value = Record<string, unknown>;
const DELETED = Symbol('deleted');

class FakeIdb {
  quota = Infinity;
  /** Set to make the next readwrite commit fail with this error (a crash or an I/O error mid-transaction). */
  failNextCommit: Error | null = null;
  readonly dbs = new Map<string, FakeDb>();
  open(name: string, version: number) {
    const req: {
      result?: FakeDb;
      error?: unknown;
      onsuccess?: () => void;
      onerror?: () => void;
      onupgradeneeded?: () => void;
      onblocked?: () => void;
    } = {};
    setTimeout(() => {
      let db = this.dbs.get(name);
      const upgrade = !db || db.version < version;
      if (!db) {
        db = new FakeDb(this, version);
        this.dbs.set(name, db);
      }
      db.version = version;
      req.result = db;
      if (upgrade) req.onupgradeneeded?.();
      req.onsuccess?.();
    }, 0);
    return req;
  }
  bytes(): number {
    let n = 0;
    const size = (v: unknown): number =>
      v instanceof ArrayBuffer
        ? v.byteLength
        : typeof v === 'string'
          ? v.length
          : v && typeof v === 'object'
            ? Object.values(v).reduce((s: number, x) => s + size(x), 0)
            : 8;
    for (const db of this.dbs.values())
      for (const s of db.stores.values()) for (const v of s.data.values()) n += size(v);
    return n;
  }
}

class FakeDb {
  readonly stores = new Map<string, { keyPath: string; data: Map<string, Value> }>();
  readonly objectStoreNames = { contains: (n: string) => this.stores.has(n) };
  constructor(
    readonly factory: FakeIdb,
    public version: number,
  ) {}
  createObjectStore(name: string, opts: { keyPath: string }) {
    this.stores.set(name, { keyPath: opts.keyPath, data: new Map() });
  }
  transaction(names: string[], mode: 'readonly' | 'readwrite') {
    return new FakeTx(this, names, mode);
  }
  close() {}
}

class FakeTx {
  oncomplete: (() => void) | null = null;
  onabort: (() => void) | null = null;
  error: unknown = null;
  private readonly staged = new Map<string, Map<string, Value | typeof DELETED>>();
  private pending = 0;
  private finished = false;
  constructor(
    readonly db: FakeDb,
    readonly names: string[],
    readonly mode: string,
  ) {
    this.schedule();
  }
  private schedule() {
    setTimeout(() => {
      if (this.pending === 0 && !this.finished) this.commit();
    }, 0);
  }
  private commit() {
    this.finished = true;
    const f = this.db.factory;
    if (this.mode === 'readwrite' && f.failNextCommit) {
      const e = f.failNextCommit;
      f.failNextCommit = null;
      return this.fail(e);
    }
    const before = new Map([...this.db.stores].map(([n, s]) => [n, new Map(s.data)]));
    for (const [store, m] of this.staged)
      for (const [k, v] of m)
        if (v === DELETED) this.db.stores.get(store)!.data.delete(k);
        else this.db.stores.get(store)!.data.set(k, v);
    if (f.bytes() > f.quota) {
      for (const [n, d] of before) this.db.stores.get(n)!.data = d; // roll back
      return this.fail(domError('QuotaExceededError'));
    }
    this.oncomplete?.();
  }
  private fail(e: unknown) {
    this.finished = true;
    this.error = e;
    this.onabort?.();
  }
  abort() {
    if (this.finished) throw domError('InvalidStateError');
    this.fail(domError('AbortError'));
  }
  objectStore(name: string) {
    if (!this.names.includes(name)) throw domError('NotFoundError');
    const s = this.db.stores.get(name)!;
    const staged = this.staged.get(name) ?? new Map();
    this.staged.set(name, staged);
    const read = (k: string) => {
      const v = staged.has(k) ? staged.get(k) : s.data.get(k);
      return v === DELETED || v === undefined ? undefined : structuredClone(v);
    };
    const req = <T>(fn: () => T) => {
      if (this.finished) throw domError('TransactionInactiveError');
      const r: { result?: T; onsuccess?: () => void } = {};
      this.pending++;
      setTimeout(() => {
        this.pending--;
        if (this.finished) return;
        r.result = fn();
        r.onsuccess?.();
        this.schedule();
      }, 0);
      return r;
    };
    const write = () => {
      if (this.mode !== 'readwrite') throw domError('ReadOnlyError');
    };
    return {
      get: (k: string) => req(() => read(k)),
      getAll: () =>
        req(() =>
          [...new Set([...s.data.keys(), ...staged.keys()])]
            .sort()
            .map(read)
            .filter((v) => v !== undefined),
        ),
      put: (v: Value) => {
        write();
        const k = String(v[s.keyPath]);
        staged.set(k, structuredClone(v));
        return req(() => k);
      },
      delete: (k: string) => {
        write();
        staged.set(k, DELETED);
        return req(() => undefined);
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------

/** Three checkpoints (steps 2, 4, 6) of one tiny run. */
async function makeCheckpoints(): Promise<SessionCheckpoint[]> {
  await initBackend('cpu');
  const tok = new ToyTokenizer();
  const cfg: ModelConfig = tinyConfig('llama', {
    vocab_size: tok.vocabSize,
    max_position_embeddings: 64,
    hidden_size: 16,
    num_attention_heads: 4,
    head_dim: 4,
  });
  const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3, 0.2));
  const examples = Array.from({ length: 8 }, (_, i) => ({ prompt: `q${i}`, completion: `a${i}` }));
  const s = new FinetuneSession({
    model,
    tokenizer: tok,
    data: [{ name: 'mem', examples }],
    config: {
      template: { kind: 'instruction' },
      r: 2,
      lora_alpha: 4,
      per_device_train_batch_size: 2,
      max_steps: 6,
      logging_steps: 1,
      max_length: 64,
    },
    baseModelName: 'tiny/model',
  });
  const out: SessionCheckpoint[] = [];
  for (const k of [2, 4, 6]) {
    await s.train({ shouldStop: () => s.globalStep >= k });
    out.push(await s.checkpoint());
  }
  s.dispose();
  model.dispose();
  return out;
}

const stepOf = (ck: SessionCheckpoint | null) => ck?.meta.progress.global_step;

function sameTensors(a: SessionCheckpoint, b: SessionCheckpoint) {
  for (const part of ['lora', 'expAvg', 'expAvgSq'] as const) {
    expect([...a[part].keys()].sort()).toEqual([...b[part].keys()].sort());
    for (const [n, t] of a[part])
      expect(Buffer.from(b[part].get(n)!.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
  }
}

interface Harness {
  store: RunStore;
  /** Make the next save fail part-way (after its first write for file stores; the commit for IndexedDB). */
  failNextSave(): void;
  /** Limit storage to `free` bytes beyond what is used now. */
  limit(free: number): void;
  /** Damage the newest stored tensor data of a run. */
  damageLatest(runId: string): Promise<void>;
  close(): Promise<void>;
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  tf.disposeVariables();
});

const harnesses: Record<string, () => Promise<Harness>> = {
  async opfs() {
    const fs = new FakeOpfs();
    const store = await openOpfsRunStore({ root: fs.root as unknown as FileSystemDirectoryHandle });
    const top = () => fs.root.children.get('webtune-runs') as FakeDir;
    return {
      store,
      failNextSave() {
        let writes = 0;
        fs.onWrite = (p) => {
          if (!p.endsWith('run.json') && ++writes === 2) {
            fs.onWrite = null;
            throw domError('UnknownError', 'simulated failure mid-save');
          }
        };
      },
      limit(free) {
        fs.quota = fs.usage() + free;
      },
      async damageLatest(runId) {
        const run = top().children.get(runId) as FakeDir;
        const gens = [...run.children.keys()].filter((n) => n.startsWith('ckpt-')).sort();
        const f = (run.children.get(gens.at(-1)!) as FakeDir).children.get('tensors.safetensors') as FakeFile;
        f.data[f.data.length - 3] ^= 0xff;
      },
      async close() {},
    };
  },
  async indexeddb() {
    const idb = new FakeIdb();
    const store = new IndexedDbRunStore({ indexedDB: idb as unknown as IDBFactory });
    return {
      store,
      failNextSave() {
        idb.failNextCommit = domError('UnknownError', 'simulated failure mid-save');
      },
      limit(free) {
        idb.quota = idb.bytes() + free;
      },
      async damageLatest(runId) {
        const data = idb.dbs.get('webtune-runs')!.stores.get('checkpoints')!.data;
        const key = [...data.keys()]
          .filter((k) => k.startsWith(`${runId}/`))
          .sort()
          .at(-1)!;
        const t = new Uint8Array(data.get(key)!.tensors as ArrayBuffer);
        t[t.length - 3] ^= 0xff;
      },
      close: () => store.close(),
    };
  },
  async node() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'webtune-runs-'));
    tmpDirs.push(dir);
    let fail = false;
    let quota = Infinity;
    let written = 0;
    const store = new NodeRunStore(dir, {
      fileOps: {
        async writeFile(file, data) {
          if (written + data.length > quota)
            throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: 'ENOSPC' });
          if (fail && !file.includes('run.json')) {
            fail = false;
            const { writeFile } = await import('node:fs/promises');
            await writeFile(file, data.subarray(0, data.length >> 1)); // half a file, then the "crash"
            throw new Error('simulated failure mid-save');
          }
          written += data.length;
          const { writeFile } = await import('node:fs/promises');
          await writeFile(file, data);
        },
        rename: async (a, b) => {
          const { rename } = await import('node:fs/promises');
          await rename(a, b);
        },
      },
    });
    return {
      store,
      failNextSave() {
        fail = true;
      },
      limit(free) {
        quota = written + free;
      },
      async damageLatest(runId) {
        const { readdir, readFile, writeFile } = await import('node:fs/promises');
        const gens = (await readdir(path.join(dir, runId))).filter((n) => n.startsWith('ckpt-')).sort();
        const f = path.join(dir, runId, gens.at(-1)!, 'tensors.safetensors');
        const b = await readFile(f);
        b[b.length - 3] ^= 0xff;
        await writeFile(f, b);
      },
      async close() {},
    };
  },
};

let cks: SessionCheckpoint[];
beforeAll(async () => {
  cks = await makeCheckpoints();
});

for (const [kind, make] of Object.entries(harnesses)) {
  describe(`RunStore: ${kind}`, () => {
    let h: Harness;
    afterEach(async () => {
      await h?.close();
    });

    it('save, list, load latest, rename, delete; keeps the newest 2', async () => {
      h = await make();
      const s = h.store;
      expect(s.kind).toBe(kind);
      expect(await s.list()).toEqual([]);
      expect(await s.loadLatest('nope')).toBeNull();
      expect(await s.info('nope')).toBeNull();
      const a = await s.save('run-a', cks[0], { name: 'First run' });
      expect(a).toMatchObject({
        id: 'run-a',
        name: 'First run',
        checkpoints: 1,
        latest: { step: 2, max_steps: 6, status: 'stopped', model_id: 'tiny/model' },
      });
      expect(a.latest!.bytes).toBeGreaterThan(0);
      expect(a.latest!.description).toMatch(/^step 2\/6 \(epoch 0\.50\), loss \d+\.\d{4}, model tiny\/model, saved /);
      await s.save('run-a', cks[1]);
      const back = await s.loadLatest('run-a');
      expect(stepOf(back)).toBe(4);
      sameTensors(back!, cks[1]);
      expect(back!.meta.session.history).toEqual(cks[1].meta.session.history);
      const a3 = await s.save('run-a', cks[2]);
      expect(a3).toMatchObject({ name: 'First run', checkpoints: 2, latest: { step: 6, status: 'completed' } });
      await s.save('run-b', cks[0]);
      const list = await s.list();
      expect(list.map((r) => r.id).sort()).toEqual(['run-a', 'run-b']);
      expect(list.find((r) => r.id === 'run-b')).toMatchObject({ name: 'run-b', checkpoints: 1 });
      expect(await s.rename('run-b', 'Second')).toMatchObject({ id: 'run-b', name: 'Second' });
      expect((await s.info('run-b'))!.name).toBe('Second');
      await expect(s.rename('missing', 'x')).rejects.toThrow(/no run missing/);
      await s.delete('run-b');
      expect((await s.list()).map((r) => r.id)).toEqual(['run-a']);
      expect(await s.loadLatest('run-b')).toBeNull();
      await expect(s.save('../evil', cks[0])).rejects.toThrow(/invalid run id/);
    });

    it('export → import as a new run, identical checkpoint', async () => {
      h = await make();
      const s = h.store;
      await s.save('orig', cks[1], { name: 'My run' });
      const file = await s.exportRun('orig');
      const imported = await s.importRun(file);
      expect(imported.id).not.toBe('orig');
      expect(imported).toMatchObject({ name: 'My run', latest: { step: 4 } });
      const ck = await s.loadLatest(imported.id);
      sameTensors(ck!, cks[1]);
      expect(ck!.meta.model.hash).toBe(cks[1].meta.model.hash);
      expect((await s.importRun(file, { id: 'copy', name: 'Copy' })).name).toBe('Copy');
      await expect(s.importRun(file, { id: 'copy' })).rejects.toThrow(/already exists/);
      await expect(s.importRun(new Uint8Array([1, 2, 3]))).rejects.toThrow(/not a safetensors file/);
      await expect(s.exportRun('none')).rejects.toThrow(/no checkpoint to export/);
    });

    it('keeps text files with a run: replaced whole, exported and imported with it, deleted with it', async () => {
      h = await make();
      const s = h.store;
      const big = 'é'.repeat(50_000) + '\n{"instruction": "x"}';
      await s.putFile('withfiles', 'source.json', '{"v":1}');
      expect(await s.list()).toEqual([]); // files alone are no run
      await s.save('withfiles', cks[0], { name: 'Files' });
      await s.putFile('withfiles', 'source.json', '{"v":2}');
      await s.putFile('withfiles', 'data.txt', big);
      await s.putFile('other', 'source.json', 'other run');
      expect(await s.listFiles('withfiles')).toEqual(['data.txt', 'source.json']);
      expect(await s.getFile('withfiles', 'source.json')).toBe('{"v":2}');
      expect(await s.getFile('withfiles', 'data.txt')).toBe(big);
      expect(await s.getFile('withfiles', 'missing.json')).toBeNull();
      await expect(s.putFile('withfiles', '../x', 'no')).rejects.toThrow(/invalid run file name/);
      const imported = await s.importRun(await s.exportRun('withfiles'));
      expect(await s.listFiles(imported.id)).toEqual(['data.txt', 'source.json']);
      expect(await s.getFile(imported.id, 'data.txt')).toBe(big);
      await s.delete('withfiles');
      expect(await s.listFiles('withfiles')).toEqual([]);
      expect(await s.getFile('withfiles', 'source.json')).toBeNull();
      expect(await s.getFile('other', 'source.json')).toBe('other run');
      expect(await s.getFile(imported.id, 'source.json')).toBe('{"v":2}');
    });

    it('a failure part-way through a save leaves the previous checkpoint loadable; the next save works', async () => {
      h = await make();
      const s = h.store;
      await s.save('r', cks[0]);
      await s.save('r', cks[1]);
      h.failNextSave();
      await expect(s.save('r', cks[2])).rejects.toThrow(/simulated failure mid-save/);
      expect(stepOf(await s.loadLatest('r'))).toBe(4);
      expect((await s.info('r'))!).toMatchObject({ checkpoints: 2, latest: { step: 4 } });
      expect((await s.save('r', cks[2])).latest!.step).toBe(6);
      expect(stepOf(await s.loadLatest('r'))).toBe(6);
      expect((await s.info('r'))!.checkpoints).toBe(2);
      // a failed first save of a new run leaves no run behind
      h.failNextSave();
      await expect(s.save('fresh', cks[0])).rejects.toThrow(/simulated failure/);
      expect((await s.list()).map((r) => r.id)).toEqual(['r']);
    });

    it('out of space: StorageQuotaError with the bytes needed, nothing lost', async () => {
      h = await make();
      const s = h.store;
      await s.save('q', cks[0]);
      const files = await encodeCheckpointFiles(cks[1]);
      const need = [...files.values()].reduce((a, b) => a + b.length, 0);
      h.limit(1000);
      vi.stubGlobal('navigator', { storage: { estimate: async () => ({ quota: 5_000_000, usage: 4_999_000 }) } });
      try {
        const err = await s.save('q', cks[1]).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StorageQuotaError);
        const q = err as StorageQuotaError;
        expect(q.needed).toBe(need);
        expect(q.message).toMatch(
          new RegExp(`not enough storage to save the checkpoint in .*: it needs [0-9.]+ KB \\(${need} bytes\\)`),
        );
        expect(q.message).toMatch(/The previous checkpoint is kept/);
        if (kind !== 'node') expect(q.available).toBe(1000);
      } finally {
        vi.unstubAllGlobals();
      }
      expect(stepOf(await s.loadLatest('q'))).toBe(2);
      h.limit(Infinity);
      expect((await s.save('q', cks[1])).latest!.step).toBe(4);
    });

    it('damaged latest data: loading falls back to the previous checkpoint; all damaged → a clear error', async () => {
      h = await make();
      const s = h.store;
      await s.save('d', cks[0]);
      await s.save('d', cks[1]);
      await h.damageLatest('d');
      expect(stepOf(await s.loadLatest('d'))).toBe(2);
      await h.damageLatest('d'); // undo
      expect(stepOf(await s.loadLatest('d'))).toBe(4);
      const one = await make();
      await one.store.save('x', cks[0]);
      await one.damageLatest('x');
      await expect(one.store.loadLatest('x')).rejects.toThrow(
        /no stored checkpoint could be read: .*does not match checkpoint.json/,
      );
      await one.close();
    });
  });
}

describe('OPFS specifics', () => {
  it('a crash mid-save (no cleanup) leaves leftovers that loading ignores and the next save removes; LATEST unreadable → newest valid generation', async () => {
    const fs = new FakeOpfs();
    const store = await openOpfsRunStore({ root: fs.root as unknown as FileSystemDirectoryHandle });
    await store.save('c', cks[0]);
    await store.save('c', cks[1]);
    const run = (fs.root.children.get('webtune-runs') as FakeDir).children.get('c') as FakeDir;
    // what a tab closed mid-save leaves: a new generation with only part of its files
    const gen = await run.getDirectoryHandle('ckpt-000003', { create: true });
    const w = await (await gen.getFileHandle('tensors.safetensors', { create: true })).createWritable();
    await w.write(new Uint8Array(100));
    await w.close();
    expect(stepOf(await store.loadLatest('c'))).toBe(4);
    expect((await store.info('c'))!.checkpoints).toBe(2);
    await store.save('c', cks[2]);
    expect([...run.children.keys()].filter((n) => n.startsWith('ckpt-')).sort()).toEqual([
      'ckpt-000002',
      'ckpt-000003',
    ]);
    expect(stepOf(await store.loadLatest('c'))).toBe(6);
    // LATEST garbled: the newest generation that verifies
    const latest = run.children.get('LATEST') as FakeFile;
    latest.data = new TextEncoder().encode('{"generation":');
    expect(stepOf(await store.loadLatest('c'))).toBe(6);
    run.children.delete('LATEST');
    expect(stepOf(await store.loadLatest('c'))).toBe(6);
  });

  it('openBrowserRunStore: OPFS when it works, else IndexedDB, else a clear error', async () => {
    const fs = new FakeOpfs();
    vi.stubGlobal('navigator', { storage: { getDirectory: async () => fs.root } });
    try {
      expect((await openBrowserRunStore()).kind).toBe('opfs');
      expect(fs.root.children.has('webtune-runs')).toBe(true);
      fs.onWrite = () => {
        throw domError('SecurityError');
      }; // e.g. OPFS refused in a private window
      vi.stubGlobal('indexedDB', new FakeIdb());
      expect((await openBrowserRunStore()).kind).toBe('indexeddb');
      vi.stubGlobal('indexedDB', undefined);
      await expect(openBrowserRunStore()).rejects.toThrow(
        /no persistent storage in this browser: OPFS failed \(SecurityError\) and IndexedDB is not available/,
      );
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('run ids', () => {
    const id = newRunId('My LoRA run: SmolLM2 / alpaca!');
    expect(id).toMatch(/^my-lora-run-smollm2-alpaca-[0-9a-z]+-[0-9a-z]{4}$/);
    expect(() => validateRunId(id)).not.toThrow();
    for (const bad of ['', '.hidden', 'a/b', 'a\\b', '..', 'x'.repeat(129)])
      expect(() => validateRunId(bad)).toThrow(/invalid run id/);
    expect(
      new FileTreeRunStore(new OpfsFileTree(new FakeOpfs().root as unknown as FileSystemDirectoryHandle), 'opfs').kind,
    ).toBe('opfs');
    expect(
      () =>
        new FileTreeRunStore(new OpfsFileTree(new FakeOpfs().root as unknown as FileSystemDirectoryHandle), 'opfs', {
          keep: 0,
        }),
    ).toThrow(/keep must be a positive integer/);
  });
});
