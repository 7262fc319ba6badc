/**
 * Hugging Face config.json <-> ModelConfig.
 * Defaults follow transformers' LlamaConfig / Qwen2Config / GPT2Config where a field is absent.
 */
import type { ModelConfig, ModelFamily } from '../engine/config';
import { preview } from '../util/preview';

interface ArchInfo {
  family: ModelFamily;
  modelType: string;
}

/** Architectures (HF `architectures[0]`) this engine can run, and their family. */
export const SUPPORTED_ARCHITECTURES: Readonly<Record<string, ArchInfo>> = {
  LlamaForCausalLM: { family: 'llama', modelType: 'llama' },
  MistralForCausalLM: { family: 'llama', modelType: 'mistral' },
  Qwen2ForCausalLM: { family: 'qwen2', modelType: 'qwen2' },
  GPT2LMHeadModel: { family: 'gpt2', modelType: 'gpt2' },
};

const ARCH_BY_MODEL_TYPE: Record<string, string> = Object.fromEntries(
  Object.entries(SUPPORTED_ARCHITECTURES).map(([arch, info]) => [info.modelType, arch]),
);

class Fields {
  constructor(
    private readonly j: Record<string, unknown>,
    private readonly file: string,
  ) {}

  fail(field: string, msg: string): never {
    throw new Error(`${this.file}: "${field}" ${msg}`);
  }

  has(k: string): boolean {
    return this.j[k] !== undefined && this.j[k] !== null;
  }

  raw(k: string): unknown {
    return this.j[k];
  }

  /** A positive integer; `def` if absent (undefined = required). */
  posInt(k: string, def?: number): number {
    const v = this.has(k) ? this.j[k] : def;
    if (v === undefined) this.fail(k, 'is missing (expected a positive integer)');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      this.fail(k, `must be a positive integer, got ${preview(v)}`);
    return v;
  }

  posNum(k: string, def: number): number {
    const v = this.has(k) ? this.j[k] : def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      this.fail(k, `must be a positive number, got ${preview(v)}`);
    return v;
  }

  bool(k: string, def: boolean): boolean {
    const v = this.has(k) ? this.j[k] : def;
    if (typeof v !== 'boolean') this.fail(k, `must be true or false, got ${preview(v)}`);
    return v;
  }

  /** Token id: non-negative integer or null. */
  tokenId(k: string, def: number | null): number | null {
    const v = k in this.j ? this.j[k] : def;
    if (v === null || v === undefined) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      this.fail(k, `must be a token id (non-negative integer) or null, got ${preview(v)}`);
    return v;
  }

  tokenIds(k: string, def: number | null): number | number[] | null {
    const v = this.j[k];
    if (Array.isArray(v)) {
      if (v.length === 0) return null;
      if (!v.every((x) => Number.isSafeInteger(x) && x >= 0))
        this.fail(k, `must be token ids (non-negative integers), got ${preview(v)}`);
      return v.length === 1 ? (v[0] as number) : (v as number[]);
    }
    return this.tokenId(k, def);
  }

  /** Reject a field unless it is absent, null, or one of the allowed values. */
  only(k: string, allowed: unknown[], why: string): void {
    if (!this.has(k)) return;
    if (!allowed.includes(this.j[k])) this.fail(k, `= ${preview(this.j[k])} is not supported (${why})`);
  }
}

function resolveArchitecture(j: Record<string, unknown>, file: string): string {
  const supported = Object.keys(SUPPORTED_ARCHITECTURES).join(', ');
  const archs = j.architectures;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
      throw new Error(`${file}: "architectures" must be a non-empty array of strings, got ${preview(archs)}`);
    }
    const arch = archs[0];
    // Own keys only: "toString" or "__proto__" must not resolve through Object.prototype.
    if (!Object.hasOwn(SUPPORTED_ARCHITECTURES, arch))
      throw new Error(`${file}: unsupported architecture ${preview(arch)} (supported: ${supported})`);
    return arch;
  }
  const mt = j.model_type;
  if (typeof mt === 'string') {
    const arch = Object.hasOwn(ARCH_BY_MODEL_TYPE, mt) ? ARCH_BY_MODEL_TYPE[mt] : undefined;
    if (!arch)
      throw new Error(
        `${file}: unsupported model_type ${preview(mt)} and no "architectures" (supported: ${supported})`,
      );
    return arch;
  }
  throw new Error(`${file}: neither "architectures" nor "model_type" is given (supported architectures: ${supported})`);
}

