/**
 * Node only: turn the CLI's --model (and --tokenizer) arguments into a ModelSpec for loadModel.
 *
 *   a folder                      Hugging Face layout (config.json …); without config.json, a folder holding
 *                                 exactly one llama2.c checkpoint (*.bin other than tokenizer.bin / tok*.bin)
 *   a .bin file                   llama2.c checkpoint; tokenizer beside it, or --tokenizer
 *   config.json / *.safetensors   the Hugging Face folder they are in
 *   {base}/{repo}/resolve/{rev}[/{subpath}]
 *                                 a Hub (or mirror) URL: subpath *.bin = a llama2.c file; otherwise the repo
 *                                 root or a sub-folder in HF layout. The repo is the two path segments
 *                                 before /resolve/ (one when only one is there).
 *   {origin}/{owner}/{name}       a Hub repository page URL (revision main)
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { dirSource } from '../io/node-source';
import { fetchWithDeadline, readBody } from '../io/fetch';
import { FileNotFoundError, hubSource, type FileSource } from '../io/source';
import type { ModelSpec } from '../io/load-model';

/** Something wrong with what the user gave (not a usage error of the command line itself). */
export class ResolveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ResolveError';
  }
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);
const TOKENIZER_BIN = /^(tokenizer|tok\d+)\.bin$/i;

/** A source restricted to a sub-folder of another. */
export function subSource(src: FileSource, prefix: string): FileSource {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  if (!p) return src;
  return {
    describe: `${src.describe}: ${p}/`,
    read: (f, onProgress) => src.read(`${p}/${f}`, onProgress),
    has: (f) => src.has(`${p}/${f}`),
  };
}

