/**
 * Model configuration in Hugging Face `config.json` vocabulary.
 * One normalised shape for every family the engine supports.
 */
export type ModelFamily = 'llama' | 'qwen2' | 'gpt2';

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
  /** 'silu' (SwiGLU) or 'gelu_new' (GPT-2 tanh GELU). */
  hidden_act: 'silu' | 'gelu_new';
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  /** head_dim = hidden_size / num_attention_heads unless given. */
  head_dim: number;
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
