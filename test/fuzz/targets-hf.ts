/**
 * config.json (parseHfConfig) and whole Hugging Face checkpoints (loadHfCheckpoint over a filesSource of
 * in-memory Blobs): tiny valid llama / qwen2 (sharded) / gpt2 checkpoints from writeTinyHfCheckpoint, then
 * wrong JSON types and absurd values for every config field, broken or missing files, mismatched tensors,
 * hostile shard indexes and byte-level damage to every file.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hasLearnedPositions, type ModelFamily, type RawTensor, type RawTensors } from '../../src/engine/config';
import { paramShapes } from '../../src/engine/params';
import { parseHfConfig, SUPPORTED_ARCHITECTURES, toHfConfig } from '../../src/io/hf-config';
import { loadHfCheckpoint, type HfCheckpoint } from '../../src/io/hf-model';
import { readSafetensorsHeader, writeSafetensors } from '../../src/io/safetensors';
import { filesSource } from '../../src/io/source';
import type { Rng } from '../../src/util/rng';
import {
  gpt2StyleTokenizerConfig,
  gpt2StyleTokenizerJson,
  llamaStyleTokenizerConfig,
  llamaStyleTokenizerJson,
} from '../fixtures/tokenizers';
import { tinyConfig, writeTinyHfCheckpoint } from '../tiny-checkpoint';
import type { FuzzCase, Target } from './harness';
import {
  between,
  chance,
  deepArray,
  DELETE,
  hostileValue,
  jsonText,
  mutateBytes,
  mutateTree,
  pick,
  toJson,
  utf8,
} from './mutate';

// ---------------------------------------------------------------------------------------------------------
// config.json

const CONFIG_FILE = 'fuzz/config.json';

function baseConfigs(): { name: string; json: Record<string, unknown> }[] {
  const llama = toHfConfig(tinyConfig('llama'));
  const qwen = toHfConfig(tinyConfig('qwen2'));
  const gpt2 = toHfConfig(tinyConfig('gpt2'));
  const mistral = { ...llama, architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 16 };
  delete (mistral as Record<string, unknown>).attention_bias;
  const byType = { ...qwen, use_sliding_window: true, sliding_window: 8 } as Record<string, unknown>;
  delete byType.architectures;
  const gemmaOld = toHfConfig(tinyConfig('gemma3', { layers: 4 }));
  delete gemmaOld.layer_types; // the older form: sliding_window_pattern only
  return [
    { name: 'llama', json: llama },
    { name: 'qwen2', json: qwen },
    { name: 'gpt2', json: gpt2 },
    { name: 'mistral', json: mistral },
    { name: 'qwen2 by model_type', json: byType },
    { name: 'qwen3', json: toHfConfig(tinyConfig('qwen3')) },
    { name: 'gemma3', json: toHfConfig(tinyConfig('gemma3')) },
    { name: 'gemma3 sliding_window_pattern', json: gemmaOld },
    { name: 'gpt_neo', json: toHfConfig(tinyConfig('gpt_neo')) },
  ];
}

/** The fields a base config's parser reads. */
function fieldsOf(name: string): readonly string[] {
  if (name === 'gpt2') return GPT2_FIELDS;
  if (name === 'gpt_neo') return GPT_NEO_FIELDS;
  if (name.startsWith('gemma3')) return GEMMA3_FIELDS;
  if (name === 'qwen3') return [...LLAMA_FIELDS, 'layer_types', 'max_window_layers'];
  return LLAMA_FIELDS;
}

/** Fields the parsers read (and some they reject), per family. */
const LLAMA_FIELDS = [
  'architectures',
  'model_type',
  'hidden_size',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'hidden_act',
  'mlp_bias',
  'pretraining_tp',
  'rope_scaling',
  'max_position_embeddings',
  'sliding_window',
  'use_sliding_window',
  'vocab_size',
  'intermediate_size',
  'num_hidden_layers',
  'rms_norm_eps',
  'rope_theta',
  'tie_word_embeddings',
  'attention_bias',
  'bos_token_id',
  'eos_token_id',
];
const GPT2_FIELDS = [
  'architectures',
  'model_type',
  'n_embd',
  'n_head',
  'activation_function',
  'scale_attn_weights',
  'scale_attn_by_inverse_layer_idx',
  'reorder_and_upcast_attn',
  'n_positions',
  'n_ctx',
  'n_inner',
  'eos_token_id',
  'bos_token_id',
  'vocab_size',
  'n_layer',
  'layer_norm_epsilon',
  'tie_word_embeddings',
];

