/**
 * Zip archives of exported files (an adapter folder, a merged model folder, metrics): one download each, entries at
 * the archive's root. Stored without compression (safetensors of float32 weights barely compress, and storing is
 * instant); fflate writes a standard ZIP (with ZIP64 past 4 GiB) that unzip, Python's zipfile and the OS open.
 *
 * Browser-safe: no node: imports.
 */
import { zipSync, type Zippable } from 'fflate';

/** Files (name → bytes, names may hold '/' folders) as one zip archive, in the given order. */
export function zipFiles(files: Iterable<readonly [string, Uint8Array]>): Uint8Array {
  const entries: Zippable = {};
  for (const [name, bytes] of files) {
    if (!name || name.startsWith('/') || name.split('/').includes('..'))
      throw new Error(`zipFiles: "${name}" is not a relative file name`);
    if (Object.hasOwn(entries, name)) throw new Error(`zipFiles: "${name}" appears twice`);
    entries[name] = [bytes, { level: 0 }];
  }
  return zipSync(entries, { mtime: new Date() });
}