/** One file at a plain URL, as a source holding just that file name. */
function urlFileSource(url: string): { source: FileSource; file: string } {
  const u = new URL(url);
  const file = decodeURIComponent(u.pathname.slice(u.pathname.lastIndexOf('/') + 1)) || 'file';
  const source: FileSource = {
    describe:
      url.slice(0, url.length - u.pathname.length - u.search.length - u.hash.length) +
      u.pathname.slice(0, u.pathname.lastIndexOf('/')),
    async read(f, onProgress) {
      if (f !== file) throw new FileNotFoundError(f, `${f} not found (only ${url} was given)`);
      const res = await fetchWithDeadline(url);
      if (res.status === 404) throw new FileNotFoundError(f, `${url}: HTTP 404 (not found)`);
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`);
      return readBody(res, onProgress, url);
    },
    async has(f) {
      if (f !== file) return false;
      const res = await fetchWithDeadline(url, { method: 'HEAD' });
      await res.body?.cancel().catch(() => {});
      return res.ok;
    },
  };
  return { source, file };
}

/** Parse a Hub-layout URL into base, repo, revision and subpath; null when it has no /resolve/ segment. */
export function parseHubUrl(url: string): { base: string; repo: string; revision: string; subpath: string } | null {
  const u = new URL(url);
  const segs = u.pathname.split('/').filter((s) => s !== '');
  const r = segs.indexOf('resolve');
  if (r < 0) {
    // https://huggingface.co/owner/name: a repository page
    if (segs.length === 2 || segs.length === 1)
      return { base: u.origin, repo: segs.join('/'), revision: 'main', subpath: '' };
    return null;
  }
  if (r === 0 || r + 1 >= segs.length)
    throw new ResolveError(`${url}: expected {base}/{owner}/{name}/resolve/{revision}[/{path}]`);
  const repoSegs = segs.slice(Math.max(0, r - 2), r);
  const baseSegs = segs.slice(0, Math.max(0, r - 2));
  return {
    base: u.origin + (baseSegs.length ? '/' + baseSegs.join('/') : ''),
    repo: repoSegs.map(decodeURIComponent).join('/'),
    revision: decodeURIComponent(segs[r + 1]),
    subpath: segs
      .slice(r + 2)
      .map(decodeURIComponent)
      .join('/'),
  };
}

/** A --tokenizer argument: a local file or a URL. */
async function resolveTokenizer(arg: string): Promise<{ source: FileSource; file: string }> {
  if (isUrl(arg)) {
    const hub = parseHubUrl(arg);
    if (hub && hub.subpath) return { source: hubSource(hub.base, hub.repo, hub.revision), file: hub.subpath };
    return urlFileSource(arg);
  }
  const full = path.resolve(arg);
  const st = await stat(full).catch(() => null);
  if (!st) throw new ResolveError(`tokenizer not found: ${arg} (no such file)`);
  if (!st.isFile()) throw new ResolveError(`tokenizer ${arg} is not a file`);
  return { source: dirSource(path.dirname(full)), file: path.basename(full) };
}

export interface ResolveOptions {
  /** --tokenizer: a tokenizer file (local path or URL) instead of the one beside the model. */
  tokenizer?: string;
}

export async function resolveModel(arg: string, opts: ResolveOptions = {}): Promise<ModelSpec> {
  const spec = isUrl(arg) ? resolveUrl(arg) : await resolveLocal(arg);
  if (opts.tokenizer) {
    const t = await resolveTokenizer(opts.tokenizer);
    spec.tokenizerSource = t.source;
    spec.tokenizerFile = t.file;
  }
  return spec;
}

function resolveUrl(arg: string): ModelSpec {
  const hub = parseHubUrl(arg);
  if (!hub) {
    if (/\.bin$/i.test(new URL(arg).pathname)) {
      const { source, file } = urlFileSource(arg);
      return { source, file, kind: 'llama2c' };
    }
    throw new ResolveError(
      `${arg}: not a Hub-layout URL ({base}/{owner}/{name}/resolve/{revision}[/{path}]) or a .bin file`,
    );
  }
  const repoSrc = hubSource(hub.base, hub.repo, hub.revision);
  const sub = hub.subpath;
  if (/\.bin$/i.test(sub)) return { source: repoSrc, file: sub, kind: 'llama2c' };
  if (/(^|\/)(config\.json|[^/]*\.safetensors(\.index\.json)?)$/i.test(sub)) {
    const dir = sub.includes('/') ? sub.slice(0, sub.lastIndexOf('/')) : '';
    return { source: subSource(repoSrc, dir), kind: 'hf', name: dir ? `${hub.repo}/${dir}` : hub.repo };
  }
  return { source: subSource(repoSrc, sub), name: sub ? `${hub.repo}/${sub}` : hub.repo };
}

async function resolveLocal(arg: string): Promise<ModelSpec> {
  const full = path.resolve(arg);
  const st = await stat(full).catch(() => null);
  if (!st) throw new ResolveError(`model not found: ${arg} (no such file or folder)`);
  if (st.isDirectory()) {
    const src = dirSource(full);
    if (await src.has('config.json')) return { source: src, kind: 'hf', name: path.basename(full) };
    const bins = (await readdir(full)).filter((f) => /\.bin$/i.test(f) && !TOKENIZER_BIN.test(f));
    if (bins.length === 1) return { source: src, kind: 'llama2c', file: bins[0] };
    if (bins.length > 1)
      throw new ResolveError(
        `model folder ${arg} has no config.json and several .bin files (${bins.join(', ')}): name the checkpoint file`,
      );
    throw new ResolveError(
      `model folder ${arg} has no config.json (Hugging Face layout) and no llama2.c .bin checkpoint`,
    );
  }
  if (!st.isFile()) throw new ResolveError(`model ${arg} is neither a file nor a folder`);
  const base = path.basename(full);
  const dir = path.dirname(full);
  if (/\.bin$/i.test(base)) return { source: dirSource(dir), kind: 'llama2c', file: base };
  if (/^config\.json$|\.safetensors(\.index\.json)?$/i.test(base))
    return { source: dirSource(dir), kind: 'hf', name: path.basename(dir) };
  throw new ResolveError(`model ${arg}: expected a model folder, a llama2.c .bin checkpoint or a Hub URL`);
}

/** A PEFT adapter location: a local folder (or a file in it) or a Hub-layout URL of the adapter's folder. */
export async function adapterSource(arg: string): Promise<FileSource> {
  if (isUrl(arg)) {
    const hub = parseHubUrl(arg);
    if (!hub)
      throw new ResolveError(`${arg}: not a Hub-layout URL ({base}/{owner}/{name}/resolve/{revision}[/{path}])`);
    const sub = /(^|\/)adapter_(config\.json|model\.safetensors)$/.test(hub.subpath)
      ? hub.subpath.replace(/\/?[^/]*$/, '')
      : hub.subpath;
    return subSource(hubSource(hub.base, hub.repo, hub.revision), sub);
  }
  const full = path.resolve(arg);
  const st = await stat(full).catch(() => null);
  if (!st) throw new ResolveError(`adapter not found: ${arg} (no such file or folder)`);
  const dir = st.isDirectory() ? full : path.dirname(full);
  return dirSource(await adapterFolderIn(dir));
}

/**
 * The adapter folder in a TRL / Axolotl output_dir: the folder itself when it holds adapter_config.json, else its
 * latest checkpoint-N folder holding one (transformers' get_last_checkpoint).
 */
async function adapterFolderIn(dir: string): Promise<string> {
  const { ADAPTER_CONFIG_FILE } = await import('../io/peft');
  const { pickAdapterFolder } = await import('../io/peft-layout');
  if (await stat(path.join(dir, ADAPTER_CONFIG_FILE)).catch(() => null)) return dir;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const withConfig: string[] = [];
  for (const e of entries) {
    if (
      e.isDirectory() &&
      /^checkpoint-\d+$/.test(e.name) &&
      (await stat(path.join(dir, e.name, ADAPTER_CONFIG_FILE)).catch(() => null))
    )
      withConfig.push(e.name);
  }
  const picked = pickAdapterFolder(withConfig);
  return picked ? path.join(dir, picked.folder) : dir;
}
