/**
 * Test helper: write a tiny random Hugging Face checkpoint in the exact Hub repository layout
 * (config.json, model.safetensors or model.safetensors.index.json + shards, with the real HF
 * tensor names: GPT-2 without the `transformer.` prefix and with its attn.bias buffers, as the
 * openai-community/gpt2 repository stores them; GPT-Neo with the prefix and its attn.attention.bias /
 * masked_bias buffers, as EleutherAI's and the TinyStories repositories do).
 *
 * The tiny Qwen3 has head_dim 6 ≠ hidden/heads; the tiny Gemma 3 alternates sliding and full layers with a window of
 * 3, linear RoPE scaling on the full layers, a query_pre_attn_scalar ≠ head_dim and both soft-cappings; the tiny
 * GPT-Neo has a local layer with window_size 3: sequences longer than 3 exercise every one of those paths.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelConfig, ModelFamily, RawTensor, RawTensors } from '../src/engine/config';
import { paramShapes } from '../src/engine/params';
import { Rng } from '../src/util/rng';
import { toHfConfig } from '../src/io/hf-config';
import { writeSafetensors } from '../src/io/safetensors';

export interface TinyCheckpointOptions {
  vocab?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  /** llama/qwen2/qwen3/gemma3 only (default heads / 2). */
  kvHeads?: number;
  /** Sliding window (Gemma 3, GPT-Neo local layers; default 3). */
  window?: number;
  /** Default: 40 for llama/qwen2, 4 × hidden for gpt2. */
  intermediate?: number;
  maxPositions?: number;
  /** Default: false for llama, true for qwen2 and gpt2. */
  tie?: boolean;
  seed?: number;
  /** Write shards of at most this many bytes (plus model.safetensors.index.json) instead of one file. */
  shardBytes?: number;
  /** Fields merged into config.json. */
  configOverrides?: Record<string, unknown>;
  /** More files to write (e.g. tokenizer.json): strings/bytes as is, anything else as JSON. */
  extraFiles?: Record<string, string | Uint8Array | object>;
}

export interface TinyCheckpoint {
  /** What parseHfConfig should return for the config.json written. */
  config: ModelConfig;
  hfConfig: Record<string, unknown>;
  /** The parameters under canonical names (as paramShapes / loadHfCheckpoint), excluding buffers. */
  weights: RawTensors;
  /** The tensors exactly as stored in the safetensors file(s), by stored name. */
  stored: RawTensors;
  /** Files written, relative to dir. */
  files: string[];
}

export function tinyConfig(family: ModelFamily, opts: TinyCheckpointOptions = {}): ModelConfig {
  const heads = opts.heads ?? 4;
  const hidden = opts.hidden ?? 16;
  const layers = opts.layers ?? 2;
  const alternating = Array.from({ length: layers }, (_, i) =>
    i % 2 === 0 ? ('sliding_attention' as const) : ('full_attention' as const),
  );
  if (family === 'gpt_neo') {
    return {
      family,
      architecture: 'GPTNeoForCausalLM',
      vocab_size: opts.vocab ?? 64,
      hidden_size: hidden,
      intermediate_size: opts.intermediate ?? 4 * hidden,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: heads,
      max_position_embeddings: opts.maxPositions ?? 32,
      norm_eps: 1e-5,
      rope_theta: 10000,
      rope_layout: 'half',
      tie_word_embeddings: opts.tie ?? true,
      attention_bias: false,
      hidden_act: 'gelu_new',
      bos_token_id: 0,
      eos_token_id: 0,
      head_dim: hidden / heads,
      // GPT-Neo's pattern is global first: [["global", "local"], n]
      layer_types: alternating.map((t) => (t === 'sliding_attention' ? 'full_attention' : 'sliding_attention')),
      sliding_window: opts.window ?? 3,
    };
  }
  if (family === 'qwen3' || family === 'gemma3') {
    const gemma = family === 'gemma3';
    return {
      family,
      architecture: gemma ? 'Gemma3ForCausalLM' : 'Qwen3ForCausalLM',
      vocab_size: opts.vocab ?? 64,
      hidden_size: hidden,
      intermediate_size: opts.intermediate ?? 40,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: opts.kvHeads ?? Math.max(1, heads / 2),
      max_position_embeddings: opts.maxPositions ?? 32,
      norm_eps: 1e-6,
      rope_theta: gemma ? 1_000_000 : 10000,
      rope_layout: 'half',
      tie_word_embeddings: opts.tie ?? true,
      attention_bias: false,
      hidden_act: gemma ? 'gelu_pytorch_tanh' : 'silu',
      bos_token_id: gemma ? 2 : null,
      eos_token_id: 1,
      head_dim: 6,
      ...(gemma
        ? {
            layer_types: alternating,
            sliding_window: opts.window ?? 3,
            rope_local_base_freq: 10000,
            rope_scaling: { rope_type: 'linear' as const, factor: 2 },
            query_pre_attn_scalar: 10,
            attn_logit_softcapping: 1.5,
            final_logit_softcapping: 2.5,
          }
        : {}),
    };
  }
  if (family === 'gpt2') {
    return {
      family,
      architecture: 'GPT2LMHeadModel',
      vocab_size: opts.vocab ?? 64,
      hidden_size: hidden,
      intermediate_size: opts.intermediate ?? 4 * hidden,
      num_hidden_layers: opts.layers ?? 2,
      num_attention_heads: heads,
      num_key_value_heads: heads,
      max_position_embeddings: opts.maxPositions ?? 32,
      norm_eps: 1e-5,
      rope_theta: 10000,
      rope_layout: 'half',
      tie_word_embeddings: opts.tie ?? true,
      attention_bias: true,
      hidden_act: 'gelu_new',
      bos_token_id: 0,
      eos_token_id: 0,
      head_dim: hidden / heads,
    };
  }
  return {
    family,
    architecture: family === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM',
    vocab_size: opts.vocab ?? 64,
    hidden_size: hidden,
    intermediate_size: opts.intermediate ?? 40,
    num_hidden_layers: opts.layers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: opts.kvHeads ?? Math.max(1, heads / 2),
    max_position_embeddings: opts.maxPositions ?? 32,
    norm_eps: 1e-5,
    rope_theta: 10000,
    rope_layout: 'half',
    tie_word_embeddings: opts.tie ?? family === 'qwen2',
    attention_bias: family === 'qwen2',
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: hidden / heads,
  };
}

