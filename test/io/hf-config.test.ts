import { describe, expect, it } from 'vitest';
import { parseHfConfig, toHfConfig } from '../../src/io/hf-config';
import { countParams } from '../../src/engine/params';
import type { ModelConfig } from '../../src/engine/config';

// Configs as published on the Hub (fields abridged where irrelevant).
const smollm2 = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 8192,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 49152,
};
const tinyllama = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 32000,
};
const qwen25 = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};
const gpt2 = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  summary_type: 'cls_index',
  vocab_size: 50257,
};

describe('parseHfConfig', () => {
  it('SmolLM2 (llama, GQA, tied)', () => {
    expect(parseHfConfig(smollm2)).toEqual({
      family: 'llama',
      architecture: 'LlamaForCausalLM',
      vocab_size: 49152,
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
      max_position_embeddings: 8192,
      norm_eps: 1e-5,
      rope_theta: 100000,
      rope_layout: 'half',
      tie_word_embeddings: true,
      attention_bias: false,
      hidden_act: 'silu',
      bos_token_id: 0,
      eos_token_id: 0,
      head_dim: 64,
    } satisfies ModelConfig);
  });

  it('TinyLlama (untied)', () => {
    const c = parseHfConfig(tinyllama);
    expect(c.tie_word_embeddings).toBe(false);
    expect(c.head_dim).toBe(64);
    expect(c.num_key_value_heads).toBe(4);
    expect(c.rope_theta).toBe(10000);
  });

  it('llama defaults: kv heads = heads, tie false, head_dim from config', () => {
    const {
      num_key_value_heads: _kv,
      tie_word_embeddings: _t,
      bos_token_id: _b,
      eos_token_id: _e,
      ...rest
    } = tinyllama;
    const c = parseHfConfig(rest);
    expect(c.num_key_value_heads).toBe(32);
    expect(c.tie_word_embeddings).toBe(false);
    expect(c.rope_theta).toBe(10000);
    expect([c.bos_token_id, c.eos_token_id]).toEqual([1, 2]);
    expect(
      parseHfConfig({ ...tinyllama, head_dim: 128, num_attention_heads: 8, num_key_value_heads: 8 }).head_dim,
    ).toBe(128);
  });

  it('Qwen2.5 (biases, tied, eos)', () => {
    const c = parseHfConfig(qwen25);
    expect(c).toMatchObject({
      family: 'qwen2',
      attention_bias: true,
      tie_word_embeddings: true,
      head_dim: 64,
      num_key_value_heads: 2,
      rope_theta: 1e6,
      norm_eps: 1e-6,
      bos_token_id: 151643,
      eos_token_id: 151645,
      max_position_embeddings: 32768,
    });
    const { tie_word_embeddings: _t, ...untied } = qwen25;
    expect(parseHfConfig(untied).tie_word_embeddings).toBe(false);
    // With the sliding window in use the context is capped at the window (where it equals full attention).
    expect(parseHfConfig({ ...qwen25, use_sliding_window: true, sliding_window: 4096 }).max_position_embeddings).toBe(
      4096,
    );
  });

  it('GPT-2', () => {
    expect(parseHfConfig(gpt2)).toEqual({
      family: 'gpt2',
      architecture: 'GPT2LMHeadModel',
      vocab_size: 50257,
      hidden_size: 768,
      intermediate_size: 3072,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      num_key_value_heads: 12,
      max_position_embeddings: 1024,
      norm_eps: 1e-5,
      rope_theta: 10000,
      rope_layout: 'half',
      tie_word_embeddings: true,
      attention_bias: true,
      hidden_act: 'gelu_new',
      bos_token_id: 50256,
      eos_token_id: 50256,
      head_dim: 64,
    } satisfies ModelConfig);
    expect(parseHfConfig({ ...gpt2, n_inner: 100 }).intermediate_size).toBe(100);
    expect(parseHfConfig({ ...gpt2, n_inner: null }).intermediate_size).toBe(3072);
  });

  it('Mistral maps to the llama family; sliding window caps the context', () => {
    const c = parseHfConfig({
      ...tinyllama,
      architectures: ['MistralForCausalLM'],
      model_type: 'mistral',
      max_position_embeddings: 32768,
      sliding_window: 4096,
    });
    expect(c.family).toBe('llama');
    expect(c.architecture).toBe('MistralForCausalLM');
    expect(c.max_position_embeddings).toBe(4096);
    expect(
      parseHfConfig({ ...tinyllama, architectures: ['MistralForCausalLM'], sliding_window: null })
        .max_position_embeddings,
    ).toBe(2048);
  });

  it('falls back to model_type when architectures is absent', () => {
    const { architectures: _a, ...rest } = gpt2;
    expect(parseHfConfig(rest).architecture).toBe('GPT2LMHeadModel');
  });

  const bad: [string, unknown, RegExp][] = [
    [
      'unsupported architecture',
      { ...tinyllama, architectures: ['GemmaForCausalLM'] },
      /my\.json: unsupported architecture "GemmaForCausalLM" \(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, GPT2LMHeadModel, GPTNeoForCausalLM\)/,
    ],
    ['no architecture at all', { hidden_size: 8 }, /neither "architectures" nor "model_type"/],
    ['not an object', [1], /my\.json: expected a JSON object/],
    ['missing hidden_size', { ...tinyllama, hidden_size: undefined }, /my\.json: "hidden_size" is missing/],
    ['zero layers', { ...tinyllama, num_hidden_layers: 0 }, /"num_hidden_layers" must be a positive integer, got 0/],
    ['fractional vocab', { ...tinyllama, vocab_size: 10.5 }, /"vocab_size" must be a positive integer, got 10.5/],
    [
      'string intermediate',
      { ...tinyllama, intermediate_size: '5632' },
      /"intermediate_size" must be a positive integer, got "5632"/,
    ],
    [
      'hidden not divisible by heads',
      { ...tinyllama, num_attention_heads: 30, num_key_value_heads: 30 },
      /"hidden_size" \(2048\) must be divisible by num_attention_heads \(30\)/,
    ],
    [
      'heads not divisible by kv heads',
      { ...tinyllama, num_key_value_heads: 5 },
      /"num_key_value_heads" \(5\) must divide num_attention_heads \(32\)/,
    ],
    ['negative eps', { ...tinyllama, rms_norm_eps: -1 }, /"rms_norm_eps" must be a positive number/],
    [
      'rope scaling',
      { ...tinyllama, rope_scaling: { rope_type: 'llama3', factor: 32 } },
      /"rope_scaling" .* not supported/,
    ],
    ['other activation', { ...tinyllama, hidden_act: 'gelu' }, /"hidden_act" = "gelu" is not supported/],
    ['gpt2 missing n_embd', { ...gpt2, n_embd: undefined }, /"n_embd" is missing/],
    ['gpt2 n_embd not divisible', { ...gpt2, n_head: 5 }, /"n_embd" \(768\) must be divisible by n_head \(5\)/],
    ['gpt2 activation', { ...gpt2, activation_function: 'relu' }, /"activation_function" = "relu" is not supported/],
    ['bad eos', { ...tinyllama, eos_token_id: -2 }, /"eos_token_id" must be a token id/],
  ];
  for (const [what, json, re] of bad) {
    it(`rejects: ${what}`, () => {
      expect(() => parseHfConfig(json, 'my.json')).toThrow(re);
    });
  }
});