const GEMMA3_FIELDS = [
  ...LLAMA_FIELDS.filter((f) => f !== 'hidden_act' && f !== 'mlp_bias' && f !== 'pretraining_tp'),
  'hidden_activation',
  'layer_types',
  'sliding_window_pattern',
  'rope_local_base_freq',
  'rope_parameters',
  'query_pre_attn_scalar',
  'attn_logit_softcapping',
  'final_logit_softcapping',
  'use_bidirectional_attention',
];
const GPT_NEO_FIELDS = [
  'architectures',
  'model_type',
  'hidden_size',
  'num_heads',
  'num_layers',
  'intermediate_size',
  'activation_function',
  'attention_types',
  'attention_layers',
  'window_size',
  'max_position_embeddings',
  'layer_norm_epsilon',
  'vocab_size',
  'tie_word_embeddings',
  'bos_token_id',
  'eos_token_id',
];

const posInt = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const tokenId = (v: unknown): boolean => v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);

export function checkConfig(r: unknown): string | null {
  const c = r as ReturnType<typeof parseHfConfig>;
  if (!Object.hasOwn(SUPPORTED_ARCHITECTURES, c.architecture))
    return `architecture ${JSON.stringify(String(c.architecture))} is not a supported one`;
  if (SUPPORTED_ARCHITECTURES[c.architecture].family !== c.family)
    return `family ${JSON.stringify(c.family)} does not match ${c.architecture}`;
  for (const k of [
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'max_position_embeddings',
    'head_dim',
  ] as const) {
    if (!posInt(c[k])) return `${k} = ${String(c[k])}`;
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0)
    return 'num_key_value_heads does not divide num_attention_heads';
  if (!hasLearnedPositions(c) && c.head_dim % 2 !== 0) return 'odd head_dim';
  if (c.layer_types !== undefined) {
    if (c.layer_types.length !== c.num_hidden_layers) return 'layer_types does not list every layer';
    if (!c.layer_types.every((t) => t === 'full_attention' || t === 'sliding_attention')) return 'bad layer type';
    if (!posInt(c.sliding_window)) return `sliding_window = ${String(c.sliding_window)}`;
  }
  for (const k of ['attn_logit_softcapping', 'final_logit_softcapping', 'query_pre_attn_scalar'] as const) {
    const v = c[k];
    if (v !== undefined && v !== null && !(typeof v === 'number' && v > 0 && Number.isFinite(v))) return `${k} = ${v}`;
  }
  if (!(c.norm_eps > 0 && Number.isFinite(c.norm_eps)) || !(c.rope_theta > 0 && Number.isFinite(c.rope_theta)))
    return 'norm_eps / rope_theta not finite positive';
  if (typeof c.tie_word_embeddings !== 'boolean' || typeof c.attention_bias !== 'boolean') return 'non-boolean flags';
  if (!tokenId(c.bos_token_id)) return `bos_token_id = ${String(c.bos_token_id)}`;
  const eos = c.eos_token_id;
  if (!(tokenId(eos) || (Array.isArray(eos) && eos.every((x) => tokenId(x) && x !== null)))) return 'bad eos_token_id';
  return null;
}

/** A rough size of a parsed JSON value (for the memory bound), without recursing into hostile nesting. */
function sizeOf(v: unknown): number {
  return toJson(v).length;
}

function configCase(label: string, json: unknown, size: number, expect?: 'accept' | 'reject'): FuzzCase {
  return { label, size, names: [CONFIG_FILE], run: () => parseHfConfig(json, CONFIG_FILE), check: checkConfig, expect };
}