/** Stored (Hub) name of a canonical parameter name. */
export function hubName(family: ModelFamily, canonical: string): string {
  // GPT-Neo checkpoints keep the `transformer.` prefix (GPTNeoForCausalLM.save_pretrained)
  return family === 'gpt2' ? canonical.replace(/^transformer\./, '') : canonical;
}

export async function writeTinyHfCheckpoint(
  dir: string,
  family: ModelFamily,
  opts: TinyCheckpointOptions = {},
): Promise<TinyCheckpoint> {
  const config = tinyConfig(family, opts);
  const rng = new Rng(opts.seed ?? 1);
  const rand = () => rng.uniform();
  const layers = config.num_hidden_layers;
  const weights: RawTensors = new Map();
  for (const [name, shape] of paramShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /(layernorm|norm|ln_\d|ln_f)\.weight$/.test(name);
    const data = Float32Array.from({ length: n }, () => (isNorm ? 1 : 0) + (rand() * 2 - 1) * 0.1);
    weights.set(name, { shape, data });
  }
  const stored: RawTensors = new Map();
  for (const [name, t] of weights) stored.set(hubName(family, name), t);
  if (family === 'gpt2') {
    // The causal-mask buffer GPT-2 checkpoints carry: lower-triangular ones, [1, 1, P, P].
    const P = config.max_position_embeddings;
    const mask = new Float32Array(P * P);
    for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) mask[i * P + j] = 1;
    for (let l = 0; l < config.num_hidden_layers; l++)
      stored.set(`h.${l}.attn.bias`, { shape: [1, 1, P, P], data: mask });
  }
  if (family === 'gpt_neo') {
    // GPTNeoSelfAttention's buffers: the (local: banded) causal mask [1, 1, P, P] and masked_bias (a scalar).
    const P = config.max_position_embeddings;
    for (let l = 0; l < layers; l++) {
      const local = config.layer_types?.[l] === 'sliding_attention';
      const mask = new Float32Array(P * P);
      for (let i = 0; i < P; i++)
        for (let j = 0; j <= i; j++) if (!local || i - j < config.sliding_window!) mask[i * P + j] = 1;
      stored.set(`transformer.h.${l}.attn.attention.bias`, { shape: [1, 1, P, P], data: mask });
      stored.set(`transformer.h.${l}.attn.attention.masked_bias`, { shape: [], data: Float32Array.of(-1e9) });
    }
  }

  const hfConfig = { ...toHfConfig(config), ...opts.configOverrides };
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const put = async (file: string, content: string | Uint8Array) => {
    await writeFile(path.join(dir, file), content);
    files.push(file);
  };
  await put('config.json', JSON.stringify(hfConfig, null, 2) + '\n');

  if (opts.shardBytes === undefined) {
    await put('model.safetensors', writeSafetensors(stored, { format: 'pt' }));
  } else {
    const groups: Map<string, RawTensor>[] = [];
    let cur = new Map<string, RawTensor>(),
      curBytes = 0;
    for (const name of [...stored.keys()].sort()) {
      const t = stored.get(name)!;
      if (cur.size > 0 && curBytes + t.data.byteLength > opts.shardBytes) {
        groups.push(cur);
        cur = new Map();
        curBytes = 0;
      }
      cur.set(name, t);
      curBytes += t.data.byteLength;
    }
    groups.push(cur);
    const pad = (i: number) => String(i).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let g = 0; g < groups.length; g++) {
      const file = `model-${pad(g + 1)}-of-${pad(groups.length)}.safetensors`;
      for (const [name, t] of groups[g]) {
        weightMap[name] = file;
        total += t.data.byteLength;
      }
      await put(file, writeSafetensors(groups[g], { format: 'pt' }));
    }
    const sortedMap = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
    await put(
      'model.safetensors.index.json',
      JSON.stringify({ metadata: { total_size: total }, weight_map: sortedMap }, null, 2) + '\n',
    );
  }

  for (const [file, content] of Object.entries(opts.extraFiles ?? {})) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await put(
      file,
      typeof content === 'string' || content instanceof Uint8Array ? content : JSON.stringify(content, null, 2),
    );
  }
  return { config, hfConfig, weights, stored, files };
}