describe('toHfConfig', () => {
  for (const [name, json] of [
    ['smollm2', smollm2],
    ['tinyllama', tinyllama],
    ['qwen2.5', qwen25],
    ['gpt2', gpt2],
  ] as const) {
    it(`round-trips ${name} through parseHfConfig`, () => {
      const cfg = parseHfConfig(json);
      const out = toHfConfig(cfg);
      expect(JSON.parse(JSON.stringify(out))).toEqual(out);
      expect(parseHfConfig(JSON.parse(JSON.stringify(out)))).toEqual(cfg);
      expect(out.architectures).toEqual(json.architectures);
      expect(out.model_type).toBe(json.model_type);
    });
  }

  it('keeps the HF field names users expect', () => {
    const l = toHfConfig(parseHfConfig(smollm2));
    for (const k of [
      'hidden_size',
      'num_key_value_heads',
      'rms_norm_eps',
      'rope_theta',
      'tie_word_embeddings',
      'torch_dtype',
    ])
      expect(l).toHaveProperty(k);
    const g = toHfConfig(parseHfConfig(gpt2));
    expect(g).toMatchObject({
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
      n_positions: 1024,
      layer_norm_epsilon: 1e-5,
      activation_function: 'gelu_new',
    });
  });

  it('refuses the interleaved RoPE layout', () => {
    expect(() => toHfConfig({ ...parseHfConfig(tinyllama), rope_layout: 'interleaved' })).toThrow(/interleaved/);
  });
});

