/** Node only: a FileSource over a directory on disk (CLI, tests). */
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { FileNotFoundError, type FileSource } from './source';

const CHUNK = 8 << 20;

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
      let fh;
      try {
        fh = await open(full, 'r');
      } catch (e) {
        if (notFound(e)) throw new FileNotFoundError(p, `${p} not found in ${root} (no file ${full})`);
        throw e;
      }
      try {
        const { size } = await fh.stat();
        if (!Number.isSafeInteger(size)) throw new Error(`${full}: not a regular file`);
        const out = new Uint8Array(size);
        let loaded = 0;
        onProgress?.(0, size);
        while (loaded < size) {
          const { bytesRead } = await fh.read(out, loaded, Math.min(CHUNK, size - loaded), loaded);
          if (bytesRead === 0) throw new Error(`${full}: file shrank while reading (${loaded} of ${size} bytes)`);
          loaded += bytesRead;
          onProgress?.(loaded, size);
        }
        return out;
      } finally {
        await fh.close();
      }
    },
    async has(p) {
      try {
        return (await stat(resolve(p))).isFile();
      } catch (e) {
        if (notFound(e)) return false;
        throw e;
      }
    },
  };
}