/** Parse a Hugging Face config.json (already JSON-parsed) into a ModelConfig; throws naming the file and field on anything unsupported or absurd. */
export function parseHfConfig(json: unknown, fileName = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${fileName}: expected a JSON object`);
  const j = json as Record<string, unknown>;
  const architecture = resolveArchitecture(j, fileName);
  const { family } = SUPPORTED_ARCHITECTURES[architecture];
  const f = new Fields(j, fileName);
  return family === 'gpt2' ? parseGpt2(f, architecture) : parseLlamaLike(f, architecture, family);
}

function parseLlamaLike(f: Fields, architecture: string, family: ModelFamily): ModelConfig {
  const isQwen = family === 'qwen2';
  const isMistral = architecture === 'MistralForCausalLM';
  const hidden = f.posInt('hidden_size');
  const heads = f.posInt('num_attention_heads');
  const kvHeads = f.posInt('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) f.fail('num_key_value_heads', `(${kvHeads}) must divide num_attention_heads (${heads})`);
  let headDim: number;
  if (f.has('head_dim')) headDim = f.posInt('head_dim');
  else {
    if (hidden % heads !== 0) f.fail('hidden_size', `(${hidden}) must be divisible by num_attention_heads (${heads})`);
    headDim = hidden / heads;
  }
  if (headDim % 2 !== 0) f.fail('head_dim', `(${headDim}) must be even for rotary embeddings`);

  f.only('hidden_act', ['silu'], 'only SwiGLU with silu is implemented');
  f.only('mlp_bias', [false], 'MLP biases are not implemented');
  f.only('pretraining_tp', [1], 'tensor-parallel slicing is not implemented');
  if (f.has('rope_scaling')) {
    f.fail('rope_scaling', `= ${preview(f.raw('rope_scaling'))} is not supported (only plain RoPE is implemented)`);
  }

  let maxPos = f.posInt('max_position_embeddings', isQwen ? 32768 : isMistral ? 32768 : 2048);
  // Sliding-window attention equals full attention for sequences within the window: cap the context there.
  const sliding = isMistral ? f.has('sliding_window') : isQwen ? f.bool('use_sliding_window', false) : false;
  if (sliding) maxPos = Math.min(maxPos, f.posInt('sliding_window'));

  return {
    family,
    architecture,
    vocab_size: f.posInt('vocab_size'),
    hidden_size: hidden,
    intermediate_size: f.posInt('intermediate_size'),
    num_hidden_layers: f.posInt('num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: maxPos,
    norm_eps: f.posNum('rms_norm_eps', 1e-6),
    rope_theta: f.posNum('rope_theta', 10000),
    rope_layout: 'half',
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    attention_bias: isQwen ? true : f.bool('attention_bias', false),
    hidden_act: 'silu',
    bos_token_id: f.tokenId('bos_token_id', isQwen ? null : 1),
    eos_token_id: f.tokenIds('eos_token_id', isQwen ? null : 2),
    head_dim: headDim,
  };
}

function parseGpt2(f: Fields, architecture: string): ModelConfig {
  const hidden = f.posInt('n_embd');
  const heads = f.posInt('n_head');
  if (hidden % heads !== 0) f.fail('n_embd', `(${hidden}) must be divisible by n_head (${heads})`);
  f.only('activation_function', ['gelu_new'], 'only the tanh GELU "gelu_new" is implemented');
  f.only('scale_attn_weights', [true], 'unscaled attention is not implemented');
  f.only('scale_attn_by_inverse_layer_idx', [false], 'not implemented');
  f.only('reorder_and_upcast_attn', [false], 'not implemented');
  const nPositions = f.posInt('n_positions', f.has('n_ctx') ? f.posInt('n_ctx') : 1024);
  const inner = f.has('n_inner') ? f.posInt('n_inner') : 4 * hidden;
  const eos = f.tokenIds('eos_token_id', 50256);
  return {
    family: 'gpt2',
    architecture,
    vocab_size: f.posInt('vocab_size', 50257),
    hidden_size: hidden,
    intermediate_size: inner,
    num_hidden_layers: f.posInt('n_layer'),
    num_attention_heads: heads,
    num_key_value_heads: heads,
    max_position_embeddings: nPositions,
    norm_eps: f.posNum('layer_norm_epsilon', 1e-5),
    rope_theta: 10000, // unused: GPT-2 has learned positions
    rope_layout: 'half',
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    attention_bias: true,
    hidden_act: 'gelu_new',
    bos_token_id: f.tokenId('bos_token_id', 50256),
    eos_token_id: eos,
    head_dim: hidden / heads,
  };
}

/**
 * A config.json for `cfg` as a Hugging Face user would expect it (loads with transformers'
 * AutoConfig / AutoModelForCausalLM). Weights in the 'interleaved' RoPE layout have no HF
 * representation: permute them to 'half' first (see llama2c.ts) and set rope_layout accordingly.
 */
export function toHfConfig(cfg: ModelConfig): Record<string, unknown> {
  const info = SUPPORTED_ARCHITECTURES[cfg.architecture];
  if (!info || info.family !== cfg.family) {
    throw new Error(
      `toHfConfig: architecture "${cfg.architecture}" with family "${cfg.family}" is not supported (supported: ${Object.keys(SUPPORTED_ARCHITECTURES).join(', ')})`,
    );
  }
  if (cfg.family === 'gpt2') {
    if (
      cfg.head_dim * cfg.num_attention_heads !== cfg.hidden_size ||
      cfg.num_key_value_heads !== cfg.num_attention_heads
    ) {
      throw new Error('toHfConfig: GPT-2 needs head_dim × heads = hidden_size and no grouped-query attention');
    }
    return {
      architectures: [cfg.architecture],
      model_type: 'gpt2',
      vocab_size: cfg.vocab_size,
      n_positions: cfg.max_position_embeddings,
      n_ctx: cfg.max_position_embeddings,
      n_embd: cfg.hidden_size,
      n_layer: cfg.num_hidden_layers,
      n_head: cfg.num_attention_heads,
      n_inner: cfg.intermediate_size,
      activation_function: 'gelu_new',
      layer_norm_epsilon: cfg.norm_eps,
      resid_pdrop: 0.1,
      embd_pdrop: 0.1,
      attn_pdrop: 0.1,
      initializer_range: 0.02,
      scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false,
      reorder_and_upcast_attn: false,
      tie_word_embeddings: cfg.tie_word_embeddings,
      bos_token_id: cfg.bos_token_id,
      eos_token_id: cfg.eos_token_id,
      use_cache: true,
      torch_dtype: 'float32',
    };
  }
  if (cfg.rope_layout !== 'half') {
    throw new Error(
      'toHfConfig: rope_layout "interleaved" cannot be expressed in a Hugging Face config; permute q_proj/k_proj rows to the "half" layout first',
    );
  }
  if (cfg.hidden_act !== 'silu')
    throw new Error(`toHfConfig: hidden_act "${cfg.hidden_act}" is not valid for ${cfg.architecture}`);
  const out: Record<string, unknown> = {
    architectures: [cfg.architecture],
    model_type: info.modelType,
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.hidden_size,
    intermediate_size: cfg.intermediate_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    num_key_value_heads: cfg.num_key_value_heads,
    head_dim: cfg.head_dim,
    hidden_act: 'silu',
    max_position_embeddings: cfg.max_position_embeddings,
    rms_norm_eps: cfg.norm_eps,
    rope_theta: cfg.rope_theta,
    rope_scaling: null,
    tie_word_embeddings: cfg.tie_word_embeddings,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_id,
    initializer_range: 0.02,
    attention_dropout: 0.0,
    use_cache: true,
    torch_dtype: 'float32',
  };
  if (cfg.family === 'qwen2') {
    if (!cfg.attention_bias) throw new Error('toHfConfig: Qwen2 always has q/k/v biases (attention_bias must be true)');
    // Qwen2 derives head_dim from hidden_size / heads.
    if (cfg.head_dim * cfg.num_attention_heads !== cfg.hidden_size)
      throw new Error('toHfConfig: Qwen2 needs head_dim × num_attention_heads = hidden_size');
    delete out.head_dim;
    Object.assign(out, { use_sliding_window: false, sliding_window: null, max_window_layers: cfg.num_hidden_layers });
  } else if (info.modelType === 'mistral') {
    if (cfg.attention_bias) throw new Error('toHfConfig: Mistral has no attention biases');
    out.sliding_window = null;
  } else {
    Object.assign(out, { attention_bias: cfg.attention_bias, mlp_bias: false, pretraining_tp: 1 });
  }
  return out;
}
