import { describe, expect, it } from 'vitest';
import { parseHfConfig, toHfConfig } from '../../src/io/hf-config';
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
