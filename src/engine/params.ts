import { hasLearnedPositions, hasQkNorm, type ModelConfig } from './config';
import type { FrozenDtype } from './frozen';

/** The token embedding's name: `transformer.wte.weight` (GPT-2, GPT-Neo) or `model.embed_tokens.weight`. */
export function embeddingName(cfg: Pick<ModelConfig, 'family'>): string {
  return hasLearnedPositions(cfg) ? 'transformer.wte.weight' : 'model.embed_tokens.weight';
}

/** The module-name prefix of block i: `transformer.h.<i>.` (GPT-2, GPT-Neo) or `model.layers.<i>.`. */
export function layerPrefix(cfg: Pick<ModelConfig, 'family'>, i: number): string {
  return hasLearnedPositions(cfg) ? `transformer.h.${i}.` : `model.layers.${i}.`;
}

/**
 * The parameters a model of `cfg` has, by Hugging Face name, with their HF shapes.
 * nn.Linear weights are [out, in]; GPT-2 Conv1D weights are [in, out].
 * GPT-2 and GPT-Neo names are canonicalised with the `transformer.` prefix.
 * Tied lm_head is not listed (it is the embedding).
 */
export function paramShapes(cfg: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const D = cfg.hidden_size,
    V = cfg.vocab_size,
    I = cfg.intermediate_size,
    L = cfg.num_hidden_layers;
  const hd = cfg.head_dim,
    H = cfg.num_attention_heads,
    KV = cfg.num_key_value_heads;
  if (cfg.family === 'gpt2') {
    m.set('transformer.wte.weight', [V, D]);
    m.set('transformer.wpe.weight', [cfg.max_position_embeddings, D]);
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}.`;
      m.set(p + 'ln_1.weight', [D]);
      m.set(p + 'ln_1.bias', [D]);
      m.set(p + 'attn.c_attn.weight', [D, 3 * D]);
      m.set(p + 'attn.c_attn.bias', [3 * D]);
      m.set(p + 'attn.c_proj.weight', [D, D]);
      m.set(p + 'attn.c_proj.bias', [D]);
      m.set(p + 'ln_2.weight', [D]);
      m.set(p + 'ln_2.bias', [D]);
      m.set(p + 'mlp.c_fc.weight', [D, I]);
      m.set(p + 'mlp.c_fc.bias', [I]);
      m.set(p + 'mlp.c_proj.weight', [I, D]);
      m.set(p + 'mlp.c_proj.bias', [D]);
    }
    m.set('transformer.ln_f.weight', [D]);
    m.set('transformer.ln_f.bias', [D]);
    if (!cfg.tie_word_embeddings) m.set('lm_head.weight', [V, D]);
    return m;
  }
  if (cfg.family === 'gpt_neo') {
    // GPTNeoForCausalLM: nn.Linear everywhere; q/k/v without bias, out_proj and the MLP with bias.
    m.set('transformer.wte.weight', [V, D]);
    m.set('transformer.wpe.weight', [cfg.max_position_embeddings, D]);
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}.`;
      m.set(p + 'ln_1.weight', [D]);
      m.set(p + 'ln_1.bias', [D]);
      m.set(p + 'attn.attention.q_proj.weight', [D, D]);
      m.set(p + 'attn.attention.k_proj.weight', [D, D]);
      m.set(p + 'attn.attention.v_proj.weight', [D, D]);
      m.set(p + 'attn.attention.out_proj.weight', [D, D]);
      m.set(p + 'attn.attention.out_proj.bias', [D]);
      m.set(p + 'ln_2.weight', [D]);
      m.set(p + 'ln_2.bias', [D]);
      m.set(p + 'mlp.c_fc.weight', [I, D]);
      m.set(p + 'mlp.c_fc.bias', [I]);
      m.set(p + 'mlp.c_proj.weight', [D, I]);
      m.set(p + 'mlp.c_proj.bias', [D]);
    }
    m.set('transformer.ln_f.weight', [D]);
    m.set('transformer.ln_f.bias', [D]);
    if (!cfg.tie_word_embeddings) m.set('lm_head.weight', [V, D]);
    return m;
  }
  // Llama, Mistral, Qwen2, Qwen3, Gemma 3: the same projections; Qwen3/Gemma 3 add q_norm/k_norm [head_dim],
  // Gemma 3 two more norms around the MLP.
  m.set('model.embed_tokens.weight', [V, D]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + 'input_layernorm.weight', [D]);
    m.set(p + 'self_attn.q_proj.weight', [H * hd, D]);
    m.set(p + 'self_attn.k_proj.weight', [KV * hd, D]);
    m.set(p + 'self_attn.v_proj.weight', [KV * hd, D]);
    if (cfg.attention_bias) {
      m.set(p + 'self_attn.q_proj.bias', [H * hd]);
      m.set(p + 'self_attn.k_proj.bias', [KV * hd]);
      m.set(p + 'self_attn.v_proj.bias', [KV * hd]);
    }
    m.set(p + 'self_attn.o_proj.weight', [D, H * hd]);
    if (hasQkNorm(cfg)) {
      m.set(p + 'self_attn.q_norm.weight', [hd]);
      m.set(p + 'self_attn.k_norm.weight', [hd]);
    }
    m.set(p + 'post_attention_layernorm.weight', [D]);
    if (cfg.family === 'gemma3') {
      m.set(p + 'pre_feedforward_layernorm.weight', [D]);
      m.set(p + 'post_feedforward_layernorm.weight', [D]);
    }
    m.set(p + 'mlp.gate_proj.weight', [I, D]);
    m.set(p + 'mlp.up_proj.weight', [I, D]);
    m.set(p + 'mlp.down_proj.weight', [D, I]);
  }
  m.set('model.norm.weight', [D]);
  if (!cfg.tie_word_embeddings) m.set('lm_head.weight', [V, D]);
  return m;
}

