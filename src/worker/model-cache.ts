/**
 * A fetch that keeps downloaded model files in the Cache Storage (per origin, survives reloads), so a
 * model loaded once loads again with no network. Only successful GETs of whole files are stored; HEAD
 * requests are answered from a stored GET when there is one.
 */
export const MODEL_CACHE = 'webtune-models-v1';

export interface CachingFetch {
  fetch: typeof fetch;
  /** URLs answered from the cache so far. */
  hits: Set<string>;
  /** Waits until every response being stored is stored (call before reporting "loaded"). */
  flush(): Promise<void>;
}

function hasCaches(): boolean {
  return typeof caches !== 'undefined';
}

export function cachingFetch(): CachingFetch {
  const hits = new Set<string>();
  const pending: Promise<unknown>[] = [];
  let cache: Promise<Cache | null> | null = null;
  const open = () => (cache ??= hasCaches() ? caches.open(MODEL_CACHE).catch(() => null) : Promise.resolve(null));

  const doFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const c = method === 'GET' || method === 'HEAD' ? await open() : null;
    const stored = c ? await c.match(url).catch(() => undefined) : undefined;
    if (stored) {
      hits.add(url);
      if (method === 'HEAD') {
        await stored.body?.cancel().catch(() => {});
        return new Response(null, { status: 200, headers: stored.headers });
      }
      return stored;
    }
    const res = await fetch(input, init);
    // 206 (a range) and opaque responses are not whole files; only keep complete successful downloads.
    if (c && method === 'GET' && res.status === 200 && res.type !== 'opaque') {
      const copy = res.clone();
      pending.push(c.put(url, copy).catch(() => undefined));
    }
    return res;
  };
  return {
    fetch: doFetch as typeof fetch,
    hits,
    async flush() {
      await Promise.all(pending.splice(0));
    },
  };
}

/** Whether every one of these URLs is in the model cache (a model that loads with no network). */
export async function allCached(urls: string[]): Promise<boolean> {
  if (!hasCaches() || urls.length === 0) return false;
  const c = await caches.open(MODEL_CACHE);
  for (const u of urls) {
    const r = await c.match(u);
    if (!r) return false;
    await r.body?.cancel().catch(() => {});
  }
  return true;
}

/** Files in the model cache and their total size (from Content-Length). */
export async function cachedModelFiles(): Promise<{ files: number; bytes: number }> {
  if (!hasCaches()) return { files: 0, bytes: 0 };
  const c = await caches.open(MODEL_CACHE);
  const keys = await c.keys();
  let bytes = 0;
  for (const k of keys) {
    const r = await c.match(k);
    bytes += Number(r?.headers.get('content-length') ?? 0) || 0;
    await r?.body?.cancel().catch(() => {});
  }
  return { files: keys.length, bytes };
}

export async function clearModelCache(): Promise<void> {
  if (hasCaches()) await caches.delete(MODEL_CACHE);
}
