/**
 * Node only: a FileSource over a directory on disk (CLI, tests), and readLocalFile for single files the CLI is
 * given (datasets, templates, texts). Reads are capped: a regular file is read to its declared size; a folder
 * is named as a folder; a FIFO, a device or /dev/stdin is streamed up to a cap (it declares no size), and a
 * model file must be a regular file (a FIFO or /dev/zero named model.safetensors is said to be one, not
 * reported as missing).
 */
import type { Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../util/bytes';
import { FileNotFoundError, type FileSource } from './source';

const CHUNK = 8 << 20;

/** What a file system entry is, for messages: "a folder", "a FIFO (named pipe)", "a character device", … */
export function describeEntry(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Reads a regular file to its declared size (an open handle of `size` bytes). */
async function readDeclared(
  fh: FileHandle,
  size: number,
  name: string,
  onProgress?: (loaded: number, total: number | null) => void,
): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let loaded = 0;
  onProgress?.(0, size);
  while (loaded < size) {
    const { bytesRead } = await fh.read(out, loaded, Math.min(CHUNK, size - loaded), loaded);
    if (bytesRead === 0) throw new Error(`${name}: file shrank while reading (${loaded} of ${size} bytes)`);
    loaded += bytesRead;
    onProgress?.(loaded, size);
  }
  return out;
}

export function dirSource(dir: string): FileSource {
  const root = path.resolve(dir);
  const resolve = (p: string) => {
    const full = path.resolve(root, p);
    if (full !== root && !full.startsWith(root + path.sep))
      throw new Error(`path ${JSON.stringify(p)} escapes ${root}`);
    return full;
  };
  const notFound = (e: unknown) =>
    (e as NodeJS.ErrnoException)?.code === 'ENOENT' || (e as NodeJS.ErrnoException)?.code === 'ENOTDIR';

  return {
    describe: root,
    async read(p, onProgress) {
      const full = resolve(p);
      // stat before open: opening a FIFO blocks until a writer appears.
      let st: Stats;
      try {
        st = await stat(full);
      } catch (e) {
        if (notFound(e)) throw new FileNotFoundError(p, `${p} not found in ${root} (no file ${full})`);
        throw e;
      }
      if (!st.isFile())
        throw new Error(
          `${full} is ${describeEntry(st)}, not a regular file: model and tokenizer files must be regular files (their size is read before their bytes); put the file itself there`,
        );
      const fh = await open(full, 'r');
      try {
        const { size } = await fh.stat();
        if (!Number.isSafeInteger(size)) throw new Error(`${full}: not a regular file`);
        return await readDeclared(fh, size, full, onProgress);
      } finally {
        await fh.close();
      }
    },
    async has(p) {
      // Anything by that name counts (a folder or FIFO named model.safetensors is reported as such by read(),
      // not as a missing file).
      try {
        await stat(resolve(p));
        return true;
      } catch (e) {
        if (notFound(e)) return false;
        throw e;
      }
    },
  };
}

/** Bytes read at most from a file that declares no size (a FIFO, /dev/stdin, a device): 256 MiB. */
export const MAX_STREAM_BYTES = 256 * 2 ** 20;

/**
 * One file the user named (`what`: "dataset", "template", …): a regular file is read to its declared size;
 * a FIFO or device is streamed up to `maxStreamBytes` (more is refused naming the file and the cap); a
 * folder or a missing path is an error naming it.
 */
export async function readLocalFile(
  file: string,
  what: string,
  maxStreamBytes: number = MAX_STREAM_BYTES,
): Promise<Uint8Array> {
  let st: Stats;
  try {
    st = await stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`${what} ${file} not found (no such file)`, { cause: e });
    throw new Error(`cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (st.isDirectory()) throw new Error(`${what} ${file} is a folder: name a file in it`);
  const fh = await open(file, 'r');
  try {
    if (st.isFile()) return await readDeclared(fh, st.size, file);
    // No declared size: stream with a cap.
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(Math.min(CHUNK, maxStreamBytes + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      parts.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxStreamBytes)
        throw new Error(
          `${what} ${file} is ${describeEntry(st)} that gave more than ${formatBytes(maxStreamBytes)} without ending (the limit for a file without a declared size): save the data to a regular file and name that`,
        );
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  } finally {
    await fh.close();
  }
}
