/**
 * Where model files come from: the Hugging Face Hub (or any server with its URL layout), or
 * files the user picked in the browser. Runs in browsers, workers and Node (no node: imports;
 * the on-disk source is in node-source.ts).
 */

import {
  DEFAULT_FETCH_LIMITS,
  fetchWithDeadline,
  readBody,
  readStream,
  type ByteProgress,
  type FetchLimits,
} from './fetch';

export type { ByteProgress };

export interface FileSource {
  /** Human-readable origin for messages, e.g. "https://huggingface.co/gpt2 (main)". */
  describe: string;
  /** The whole file. Rejects with FileNotFoundError when it does not exist. */
  read(path: string, onProgress?: ByteProgress): Promise<Uint8Array>;
  has(path: string): Promise<boolean>;
}

/** The file does not exist in the source (as opposed to a network/permission failure). */
export class FileNotFoundError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'FileNotFoundError';
  }
}

function cleanPath(p: string): string {
  const parts = p
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s !== '' && s !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new Error(`invalid file path ${JSON.stringify(p)}`);
  return parts.join('/');
}

/** `${baseUrl}/${repo}/resolve/${revision}/${path}`, each path segment encoded: where the Hub serves a file. */
export function hubFileUrl(baseUrl: string, repo: string, revision: string, path: string): string {
  const segments = cleanPath(path).split('/').map(encodeURIComponent).join('/');
  return `${baseUrl.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${segments}`;
}

/**
 * Files of a Hugging Face Hub repository (or a mirror with the same layout):
 * `${baseUrl}/${repo}/resolve/${revision}/${path}`.
 * `fetchImpl` lets callers add auth headers or use a custom fetch; `limits` bounds the wait for an answer, the
 * silence inside a body and the size of a body without a declared length (./fetch.ts).
 */
export function hubSource(
  baseUrl: string,
  repo: string,
  revision = 'main',
  fetchImpl: typeof fetch = fetch,
  limits: FetchLimits = DEFAULT_FETCH_LIMITS,
): FileSource {
  const base = baseUrl.replace(/\/+$/, '');
  if (!/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(repo) || repo.split('/').some((s) => s === '..' || s === '.')) {
    throw new Error(`invalid Hub repository id ${JSON.stringify(repo)} (expected "owner/name")`);
  }
  if (!revision) throw new Error('hubSource: empty revision');
  const urlOf = (path: string) => hubFileUrl(base, repo, revision, path);
  const describe = `${base}/${repo} (revision ${revision})`;

  async function request(path: string, method: 'GET' | 'HEAD'): Promise<{ res: Response; url: string }> {
    const url = urlOf(path);
    return { res: await fetchWithDeadline(url, { method }, fetchImpl, limits), url };
  }

  function statusError(res: Response, url: string, path: string): Error {
    if (res.status === 404)
      return new FileNotFoundError(path, `${path} not found in ${describe} (HTTP 404 for ${url})`);
    if (res.status === 401 || res.status === 403) {
      return new Error(
        `access denied to ${path} (HTTP ${res.status} for ${url}): the repository may not exist, be private, or be gated (accept its terms on the Hub and use a token)`,
      );
    }
    return new Error(`HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''} fetching ${path} from ${url}`);
  }

  return {
    describe,
    async read(path, onProgress) {
      const { res, url } = await request(path, 'GET');
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw statusError(res, url, path);
      }
      return readBody(res, onProgress, url, limits);
    },
    async has(path) {
      const { res, url } = await request(path, 'HEAD');
      await res.body?.cancel().catch(() => {});
      if (res.ok) return true;
      if (res.status === 404) return false;
      throw statusError(res, url, path);
    },
  };
}

/**
 * Files the user picked in the browser (<input type=file multiple / webkitdirectory>, drag and drop),
 * or blobs by path. A requested path matches a file whose name/relative path equals it or ends with
 * "/" + path; when several match, the shallowest wins, and a tie is an error.
 */
export function filesSource(files: File[] | Map<string, Blob>): FileSource {
  const entries: { path: string; blob: Blob }[] = [];
  if (files instanceof Map) {
    for (const [p, blob] of files) entries.push({ path: cleanPath(p), blob });
  } else {
    for (const f of files) entries.push({ path: cleanPath(f.webkitRelativePath || f.name), blob: f });
  }
  const tops = new Set(entries.map((e) => (e.path.includes('/') ? e.path.split('/')[0] : '')));
  const describe =
    tops.size === 1 && !tops.has('')
      ? `local folder "${[...tops][0]}" (${entries.length} files)`
      : `${entries.length} local files`;

  function find(path: string): Blob | null {
    const want = cleanPath(path);
    const matches = entries.filter((e) => e.path === want || e.path.endsWith('/' + want));
    if (matches.length === 0) return null;
    const exact = matches.find((e) => e.path === want);
    if (exact) return exact.blob;
    const depth = (p: string) => p.split('/').length;
    const min = Math.min(...matches.map((e) => depth(e.path)));
    const best = matches.filter((e) => depth(e.path) === min);
    if (best.length > 1)
      throw new Error(
        `${want} is ambiguous in ${describe}: ${best.map((e) => e.path).join(', ')}; pick a single model folder`,
      );
    return best[0].blob;
  }

  return {
    describe,
    async read(path, onProgress) {
      const blob = find(path);
      if (!blob) throw new FileNotFoundError(path, `${path} not found among ${describe}`);
      return readStream(blob.stream(), blob.size, onProgress, path);
    },
    async has(path) {
      return find(path) !== null;
    },
  };
}
