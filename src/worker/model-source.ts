/**
 * From the page's ModelSource (a catalog entry on a Hub-layout server, or picked/dropped files) to
 * load-model's ModelSpec: Hub files go through the Cache Storage, and the tokenizer files read are kept
 * (a merged-model export ships them beside the weights).
 */
import type { ModelSpec } from '../io/load-model';
import { filesSource, hubSource, type FileSource } from '../io/source';
import type { ModelSource } from './api';
import type { CachingFetch } from './model-cache';

const TOKENIZER_FILE =
  /(^|\/)(tokenizer(\.json|_config\.json|\.model|\.bin)|special_tokens_map\.json|tok\d+\.(bin|model)|vocab\.json|merges\.txt)$/;

export interface ResolvedSpec {
  spec: ModelSpec;
  /** Tokenizer files as read, by base name (filled while the model loads). */
  tokenizerFiles: Map<string, Uint8Array>;
  /** For adapter_config.json's base_model_name_or_path. */
  baseModel: string;
}

/** A FileSource that keeps a copy of the tokenizer files it reads. */
function recording(src: FileSource, keep: Map<string, Uint8Array>): FileSource {
  return {
    describe: src.describe,
    has: (p) => src.has(p),
    async read(p, onProgress) {
      const bytes = await src.read(p, onProgress);
      if (TOKENIZER_FILE.test(p)) keep.set(p.slice(p.lastIndexOf('/') + 1), bytes);
      return bytes;
    },
  };
}

export function resolveModelSource(source: ModelSource, cf: CachingFetch): ResolvedSpec {
  const tokenizerFiles = new Map<string, Uint8Array>();
  if (source.kind === 'hub') {
    if (!/^(https?:)?\/\//.test(source.baseUrl) && !source.baseUrl.startsWith('/')) {
      throw new Error(`Hub base URL ${JSON.stringify(source.baseUrl)} is not a URL (e.g. https://huggingface.co)`);
    }
    const rev = source.revision ?? 'main';
    const main = recording(hubSource(source.baseUrl, source.repo, rev, cf.fetch), tokenizerFiles);
    if (source.format === 'hf')
      return { spec: { source: main, kind: 'hf', name: source.name }, tokenizerFiles, baseModel: source.repo };
    const weights =
      source.files.find((f) => f.role === 'weights') ??
      source.files.find((f) => /\.bin$/i.test(f.path) && !TOKENIZER_FILE.test(f.path));
    if (!weights) throw new Error(`${source.name}: the catalog entry names no llama2.c checkpoint (.bin)`);
    const tok = source.files.find((f) => f.role === 'tokenizer');
    const tokRepo = tok?.repo && tok.repo !== source.repo ? tok.repo : null;
    return {
      spec: {
        source: main,
        kind: 'llama2c',
        file: weights.path,
        tokenizerFile: tok?.path,
        tokenizerSource: tokRepo
          ? recording(hubSource(source.baseUrl, tokRepo, 'main', cf.fetch), tokenizerFiles)
          : undefined,
        name: source.name,
      },
      tokenizerFiles,
      baseModel: source.repo,
    };
  }
  if (source.files.length === 0) throw new Error('No files were chosen.');
  const src = recording(filesSource(new Map(source.files.map((f) => [f.path, f.file]))), tokenizerFiles);
  const paths = source.files.map((f) => f.path);
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  const hasConfig = paths.some((p) => base(p) === 'config.json');
  const name = source.name ?? (hasConfig ? 'local model' : undefined);
  if (hasConfig) return { spec: { source: src, kind: 'hf', name }, tokenizerFiles, baseModel: name ?? 'local model' };
  // llama2.c: the largest .bin that is not a tokenizer is the checkpoint
  const bins = source.files
    .filter((f) => /\.bin$/i.test(f.path) && !TOKENIZER_FILE.test(f.path))
    .sort((a, b) => b.file.size - a.file.size);
  if (bins.length === 0) {
    throw new Error(
      `None of the ${paths.length} chosen files is a model: expected a Hugging Face folder (config.json, model.safetensors, tokenizer.json) or a llama2.c checkpoint (.bin) with its tokenizer (tokenizer.bin or tok<N>.bin). Got: ${paths.slice(0, 8).join(', ')}${paths.length > 8 ? ', …' : ''}`,
    );
  }
  const tokenizers = paths.filter((p) => /(^|\/)(tokenizer\.(bin|json)|tok\d+\.bin)$/.test(p));
  return {
    spec: {
      source: src,
      kind: 'llama2c',
      file: bins[0].path,
      tokenizerFile: tokenizers.length === 1 ? tokenizers[0] : undefined,
      name,
    },
    tokenizerFiles,
    baseModel: name ?? base(bins[0].path).replace(/\.bin$/i, ''),
  };
}
