/**
 * The browser's run store: openBrowserRunStore picks OPFS when it can write here, else IndexedDB; persistStorage asks
 * the browser not to evict the origin's storage.
 */
import { IndexedDbRunStore } from './indexeddb';
import { openOpfsRunStore } from './opfs';
import type { RunStore, RunStoreOptions } from './run-store';

/**
 * The browser's best store: OPFS when it works here (probed with a small write), else IndexedDB.
 * Call persistStorage() once (e.g. on the first save) so the browser does not evict runs under storage pressure.
 */
export async function openBrowserRunStore(opts: RunStoreOptions = {}): Promise<RunStore> {
  let opfsError: unknown;
  try {
    const store = await openOpfsRunStore(opts);
    const probe = ['.probe'];
    await store.tree.write(probe, new Uint8Array([1]));
    await store.tree.remove(probe);
    return store;
  } catch (e) {
    opfsError = e;
  }
  try {
    return new IndexedDbRunStore(opts);
  } catch (e) {
    throw new Error(
      `no persistent storage in this browser: OPFS failed (${(opfsError as Error)?.message ?? opfsError}) and ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** Ask the browser to keep this origin's storage under pressure (navigator.storage.persist); false if refused/unavailable. */
export async function persistStorage(): Promise<boolean> {
  const s = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  if (!s?.persist) return false;
  try {
    return await s.persist();
  } catch {
    return false;
  }
}
