/**
 * A stored run's source.json: what it was trained on (model source, settings, run options, backend, and the dataset
 * files themselves up to a size, kept in data.json), so Resume can rebuild it after a reload; written by runSourceOf
 * and checked field by field when read back from storage or an imported file.
 */
import type { RunStore } from '../store/run-store';
import type {
  BackendName,
  DatasetInput,
  ModelSource,
  RunOptions,
  RunSource,
  RunSourceFile,
  FinetuneConfig,
} from './api';

export const SOURCE_FILE = 'source.json';
/** The kept dataset files' contents (source.json lists their names and roles; listing runs never reads this file). */
export const DATA_FILE = 'data.json';
/** Datasets up to this size are kept with the run (bigger ones must be loaded again to resume). */
export const MAX_KEPT_DATASET_BYTES = 64 * 1024 * 1024;
function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64: string, where: string): Uint8Array {
  let s: string;
  try {
    s = atob(b64);
  } catch {
    throw new Error(`${where}: the kept dataset file is not valid base64`);
  }
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function keptFile(f: DatasetInput['files'][number]): RunSourceFile {
  if (typeof f.data === 'string') return { name: f.name, role: f.role, text: f.data };
  try {
    return { name: f.name, role: f.role, text: new TextDecoder('utf-8', { fatal: true }).decode(f.data) };
  } catch {
    return { name: f.name, role: f.role, base64: toBase64(f.data) };
  }
}

/** The dataset input a run's source.json kept. */
export function datasetOf(src: RunSource): DatasetInput | null {
  if (!src.data) return null;
  return {
    files: src.data.files.map((f) => ({
      name: f.name,
      role: f.role,
      data: f.text !== undefined ? f.text : fromBase64(f.base64 ?? '', `${SOURCE_FILE} (${f.name})`),
    })),
  };
}

export function runSourceOf(p: {
  model: ModelSource;
  modelName: string;
  data: DatasetInput;
  dataName: string;
  settings: FinetuneConfig;
  runOptions: RunOptions;
  backend: BackendName;
  catalogId: string | null;
}): RunSource {
  const bytes = p.data.files.reduce((s, f) => s + (typeof f.data === 'string' ? f.data.length : f.data.byteLength), 0);
  return {
    version: 1,
    model:
      p.model.kind === 'hub'
        ? { kind: 'hub', source: { ...p.model, files: p.model.files.map((f) => ({ ...f })) }, catalogId: p.catalogId }
        : { kind: 'files', name: p.model.name ?? 'local model', files: p.model.files.map((f) => f.path) },
    modelName: p.modelName,
    data: bytes <= MAX_KEPT_DATASET_BYTES ? { name: p.dataName, files: p.data.files.map(keptFile) } : null,
    dataName: p.dataName,
    settings: p.settings,
    runOptions: p.runOptions,
    backend: p.backend,
  };
}

/** A run's source.json that is not what runSourceOf writes (e.g. edited or damaged in an imported file). */
export class RunSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunSourceError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ROLES = ['train', 'validation', 'test'];
const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'];

/** Parse and check source.json: every field the page and the worker read, with a message naming the first bad one. */
export function parseRunSource(text: string, where = SOURCE_FILE): RunSource {
  return checkRunSource(parseJson(text, where), where);
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RunSourceError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

/** checkRunSource on parsed JSON; `bodies: false` for source.json alone, whose data files carry no contents. */
export function checkRunSource(j: unknown, where = SOURCE_FILE, opts: { bodies?: boolean } = {}): RunSource {
  const bodies = opts.bodies ?? true;
  const bad = (field: string, expected: string): never => {
    throw new RunSourceError(`${where}: ${field}: expected ${expected}`);
  };
  if (!isObj(j)) bad('(top level)', 'an object');
  const o = j as Record<string, unknown>;
  if (o.version !== 1) bad('version', '1');
  const str = (v: unknown, field: string) => (typeof v === 'string' ? v : bad(field, 'a string'));
  const m = o.model;
  if (!isObj(m)) bad('model', 'an object');
  const model = m as Record<string, unknown>;
  if (model.kind === 'hub') {
    const src = model.source;
    if (!isObj(src)) bad('model.source', 'an object');
    const h = src as Record<string, unknown>;
    if (h.kind !== 'hub') bad('model.source.kind', '"hub"');
    str(h.baseUrl, 'model.source.baseUrl');
    str(h.repo, 'model.source.repo');
    str(h.name, 'model.source.name');
    if (h.revision !== undefined) str(h.revision, 'model.source.revision');
    if (h.format !== 'llama2c' && h.format !== 'hf') bad('model.source.format', '"llama2c" or "hf"');
    if (!Array.isArray(h.files) || h.files.length === 0) bad('model.source.files', 'a non-empty list');
    (h.files as unknown[]).forEach((f, i) => {
      if (!isObj(f)) bad(`model.source.files[${i}]`, 'an object');
      str((f as Record<string, unknown>).path, `model.source.files[${i}].path`);
    });
    if (model.catalogId !== null && typeof model.catalogId !== 'string') bad('model.catalogId', 'a string or null');
  } else if (model.kind === 'files') {
    str(model.name, 'model.name');
    if (!Array.isArray(model.files) || !model.files.every((f) => typeof f === 'string'))
      bad('model.files', 'a list of file names');
  } else {
    bad('model.kind', '"hub" or "files"');
  }
  str(o.modelName, 'modelName');
  str(o.dataName, 'dataName');
  if (o.data !== null) {
    if (!isObj(o.data)) bad('data', 'an object or null');
    const d = o.data as Record<string, unknown>;
    str(d.name, 'data.name');
    if (!Array.isArray(d.files) || d.files.length === 0) bad('data.files', 'a non-empty list');
    (d.files as unknown[]).forEach((f, i) => {
      if (!isObj(f)) bad(`data.files[${i}]`, 'an object');
      const x = f as Record<string, unknown>;
      str(x.name, `data.files[${i}].name`);
      if (!ROLES.includes(x.role as string)) bad(`data.files[${i}].role`, 'train, validation or test');
      if (bodies && typeof x.text !== 'string' && typeof x.base64 !== 'string')
        bad(`data.files[${i}]`, 'a text or base64 field');
    });
    if (!(d.files as { role: string }[]).some((f) => f.role === 'train'))
      bad('data.files', 'at least one file with role train');
  }
  if (!isObj(o.settings)) bad('settings', "an object (the run's TrainingArguments/LoraConfig settings)");
  if (!isObj(o.runOptions)) bad('runOptions', 'an object');
  const ro = o.runOptions as Record<string, unknown>;
  for (const k of ['samplePrompts', 'sampleMaxNewTokens'])
    if (typeof ro[k] !== 'number' || !Number.isFinite(ro[k])) bad(`runOptions.${k}`, 'a number');
  if (!BACKENDS.includes(o.backend as string)) bad('backend', BACKENDS.join(', '));
  return o as unknown as RunSource;
}

/** Store a run's source: the dataset contents in data.json, the rest (with the files' names and roles) in source.json. */
export async function writeRunSource(s: RunStore, id: string, src: RunSource): Promise<void> {
  if (src.data)
    await s.putFile(id, DATA_FILE, JSON.stringify(src.data.files.map(({ text, base64 }) => ({ text, base64 }))));
  const light = src.data
    ? { ...src, data: { ...src.data, files: src.data.files.map(({ name, role }) => ({ name, role })) } }
    : src;
  await s.putFile(id, SOURCE_FILE, JSON.stringify(light));
}

/**
 * A run's source: null when the run has none (imported without one); throws RunSourceError when it is damaged.
 * `bodies: false` reads source.json alone (the dataset files then carry their names and roles, no contents).
 */
export async function readRunSource(
  s: RunStore,
  id: string,
  opts: { bodies?: boolean } = {},
): Promise<RunSource | null> {
  const text = await s.getFile(id, SOURCE_FILE);
  if (text === null) return null;
  const where = `run ${id}: ${SOURCE_FILE}`;
  const j = parseJson(text, where);
  const files = isObj(j) && isObj(j.data) && Array.isArray(j.data.files) ? (j.data.files as unknown[]) : null;
  if ((opts.bodies ?? true) && files) {
    const dataWhere = `run ${id}: ${DATA_FILE}`;
    const dataText = await s.getFile(id, DATA_FILE);
    if (dataText === null) throw new RunSourceError(`${dataWhere}: missing (it holds the kept dataset)`);
    const contents = parseJson(dataText, dataWhere);
    if (!Array.isArray(contents) || contents.length !== files.length || !contents.every(isObj)) {
      throw new RunSourceError(`${dataWhere}: expected a list of ${files.length} file contents`);
    }
    files.forEach((f, i) => {
      if (isObj(f)) Object.assign(f, contents[i]);
    });
  }
  return checkRunSource(j, where, opts);
}