function configEdges(): (() => FuzzCase)[] {
  const out: (() => FuzzCase)[] = [];
  for (const b of baseConfigs()) {
    out.push(() => configCase(`${b.name} valid`, b.json, sizeOf(b.json), 'accept'));
    const fields = fieldsOf(b.name);
    for (const f of fields) {
      const variants: [unknown, string, number][] = [
        [DELETE, 'missing', 0],
        ['8', '"8"', 3],
        [-1, '-1', 2],
        [1.5, '1.5', 3],
        [2 ** 53, '2^53', 16],
        [{}, '{}', 2],
      ];
      if (b.name === 'llama' || b.name === 'gpt2') variants.push([null, 'deep', 200_000]);
      for (const [v, what, size] of variants) {
        out.push(() => {
          const j: Record<string, unknown> = structuredClone(b.json);
          if (v === DELETE) delete j[f];
          else j[f] = what === 'deep' ? deepArray(100_000) : v;
          return configCase(`${b.name}: ${f} ${what}`, j, sizeOf(b.json) + size);
        });
      }
    }
  }
  const l = baseConfigs()[0].json;
  const whole: [string, () => unknown, number][] = [
    ['null', () => null, 4],
    ['array', () => [], 2],
    ['string', () => '{}', 4],
    ['number', () => 42, 2],
    ['100k nested arrays', () => deepArray(100_000), 200_000],
    ['empty object', () => ({}), 2],
    ['architectures []', () => ({ ...l, architectures: [] }), 300],
    ['architectures ["toString"]', () => ({ ...l, architectures: ['toString'] }), 300],
    ['architectures ["__proto__"]', () => ({ ...l, architectures: ['__proto__'] }), 300],
    ['architectures ["hasOwnProperty"]', () => ({ ...l, architectures: ['hasOwnProperty'] }), 300],
    ['model_type "constructor"', () => ({ ...l, architectures: undefined, model_type: 'constructor' }), 300],
    ['model_type "__proto__"', () => ({ ...l, architectures: null, model_type: '__proto__' }), 300],
    ['model_type "toString"', () => ({ ...l, architectures: null, model_type: 'toString' }), 300],
    ['hidden_size 5 MiB string', () => ({ ...l, hidden_size: 'x'.repeat(5 << 20) }), 5 << 20],
    ['architectures [5 MiB string]', () => ({ ...l, architectures: ['A'.repeat(5 << 20)] }), 5 << 20],
    ['eos_token_id 300k ids', () => ({ ...l, eos_token_id: new Array(300_000).fill(1) }), 600_000],
    ['eos_token_id 300k ids, one bad', () => ({ ...l, eos_token_id: [...new Array(300_000).fill(1), -1] }), 600_000],
    ['num_hidden_layers 2^40', () => ({ ...l, num_hidden_layers: 2 ** 40 }), 300],
    ...baseConfigs()
      .filter((b) => /^(qwen3|gemma3|gpt_neo)/.test(b.name))
      .map((b): [string, () => unknown, number] => [
        `${b.name}: ${b.name === 'gpt_neo' ? 'num_layers' : 'num_hidden_layers'} 2^40`,
        () => ({
          ...b.json,
          layer_types: undefined,
          [b.name === 'gpt_neo' ? 'num_layers' : 'num_hidden_layers']: 2 ** 40,
          ...(b.name === 'gpt_neo' ? { attention_types: [[['global'], 2 ** 40]], attention_layers: undefined } : {}),
        }),
        300,
      ]),
    [
      'every size 2^52',
      () => ({
        ...l,
        hidden_size: 2 ** 52,
        intermediate_size: 2 ** 52,
        vocab_size: 2 ** 52,
        num_attention_heads: 2 ** 50,
        num_key_value_heads: 2 ** 50,
      }),
      300,
    ],
  ];
  for (const [what, make, size] of whole) out.push(() => configCase(what, make(), size));
  return out;
}

