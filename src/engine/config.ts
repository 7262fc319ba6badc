/**
 * Model configuration in Hugging Face `config.json` vocabulary.
 * One normalised shape for every family the engine supports.
 */
export type ModelFamily = 'llama' | 'qwen2' | 'qwen3' | 'gemma3' | 'gpt2' | 'gpt_neo';

/** transformers' per-layer attention kinds (`layer_types`); GPT-Neo's "global"/"local" map to these. */
export type LayerType = 'full_attention' | 'sliding_attention';

export interface ModelConfig {
  family: ModelFamily;
  /** HF `architectures[0]`, e.g. LlamaForCausalLM. */
  architecture: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Context length (HF max_position_embeddings / GPT-2 n_positions). */
  max_position_embeddings: number;
  /** RMSNorm eps (llama/qwen2) or LayerNorm eps (gpt2). */
  norm_eps: number;
  rope_theta: number;
  /**
   * RoPE pairing: 'half' is HF's rotate_half layout (dim i with i + d/2);
   * 'interleaved' pairs adjacent dims (2i, 2i+1) as Meta's/llama2.c original code.
   */
  rope_layout: 'half' | 'interleaved';
  tie_word_embeddings: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  attention_bias: boolean;
  /**
   * 'silu' (SwiGLU), 'gelu_new' (GPT-2 / GPT-Neo tanh GELU) or 'gelu_pytorch_tanh' (Gemma's GeGLU gate: the same
   * tanh approximation under torch's name).
   */
  hidden_act: 'silu' | 'gelu_new' | 'gelu_pytorch_tanh';
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  /** head_dim = hidden_size / num_attention_heads unless given. */
  head_dim: number;

  // Fields of the newer families only (absent for llama / qwen2 / gpt2).

  /**
   * Per layer: full causal attention or a sliding window of `sliding_window` keys (Gemma 3's `layer_types`,
   * Qwen3's sliding layers, GPT-Neo's `attention_layers` "global"/"local"). Absent: every layer is full.
   */
  layer_types?: LayerType[];
  /** Keys a sliding layer sees, itself included: key s is visible from query t when t - window < s <= t. */
  sliding_window?: number | null;
  /** Gemma 3: RoPE base of the sliding layers (`rope_local_base_freq`); rope_theta is the full layers' base. */
  rope_local_base_freq?: number;
  /** Gemma 3: RoPE scaling of the full-attention layers; only transformers' "linear" (positions / factor) is implemented. */
  rope_scaling?: { rope_type: 'linear'; factor: number } | null;
  /** Gemma 3: attention scores are scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5. */
  query_pre_attn_scalar?: number;
  /** Gemma 3: scores ← tanh(scores / c) · c before the mask (null = off). */
  attn_logit_softcapping?: number | null;
  /** Gemma 3: logits ← tanh(logits / c) · c (null = off). */
  final_logit_softcapping?: number | null;
}

/** The sizes that tell one Llama-architecture model from another. */
export type LlamaShape = Pick<
  ModelConfig,
  | 'vocab_size'
  | 'hidden_size'
  | 'intermediate_size'
  | 'num_hidden_layers'
  | 'num_attention_heads'
  | 'num_key_value_heads'
  | 'max_position_embeddings'
> &
  Partial<ModelConfig>;

/**
 * A LlamaForCausalLM config from its sizes, with transformers' LlamaConfig defaults for the rest (RMSNorm eps 1e-5,
 * RoPE base 10000 in rotate_half layout, SiLU, no attention bias, bos 1 / eos 2) and tied embeddings; head_dim is
 * hidden_size / num_attention_heads. For the engine's own workloads (benchmarks, checks); real models come from
 * their config.json (src/io/hf-config.ts).
 */
export function llamaConfig(shape: LlamaShape): ModelConfig {
  return {
    family: 'llama',
    architecture: 'LlamaForCausalLM',
    norm_eps: 1e-5,
    rope_theta: 10000,
    rope_layout: 'half',
    tie_word_embeddings: true,
    attention_bias: false,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: shape.hidden_size / shape.num_attention_heads,
    ...shape,
  };
}

/** Families whose positions are a learned table (wpe) rather than RoPE. */
export function hasLearnedPositions(cfg: Pick<ModelConfig, 'family'>): boolean {
  return cfg.family === 'gpt2' || cfg.family === 'gpt_neo';
}

/** Families whose attention has per-head q_norm / k_norm (RMSNorm over head_dim, before RoPE). */
export function hasQkNorm(cfg: Pick<ModelConfig, 'family'>): boolean {
  return cfg.family === 'qwen3' || cfg.family === 'gemma3';
}

/** The attention kind of layer i (full unless the config lists layer_types). */
export function layerType(cfg: ModelConfig, i: number): LayerType {
  return cfg.layer_types?.[i] ?? 'full_attention';
}

/** Same, as raw float32 arrays (what io/ produces before tensors exist). */
export interface RawTensor {
  shape: number[];
  data: Float32Array;
}
export type RawTensors = Map<string, RawTensor>;

export function eosIds(cfg: ModelConfig): number[] {
  if (cfg.eos_token_id == null) return [];
  return Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id : [cfg.eos_token_id];
}
