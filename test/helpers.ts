/** Shared test helpers: where ../shared lives and a skip-with-reason for tests that need it. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED = path.resolve(ROOT, '..', 'shared');
export const STORIES_DIR = path.join(SHARED, 'models', 'stories260K');
export const DATASETS_DIR = path.join(SHARED, 'datasets');
export const HAVE_STORIES = existsSync(path.join(STORIES_DIR, 'stories260K.bin'));
export const HAVE_DATASETS = existsSync(DATASETS_DIR);

export function sharedMissing(what: string): string {
  return `skipped: ${what} needs ../shared (not found at ${SHARED})`;
}