function configRandom(rng: Rng): FuzzCase {
  const b = pick(rng, baseConfigs());
  const j: Record<string, unknown> = structuredClone(b.json);
  const fields = fieldsOf(b.name);
  const what: string[] = [];
  let size = sizeOf(j);
  for (let k = between(rng, 1, 4); k > 0; k--) {
    if (chance(rng, 0.5)) {
      const f = pick(rng, fields);
      const h = chance(rng, 0.3) ? { value: DELETE, what: 'missing', size: 0 } : hostileValue(rng);
      if (h.value === DELETE) delete j[f];
      else j[f] = h.value;
      what.push(`${f} = ${h.what}`);
      size += h.size;
    } else {
      const m = mutateTree(rng, j, [/^\.[a-z_]+$/]);
      what.push(m.what);
      size += m.size;
    }
  }
  // Sometimes go through JSON text, as a file would (drops NaN/undefined, keeps "__proto__" as an own key).
  if (chance(rng, 0.3)) {
    const text = toJson(j);
    return configCase(`${b.name}: ${what.join('; ')} (via JSON)`, JSON.parse(text), text.length);
  }
  return configCase(`${b.name}: ${what.join('; ')}`, j, size);
}

// ---------------------------------------------------------------------------------------------------------
// Whole checkpoints

interface Base {
  name: string;
  family: ModelFamily;
  files: Map<string, Uint8Array>;
  /** Tensors as stored, per safetensors file. */
  shards: Map<string, RawTensors>;
}

const bases: Base[] = [];

