/** Files the worker hands to the page (exports), with their bytes transferred rather than copied; zips of several. */
import * as Comlink from 'comlink';
import { zipFiles } from '../io/zip';
import { slugify } from '../store/run-store';
import type { ExportedFile } from './api';
import type { WorkerState } from './state';

/** A file for the page; its bytes are transferred (so never pass bytes the worker keeps). */
export function exportedFile(name: string, bytes: Uint8Array, mime = 'application/octet-stream'): ExportedFile {
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  return Comlink.transfer({ name, mime, bytes: own }, [own.buffer as ArrayBuffer]);
}

/** Several files as one zip for the page (entries at the archive's root, in order). */
export function exportedZip(name: string, files: Iterable<readonly [string, Uint8Array]>): ExportedFile {
  return exportedFile(name, zipFiles(files), 'application/zip');
}

/** The start of an export's file name: the stored run's name when the adapter is that run's, else the model's. */
export function exportBaseName(s: WorkerState): string {
  const run = !s.adapterOrigin ? s.job?.saver?.name : undefined;
  return slugify(run ?? s.loaded?.info.name ?? 'webtune', 60);
}
