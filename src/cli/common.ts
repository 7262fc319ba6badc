/**
 * Shared pieces of the webtune commands: errors and exit codes, option parsing helpers, backend start-up,
 * model loading with progress, dataset options.
 */
import { formatBytes } from '../util/bytes';
import { readLocalFile } from '../io/node-source';
import type { ParseArgsConfig } from 'node:util';
import type { LoadProgress, LoadedModel, ModelSpec } from '../io/load-model';
import type { BackendChoice, BackendName } from '../engine/backend';
import type { CausalLM } from '../engine/model';
import { FROZEN_DTYPES, type FrozenDtype } from '../engine/frozen';
import type { ColumnMap, ParseOptions, TemplateSpec } from '../data';

/** A problem with the command line itself: exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure that already names what failed (model, data file): exit code 1, no stack unless --debug. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  run(v: Values, io: Io): Promise<void>;
}

/** Where output goes (the process streams, or buffers in tests). */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** stderr is a terminal: draw progress bars in place. */
  tty: boolean;
}

// ---------------------------------------------------------------------------------------------------------
// Option values

export const COMMON: Options = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
};
export const MODEL_OPTS: Options = {
  model: { type: 'string', short: 'm' },
  tokenizer: { type: 'string' },
  'frozen-dtype': { type: 'string' },
};

/** The frozen_dtype asked for with --frozen-dtype (float32 when absent). */
export function frozenDtypeArg(v: Values): FrozenDtype {
  return choice(v, 'frozen-dtype', FROZEN_DTYPES) ?? 'float32';
}
export const BACKEND_OPT: Options = { backend: { type: 'string' } };

export function str(v: Values, name: string, required = false): string | undefined {
  const x = v[name];
  if (x === undefined) {
    if (required) throw new UsageError(`--${name} is required`);
    return undefined;
  }
  if (typeof x !== 'string') throw new UsageError(`--${name} expects a value`);
  return x;
}

export function num(
  v: Values,
  name: string,
  opts: { int?: boolean; min?: number; max?: number; minExclusive?: boolean } = {},
): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const x = Number(s.trim());
  if (s.trim() === '' || !Number.isFinite(x))
    throw new UsageError(`--${name} expects a number, got ${JSON.stringify(s)}`);
  if (opts.int && !Number.isInteger(x))
    throw new UsageError(`--${name} expects a whole number, got ${JSON.stringify(s)}`);
  if (opts.min !== undefined && (opts.minExclusive ? x <= opts.min : x < opts.min)) {
    throw new UsageError(`--${name} must be ${opts.minExclusive ? '>' : '≥'} ${opts.min}, got ${s}`);
  }
  if (opts.max !== undefined && x > opts.max) throw new UsageError(`--${name} must be ≤ ${opts.max}, got ${s}`);
  return x;
}

