/**
 * FileTreeRunStore: the RunStore over a FileTree, one directory per run in the layout of ./generations.ts (used by
 * OPFS, ./opfs.ts, and Node folders, ./node.ts). Browser-safe.
 */
import { encodeCheckpointFiles, type SessionCheckpoint } from '../train/checkpoint';
import {
  FILES_DIR,
  generations,
  json,
  LATEST_FILE,
  parsePointer,
  readLatestGeneration,
  RUN_FILE,
  seqOf,
  writeGeneration,
  type FileTree,
} from './generations';
import { isQuotaError, StorageQuotaError } from './quota';
import {
  BaseRunStore,
  FILE_NAME,
  RUN_ID,
  validateFileName,
  validateRunId,
  type RunInfo,
  type RunStoreOptions,
} from './run-store';

interface RunFile {
  id: string;
  name: string;
  created: string;
}

/** A RunStore over a FileTree: one directory per run. */
export class FileTreeRunStore extends BaseRunStore {
  constructor(
    readonly tree: FileTree,
    readonly kind: 'opfs' | 'node',
    opts: RunStoreOptions = {},
  ) {
    super(opts);
  }

  private async runFile(id: string): Promise<RunFile | null> {
    const b = await this.tree.read([id, RUN_FILE]);
    if (!b) return null;
    try {
      const r = JSON.parse(new TextDecoder().decode(b)) as RunFile;
      return typeof r.name === 'string' ? { id, name: r.name, created: String(r.created) } : null;
    } catch {
      return null;
    }
  }

  async info(id: string): Promise<RunInfo | null> {
    validateRunId(id);
    const rf = await this.runFile(id);
    const ptr = parsePointer(await this.tree.read([id, LATEST_FILE]));
    if (!rf && !ptr) return null;
    const gens = (await generations(this.tree, [id])).filter((g) => !ptr || seqOf(g) <= seqOf(ptr.generation));
    return {
      id,
      name: rf?.name ?? id,
      created: rf?.created ?? ptr?.summary.saved ?? '',
      latest: ptr?.summary ?? null,
      checkpoints: gens.length,
    };
  }

  async list(): Promise<RunInfo[]> {
    const out: RunInfo[] = [];
    for (const e of await this.tree.list([])) {
      if (e.kind !== 'directory' || !RUN_ID.test(e.name)) continue;
      const i = await this.info(e.name);
      if (i) out.push(i);
    }
    return out.sort((a, b) => (b.latest?.saved ?? b.created).localeCompare(a.latest?.saved ?? a.created));
  }

  async save(id: string, ck: SessionCheckpoint, opts: { name?: string } = {}): Promise<RunInfo> {
    validateRunId(id);
    if (opts.name !== undefined) this.checkName(opts.name);
    const files = await encodeCheckpointFiles(ck);
    const existing = await this.runFile(id);
    const fresh = !existing && (await this.tree.list([id])).length === 0;
    const rf: RunFile = existing ?? { id, name: opts.name ?? id, created: new Date().toISOString() };
    try {
      if (!existing || (opts.name !== undefined && opts.name !== rf.name)) {
        await this.tree.write([id, RUN_FILE], json({ ...rf, name: opts.name ?? rf.name }));
      }
      await writeGeneration(this.tree, [id], ck, this.keep, files);
    } catch (e) {
      if (fresh) await this.tree.remove([id]).catch(() => undefined);
      if (isQuotaError(e)) {
        const bytes = [...files.values()].reduce((s, b) => s + b.length, 0);
        throw new StorageQuotaError(
          bytes,
          this.tree.free ? await this.tree.free().catch(() => null) : null,
          `${this.tree.describe}/${id}`,
          e,
        );
      }
      throw e;
    }
    return (await this.info(id))!;
  }

  async loadLatest(id: string): Promise<SessionCheckpoint | null> {
    validateRunId(id);
    return (await readLatestGeneration(this.tree, [id]))?.checkpoint ?? null;
  }

  async rename(id: string, name: string): Promise<RunInfo> {
    this.checkName(name);
    const info = await this.info(id);
    if (!info) throw new Error(`no run ${id}`);
    await this.tree.write([id, RUN_FILE], json({ id, name, created: info.created }));
    return { ...info, name };
  }

  async delete(id: string): Promise<void> {
    validateRunId(id);
    await this.tree.remove([id]);
  }

  async putFile(id: string, name: string, text: string): Promise<void> {
    validateRunId(id);
    validateFileName(name);
    const bytes = new TextEncoder().encode(text);
    try {
      await this.tree.write([id, FILES_DIR, name], bytes);
    } catch (e) {
      if (isQuotaError(e))
        throw new StorageQuotaError(
          bytes.length,
          this.tree.free ? await this.tree.free().catch(() => null) : null,
          `${this.tree.describe}/${id}`,
          e,
        );
      throw e;
    }
  }

  async getFile(id: string, name: string): Promise<string | null> {
    validateRunId(id);
    validateFileName(name);
    const b = await this.tree.read([id, FILES_DIR, name]);
    return b ? new TextDecoder().decode(b) : null;
  }

  async listFiles(id: string): Promise<string[]> {
    validateRunId(id);
    return (await this.tree.list([id, FILES_DIR]))
      .filter((e) => e.kind === 'file' && FILE_NAME.test(e.name))
      .map((e) => e.name)
      .sort();
  }
}