// Qwen3-0.6B, gemma-3-270m and roneneldan/TinyStories-33M as their config.json files publish them (transformers'
// Qwen3Config / Gemma3TextConfig / GPTNeoConfig fields).
const qwen3 = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: 'qwen3',
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.51.0',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};
const S = 'sliding_attention',
  F = 'full_attention';
const gemma270mTypes = [S, S, S, S, S, F, S, S, S, S, S, F, S, S, S, S, S, F];
const gemma270m = {
  _sliding_window_pattern: 6,
  architectures: ['Gemma3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  bos_token_id: 2,
  eos_token_id: 1,
  final_logit_softcapping: null,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 640,
  initializer_range: 0.02,
  intermediate_size: 2048,
  layer_types: gemma270mTypes,
  max_position_embeddings: 32768,
  model_type: 'gemma3_text',
  num_attention_heads: 4,
  num_hidden_layers: 18,
  num_key_value_heads: 1,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000.0,
  rope_scaling: null,
  rope_theta: 1000000.0,
  sliding_window: 512,
  torch_dtype: 'bfloat16',
  transformers_version: '4.55.0.dev0',
  use_bidirectional_attention: false,
  use_cache: true,
  vocab_size: 262144,
};
const tinyStories33m = {
  _name_or_path: 'EleutherAI/gpt-neo-125M',
  activation_function: 'gelu_new',
  architectures: ['GPTNeoForCausalLM'],
  attention_dropout: 0,
  attention_layers: ['global', 'local', 'global', 'local'],
  attention_types: [[['global', 'local'], 2]],
  bos_token_id: 50256,
  embed_dropout: 0,
  eos_token_id: 50256,
  gradient_checkpointing: false,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: null,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neo',
  num_heads: 16,
  num_layers: 4,
  resid_dropout: 0,
  summary_activation: null,
  summary_first_dropout: 0.1,
  summary_proj_to_labels: true,
  summary_type: 'cls_index',
  summary_use_proj: true,
  torch_dtype: 'float32',
  transformers_version: '4.28.0.dev0',
  use_cache: true,
  vocab_size: 50257,
  window_size: 256,
};

describe('parseHfConfig: Qwen3, Gemma 3 text, GPT-Neo', () => {
  it('Qwen3-0.6B: head_dim 128 ≠ hidden/heads, tied, no sliding layers', () => {
    expect(parseHfConfig(qwen3)).toEqual({
      family: 'qwen3',
      architecture: 'Qwen3ForCausalLM',
      vocab_size: 151936,
      hidden_size: 1024,
      intermediate_size: 3072,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      max_position_embeddings: 40960,
      norm_eps: 1e-6,
      rope_theta: 1e6,
      rope_layout: 'half',
      tie_word_embeddings: true,
      attention_bias: false,
      hidden_act: 'silu',
      bos_token_id: 151643,
      eos_token_id: 151645,
      head_dim: 128,
    } satisfies ModelConfig);
    // Qwen3Config defaults: head_dim 128 even when hidden/heads differs; untied
    const { head_dim: _h, tie_word_embeddings: _t, ...bare } = qwen3;
    expect(parseHfConfig(bare)).toMatchObject({ head_dim: 128, tie_word_embeddings: false });
    // use_sliding_window: layers from max_window_layers on slide
    const sw = parseHfConfig({
      ...qwen3,
      num_hidden_layers: 4,
      use_sliding_window: true,
      sliding_window: 64,
      max_window_layers: 2,
    });
    expect(sw.layer_types).toEqual([F, F, S, S]);
    expect(sw.sliding_window).toBe(64);
  });

  it('gemma-3-270m: scaled embeddings, 5 sliding : 1 full, two RoPE bases, no soft-capping, 262k vocabulary', () => {
    expect(parseHfConfig(gemma270m)).toEqual({
      family: 'gemma3',
      architecture: 'Gemma3ForCausalLM',
      vocab_size: 262144,
      hidden_size: 640,
      intermediate_size: 2048,
      num_hidden_layers: 18,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      max_position_embeddings: 32768,
      norm_eps: 1e-6,
      rope_theta: 1e6,
      rope_layout: 'half',
      tie_word_embeddings: true,
      attention_bias: false,
      hidden_act: 'gelu_pytorch_tanh',
      bos_token_id: 2,
      eos_token_id: 1,
      head_dim: 256,
      layer_types: gemma270mTypes as ModelConfig['layer_types'],
      sliding_window: 512,
      rope_local_base_freq: 10000,
      rope_scaling: null,
      query_pre_attn_scalar: 256,
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
    } satisfies ModelConfig);
  });

  it('Gemma 3: the older sliding_window_pattern, linear rope_scaling (4B text), rope_parameters (transformers 5)', () => {
    const { layer_types: _l, _sliding_window_pattern: _p, ...old } = gemma270m;
    expect(parseHfConfig({ ...old, sliding_window_pattern: 6 }).layer_types).toEqual(gemma270mTypes);
    expect(parseHfConfig(old).layer_types).toEqual(gemma270mTypes); // Gemma3TextConfig's default pattern is 6
    const scaled = parseHfConfig({ ...gemma270m, rope_scaling: { factor: 8.0, rope_type: 'linear' } });
    expect(scaled.rope_scaling).toEqual({ rope_type: 'linear', factor: 8 });
    const v5 = parseHfConfig({
      ...gemma270m,
      rope_theta: undefined,
      rope_local_base_freq: undefined,
      rope_parameters: {
        full_attention: { rope_type: 'linear', factor: 8.0, rope_theta: 1000000.0 },
        sliding_attention: { rope_type: 'default', rope_theta: 10000.0 },
      },
    });
    expect(v5).toMatchObject({
      rope_theta: 1e6,
      rope_local_base_freq: 1e4,
      rope_scaling: { rope_type: 'linear', factor: 8 },
    });
    expect(parseHfConfig({ ...gemma270m, final_logit_softcapping: 30.0, attn_logit_softcapping: 50.0 })).toMatchObject({
      final_logit_softcapping: 30,
      attn_logit_softcapping: 50,
    });
  });

  it('TinyStories-33M: attention_types expanded to global/local layers, window_size, intermediate 4 × hidden', () => {
    expect(parseHfConfig(tinyStories33m)).toEqual({
      family: 'gpt_neo',
      architecture: 'GPTNeoForCausalLM',
      vocab_size: 50257,
      hidden_size: 768,
      intermediate_size: 3072,
      num_hidden_layers: 4,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      max_position_embeddings: 2048,
      norm_eps: 1e-5,
      rope_theta: 10000,
      rope_layout: 'half',
      tie_word_embeddings: true,
      attention_bias: false,
      hidden_act: 'gelu_new',
      bos_token_id: 50256,
      eos_token_id: 50256,
      head_dim: 48,
      layer_types: [F, S, F, S],
      sliding_window: 256,
    } satisfies ModelConfig);
    const { attention_layers: _a, ...noList } = tinyStories33m;
    expect(
      parseHfConfig({
        ...noList,
        num_layers: 6,
        attention_types: [
          [['global'], 2],
          [['local'], 4],
        ],
      }).layer_types,
    ).toEqual([F, F, S, S, S, S]);
  });

  const bad: [string, unknown, RegExp][] = [
    ['qwen3 attention_bias', { ...qwen3, attention_bias: true }, /my\.json: "attention_bias" = true is not supported/],
    [
      'qwen3 yarn scaling',
      { ...qwen3, rope_scaling: { rope_type: 'yarn', factor: 4 } },
      /my\.json: "rope_scaling" = .*yarn.* is not supported/,
    ],
    ['qwen3 odd head_dim', { ...qwen3, head_dim: 7 }, /"head_dim" \(7\) must be even/],
    ['qwen3 layer_types length', { ...qwen3, layer_types: [F, F] }, /"layer_types" must list .* each of the 28 layers/],
    [
      'gemma3 dynamic scaling',
      { ...gemma270m, rope_scaling: { rope_type: 'dynamic', factor: 2 } },
      /"rope_scaling" = .* is not supported \(rope_type "dynamic"; implemented: plain RoPE and "linear"\)/,
    ],
    [
      'gemma3 linear without factor',
      { ...gemma270m, rope_scaling: { rope_type: 'linear' } },
      /"rope_scaling" "linear" scaling needs a positive factor/,
    ],
    ['gemma3 activation', { ...gemma270m, hidden_activation: 'gelu' }, /"hidden_activation" = "gelu" is not supported/],
    [
      'gemma3 bidirectional',
      { ...gemma270m, use_bidirectional_attention: true },
      /"use_bidirectional_attention" = true/,
    ],
    [
      'gemma3 layer type name',
      { ...gemma270m, layer_types: [...gemma270mTypes.slice(1), 'chunked_attention'] },
      /"layer_types" must list/,
    ],
    [
      'gemma3 softcap',
      { ...gemma270m, final_logit_softcapping: -30 },
      /"final_logit_softcapping" must be a positive number, got -30/,
    ],
    ['gemma3 window', { ...gemma270m, sliding_window: 0 }, /"sliding_window" must be a positive integer, got 0/],
    [
      'gpt_neo activation',
      { ...tinyStories33m, activation_function: 'relu' },
      /"activation_function" = "relu" is not supported/,
    ],
    [
      'gpt_neo layer count',
      { ...tinyStories33m, num_layers: 6 },
      /"attention_types" expands to 4 layers, but num_layers is 6/,
    ],
    [
      'gpt_neo attention type',
      { ...tinyStories33m, attention_types: [[['global', 'sparse'], 2]] },
      /"attention_types" must be a list of/,
    ],
    [
      'gpt_neo attention_layers',
      { ...tinyStories33m, attention_layers: ['local', 'local', 'global', 'local'] },
      /"attention_layers" .* does not match attention_types/,
    ],
    [
      'gpt_neo heads',
      { ...tinyStories33m, num_heads: 5 },
      /"hidden_size" \(768\) must be divisible by num_heads \(5\)/,
    ],
    ['gpt_neo window', { ...tinyStories33m, window_size: -1 }, /"window_size" must be a positive integer/],
    [
      'gemma3 2^40 layers (a per-layer list is built)',
      { ...gemma270m, layer_types: undefined, num_hidden_layers: 2 ** 40 },
      /"num_hidden_layers" = 1099511627776 is more layers than any supported model has \(at most 100000\)/,
    ],
  ];
  for (const [what, j, re] of bad) {
    it(`rejects: ${what}`, () => {
      expect(() => parseHfConfig(j, 'my.json')).toThrow(re);
    });
  }
});

describe('toHfConfig: Qwen3, Gemma 3 text, GPT-Neo', () => {
  const sw = { ...qwen3, num_hidden_layers: 4, use_sliding_window: true, sliding_window: 64, max_window_layers: 2 };
  for (const [name, j] of [
    ['Qwen3-0.6B', qwen3],
    ['Qwen3 with sliding layers', sw],
    ['gemma-3-270m', gemma270m],
    [
      'Gemma 3 with linear scaling and soft-capping',
      { ...gemma270m, rope_scaling: { rope_type: 'linear', factor: 8 }, final_logit_softcapping: 30 },
    ],
    ['TinyStories-33M', tinyStories33m],
  ] as const) {
    it(`${name}: config.json as transformers writes it parses back to the same ModelConfig`, () => {
      const cfg = parseHfConfig(j);
      const out = JSON.parse(JSON.stringify(toHfConfig(cfg)));
      expect(parseHfConfig(out)).toEqual(cfg);
      expect(out.architectures).toEqual(j.architectures);
      expect(out.model_type).toBe(j.model_type);
    });
  }

  it('writes the fields transformers reads for each architecture', () => {
    expect(toHfConfig(parseHfConfig(qwen3))).toMatchObject({
      head_dim: 128,
      attention_bias: false,
      use_sliding_window: false,
    });
    expect(toHfConfig(parseHfConfig(sw))).toMatchObject({
      use_sliding_window: true,
      sliding_window: 64,
      max_window_layers: 2,
    });
    expect(toHfConfig(parseHfConfig(gemma270m))).toMatchObject({
      hidden_activation: 'gelu_pytorch_tanh',
      query_pre_attn_scalar: 256,
      rope_local_base_freq: 10000,
      layer_types: gemma270mTypes,
      sliding_window_pattern: 6, // for transformers versions before layer_types
    });
    expect(toHfConfig(parseHfConfig(tinyStories33m))).toMatchObject({
      attention_types: [[['global', 'local'], 2]],
      attention_layers: ['global', 'local', 'global', 'local'],
      window_size: 256,
      num_layers: 4,
      num_heads: 16,
    });
  });
});

describe('parameter counts of the new families (what the memory estimate uses)', () => {
  it('gemma-3-270m: 268,098,176 (its published size); Qwen3-0.6B: 0.44B besides the embedding; TinyStories-33M', () => {
    expect(countParams(parseHfConfig(gemma270m))).toBe(268_098_176);
    // Qwen3-0.6B per layer: q 2048×1024, k and v 1024×1024, o 1024×2048, q/k norms 2×128, 2 norms, MLP 3×1024×3072
    const perLayer = 2048 * 1024 + 2 * 1024 * 1024 + 1024 * 2048 + 2 * 128 + 2 * 1024 + 3 * 1024 * 3072;
    const q = parseHfConfig(qwen3);
    expect(countParams(q)).toBe(151936 * 1024 + 28 * perLayer + 1024);
    expect(countParams(q) - 151936 * 1024).toBeGreaterThan(0.435e9);
    expect(countParams(q) - 151936 * 1024).toBeLessThan(0.445e9);
    // TinyStories-33M: wte + wpe + 4 × (q, k, v, out_proj + bias, 2 LayerNorms, c_fc, c_proj with biases) + ln_f
    const neoLayer = 4 * 768 * 768 + 768 + 2 * 2 * 768 + (768 * 3072 + 3072) + (3072 * 768 + 768);
    expect(countParams(parseHfConfig(tinyStories33m))).toBe(50257 * 768 + 2048 * 768 + 4 * neoLayer + 2 * 768);
  });
});
