/** A file the worker hands to the page (exports), with its bytes transferred rather than copied. */
import * as Comlink from 'comlink';
import type { ExportedFile } from './api';

/** A file for the page; its bytes are transferred (so never pass bytes the worker keeps). */
export function exportedFile(name: string, bytes: Uint8Array, mime = 'application/octet-stream'): ExportedFile {
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  return Comlink.transfer({ name, mime, bytes: own }, [own.buffer as ArrayBuffer]);
}
