/**
 * One entry point for loading a model and its tokenizer from any FileSource: a Hugging Face
 * repository/folder (config.json + safetensors + tokenizer.json) or a llama2.c legacy checkpoint
 * (a .bin file plus its tokenizer.bin / tok{vocab}.bin).
 *
 * Browser-safe: no node: imports (the CLI's path/URL handling is in src/cli/resolve.ts).
 */
import type { ModelConfig, RawTensors } from '../engine/config';
import { parseHfConfig } from './hf-config';
import { loadHfCheckpoint, type LoadProgress } from './hf-model';
import { parseLlama2cCheckpoint } from './llama2c';
import type { FileSource } from './source';
import type { Tokenizer } from './tokenizer';
import { loadTokenizer } from './tokenizer-load';

export type ModelKind = 'hf' | 'llama2c';

export interface ModelSpec {
  source: FileSource;
  /** Default: detected (llama2c when `file` ends in .bin, hf when the source has config.json). */
  kind?: ModelKind;
  /** llama2.c: the checkpoint's path within the source (e.g. "stories260K/stories260K.bin"). */
  file?: string;
  /**
   * The tokenizer file (in `tokenizerSource`, default `source`). Default: llama2.c looks beside the
   * checkpoint for tokenizer.bin, then tok{vocab}.bin; HF uses tokenizer.json (+ tokenizer_config.json).
   */
  tokenizerFile?: string;
  /** Where `tokenizerFile` is, when not in `source` (e.g. a --tokenizer path elsewhere on disk). */
  tokenizerSource?: FileSource;
  /** Display name; default derived from the file or the source. */
  name?: string;
}

export interface LoadedModel {
  kind: ModelKind;
  config: ModelConfig;
  weights: RawTensors;
  tokenizer: Tokenizer;
  name: string;
  /** The files read, for messages ("<source>: <file>"). */
  files: string[];
}

export type { LoadProgress };

const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/') + 1) : '');
const baseOf = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** The last path component of a source description ("/a/b/gpt2" → "gpt2", "https://h/o/n (revision main)" → "o/n"). */
function nameFromDescribe(describe: string): string {
  const hub = /([^/\s]+\/[^/\s]+) \(revision [^)]*\)$/.exec(describe);
  if (hub) return hub[1];
  const parts = describe.replace(/[\\/]+$/, '').split(/[\\/]/);
  return parts[parts.length - 1] || describe;
}

/** "<source>: <file>", or a plain path when the source is a folder on disk. */
function where(src: FileSource, file: string): string {
  return /^([A-Za-z]:)?[\\/]/.test(src.describe)
    ? `${src.describe.replace(/[\\/]+$/, '')}/${file}`
    : `${src.describe}: ${file}`;
}

export async function loadModel(spec: ModelSpec, onProgress?: (p: LoadProgress) => void): Promise<LoadedModel> {
  const src = spec.source;
  let kind = spec.kind;
  if (!kind) {
    if (spec.file && /\.bin$/i.test(spec.file)) kind = 'llama2c';
    else if (await src.has('config.json')) kind = 'hf';
    else if (spec.file) kind = 'llama2c';
    else
      throw new Error(
        `${src.describe}: no config.json (not a Hugging Face model folder) and no llama2.c .bin checkpoint given`,
      );
  }
  return kind === 'hf' ? loadHf(spec, onProgress) : loadLlama2c(spec, onProgress);
}

async function loadHf(spec: ModelSpec, onProgress?: (p: LoadProgress) => void): Promise<LoadedModel> {
  const src = spec.source;
  const ck = await loadHfCheckpoint(src, onProgress);
  const files = ['config.json'];
  let tokenizer: Tokenizer;
  if (spec.tokenizerFile) {
    const tsrc = spec.tokenizerSource ?? src;
    const data = await readNamed(tsrc, spec.tokenizerFile, onProgress);
    tokenizer = loadTokenizer({
      fileName: where(tsrc, spec.tokenizerFile),
      data,
      config: ck.tokenizerConfig,
      vocabSize: ck.config.vocab_size,
    });
    files.push(spec.tokenizerFile);
  } else {
    if (ck.tokenizerJson === null) {
      throw new Error(
        `${src.describe}: no tokenizer.json (the model folder needs its tokenizer; give one with --tokenizer)`,
      );
    }
    tokenizer = loadTokenizer({
      fileName: where(src, 'tokenizer.json'),
      data: ck.tokenizerJson,
      config: ck.tokenizerConfig,
    });
    files.push('tokenizer.json');
  }
  return {
    kind: 'hf',
    config: ck.config,
    weights: ck.weights,
    tokenizer,
    name: spec.name ?? nameFromDescribe(src.describe),
    files,
  };
}