export function choice<T extends string>(v: Values, name: string, allowed: readonly T[]): T | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(s))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}; got ${JSON.stringify(s)}`);
  return s as T;
}

/** A fraction in (0, 1) or a whole count ≥ 1 (dataset split sizes). */
export function splitSize(v: Values, name: string): number | undefined {
  const x = num(v, name, { min: 0 });
  if (x === undefined) return undefined;
  if (x >= 1 && !Number.isInteger(x))
    throw new UsageError(`--${name} must be a fraction below 1 or a whole count, got ${x}`);
  return x;
}

// ---------------------------------------------------------------------------------------------------------
// Shared steps: backend, model, messages

/** When stderr is not a terminal, a plain progress line at most every PLAIN_EVERY_MS (and at each 10 % step). */
export const PLAIN_EVERY_MS = 5000;

/**
 * Progress of one task on stderr: in place on a terminal; otherwise (a pipe, a log file) plain lines at each 10 %
 * step or every PLAIN_EVERY_MS, and at the end, so a long task is never silent.
 */
export function progressLine(
  io: Io,
  quiet: boolean,
): (key: string, text: string, fraction: number | null, done: boolean) => void {
  let lastDraw = 0;
  let lastKey = '';
  let lastTenth = -1;
  let printed = false;
  return (key, text, fraction, done) => {
    if (quiet) return;
    const now = Date.now();
    if (io.tty) {
      if (!done && now - lastDraw < 100) return;
      lastDraw = now;
      io.err(`\r\x1b[2K${text}${done ? '\n' : ''}`);
      return;
    }
    if (key !== lastKey) {
      // a new task: its first plain line comes at its first 10 % step, after PLAIN_EVERY_MS, or at its end
      lastKey = key;
      lastTenth = 0;
      lastDraw = now;
      printed = false;
    }
    const tenth = fraction === null ? 0 : Math.floor(fraction * 10);
    // A task that ends before its first line stays silent (small files and datasets print nothing).
    if (done ? !printed : tenth <= lastTenth && now - lastDraw < PLAIN_EVERY_MS) return;
    printed = true;
    lastTenth = Math.max(lastTenth, tenth);
    lastDraw = now;
    io.err(`${text}\n`);
  };
}

/** Byte progress of model files on stderr (in place on a terminal; plain lines otherwise). */
export function loadProgress(io: Io, quiet: boolean): ((p: LoadProgress) => void) | undefined {
  if (quiet) return undefined;
  const line = progressLine(io, quiet);
  return (p) => {
    const done = p.total !== null && p.loaded >= p.total;
    const pct = p.total ? ` ${((100 * p.loaded) / p.total).toFixed(0)}%` : '';
    line(
      p.file,
      `loading ${p.file}: ${formatBytes(p.loaded)}${p.total !== null ? ' / ' + formatBytes(p.total) : ''}${pct}`,
      p.total ? p.loaded / p.total : null,
      done,
    );
  };
}

/** Tokenization progress of a dataset split on stderr (see progressLine). */
export function dataProgress(
  io: Io,
  quiet: boolean,
): ((split: string, done: number, total: number) => void) | undefined {
  if (quiet) return undefined;
  const line = progressLine(io, quiet);
  return (split, done, total) => {
    if (total === 0) return;
    line(
      split,
      `tokenizing ${split}: ${done} / ${total} examples (${((100 * done) / total).toFixed(0)}%)`,
      done / total,
      done >= total,
    );
  };
}

export async function resolveSpec(v: Values): Promise<{ spec: ModelSpec; arg: string }> {
  const arg = str(v, 'model', true)!;
  const { resolveModel } = await import('./resolve');
  try {
    return { spec: await resolveModel(arg, { tokenizer: str(v, 'tokenizer') }), arg };
  } catch (e) {
    throw new CliError(`cannot load model ${arg}: ${(e as Error).message}`, e);
  }
}

export async function openModel(v: Values, io: Io): Promise<LoadedModel & { arg: string }> {
  const { spec, arg } = await resolveSpec(v);
  const { loadModel } = await import('../io/load-model');
  try {
    return { ...(await loadModel(spec, loadProgress(io, !!v.quiet))), arg };
  } catch (e) {
    throw new CliError(`cannot load model ${arg}: ${(e as Error).message}`, e);
  }
}

/** Initialise TensorFlow.js: wasm by default in Node, falling back to cpu. */
export async function startBackend(v: Values, io: Io): Promise<BackendName> {
  const want = choice(v, 'backend', ['wasm', 'cpu', 'auto'] as const) ?? 'wasm';
  const { initBackend } = await import('../engine/backend');
  const rep = await initBackend(want as BackendChoice);
  for (const f of rep.fallbacks) {
    if (f.backend === 'wasm' || want !== 'auto')
      if (!v.quiet) io.err(`webtune: ${f.backend} backend unavailable (${f.reason}); using ${rep.backend}\n`);
  }
  return rep.backend;
}

// ---------------------------------------------------------------------------------------------------------
// Dataset options

const TEMPLATE_NAMES = ['alpaca', 'chatml', 'instruction', 'chat_template', 'raw'] as const;

/** --template: a template name, or a custom template string containing {output}; --template-file: a file of either kind. */
export async function templateArg(v: Values): Promise<TemplateSpec | undefined> {
  const t = str(v, 'template');
  const file = str(v, 'template-file');
  if (t !== undefined && file !== undefined) throw new UsageError('give --template or --template-file, not both');
  if (file !== undefined) {
    let src: string;
    try {
      src = new TextDecoder().decode(await readLocalFile(file, 'template'));
    } catch (e) {
      throw new CliError((e as Error).message, e);
    }
    if (/\.(jinja2?|j2)$/i.test(file) || /\{%|\{\{/.test(src)) return { kind: 'chat_template', template: src };
    if (!src.includes('{output}'))
      throw new UsageError(
        `template file ${file} is neither a Jinja chat template nor a custom template with {output}`,
      );
    return { kind: 'custom', template: src.replace(/\r?\n$/, '') };
  }
  if (t === undefined) return undefined;
  if (t.includes('{output}')) return { kind: 'custom', template: t };
  if (!(TEMPLATE_NAMES as readonly string[]).includes(t)) {
    throw new UsageError(
      `--template must be one of ${TEMPLATE_NAMES.join(', ')} or a custom template containing {output}; got ${JSON.stringify(t)}`,
    );
  }
  return { kind: t as (typeof TEMPLATE_NAMES)[number] };
}

/** --columns instruction=prompt,output=chosen */
export function columnsArg(v: Values): Record<string, string> | undefined {
  const s = str(v, 'columns');
  if (s === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const part of s.split(',')) {
    const m = /^\s*([\w]+)\s*=\s*(.+?)\s*$/.exec(part);
    if (!m)
      throw new UsageError(`--columns expects field=column pairs separated by commas, got ${JSON.stringify(part)}`);
    out[m[1]] = m[2];
  }
  return out;
}

export const DATA_OPTS: Options = {
  data: { type: 'string', short: 'd', multiple: true },
  format: { type: 'string' },
  columns: { type: 'string' },
  template: { type: 'string' },
  'template-file': { type: 'string' },
  'max-length': { type: 'string' },
  'train-on-inputs': { type: 'boolean' },
  validation: { type: 'string' },
  evaluation: { type: 'string' },
  seed: { type: 'string' },
};

export async function readDataFiles(v: Values): Promise<{ name: string; data: Uint8Array }[]> {
  const files = (v.data as string[] | undefined) ?? [];
  if (files.length === 0) throw new UsageError('--data is required');
  const out: { name: string; data: Uint8Array }[] = [];
  for (const f of files) {
    try {
      out.push({ name: f, data: await readLocalFile(f, 'dataset') });
    } catch (e) {
      throw new CliError((e as Error).message, e);
    }
  }
  return out;
}

export async function parseOptionsArg(v: Values): Promise<ParseOptions> {
  const { DATASET_FORMATS } = await import('../data');
  const format = choice(v, 'format', ['auto', ...DATASET_FORMATS] as const);
  const columns = columnsArg(v);
  return { ...(format ? { format } : {}), ...(columns ? { columns: columns as ColumnMap } : {}) };
}

// ---------------------------------------------------------------------------------------------------------
// Adapters

export const ADAPTER_OPT: Options = { adapter: { type: 'string' } };

/** --adapter <folder|url>: load a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) onto the model. */
export async function attachAdapterArg(
  v: Values,
  model: CausalLM,
  base?: { name: string; io: Io },
): Promise<string | null> {
  const arg = str(v, 'adapter');
  if (arg === undefined) return null;
  const { adapterSource } = await import('./resolve');
  const { readPeftAdapter, loadPeftAdapter, adapterBaseModelWarning } = await import('../io/peft');
  try {
    const src = await adapterSource(arg);
    const imported = await readPeftAdapter(src, model.config);
    const warning = base ? adapterBaseModelWarning(imported, base.name) : null;
    if (warning && base) base.io.err(`webtune: warning: ${arg}: ${warning}\n`);
    loadPeftAdapter(model, imported);
    if (base && !v.quiet) for (const w of imported.warnings) base.io.err(`note: ${w}\n`);
  } catch (e) {
    throw new CliError(`cannot load adapter ${arg}: ${(e as Error).message}`, e);
  }
  return arg;
}
