/**
 * Test helper: a local HTTP server with the Hugging Face Hub's file URL layout,
 *   GET/HEAD /{owner}/{name}/resolve/{revision}/{path}
 * serving `${rootDir}/{owner}/{name}/{path}` for revision "main" and
 * `${rootDir}/{owner}/{name}@{revision}/{path}` for any other revision.
 * `mounts` maps a repo id to another directory, e.g.
 *   { 'karpathy/tinyllamas': path.join(SHARED, 'models') }
 * serves the shared stories260K files at karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface HubServerOptions {
  /** repo id -> directory holding that repo's files (revision main). */
  mounts?: Record<string, string>;
  /** Bytes per write, so clients see several progress events (default 16 KiB). */
  chunkSize?: number;
  /** Send no Content-Length (chunked transfer encoding) for these file paths, or all when true. */
  omitContentLength?: boolean | ((file: string) => boolean);
  /** Answer requests for `repo/path` (or just `path`) with this HTTP status instead. */
  failWith?: Record<string, number>;
}

export interface HubServer {
  baseUrl: string;
  /** Every request served: method, URL path and status. */
  requests: { method: string; url: string; status: number }[];
  close(): Promise<void>;
}

function within(dir: string, p: string): boolean {
  return p === dir || p.startsWith(dir + path.sep);
}

export async function startHubServer(rootDir: string, opts: HubServerOptions = {}): Promise<HubServer> {
  const root = path.resolve(rootDir);
  const chunk = opts.chunkSize ?? 16 * 1024;
  const requests: HubServer['requests'] = [];

  const server = http.createServer(async (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const done = (status: number, body = '', headers: Record<string, string> = {}) => {
      requests.push({ method, url, status });
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(method === 'HEAD' ? undefined : body);
    };
    try {
      if (method !== 'GET' && method !== 'HEAD') return done(405, 'Method not allowed');
      const pathname = new URL(url, 'http://x').pathname;
      const m = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(pathname);
      if (!m) return done(404, 'Repository not found', { 'X-Error-Code': 'RepoNotFound' });
      const [repo, revision, file] = [
        m[1],
        decodeURIComponent(m[2]),
        m[3].split('/').map(decodeURIComponent).join('/'),
      ];
      const status = opts.failWith?.[`${repo}/${file}`] ?? opts.failWith?.[file];
      if (status) return done(status, `Injected HTTP ${status}`);
      const repoDir = opts.mounts?.[repo] ?? path.join(root, revision === 'main' ? repo : `${repo}@${revision}`);
      if (revision !== 'main' && opts.mounts?.[repo])
        return done(404, 'Revision not found', { 'X-Error-Code': 'RevisionNotFound' });
      const st = await stat(repoDir).catch(() => null);
      if (!st?.isDirectory())
        return done(404, revision === 'main' ? 'Repository not found' : 'Revision not found', {
          'X-Error-Code': revision === 'main' ? 'RepoNotFound' : 'RevisionNotFound',
        });
      const full = path.resolve(repoDir, file);
      if (!within(path.resolve(repoDir), full)) return done(400, 'Bad path');
      const fst = await stat(full).catch(() => null);
      if (!fst?.isFile()) return done(404, 'Entry not found', { 'X-Error-Code': 'EntryNotFound' });

      const omit =
        typeof opts.omitContentLength === 'function' ? opts.omitContentLength(file) : !!opts.omitContentLength;
      const headers: Record<string, string> = {
        'Content-Type': 'application/octet-stream',
        ETag: `"${fst.size}-${fst.mtimeMs}"`,
      };
      if (!omit) headers['Content-Length'] = String(fst.size);
      requests.push({ method, url, status: 200 });
      res.writeHead(200, headers);
      if (method === 'HEAD') return res.end();
      const stream = createReadStream(full, { highWaterMark: chunk });
      stream.on('error', (e) => res.destroy(e));
      stream.pipe(res);
    } catch (e) {
      if (!res.headersSent) done(500, String(e));
      else res.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