/** Total parameter count (tied embeddings counted once). */
export function countParams(cfg: ModelConfig): number {
  let n = 0;
  for (const s of paramShapes(cfg).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** A frozen linear layer of the model, by HF module name. */
export interface LinearModule {
  /** HF module name, e.g. `model.layers.0.self_attn.q_proj` or `transformer.h.0.attn.c_attn`. */
  name: string;
  /** The short name PEFT's target_modules match on, e.g. `q_proj`, `c_attn`. */
  short: string;
  inFeatures: number;
  outFeatures: number;
  /** 'out_in' for nn.Linear, 'in_out' for GPT-2 Conv1D (PEFT's fan_in_fan_out). */
  layout: 'out_in' | 'in_out';
}

/** Every linear layer inside the transformer blocks (lm_head excluded, as PEFT's "all-linear"). */
export function linearModules(cfg: ModelConfig): LinearModule[] {
  const out: LinearModule[] = [];
  const D = cfg.hidden_size,
    I = cfg.intermediate_size,
    hd = cfg.head_dim;
  const H = cfg.num_attention_heads,
    KV = cfg.num_key_value_heads;
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    if (cfg.family === 'gpt2') {
      const p = `transformer.h.${i}.`;
      out.push({ name: p + 'attn.c_attn', short: 'c_attn', inFeatures: D, outFeatures: 3 * D, layout: 'in_out' });
      out.push({ name: p + 'attn.c_proj', short: 'c_proj', inFeatures: D, outFeatures: D, layout: 'in_out' });
      out.push({ name: p + 'mlp.c_fc', short: 'c_fc', inFeatures: D, outFeatures: I, layout: 'in_out' });
      out.push({ name: p + 'mlp.c_proj', short: 'c_proj', inFeatures: I, outFeatures: D, layout: 'in_out' });
    } else if (cfg.family === 'gpt_neo') {
      const p = `transformer.h.${i}.`;
      for (const s of ['q_proj', 'k_proj', 'v_proj', 'out_proj'])
        out.push({ name: p + 'attn.attention.' + s, short: s, inFeatures: D, outFeatures: D, layout: 'out_in' });
      out.push({ name: p + 'mlp.c_fc', short: 'c_fc', inFeatures: D, outFeatures: I, layout: 'out_in' });
      out.push({ name: p + 'mlp.c_proj', short: 'c_proj', inFeatures: I, outFeatures: D, layout: 'out_in' });
    } else {
      const p = `model.layers.${i}.`;
      out.push({ name: p + 'self_attn.q_proj', short: 'q_proj', inFeatures: D, outFeatures: H * hd, layout: 'out_in' });
      out.push({
        name: p + 'self_attn.k_proj',
        short: 'k_proj',
        inFeatures: D,
        outFeatures: KV * hd,
        layout: 'out_in',
      });
      out.push({
        name: p + 'self_attn.v_proj',
        short: 'v_proj',
        inFeatures: D,
        outFeatures: KV * hd,
        layout: 'out_in',
      });
      out.push({ name: p + 'self_attn.o_proj', short: 'o_proj', inFeatures: H * hd, outFeatures: D, layout: 'out_in' });
      out.push({ name: p + 'mlp.gate_proj', short: 'gate_proj', inFeatures: D, outFeatures: I, layout: 'out_in' });
      out.push({ name: p + 'mlp.up_proj', short: 'up_proj', inFeatures: D, outFeatures: I, layout: 'out_in' });
      out.push({ name: p + 'mlp.down_proj', short: 'down_proj', inFeatures: I, outFeatures: D, layout: 'out_in' });
    }
  }
  return out;
}

/** Weights that may be stored compact, with their output-channel axis: linear layers, embeddings, LM head. */
export function compactableWeights(cfg: ModelConfig): Map<string, 0 | 1> {
  const m = new Map<string, 0 | 1>();
  for (const l of linearModules(cfg)) m.set(l.name + '.weight', l.layout === 'in_out' ? 1 : 0);
  m.set(embeddingName(cfg), 0);
  if (!cfg.tie_word_embeddings) m.set('lm_head.weight', 0);
  return m;
}

/** Parameters in compactable matrices, and the largest linear layer (what one expansion materialises). */
export function compactableParams(cfg: ModelConfig): { count: number; largest: number } {
  const shapes = paramShapes(cfg);
  let count = 0;
  for (const name of compactableWeights(cfg).keys()) {
    const s = shapes.get(name);
    if (s) count += s[0] * s[1];
  }
  const largest = Math.max(0, ...linearModules(cfg).map((m) => m.inFeatures * m.outFeatures));
  return { count, largest };
}

/**
 * Bytes a model's weights take on the backend: float32 parameters and the RoPE tables (cos + sin of head_dim/2 each, a
 * second pair for Gemma 3's sliding layers). Without the config, 4 · params. (On wasm without SIMD the engine also
 * keeps a transposed lm_head; every engine that runs wasm SIMD — all current browsers and Node — does not.)
 * With frozen_dtype float16/int8 the compact matrices live outside the backend (compactWeightBytes): the backend
 * holds the rest in float32 and the largest linear layer expanded twice (forward, and backward for dx).
 */
export function weightBytes(params: number, config?: ModelConfig, frozenDtype: FrozenDtype = 'float32'): number {
  let w = 4 * params;
  if (config) {
    const compact = frozenDtype !== 'float32';
    if (compact) {
      const { count, largest } = compactableParams(config);
      w = 4 * (params - count) + 2 * 4 * largest;
    }
    if (!hasLearnedPositions(config)) {
      const tables = config.family === 'gemma3' ? 2 : 1;
      w += tables * 4 * config.max_position_embeddings * config.head_dim;
    }
  }
  return w;
}

/** Bytes of the compact frozen matrices (JavaScript memory, outside the backend): data plus int8 channel scales. */
export function compactWeightBytes(cfg: ModelConfig, frozenDtype: FrozenDtype): number {
  if (frozenDtype === 'float32') return 0;
  const shapes = paramShapes(cfg);
  let bytes = 0;
  for (const [name, axis] of compactableWeights(cfg)) {
    const s = shapes.get(name);
    if (!s) continue;
    bytes += s[0] * s[1] * (frozenDtype === 'int8' ? 1 : 2) + (frozenDtype === 'int8' ? 4 * s[axis] : 0);
  }
  return bytes;
}

/** Sibling linear layers of one input that webgpu runs as one projection (model.ts), as modules under a layer. */
export const QKV_MODULES = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'];
export const GATE_UP_MODULES = ['mlp.gate_proj', 'mlp.up_proj'];

/**
 * The groups fused on webgpu for `cfg`'s family (Llama, Mistral, Qwen2, Qwen3 blocks: gate/up, and q/k/v unless
 * q_norm/k_norm sit between them and the attention); none for GPT-2 (its c_attn is fused already), GPT-Neo, Gemma 3.
 */
export function fusedProjectionGroups(cfg: Pick<ModelConfig, 'family'>): string[][] {
  if (cfg.family === 'gpt2' || cfg.family === 'gpt_neo' || cfg.family === 'gemma3') return [];
  return hasQkNorm(cfg) ? [GATE_UP_MODULES] : [QKV_MODULES, GATE_UP_MODULES];
}

/** Bytes of the concatenated copies webgpu keeps of the fused groups' float32 weights and biases (all layers). */
export function fusedProjectionBytes(cfg: ModelConfig): number {
  const shapes = paramShapes(cfg);
  let n = 0;
  for (let i = 0; i < cfg.num_hidden_layers; i++)
    for (const group of fusedProjectionGroups(cfg))
      for (const m of group)
        for (const suffix of ['.weight', '.bias']) {
          const s = shapes.get(layerPrefix(cfg, i) + m + suffix);
          if (s) n += s.reduce((a, b) => a * b, 1);
        }
  return 4 * n;
}
