/**
 * Out of space: StorageQuotaError (what a store throws when a save does not fit: the bytes needed and free), how to
 * recognise a platform's quota / full-disk error, and the browser's free-space estimate. Browser-safe.
 */
import { formatBytes } from '../util/bytes';

/** Saving failed for lack of space; nothing stored before was changed. */
export class StorageQuotaError extends Error {
  constructor(
    /** Bytes the checkpoint needed. */
    readonly needed: number,
    /** Bytes free when known (quota − usage, or free disk space). */
    readonly available: number | null,
    readonly where: string,
    readonly cause?: unknown,
  ) {
    super(
      `not enough storage to save the checkpoint in ${where}: it needs ${formatBytes(needed)} (${needed} bytes)` +
        // a quota error while the estimate shows room: the site's quota (or an override of it) is what refused
        `${available === null ? '' : available < needed ? `, ${formatBytes(Math.max(0, available))} free` : ", more than this site's storage quota allows"}. ` +
        'The previous checkpoint is kept. Free some space (delete old runs, or export one to a file and delete it) and save again.',
    );
    this.name = 'StorageQuotaError';
  }
}

/** Whether an error means "out of space" (DOMException QuotaExceededError, legacy code 22, Node ENOSPC/EDQUOT). */
export function isQuotaError(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const x = e as { name?: unknown; code?: unknown };
  return x.name === 'QuotaExceededError' || x.code === 22 || x.code === 'ENOSPC' || x.code === 'EDQUOT';
}

/** Bytes the origin may still store (quota − usage from navigator.storage.estimate), null when the browser does not say. */
export async function browserStorageFree(): Promise<number | null> {
  const s = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  if (!s?.estimate) return null;
  const e = await s.estimate();
  return e.quota !== undefined && e.usage !== undefined ? e.quota - e.usage : null;
}
