/**
 * Load a Hugging Face checkpoint (config.json + safetensors, single file or sharded, plus the
 * tokenizer files) from any FileSource, validated against paramShapes(config).
 */
import type { ModelConfig, RawTensor, RawTensors } from '../engine/config';
import { hasLearnedPositions } from '../engine/config';
import { embeddingName, paramShapes } from '../engine/params';
import { parseHfConfig } from './hf-config';
import { parseSafetensors } from './safetensors';
import type { FileSource } from './source';
import { preview } from '../util/preview';
import { checkFinite } from '../util/finite';

export interface LoadProgress {
  /** File being read, e.g. "model-00001-of-00002.safetensors". */
  file: string;
  loaded: number;
  total: number | null;
}

export interface HfCheckpoint {
  config: ModelConfig;
  /** Canonical HF names (as paramShapes), in paramShapes order. */
  weights: RawTensors;
  tokenizerJson: unknown | null;
  tokenizerConfig: Record<string, unknown> | null;
}

const decoder = new TextDecoder();

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new Error(`${what}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** Buffers the HF modules register that are not parameters (GPT-2's and GPT-Neo's causal masks, RoPE frequencies). */
const IGNORED = [
  /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/,
  /^transformer\.h\.\d+\.attn\.attention\.(bias|masked_bias)$/,
  /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
];

/** Map a checkpoint name to the canonical paramShapes name (null = ignored buffer). */
export function canonicalName(cfg: ModelConfig, name: string): string | null {
  let n = name;
  if (hasLearnedPositions(cfg)) {
    if (!n.startsWith('transformer.') && n !== 'lm_head.weight') n = 'transformer.' + n;
  } else if (/^(embed_tokens|layers|norm)\./.test(n)) {
    n = 'model.' + n; // saved from the bare *Model rather than *ForCausalLM
  }
  return IGNORED.some((re) => re.test(n)) ? null : n;
}

function sameData(a: RawTensor, b: RawTensor): boolean {
  if (a.data.length !== b.data.length || a.shape.join() !== b.shape.join()) return false;
  const x = new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length);
  const y = new Uint32Array(b.data.buffer, b.data.byteOffset, b.data.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Put checkpoint tensors under canonical names and check them against paramShapes(cfg): every
 * parameter present with its shape, nothing unexpected. An lm_head identical to the embedding is
 * dropped and the config marked tied. Returns the (possibly updated) config and the weights.
 */
export function normalizeHfWeights(
  cfg: ModelConfig,
  raw: RawTensors,
  where: string,
): { config: ModelConfig; weights: RawTensors } {
  const byName = new Map<string, RawTensor>();
  const sources = new Map<string, string>();
  for (const [name, t] of raw) {
    const c = canonicalName(cfg, name);
    if (c === null) continue;
    if (byName.has(c)) throw new Error(`${where}: tensors "${sources.get(c)}" and "${name}" both map to "${c}"`);
    byName.set(c, t);
    sources.set(c, name);
  }
  const embName = embeddingName(cfg);
  let config = cfg;
  const head = byName.get('lm_head.weight');
  if (head) {
    const emb = byName.get(embName);
    if (cfg.tie_word_embeddings) byName.delete('lm_head.weight');
    else if (emb && sameData(head, emb)) {
      byName.delete('lm_head.weight');
      config = { ...cfg, tie_word_embeddings: true };
    }
  }

  // Each layer has several tensors, so a config with more layers than the checkpoint has tensors cannot match;
  // checked first because paramShapes enumerates every layer (a hang for num_hidden_layers = 2^40).
  if (config.num_hidden_layers > byName.size) {
    throw new Error(
      `${where}: checkpoint does not match ${config.architecture} config: ${config.num_hidden_layers} layers, but only ${byName.size} tensors in the checkpoint`,
    );
  }
  const expected = paramShapes(config);
  const problems: string[] = [];
  const weights: RawTensors = new Map();
  for (const [name, shape] of expected) {
    const t = byName.get(name);
    if (!t) problems.push(`missing tensor "${name}" (expected shape [${shape}])`);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      problems.push(`tensor "${sources.get(name)}" has shape [${t.shape}], expected [${shape}]`);
    } else weights.set(name, t);
  }
  const extra = [...byName.keys()].filter((n) => !expected.has(n)).map((n) => `"${sources.get(n)}"`);
  if (extra.length)
    problems.push(
      `unexpected tensor${extra.length > 1 ? 's' : ''} ${extra.slice(0, 10).join(', ')}${extra.length > 10 ? ` and ${extra.length - 10} more` : ''}`,
    );
  if (problems.length) {
    const shown =
      problems.slice(0, 12).join('; ') + (problems.length > 12 ? `; and ${problems.length - 12} more problems` : '');
    throw new Error(`${where}: checkpoint does not match ${config.architecture} config: ${shown}`);
  }
  return { config, weights };
}

/**
 * Read config.json, the weights (model.safetensors, or model.safetensors.index.json and its shards)
 * and, when present, tokenizer.json and tokenizer_config.json.
 */
export async function loadHfCheckpoint(src: FileSource, onProgress?: (p: LoadProgress) => void): Promise<HfCheckpoint> {
  const read = (file: string) => src.read(file, onProgress && ((loaded, total) => onProgress({ file, loaded, total })));
  const where = (file: string) => `${src.describe}: ${file}`;

  if (!(await src.has('config.json')))
    throw new Error(`${src.describe}: no config.json (is this a Hugging Face model repository/folder?)`);
  const config = parseHfConfig(parseJson(await read('config.json'), where('config.json')), where('config.json'));

  const raw: RawTensors = new Map();
  let weightsWhere: string;
  if (await src.has('model.safetensors')) {
    weightsWhere = where('model.safetensors');
    const { tensors } = parseSafetensors(await read('model.safetensors'), weightsWhere);
    checkFinite(tensors, weightsWhere);
    for (const [n, t] of tensors) raw.set(n, t);
  } else if (await src.has('model.safetensors.index.json')) {
    const indexWhere = where('model.safetensors.index.json');
    weightsWhere = indexWhere;
    const index = parseJson(await read('model.safetensors.index.json'), indexWhere) as { weight_map?: unknown };
    const map = index?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map))
      throw new Error(`${indexWhere}: "weight_map" must be an object of tensor name -> shard file`);
    const shards = new Map<string, string[]>();
    for (const [name, file] of Object.entries(map)) {
      if (typeof file !== 'string' || !/^[\w.-]+\.safetensors$/.test(file))
        throw new Error(
          `${indexWhere}: weight_map["${name}"] must be a .safetensors file name in the same folder, got ${preview(file)}`,
        );
      const list = shards.get(file) ?? [];
      list.push(name);
      shards.set(file, list);
    }
    if (shards.size === 0) throw new Error(`${indexWhere}: "weight_map" is empty`);
    for (const [file, names] of shards) {
      const shardWhere = where(file);
      if (!(await src.has(file)))
        throw new Error(`${shardWhere}: shard listed in model.safetensors.index.json is missing`);
      const { tensors } = parseSafetensors(await read(file), shardWhere);
      checkFinite(tensors, shardWhere);
      for (const n of names)
        if (!tensors.has(n))
          throw new Error(`${shardWhere}: tensor "${n}" listed in model.safetensors.index.json is not in this shard`);
      for (const [n, t] of tensors) {
        if (raw.has(n)) throw new Error(`${shardWhere}: tensor "${n}" appears in more than one shard`);
        raw.set(n, t);
      }
    }
  } else {
    const hint = (await src.has('pytorch_model.bin'))
      ? ' (only pytorch_model.bin is present: PyTorch pickles are not supported, use a repository with safetensors weights)'
      : '';
    throw new Error(`${src.describe}: no model.safetensors or model.safetensors.index.json${hint}`);
  }

  const { config: finalConfig, weights } = normalizeHfWeights(config, raw, weightsWhere);

  const tokenizerJson = (await src.has('tokenizer.json'))
    ? parseJson(await read('tokenizer.json'), where('tokenizer.json'))
    : null;
  let tokenizerConfig: Record<string, unknown> | null = null;
  if (await src.has('tokenizer_config.json')) {
    const tc = parseJson(await read('tokenizer_config.json'), where('tokenizer_config.json'));
    if (typeof tc !== 'object' || tc === null || Array.isArray(tc))
      throw new Error(`${where('tokenizer_config.json')}: expected a JSON object`);
    tokenizerConfig = tc as Record<string, unknown>;
  }
  return { config: finalConfig, weights, tokenizerJson, tokenizerConfig };
}