async function loadLlama2c(spec: ModelSpec, onProgress?: (p: LoadProgress) => void): Promise<LoadedModel> {
  const src = spec.source;
  const file = spec.file;
  if (!file) throw new Error(`${src.describe}: a llama2.c model needs its checkpoint file (.bin)`);
  const bytes = await readNamed(src, file, onProgress);
  const { config, weights } = parseLlama2cCheckpoint(bytes, where(src, file));

  let tsrc = spec.tokenizerSource ?? src;
  let tfile = spec.tokenizerFile;
  if (!tfile) {
    tsrc = src;
    const dir = dirOf(file);
    const candidates = [`${dir}tokenizer.bin`, `${dir}tok${config.vocab_size}.bin`];
    for (const c of candidates) {
      if (await src.has(c)) {
        tfile = c;
        break;
      }
    }
    if (!tfile) {
      throw new Error(
        `${src.describe}: no tokenizer for ${file}: looked for ${candidates.join(' and ')} beside it (give one with --tokenizer)`,
      );
    }
  }
  const tbytes = await readNamed(tsrc, tfile, onProgress);
  const tokenizer = loadTokenizer({ fileName: where(tsrc, tfile), data: tbytes, vocabSize: config.vocab_size });
  if (tokenizer.vocabSize !== config.vocab_size) {
    throw new Error(
      `${where(tsrc, tfile)}: tokenizer has ${tokenizer.vocabSize} tokens but ${file} has vocab_size ${config.vocab_size}`,
    );
  }
  return {
    kind: 'llama2c',
    config,
    weights,
    tokenizer,
    name: spec.name ?? baseOf(file).replace(/\.bin$/i, ''),
    files: [file, tfile],
  };
}

/**
 * Just the tokenizer (and config) of a model, without its weights where the format allows it
 * (HF: config.json, tokenizer.json, tokenizer_config.json; llama2.c needs the checkpoint's header, so reads it).
 */
export async function loadModelTokenizer(
  spec: ModelSpec,
  onProgress?: (p: LoadProgress) => void,
): Promise<{ tokenizer: Tokenizer; config: ModelConfig; name: string }> {
  const src = spec.source;
  const isHf =
    spec.kind === 'hf' || (!spec.kind && !(spec.file && /\.bin$/i.test(spec.file)) && (await src.has('config.json')));
  if (!isHf) {
    const m = await loadModel(spec, onProgress);
    return { tokenizer: m.tokenizer, config: m.config, name: m.name };
  }
  const json = async (file: string) => {
    const text = new TextDecoder().decode(await readNamed(src, file, onProgress));
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new Error(`${src.describe}: ${file}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
  };
  const config = parseHfConfig(await json('config.json'), where(src, 'config.json'));
  const tcfg = (await src.has('tokenizer_config.json')) ? await json('tokenizer_config.json') : null;
  let tokenizer: Tokenizer;
  if (spec.tokenizerFile) {
    const tsrc = spec.tokenizerSource ?? src;
    tokenizer = loadTokenizer({
      fileName: where(tsrc, spec.tokenizerFile),
      data: await readNamed(tsrc, spec.tokenizerFile, onProgress),
      config: tcfg,
      vocabSize: config.vocab_size,
    });
  } else {
    if (!(await src.has('tokenizer.json')))
      throw new Error(
        `${src.describe}: no tokenizer.json (the model folder needs its tokenizer; give one with --tokenizer)`,
      );
    tokenizer = loadTokenizer({
      fileName: where(src, 'tokenizer.json'),
      data: await json('tokenizer.json'),
      config: tcfg,
    });
  }
  return { tokenizer, config, name: spec.name ?? nameFromDescribe(src.describe) };
}

function readNamed(src: FileSource, file: string, onProgress?: (p: LoadProgress) => void): Promise<Uint8Array> {
  return src.read(file, onProgress && ((loaded, total) => onProgress({ file, loaded, total })));
}