/** Write the tiny checkpoints once and keep their files in memory. */
export async function prepareCheckpoints(): Promise<void> {
  if (bases.length) return;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'webtune-fuzz-'));
  try {
    const specs: { name: string; family: ModelFamily; shardBytes?: number; extra?: Record<string, object> }[] = [
      {
        name: 'llama',
        family: 'llama',
        extra: { 'tokenizer.json': llamaStyleTokenizerJson(), 'tokenizer_config.json': llamaStyleTokenizerConfig() },
      },
      { name: 'qwen2 sharded', family: 'qwen2', shardBytes: 3000 },
      {
        name: 'gpt2',
        family: 'gpt2',
        extra: { 'tokenizer.json': gpt2StyleTokenizerJson(), 'tokenizer_config.json': gpt2StyleTokenizerConfig() },
      },
      { name: 'qwen3', family: 'qwen3' },
      { name: 'gemma3 sharded', family: 'gemma3', shardBytes: 3000 },
      { name: 'gpt_neo (attn.attention buffers)', family: 'gpt_neo' },
    ];
    for (const s of specs) {
      const dir = path.join(tmp, s.name.replace(/\W/g, '_'));
      const ck = await writeTinyHfCheckpoint(dir, s.family, {
        seed: 3,
        shardBytes: s.shardBytes,
        extraFiles: s.extra,
        layers: 2,
        maxPositions: 8,
      });
      const files = new Map<string, Uint8Array>();
      for (const f of ck.files) files.set(f, new Uint8Array(await readFile(path.join(dir, f))));
      const shards = new Map<string, RawTensors>();
      for (const [f, bytes] of files) {
        if (!f.endsWith('.safetensors')) continue;
        const { entries, dataStart } = readSafetensorsHeader(bytes, f);
        const m: RawTensors = new Map();
        for (const e of entries)
          m.set(e.name, {
            shape: e.shape,
            data: new Float32Array(bytes.slice(dataStart + e.begin, dataStart + e.end).buffer),
          });
        shards.set(f, m);
      }
      bases.push({ name: s.name, family: s.family, files, shards });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

function checkCheckpoint(r: unknown): string | null {
  const ck = r as HfCheckpoint;
  const c = checkConfig(ck.config);
  if (c) return c;
  const expected = paramShapes(ck.config);
  if (expected.size !== ck.weights.size) return `${ck.weights.size} weights for ${expected.size} parameters`;
  for (const [name, shape] of expected) {
    const t = ck.weights.get(name);
    if (!t) return `missing weight ${name}`;
    if (t.shape.join() !== shape.join()) return `weight ${name} has shape [${t.shape}], expected [${shape}]`;
    if (t.data.length !== shape.reduce((a, b) => a * b, 1)) return `weight ${name} has ${t.data.length} values`;
  }
  if (ck.tokenizerConfig !== null && (typeof ck.tokenizerConfig !== 'object' || Array.isArray(ck.tokenizerConfig)))
    return 'tokenizerConfig is not an object';
  return null;
}

function checkpointCase(
  label: string,
  files: Map<string, Uint8Array>,
  extraSize = 0,
  expect?: 'accept' | 'reject',
): FuzzCase {
  const blobs = new Map<string, Blob>();
  let size = extraSize;
  for (const [f, b] of files) {
    blobs.set(f, new Blob([b.slice()]));
    size += b.length;
  }
  const src = filesSource(blobs);
  const names = [src.describe, ...[...files.keys()].map((f) => path.posix.basename(f))];
  return { label, size, names, run: () => loadHfCheckpoint(src), check: checkCheckpoint, expect };
}

function safetensorsOffsets(bytes: Uint8Array): number[] {
  try {
    const h = readSafetensorsHeader(bytes, 'x');
    return [0, 4, 8, h.dataStart, ...h.entries.flatMap((e) => [h.dataStart + e.begin, h.dataStart + e.end])];
  } catch {
    return [0, 8];
  }
}

function rebuild(shard: RawTensors, edit: (m: Map<string, RawTensor>) => string): { bytes: Uint8Array; what: string } {
  const m = new Map(shard);
  const what = edit(m);
  return { bytes: writeSafetensors(m, { format: 'pt' }), what };
}

/** A JSON file of the checkpoint, or null when an earlier damage made it unreadable. */
function readJson(files: Map<string, Uint8Array>, f: string): unknown {
  const b = files.get(f);
  if (!b) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(b)) as unknown;
    JSON.stringify(v); // too deep to print again (an earlier damage nested it): treat as unreadable
    return v;
  } catch {
    return null;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One random damage to a checkpoint's files (in place on the map; byte arrays are replaced, never mutated). */
function damage(rng: Rng, b: Base, files: Map<string, Uint8Array>): { what: string; size: number } {
  const stFiles = [...files.keys()].filter((f) => f.endsWith('.safetensors'));
  const jsonFiles = [...files.keys()].filter((f) => f.endsWith('.json'));
  const op = rng.int(10);
  const config = readJson(files, 'config.json');
  if (op <= 1 && config !== null) {
    const j = config;
    const m = mutateTree(rng, j, [/^\.[a-z_]+$/]);
    const t = jsonText(rng, j);
    files.set('config.json', utf8(t.text));
    return { what: `config.json ${m.what} ${t.what}`, size: m.size };
  }
  if (op === 2 && isObj(config)) {
    const j = config;
    const f = pick(
      rng,
      b.family === 'gpt2'
        ? ['n_layer', 'n_embd', 'n_head', 'vocab_size', 'n_positions', 'n_inner']
        : [
            'num_hidden_layers',
            'hidden_size',
            'num_attention_heads',
            'num_key_value_heads',
            'vocab_size',
            'intermediate_size',
            'head_dim',
            'max_position_embeddings',
          ],
    );
    const v = pick(rng, [2 ** 40, 2 ** 31 - 1, 1e6, 1e15, Number.MAX_SAFE_INTEGER, 2 ** 26, 3, 1]);
    j[f] = v;
    files.set('config.json', utf8(JSON.stringify(j)));
    return { what: `config.json ${f} = ${v}`, size: 0 };
  }
  if (op === 3 && stFiles.length) {
    const f = pick(rng, stFiles);
    const m = mutateBytes(rng, files.get(f)!, safetensorsOffsets(files.get(f)!));
    files.set(f, m.bytes);
    return { what: `${f}: ${m.what}`, size: 0 };
  }
  if (op === 4 && stFiles.length) {
    const f = pick(rng, stFiles);
    const shard = b.shards.get(f);
    if (shard && shard.size) {
      const names = [...shard.keys()];
      const name = pick(rng, names);
      const r = rebuild(shard, (m) => {
        const t = m.get(name)!;
        switch (rng.int(6)) {
          case 0:
            m.delete(name);
            return `drop "${name}"`;
          case 1:
            m.delete(name);
            m.set(name.replace(/weight$/, 'weigth'), t);
            return `rename "${name}"`;
          case 2:
            m.set(
              pick(rng, [
                'extra.weight',
                'model.layers.9.mlp.up_proj.weight',
                'h.9.attn.bias',
                'lm_head.weight',
                'model.norm.weight',
              ]),
              { shape: [1], data: new Float32Array(1) },
            );
            return 'extra tensor';
          case 3:
            m.set(name, { shape: [t.data.length], data: t.data });
            return `flatten "${name}"`;
          case 4:
            m.set(name, { shape: [...t.shape].reverse(), data: t.data });
            return `reverse the shape of "${name}"`;
          default: {
            // The same tensor in a second file: duplicated across shards.
            const other = stFiles.find((o) => o !== f);
            if (other && b.shards.get(other)) {
              const ob = b.shards.get(other)!;
              const om = new Map(ob);
              om.set(name, t);
              files.set(other, writeSafetensors(om, { format: 'pt' }));
              return `"${name}" also in ${other}`;
            }
            m.set(`model.${name}`, t);
            return `"${name}" also as model.${name}`;
          }
        }
      });
      files.set(f, r.bytes);
      return { what: `${f}: ${r.what}`, size: 0 };
    }
  }
  const index = readJson(files, 'model.safetensors.index.json');
  if (op === 5 && isObj(index) && isObj(index.weight_map)) {
    const j = index;
    const wm = index.weight_map;
    const keys = Object.keys(wm);
    let what: string;
    let size = 0;
    switch (rng.int(6)) {
      case 0:
        wm[pick(rng, keys)] = pick(rng, [
          'missing.safetensors',
          '../escape.safetensors',
          'a/b.safetensors',
          'model.bin',
          '',
          'config.json',
          '__proto__',
        ]);
        what = 'weight_map entry renamed';
        break;
      case 1:
        wm['model.ghost.weight'] = pick(rng, [...new Set(Object.values(wm))]);
        what = 'weight_map lists a tensor no shard has';
        break;
      case 2:
        j.weight_map = pick(rng, [{}, [], null, 'x', 1]);
        what = `weight_map = ${JSON.stringify(j.weight_map)}`;
        break;
      case 3: {
        const h = hostileValue(rng);
        wm[pick(rng, keys)] = h.value;
        what = `weight_map entry = ${h.what}`;
        size = h.size;
        break;
      }
      case 4:
        delete j.weight_map;
        what = 'no weight_map';
        break;
      default: {
        const m = mutateTree(rng, j);
        what = m.what;
        size = m.size;
      }
    }
    files.set('model.safetensors.index.json', utf8(toJson(j)));
    return { what: `index: ${what}`, size };
  }
  if (op === 6) {
    const f = pick(rng, [...files.keys()]);
    files.delete(f);
    if (chance(rng, 0.3)) files.set('pytorch_model.bin', utf8('PK'));
    return { what: `delete ${f}`, size: 0 };
  }
  if (op === 7 && jsonFiles.length) {
    const f = pick(rng, jsonFiles);
    const m = mutateBytes(rng, files.get(f)!);
    files.set(f, m.bytes);
    return { what: `${f}: ${m.what}`, size: 0 };
  }
  const tf = files.has('tokenizer_config.json') && chance(rng, 0.5) ? 'tokenizer_config.json' : 'tokenizer.json';
  const tj = readJson(files, tf);
  if (op === 8 && tj !== null) {
    const f = tf;
    const j = tj;
    const h = chance(rng, 0.3) ? hostileValue(rng) : null;
    const m = h ? { what: `= ${h.what}`, size: h.size } : mutateTree(rng, j);
    files.set(f, utf8(toJson(h ? h.value : j)));
    return { what: `${f} ${m.what}`, size: m.size };
  }
  // Folder games: the same files under two folders (ambiguous), or nested one level down.
  const entries = [...files];
  files.clear();
  const two = chance(rng, 0.5);
  for (const [f, bytes] of entries) {
    files.set(`m/${f}`, bytes);
    if (two && chance(rng, 0.5)) files.set(`n/${f}`, bytes);
  }
  return { what: two ? 'files under m/ and some also under n/' : 'files under m/', size: 0 };
}

function checkpointEdges(): (() => FuzzCase)[] {
  const out: (() => FuzzCase)[] = [];
  for (let i = 0; i < 3; i++) {
    const base = () => bases[i];
    out.push(() => checkpointCase(`${base().name} valid`, new Map(base().files), 0, 'accept'));
    const absurd: [string, number][] =
      i === 2
        ? [
            ['n_layer', 2 ** 40],
            ['n_layer', Number.MAX_SAFE_INTEGER],
            ['n_layer', 2 ** 31 - 1],
            ['n_embd', 2 ** 40],
            ['vocab_size', 2 ** 52],
          ]
        : [
            ['num_hidden_layers', 2 ** 40],
            ['num_hidden_layers', Number.MAX_SAFE_INTEGER],
            ['num_hidden_layers', 2 ** 31 - 1],
            ['hidden_size', 2 ** 52],
            ['vocab_size', 2 ** 52],
          ];
    for (const [f, v] of absurd) {
      out.push(() => {
        const files = new Map(base().files);
        const j = JSON.parse(new TextDecoder().decode(files.get('config.json')!)) as Record<string, unknown>;
        j[f] = v;
        files.set('config.json', utf8(JSON.stringify(j)));
        return checkpointCase(`${base().name}: config ${f} = ${v}`, files, 0, 'reject');
      });
    }
    out.push(() =>
      checkpointCase(
        `${base().name}: config.json is 100k nested arrays`,
        new Map([...base().files, ['config.json', utf8('['.repeat(100_000) + ']'.repeat(100_000))]]),
        0,
        'reject',
      ),
    );
    out.push(() =>
      checkpointCase(
        `${base().name}: config.json is invalid UTF-8`,
        new Map([...base().files, ['config.json', Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d)]]),
        0,
        'reject',
      ),
    );
    out.push(() =>
      checkpointCase(
        `${base().name}: config.json with a BOM`,
        new Map([
          ...base().files,
          ['config.json', new Uint8Array([0xef, 0xbb, 0xbf, ...base().files.get('config.json')!])],
        ]),
        0,
      ),
    );
    out.push(() =>
      checkpointCase(
        `${base().name}: tokenizer_config.json is an array`,
        new Map([...base().files, ['tokenizer_config.json', utf8('[]')]]),
        0,
        'reject',
      ),
    );
    out.push(() =>
      checkpointCase(
        `${base().name}: tokenizer.json is 1 MiB of "["`,
        new Map([...base().files, ['tokenizer.json', utf8('['.repeat(1 << 20))]]),
        0,
        'reject',
      ),
    );
  }
  out.push(() => {
    const files = new Map(bases[1].files);
    const j = JSON.parse(new TextDecoder().decode(files.get('model.safetensors.index.json')!)) as Record<
      string,
      unknown
    >;
    j.weight_map = deepArray(100_000);
    files.set('model.safetensors.index.json', utf8(toJson(j)));
    return checkpointCase('index weight_map is 100k nested arrays', files, 200_000, 'reject');
  });
  out.push(() => {
    const files = new Map(bases[1].files);
    const j = JSON.parse(new TextDecoder().decode(files.get('model.safetensors.index.json')!)) as Record<
      string,
      unknown
    >;
    const wm = j.weight_map as Record<string, unknown>;
    wm[Object.keys(wm)[0]] = { deep: deepArray(100_000) };
    files.set('model.safetensors.index.json', utf8(toJson(j)));
    return checkpointCase('index weight_map entry is 100k nested arrays', files, 200_000, 'reject');
  });
  out.push(() => {
    const files = new Map(bases[1].files);
    const j = JSON.parse(new TextDecoder().decode(files.get('model.safetensors.index.json')!)) as Record<
      string,
      unknown
    >;
    (j.weight_map as Record<string, unknown>)['x'.repeat(3 << 20)] = 'model-00001-of-00002.safetensors';
    files.set('model.safetensors.index.json', utf8(toJson(j)));
    return checkpointCase('index lists a tensor with a 3 MiB name', files, 3 << 20, 'reject');
  });
  return out;
}

function checkpointRandom(rng: Rng): FuzzCase {
  const b = pick(rng, bases);
  const files = new Map(b.files);
  const what: string[] = [];
  let size = 0;
  for (let k = between(rng, 1, 2); k > 0; k--) {
    const d = damage(rng, b, files);
    what.push(d.what);
    size += d.size;
  }
  return checkpointCase(`${b.name}: ${what.join('; ')}`, files, size);
}

export const hfTargets: Target[] = [
  { name: 'parseHfConfig', weight: 12, edges: configEdges(), random: configRandom },
  { name: 'loadHfCheckpoint', weight: 11, edges: checkpointEdges(), random: checkpointRandom },
];
