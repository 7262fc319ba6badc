/**
 * Vite plugins for webtune's dev server, preview server and build:
 * - tfjsWasm: serves the TensorFlow.js wasm binaries under /tfjs-wasm/ and copies them into the build
 *   (they stay in node_modules, never in git);
 * - hubMirror: serves local model folders under the Hugging Face Hub URL layout, so the app can load
 *   models with no network;
 * - contentSecurityPolicy: the production CSP, as a <meta> tag in the built index.html;
 * - tfjsWasmThreadedGlue: keeps the threaded wasm build's Emscripten glue runnable by its pthread workers once bundled.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Connect, Plugin } from 'vite';

/** Headers that make the page cross-origin isolated (SharedArrayBuffer, precise timers). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
} as const;

/**
 * Production Content-Security-Policy. No 'unsafe-eval'; 'wasm-unsafe-eval' lets the wasm backend compile
 * its module. `blob:` in worker-src and script-src is for the threaded wasm build only: tfjs-backend-wasm starts
 * its pthread workers from a blob: URL and they importScripts() the Emscripten glue from a blob: URL (both minted
 * by the app's own code; nothing else uses blob: scripts). connect-src lists the Hugging Face Hub and the hosts
 * its downloads redirect to.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self' https://huggingface.co https://*.huggingface.co https://*.hf.co",
  "img-src 'self' data: blob:",
  "style-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/** URL folder (under the app's base) that holds the tfjs wasm binaries. */
export const TFJS_WASM_DIR = 'tfjs-wasm';

type Middleware = (req: IncomingMessage, res: ServerResponse, next: Connect.NextFunction) => void;

function tfjsWasmFiles(): { dir: string; files: string[] } {
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  return { dir, files: readdirSync(dir).filter((f) => f.endsWith('.wasm')) };
}

export function tfjsWasm(): Plugin {
  const { dir, files } = tfjsWasmFiles();
  const serve: Middleware = (req, res, next) => {
    const name = decodeURIComponent((req.url ?? '').split('?')[0].replace(/^\//, ''));
    if (!files.includes(name)) return next();
    sendFile(req, res, path.join(dir, name), 'application/wasm');
  };
  return {
    name: 'webtune:tfjs-wasm',
    configureServer(server) {
      server.middlewares.use(`/${TFJS_WASM_DIR}`, serve);
    },
    generateBundle() {
      for (const f of files) {
        this.emitFile({ type: 'asset', fileName: `${TFJS_WASM_DIR}/${f}`, source: readFileSync(path.join(dir, f)) });
      }
    },
  };
}

const THREADED_GLUE = /[\\/]tfjs-backend-wasm[\\/]wasm-out[\\/]tfjs-backend-wasm-threaded-simd\.js$/;

/**
 * tfjs-backend-wasm hands its pthread workers the threaded build's Emscripten factory as source text,
 * `'var WasmBackendModuleThreadedSimd = ' + factory.toString()`, which they importScripts(). Once the bundler has
 * minified the factory, that text refers to names outside the function (its `_scriptDir`, renamed `e`) and every
 * pthread worker dies with "ReferenceError: e is not defined". This gives the factory a toString() that returns the
 * package's own, untouched glue (a classic script), so the workers run what Emscripten wrote whatever the bundler did.
 * Used by the build and by the dev server's dependency pre-bundling.
 */
export function tfjsWasmThreadedGlue() {
  return {
    name: 'webtune:tfjs-wasm-threaded-glue',
    transform(code: string, id: string) {
      const file = id.split('?')[0];
      if (!THREADED_GLUE.test(file)) return null;
      const original = readFileSync(file, 'utf8');
      // a function expression evaluating to the factory, in a scope where module/exports/define do not exist
      const standalone = `(function(){var module,exports,define;\n${original}\nreturn WasmBackendModuleThreadedSimd;})()`;
      return {
        code: `${code}\n;WasmBackendModuleThreadedSimd.toString = function () { return ${JSON.stringify(standalone)}; };\n`,
        map: null,
      };
    },
  } satisfies Plugin;
}

/**
 * Hub repos mirrored from the models folder: repo id -> folder (relative to the models folder) whose
 * files are the repo's files. Besides these, every folder `<name>` of the models folder is repo `local/<name>`.
 */
export const HUB_REPOS: Record<string, string> = {
  // karpathy/tinyllamas keeps each model in its own folder (stories260K/stories260K.bin, ...).
  'karpathy/tinyllamas': '.',
};

/**
 * Maps `/{owner}/{repo}/resolve/{revision}/{file}` (the part after /hub) to a file in the models folder,
 * or null when the URL has another form, names an unknown repo, or tries to leave the repo's folder.
 * Any revision is accepted: the mirror holds one version of each file.
 */
export function resolveHubFile(modelsDir: string, url: string, repos = HUB_REPOS): string | null {
  const m = /^\/([^/]+)\/([^/]+)\/resolve\/[^/]+\/(.+)$/.exec(url.split(/[?#]/)[0]);
  if (!m) return null;
  let owner: string, name: string, file: string;
  try {
    [owner, name, file] = [m[1], m[2], m[3]].map(decodeURIComponent);
  } catch {
    return null;
  }
  const segment = (s: string) => s !== '' && s !== '.' && s !== '..' && !/[/\\]/.test(s);
  if (!segment(owner) || !segment(name) || !file.split('/').every(segment)) return null;
  const folder = repos[`${owner}/${name}`] ?? (owner === 'local' ? name : null);
  if (folder === null) return null;
  const base = path.resolve(modelsDir);
  const root = path.resolve(base, folder);
  const target = path.resolve(root, file);
  if (!(root === base || root.startsWith(base + path.sep)) || !target.startsWith(root + path.sep)) return null;
  return target;
}

/** Serves `/hub/{repo}/resolve/{revision}/{file}` from `modelsDir` (when that folder exists). */
export function hubMirror(modelsDir: string): Plugin {
  const serve: Middleware = (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const file = resolveHubFile(modelsDir, req.url ?? '');
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ error: `not in the local hub mirror (${modelsDir}): ${req.url}` }));
      return;
    }
    sendFile(req, res, file, file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  };
  const install = (middlewares: Connect.Server) => {
    if (existsSync(modelsDir)) middlewares.use('/hub', serve);
  };
  return {
    name: 'webtune:hub-mirror',
    configureServer(server) {
      install(server.middlewares);
    },
    configurePreviewServer(server) {
      install(server.middlewares);
    },
  };
}

export function contentSecurityPolicy(): Plugin {
  return {
    name: 'webtune:csp',
    apply: 'build',
    transformIndexHtml: () => [
      {
        tag: 'meta',
        attrs: { 'http-equiv': 'Content-Security-Policy', content: CONTENT_SECURITY_POLICY },
        injectTo: 'head-prepend',
      },
    ],
  };
}

/** Sends a file with a single-range `Range` request honoured (Hub clients read headers of large files that way). */
function sendFile(req: IncomingMessage, res: ServerResponse, file: string, type: string) {
  const { size, mtimeMs } = statSync(file);
  let start = 0;
  let end = size - 1;
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (range && (range[1] || range[2])) {
    if (range[1]) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(Number(range[2]), size - 1);
    } else {
      start = Math.max(0, size - Number(range[2]));
    }
    if (start > end || start >= size) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return;
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', String(end - start + 1));
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', `"${size.toString(16)}-${Math.floor(mtimeMs).toString(16)}"`);
  res.setHeader('Cache-Control', 'no-cache');
  for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  createReadStream(file, { start, end }).pipe(res);
}
