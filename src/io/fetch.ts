/**
 * HTTP reads with limits: a deadline for the response to start (connect + headers), a deadline between two chunks
 * of the body (a server that stalls or trickles nothing), and a cap on the bytes a body may have (its declared
 * Content-Length, else `maxBytes`). Every failure says which URL, what happened and what to do.
 * Browser, worker and Node alike (global fetch, streams).
 */

/** Byte progress of one file: `total` is null when unknown (no Content-Length). */
export type ByteProgress = (loaded: number, total: number | null) => void;

export interface FetchLimits {
  /** Milliseconds until the response headers arrive. */
  connectMs: number;
  /** Milliseconds the body may go without a byte. */
  idleMs: number;
  /** Largest body accepted when the server declares no Content-Length (or it is compressed). */
  maxBytes: number;
}

export const DEFAULT_FETCH_LIMITS: Readonly<FetchLimits> = Object.freeze({
  connectMs: 30_000,
  idleMs: 60_000,
  // A JavaScript typed array holds at most this many bytes in current engines; weights beyond it cannot load anyway.
  maxBytes: 2 ** 32 - 1,
});

/** A server that did not answer, or stopped sending, within its deadline. */
export class NetworkTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkTimeoutError';
  }
}

const seconds = (ms: number) => (ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`);

/**
 * Why a fetch failed, as precisely as the runtime says: Node's fetch gives the socket error as `cause.code`
 * (ECONNREFUSED, ENOTFOUND, …); browsers give only "Failed to fetch".
 */
function networkReason(url: string, e: unknown): string {
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    // keep the whole address
  }
  const cause = (e as { cause?: { code?: unknown; message?: unknown } })?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  const hint: Record<string, string> = {
    ECONNREFUSED: `the host ${host} is unreachable: it refused the connection (nothing listens on that port)`,
    ENOTFOUND: `the host ${host} is unreachable: its name does not resolve (DNS)`,
    EAI_AGAIN: `the host ${host} is unreachable: its name could not be resolved now (DNS, offline?)`,
    ECONNRESET: `the host ${host} closed the connection`,
    EHOSTUNREACH: `the host ${host} is unreachable (no route to it)`,
    ENETUNREACH: `the host ${host} is unreachable (no network route)`,
    ETIMEDOUT: `the host ${host} is unreachable: the connection timed out`,
  };
  if (hint[code]) return `${hint[code]} (${code}); check the address and the network, then try again`;
  const detail = typeof cause?.message === 'string' && cause.message ? `: ${cause.message}` : '';
  return `${(e as Error).message}${detail}${code ? ` (${code})` : ''} (offline, blocked by CORS, or the host ${host} is unreachable)`;
}

/** fetch(url) that rejects with NetworkTimeoutError when no response has started after limits.connectMs. */
export async function fetchWithDeadline(
  url: string,
  init: RequestInit = {},
  fetchImpl: typeof fetch = fetch,
  limits: Pick<FetchLimits, 'connectMs'> = DEFAULT_FETCH_LIMITS,
): Promise<Response> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, limits.connectMs);
  try {
    return await fetchImpl(url, { ...init, signal: controller.signal });
  } catch (e) {
    if (timedOut) {
      throw new NetworkTimeoutError(
        `${url}: the server did not answer within ${seconds(limits.connectMs)} (it accepted the connection but sent no response, or is unreachable); check the address and the network, then try again`,
      );
    }
    throw new Error(`network error fetching ${url}: ${networkReason(url, e)}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}

/** Content-Length when it counts the body's bytes (not with a content encoding), else null. */
export function declaredLength(res: Response): number | null {
  const enc = res.headers.get('content-encoding');
  const len = res.headers.get('content-length');
  return len !== null && /^\d+$/.test(len) && (!enc || enc === 'identity') ? Number(len) : null;
}

/**
 * Read a stream to the end into one Uint8Array, reporting progress after every chunk. Progress is monotone and the
 * last call is (n, n) with n the byte count. With `expected` (a declared length), a body that ends short or runs
 * past it is an error; without it, the body may hold at most limits.maxBytes. A body that sends nothing for
 * limits.idleMs is cancelled with NetworkTimeoutError.
 */
export async function readStream(
  stream: ReadableStream<Uint8Array>,
  expected: number | null,
  onProgress: ByteProgress | undefined,
  what: string,
  limits: Pick<FetchLimits, 'idleMs' | 'maxBytes'> = DEFAULT_FETCH_LIMITS,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  const cap = expected ?? limits.maxBytes;
  let buf = new Uint8Array(expected ?? Math.min(1 << 16, cap));
  let loaded = 0;
  onProgress?.(0, expected);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = () =>
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new NetworkTimeoutError(
              `${what}: no data for ${seconds(limits.idleMs)} after ${loaded} bytes${expected !== null ? ` of ${expected}` : ''} (the server stalled); try again`,
            ),
          ),
        limits.idleMs,
      );
    });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), idle()]);
      clearTimeout(timer);
      if (done) break;
      if (loaded + value.length > cap) {
        throw new Error(
          expected !== null
            ? `${what}: the server sent more than the ${expected} bytes it declared (Content-Length)`
            : `${what}: larger than ${cap} bytes, the most a file may have here`,
        );
      }
      if (loaded + value.length > buf.length) {
        const grown = new Uint8Array(Math.min(cap, Math.max(buf.length * 2, loaded + value.length)));
        grown.set(buf.subarray(0, loaded));
        buf = grown;
      }
      buf.set(value, loaded);
      loaded += value.length;
      onProgress?.(loaded, expected);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
    try {
      reader.releaseLock();
    } catch {
      // a read still pending after a cancel: the stream is done with either way
    }
  }
  if (expected !== null && loaded !== expected) {
    throw new Error(`${what}: received ${loaded} bytes but expected ${expected} (download truncated or size changed)`);
  }
  if (expected === null) onProgress?.(loaded, loaded);
  return loaded === buf.length ? buf : buf.slice(0, loaded);
}

/** The whole body of a successful response, within the limits (see readStream). */
export async function readBody(
  res: Response,
  onProgress: ByteProgress | undefined,
  what: string,
  limits: Pick<FetchLimits, 'idleMs' | 'maxBytes'> = DEFAULT_FETCH_LIMITS,
): Promise<Uint8Array> {
  const total = declaredLength(res);
  if (!res.body) {
    const b = new Uint8Array(await res.arrayBuffer());
    onProgress?.(b.length, b.length);
    return b;
  }
  return readStream(res.body, total, onProgress, what, limits);
}
