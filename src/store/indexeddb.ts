/**
 * Runs in IndexedDB (the browser fallback when OPFS cannot write): object store "runs" (one record per run: name,
 * pointer, generation numbers), "checkpoints" (one record per generation: checkpoint.json text and the tensor file's
 * bytes) and "files" (putFile's, keyed "<run>/<name>"). A save is one readwrite transaction over the stores, so it
 * commits entirely or not at all.
 */
import {
  CHECKPOINT_JSON,
  CHECKPOINT_TENSORS,
  decodeCheckpointFiles,
  encodeCheckpointFiles,
  type SessionCheckpoint,
} from '../train/checkpoint';
import { browserStorageFree, isQuotaError, StorageQuotaError } from './quota';
import {
  BaseRunStore,
  summarizeCheckpoint,
  validateFileName,
  validateRunId,
  type CheckpointSummary,
  type RunInfo,
  type RunStoreOptions,
} from './run-store';

interface RunRecord {
  id: string;
  name: string;
  created: string;
  /** Committed generation numbers, oldest first. */
  seqs: number[];
  latest: { seq: number; summary: CheckpointSummary } | null;
}

interface CheckpointRecord {
  key: string;
  run: string;
  seq: number;
  json: string;
  tensors: ArrayBuffer;
}

const ckKey = (run: string, seq: number) => `${run}/${String(seq).padStart(9, '0')}`;
const fileKey = (run: string, name: string) => `${run}/${name}`;

interface FileRecord {
  key: string;
  run: string;
  name: string;
  text: string;
}

type IdbStores = { runs: IDBObjectStore; checkpoints: IDBObjectStore; files: IDBObjectStore };
const STORES = ['runs', 'checkpoints', 'files'];

/** A RunStore in IndexedDB (database "webtune-runs" unless given): one transaction per save. */
export class IndexedDbRunStore extends BaseRunStore {
  readonly kind = 'indexeddb' as const;
  private db: Promise<IDBDatabase> | null = null;
  private readonly factory: IDBFactory;
  private readonly dbName: string;

  constructor(opts: RunStoreOptions & { indexedDB?: IDBFactory; dbName?: string } = {}) {
    super(opts);
    const f = opts.indexedDB ?? (typeof indexedDB !== 'undefined' ? indexedDB : undefined);
    if (!f) throw new Error('IndexedDB is not available');
    this.factory = f;
    this.dbName = opts.dbName ?? 'webtune-runs';
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise<IDBDatabase>((resolve, reject) => {
      // version 2 added "files"
      const req = this.factory.open(this.dbName, 2);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains('runs')) db.createObjectStore('runs', { keyPath: 'id' });
        if (!db.objectStoreNames.contains('checkpoints')) db.createObjectStore('checkpoints', { keyPath: 'key' });
        if (!db.objectStoreNames.contains('files')) db.createObjectStore('files', { keyPath: 'key' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error(`cannot open IndexedDB database ${this.dbName}`));
      req.onblocked = () => reject(new Error(`IndexedDB database ${this.dbName} is blocked by another tab`));
    });
    this.db.catch(() => {
      this.db = null;
    });
    return this.db;
  }

  /**
   * Run `body` in one transaction; resolves with what body's callbacks put in `out.value` once the transaction has
   * committed, rejects with the transaction's error if it aborts. Requests must be issued from request callbacks
   * (not after an await), as IndexedDB requires.
   */
  private async tx<T>(
    mode: IDBTransactionMode,
    body: (stores: IdbStores, out: { value?: T; error?: Error }, tx: IDBTransaction) => void,
  ): Promise<T | undefined> {
    const db = await this.open();
    return new Promise<T | undefined>((resolve, reject) => {
      const t = db.transaction(STORES, mode);
      const out: { value?: T; error?: Error } = {};
      t.oncomplete = () => (out.error ? reject(out.error) : resolve(out.value));
      t.onabort = () => reject(out.error ?? t.error ?? new Error('IndexedDB transaction aborted'));
      try {
        body(
          { runs: t.objectStore('runs'), checkpoints: t.objectStore('checkpoints'), files: t.objectStore('files') },
          out,
          t,
        );
      } catch (e) {
        out.error = e as Error;
        try {
          t.abort();
        } catch {
          /* already finished */
        }
      }
    });
  }

  private toInfo(r: RunRecord): RunInfo {
    return {
      id: r.id,
      name: r.name,
      created: r.created,
      latest: r.latest?.summary ?? null,
      checkpoints: r.seqs.length,
    };
  }

  async list(): Promise<RunInfo[]> {
    const recs = await this.tx<RunRecord[]>('readonly', ({ runs }, out) => {
      const q = runs.getAll();
      q.onsuccess = () => {
        out.value = q.result as RunRecord[];
      };
    });
    return (recs ?? [])
      .map((r) => this.toInfo(r))
      .sort((a, b) => (b.latest?.saved ?? b.created).localeCompare(a.latest?.saved ?? a.created));
  }

  private record(id: string): Promise<RunRecord | undefined> {
    return this.tx<RunRecord>('readonly', ({ runs }, out) => {
      const q = runs.get(id);
      q.onsuccess = () => {
        out.value = q.result as RunRecord | undefined;
      };
    });
  }

  async info(id: string): Promise<RunInfo | null> {
    validateRunId(id);
    const r = await this.record(id);
    return r ? this.toInfo(r) : null;
  }

