/**
 * Where model files come from: the Hugging Face Hub (or any server with its URL layout), or
 * files the user picked in the browser. Runs in browsers, workers and Node (no node: imports;
 * the on-disk source is in node-source.ts).
 */

/** Byte progress of one file: `total` is null when unknown (no Content-Length). */
export type ByteProgress = (loaded: number, total: number | null) => void;

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

/**
 * Read a stream to the end into one Uint8Array, reporting progress after every chunk.
 * Progress is monotone and the last call is (n, n) with n the byte count. When `expected`
 * is given, a different final length is an error (truncated download).
 */
export async function readStream(
  stream: ReadableStream<Uint8Array>,
  expected: number | null,
  onProgress: ByteProgress | undefined,
  what: string,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  let buf = new Uint8Array(expected ?? 1 << 16);
  let loaded = 0;
  onProgress?.(0, expected);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > buf.length) {
        const grown = new Uint8Array(Math.max(buf.length * 2, loaded + value.length));
        grown.set(buf.subarray(0, loaded));
        buf = grown;
      }
      buf.set(value, loaded);
      loaded += value.length;
      onProgress?.(loaded, expected);
    }
  } finally {
    reader.releaseLock();
  }
  if (expected !== null && loaded !== expected) {
    throw new Error(`${what}: received ${loaded} bytes but expected ${expected} (download truncated or size changed)`);
  }
  if (expected === null) onProgress?.(loaded, loaded);
  return loaded === buf.length ? buf : buf.slice(0, loaded);
}

function cleanPath(p: string): string {
  const parts = p
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s !== '' && s !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new Error(`invalid file path ${JSON.stringify(p)}`);
  return parts.join('/');
}

/**
 * Files of a Hugging Face Hub repository (or a mirror with the same layout):
 * `${baseUrl}/${repo}/resolve/${revision}/${path}`.
 * `fetchImpl` lets callers add auth headers or use a custom fetch.
 */
export function hubSource(
  baseUrl: string,
  repo: string,
  revision = 'main',
  fetchImpl: typeof fetch = fetch,
): FileSource {
  const base = baseUrl.replace(/\/+$/, '');
  if (!/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(repo) || repo.split('/').some((s) => s === '..' || s === '.')) {
    throw new Error(`invalid Hub repository id ${JSON.stringify(repo)} (expected "owner/name")`);
  }
  if (!revision) throw new Error('hubSource: empty revision');
  const doFetch = (url: string, init?: RequestInit) => fetchImpl(url, init);
  const urlOf = (path: string) =>
    `${base}/${repo}/resolve/${encodeURIComponent(revision)}/${cleanPath(path).split('/').map(encodeURIComponent).join('/')}`;
  const describe = `${base}/${repo} (revision ${revision})`;

  async function request(path: string, method: 'GET' | 'HEAD'): Promise<{ res: Response; url: string }> {
    const url = urlOf(path);
    let res: Response;
    try {
      res = await doFetch(url, { method });
    } catch (e) {
      throw new Error(
        `network error fetching ${url}: ${(e as Error).message} (offline, blocked by CORS, or the server is unreachable)`,
        { cause: e },
      );
    }
    return { res, url };
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
      const enc = res.headers.get('content-encoding');
      const len = res.headers.get('content-length');
      // With a content encoding, Content-Length counts compressed bytes: not the body's length.
      const total = len !== null && /^\d+$/.test(len) && (!enc || enc === 'identity') ? Number(len) : null;
      if (!res.body) {
        const b = new Uint8Array(await res.arrayBuffer());
        onProgress?.(b.length, b.length);
        return b;
      }
      return readStream(res.body, total, onProgress, url);
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