  async save(id: string, ck: SessionCheckpoint, opts: { name?: string } = {}): Promise<RunInfo> {
    validateRunId(id);
    if (opts.name !== undefined) this.checkName(opts.name);
    const files = await encodeCheckpointFiles(ck);
    const jsonBytes = files.get(CHECKPOINT_JSON)!,
      tensors = files.get(CHECKPOINT_TENSORS)!;
    const bytes = jsonBytes.length + tensors.length;
    const summary = summarizeCheckpoint(ck.meta, bytes);
    const keep = this.keep;
    try {
      const rec = await this.tx<RunRecord>('readwrite', ({ runs, checkpoints }, out) => {
        const q = runs.get(id);
        q.onsuccess = () => {
          const prev = q.result as RunRecord | undefined;
          const r: RunRecord = prev
            ? { ...prev, seqs: [...prev.seqs], name: opts.name ?? prev.name }
            : { id, name: opts.name ?? id, created: new Date().toISOString(), seqs: [], latest: null };
          const seq = (r.seqs.length ? r.seqs[r.seqs.length - 1] : 0) + 1;
          const buf = tensors.buffer.slice(tensors.byteOffset, tensors.byteOffset + tensors.byteLength) as ArrayBuffer;
          const c: CheckpointRecord = {
            key: ckKey(id, seq),
            run: id,
            seq,
            json: new TextDecoder().decode(jsonBytes),
            tensors: buf,
          };
          checkpoints.put(c);
          r.seqs.push(seq);
          r.latest = { seq, summary };
          while (r.seqs.length > keep) checkpoints.delete(ckKey(id, r.seqs.shift()!));
          runs.put(r);
          out.value = r;
        };
      });
      return this.toInfo(rec!);
    } catch (e) {
      if (isQuotaError(e))
        throw new StorageQuotaError(bytes, await browserStorageFree().catch(() => null), `IndexedDB ${this.dbName}`, e);
      throw e;
    }
  }

  async loadLatest(id: string): Promise<SessionCheckpoint | null> {
    validateRunId(id);
    const r = await this.record(id);
    if (!r || !r.latest) return null;
    const order = [...r.seqs].reverse().filter((s) => s <= r.latest!.seq);
    const errors: string[] = [];
    for (const seq of order) {
      const c = await this.tx<CheckpointRecord>('readonly', ({ checkpoints }, out) => {
        const q = checkpoints.get(ckKey(id, seq));
        q.onsuccess = () => {
          out.value = q.result as CheckpointRecord | undefined;
        };
      });
      try {
        if (!c) throw new Error(`checkpoint ${seq} is missing`);
        return await decodeCheckpointFiles(
          { json: c.json, tensors: new Uint8Array(c.tensors) },
          `IndexedDB ${this.dbName}/${id}/${seq}`,
        );
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    throw new Error(`run ${id}: no stored checkpoint could be read: ${errors.join('; ')}`);
  }

  async rename(id: string, name: string): Promise<RunInfo> {
    validateRunId(id);
    this.checkName(name);
    const rec = await this.tx<RunRecord>('readwrite', ({ runs }, out) => {
      const q = runs.get(id);
      q.onsuccess = () => {
        const r = q.result as RunRecord | undefined;
        if (!r) {
          out.error = new Error(`no run ${id}`);
          return;
        }
        const n = { ...r, name };
        runs.put(n);
        out.value = n;
      };
    });
    return this.toInfo(rec!);
  }

  async delete(id: string): Promise<void> {
    validateRunId(id);
    await this.tx<void>('readwrite', ({ runs, checkpoints, files }) => {
      const f = files.getAll();
      f.onsuccess = () => {
        for (const r of f.result as FileRecord[]) if (r.run === id) files.delete(r.key);
      };
      const q = runs.get(id);
      q.onsuccess = () => {
        const r = q.result as RunRecord | undefined;
        if (!r) return;
        for (const s of r.seqs) checkpoints.delete(ckKey(id, s));
        runs.delete(id);
      };
    });
  }

  async putFile(id: string, name: string, text: string): Promise<void> {
    validateRunId(id);
    validateFileName(name);
    try {
      await this.tx<void>('readwrite', ({ files }) => {
        const rec: FileRecord = { key: fileKey(id, name), run: id, name, text };
        files.put(rec);
      });
    } catch (e) {
      if (isQuotaError(e))
        throw new StorageQuotaError(
          new TextEncoder().encode(text).length,
          await browserStorageFree().catch(() => null),
          `IndexedDB ${this.dbName}`,
          e,
        );
      throw e;
    }
  }

  async getFile(id: string, name: string): Promise<string | null> {
    validateRunId(id);
    validateFileName(name);
    const r = await this.tx<FileRecord>('readonly', ({ files }, out) => {
      const q = files.get(fileKey(id, name));
      q.onsuccess = () => {
        out.value = q.result as FileRecord | undefined;
      };
    });
    return r?.text ?? null;
  }

  async listFiles(id: string): Promise<string[]> {
    validateRunId(id);
    const recs = await this.tx<FileRecord[]>('readonly', ({ files }, out) => {
      const q = files.getAll();
      q.onsuccess = () => {
        out.value = q.result as FileRecord[];
      };
    });
    return (recs ?? [])
      .filter((r) => r.run === id)
      .map((r) => r.name)
      .sort();
  }

  /** Close the database connection (tests; a page simply drops it). */
  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) (await db).close();
  }
}
