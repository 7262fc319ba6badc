/**
 * Hugging Face config.json <-> ModelConfig.
 * Defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config / Qwen3Config / Gemma3TextConfig /
 * GPT2Config / GPTNeoConfig where a field is absent.
 */
import type { LayerType, ModelConfig, ModelFamily } from '../engine/config';
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
  Qwen3ForCausalLM: { family: 'qwen3', modelType: 'qwen3' },
  Gemma3ForCausalLM: { family: 'gemma3', modelType: 'gemma3_text' },
  GPT2LMHeadModel: { family: 'gpt2', modelType: 'gpt2' },
  GPTNeoForCausalLM: { family: 'gpt_neo', modelType: 'gpt_neo' },
};

const ARCH_BY_MODEL_TYPE: Record<string, string> = Object.fromEntries(
  Object.entries(SUPPORTED_ARCHITECTURES).map(([arch, info]) => [info.modelType, arch]),
);

/** The most layers a config may declare where per-layer lists are built (Gemma 3 27B has 62). */
const MAX_LAYERS = 100_000;

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

  /** A positive number or null (absent = null): a soft-capping value. */
  posNumOrNull(k: string): number | null {
    if (!this.has(k)) return null;
    return this.posNum(k, 0);
  }

  /**
   * A layer count for parsers that build per-layer lists from it (layer kinds): capped, so that a hostile
   * num_hidden_layers = 2^40 is refused instead of allocating a list that long.
   */
  layerCount(k: string): number {
    const n = this.posInt(k);
    if (n > MAX_LAYERS) this.fail(k, `= ${n} is more layers than any supported model has (at most ${MAX_LAYERS})`);
    return n;
  }

  /** transformers' layer_types: one "full_attention" / "sliding_attention" per layer. */
  layerTypes(k: string, layers: number): LayerType[] {
    const v = this.j[k];
    if (
      !Array.isArray(v) ||
      v.length !== layers ||
      !v.every((t) => t === 'full_attention' || t === 'sliding_attention')
    )
      this.fail(
        k,
        `must list "full_attention" or "sliding_attention" for each of the ${layers} layers, got ${preview(v)}`,
      );
    return v as LayerType[];
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
  switch (family) {
    case 'gpt2':
      return parseGpt2(f, architecture);
    case 'gpt_neo':
      return parseGptNeo(f, architecture);
    case 'qwen3':
      return parseQwen3(f, architecture);
    case 'gemma3':
      return parseGemma3(f, architecture);
    default:
      return parseLlamaLike(f, architecture, family);
  }
}

/** hidden_size, heads, key/value heads and head_dim (given, or hidden_size / heads when `headDimDefault` is null). */
function attentionShape(
  f: Fields,
  headDimDefault: number | null,
): { hidden: number; heads: number; kvHeads: number; headDim: number } {
  const hidden = f.posInt('hidden_size');
  const heads = f.posInt('num_attention_heads');
  const kvHeads = f.posInt('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) f.fail('num_key_value_heads', `(${kvHeads}) must divide num_attention_heads (${heads})`);
  let headDim: number;
  if (f.has('head_dim') || headDimDefault !== null) headDim = f.posInt('head_dim', headDimDefault ?? undefined);
  else {
    if (hidden % heads !== 0) f.fail('hidden_size', `(${hidden}) must be divisible by num_attention_heads (${heads})`);
    headDim = hidden / heads;
  }
  if (headDim % 2 !== 0) f.fail('head_dim', `(${headDim}) must be even for rotary embeddings`);
  return { hidden, heads, kvHeads, headDim };
}

/**
 * RoPE settings: rope_theta and rope_scaling, or transformers 5's rope_parameters ({rope_type, rope_theta, …}, or one
 * such object per layer type). Only plain RoPE and, where `allowLinear`, "linear" scaling are implemented.
 */
function ropeSettings(
  f: Fields,
  thetaDefault: number,
  allowLinear: boolean,
  layerKind?: LayerType,
): { theta: number; scaling: { rope_type: 'linear'; factor: number } | null } {
  let field = 'rope_scaling';
  let params: unknown = f.raw('rope_scaling');
  let theta = f.posNum('rope_theta', thetaDefault);
  const rp = f.raw('rope_parameters');
  if (rp !== undefined && rp !== null) {
    field = 'rope_parameters';
    params = rp;
    if (typeof rp === 'object' && !Array.isArray(rp) && layerKind && layerKind in rp) {
      field = `rope_parameters.${layerKind}`;
      params = (rp as Record<string, unknown>)[layerKind];
    }
    const t = (params as Record<string, unknown> | null)?.rope_theta;
    if (t !== undefined) {
      if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0)
        f.fail(field, `rope_theta must be a positive number, got ${preview(t)}`);
      theta = t;
    }
  }
  if (params === undefined || params === null) return { theta, scaling: null };
  if (typeof params !== 'object' || Array.isArray(params)) f.fail(field, `must be an object, got ${preview(params)}`);
  const o = params as Record<string, unknown>;
  const type = o.rope_type ?? o.type ?? 'default';
  if (type === 'default') return { theta, scaling: null };
  if (type === 'linear' && allowLinear) {
    const factor = o.factor;
    if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0)
      f.fail(field, `"linear" scaling needs a positive factor, got ${preview(factor)}`);
    return { theta, scaling: { rope_type: 'linear', factor } };
  }
  return f.fail(
    field,
    `= ${preview(params)} is not supported (rope_type ${preview(type)}; implemented: plain RoPE${allowLinear ? ' and "linear"' : ''})`,
  );
}

function parseQwen3(f: Fields, architecture: string): ModelConfig {
  // Qwen3Config: head_dim 128 unless given (it need not be hidden_size / heads).
  const { hidden, heads, kvHeads, headDim } = attentionShape(f, 128);
  f.only('hidden_act', ['silu'], 'only SwiGLU with silu is implemented');
  f.only('attention_bias', [false], 'Qwen3 with q/k/v/o biases is not implemented');
  const layers = f.layerCount('num_hidden_layers');
  const { theta } = ropeSettings(f, 10000, false);
  // Qwen3Config: sliding_window applies only with use_sliding_window, to layers >= max_window_layers unless
  // layer_types says otherwise.
  const window = f.bool('use_sliding_window', false) ? f.posInt('sliding_window', 4096) : null;
  let types: LayerType[];
  if (f.has('layer_types')) types = f.layerTypes('layer_types', layers);
  else {
    const first = f.has('max_window_layers') ? f.posInt('max_window_layers') : 28;
    types = Array.from({ length: layers }, (_, i) =>
      window !== null && i >= first ? 'sliding_attention' : 'full_attention',
    );
  }
  const slides = window !== null && types.includes('sliding_attention');
  return {
    family: 'qwen3',
    architecture,
    vocab_size: f.posInt('vocab_size'),
    hidden_size: hidden,
    intermediate_size: f.posInt('intermediate_size'),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: f.posInt('max_position_embeddings', 32768),
    norm_eps: f.posNum('rms_norm_eps', 1e-6),
    rope_theta: theta,
    rope_layout: 'half',
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    attention_bias: false,
    hidden_act: 'silu',
    bos_token_id: f.tokenId('bos_token_id', null),
    eos_token_id: f.tokenIds('eos_token_id', null),
    head_dim: headDim,
    ...(slides ? { layer_types: types, sliding_window: window } : {}),
  };
}

function parseGemma3(f: Fields, architecture: string): ModelConfig {
  const { hidden, heads, kvHeads, headDim } = attentionShape(f, 256);
  f.only('hidden_activation', ['gelu_pytorch_tanh'], 'only the tanh GELU gate "gelu_pytorch_tanh" is implemented');
  f.only('attention_bias', [false], 'Gemma 3 with attention biases is not implemented');
  f.only('use_bidirectional_attention', [false], 'only causal attention is implemented');
  const layers = f.layerCount('num_hidden_layers');
  let types: LayerType[];
  if (f.has('layer_types')) types = f.layerTypes('layer_types', layers);
  else {
    // The older configs: every sliding_window_pattern-th layer is global.
    const pattern = f.posInt('sliding_window_pattern', 6);
    types = Array.from({ length: layers }, (_, i) => ((i + 1) % pattern ? 'sliding_attention' : 'full_attention'));
  }
  const global = ropeSettings(f, 1_000_000, true, 'full_attention');
  let localTheta = f.posNum('rope_local_base_freq', 10_000);
  const rp = f.raw('rope_parameters');
  if (rp && typeof rp === 'object' && 'sliding_attention' in rp) {
    const local = ropeSettings(f, localTheta, false, 'sliding_attention');
    localTheta = local.theta;
  }
  return {
    family: 'gemma3',
    architecture,
    vocab_size: f.posInt('vocab_size'),
    hidden_size: hidden,
    intermediate_size: f.posInt('intermediate_size'),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: f.posInt('max_position_embeddings', 131_072),
    norm_eps: f.posNum('rms_norm_eps', 1e-6),
    rope_theta: global.theta,
    rope_layout: 'half',
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    attention_bias: false,
    hidden_act: 'gelu_pytorch_tanh',
    bos_token_id: f.tokenId('bos_token_id', 2),
    eos_token_id: f.tokenIds('eos_token_id', 1),
    head_dim: headDim,
    layer_types: types,
    sliding_window: f.posInt('sliding_window', 4096),
    rope_local_base_freq: localTheta,
    rope_scaling: global.scaling,
    query_pre_attn_scalar: f.posNum('query_pre_attn_scalar', 256),
    attn_logit_softcapping: f.posNumOrNull('attn_logit_softcapping'),
    final_logit_softcapping: f.posNumOrNull('final_logit_softcapping'),
  };
}

/** GPTNeoConfig.expand_attention_types_params: [[["global", "local"], 2]] → global, local, global, local. */
function expandAttentionTypes(f: Fields, layers: number): LayerType[] {
  const v = f.has('attention_types') ? f.raw('attention_types') : [[['global', 'local'], 12]];
  const want = 'a list of [["global" | "local", …], repeat count] pairs';
  if (!Array.isArray(v)) f.fail('attention_types', `must be ${want}, got ${preview(v)}`);
  const out: ('global' | 'local')[] = [];
  for (const item of v) {
    if (
      !Array.isArray(item) ||
      item.length !== 2 ||
      !Array.isArray(item[0]) ||
      item[0].length === 0 ||
      !item[0].every((t: unknown) => t === 'global' || t === 'local') ||
      !Number.isSafeInteger(item[1]) ||
      item[1] < 1 ||
      item[1] * item[0].length > layers
    )
      f.fail('attention_types', `must be ${want} covering the ${layers} layers, got ${preview(item)}`);
    for (let r = 0; r < item[1]; r++) out.push(...(item[0] as ('global' | 'local')[]));
  }
  if (out.length !== layers) f.fail('attention_types', `expands to ${out.length} layers, but num_layers is ${layers}`);
  // config.json files also carry the expanded list; transformers keeps whichever is given last, so they must agree.
  if (f.has('attention_layers')) {
    const al = f.raw('attention_layers');
    if (!Array.isArray(al) || al.length !== layers || al.some((t, i) => t !== out[i]))
      f.fail('attention_layers', `${preview(al)} does not match attention_types expanded (${preview(out)})`);
  }
  return out.map((t) => (t === 'local' ? 'sliding_attention' : 'full_attention'));
}

function parseGptNeo(f: Fields, architecture: string): ModelConfig {
  const hidden = f.posInt('hidden_size');
  const heads = f.posInt('num_heads');
  if (hidden % heads !== 0) f.fail('hidden_size', `(${hidden}) must be divisible by num_heads (${heads})`);
  const layers = f.layerCount('num_layers');
  f.only('activation_function', ['gelu_new'], 'only the tanh GELU "gelu_new" is implemented');
  const types = expandAttentionTypes(f, layers);
  return {
    family: 'gpt_neo',
    architecture,
    vocab_size: f.posInt('vocab_size', 50257),
    hidden_size: hidden,
    intermediate_size: f.has('intermediate_size') ? f.posInt('intermediate_size') : 4 * hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    max_position_embeddings: f.posInt('max_position_embeddings', 2048),
    norm_eps: f.posNum('layer_norm_epsilon', 1e-5),
    rope_theta: 10000, // unused: GPT-Neo has learned positions
    rope_layout: 'half',
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    attention_bias: false,
    hidden_act: 'gelu_new',
    bos_token_id: f.tokenId('bos_token_id', 50256),
    eos_token_id: f.tokenIds('eos_token_id', 50256),
    head_dim: hidden / heads,
    layer_types: types,
    sliding_window: f.posInt('window_size', 256),
  };
}

function parseLlamaLike(f: Fields, architecture: string, family: ModelFamily): ModelConfig {
  const isQwen = family === 'qwen2';
  const isMistral = architecture === 'MistralForCausalLM';
  const { hidden, heads, kvHeads, headDim } = attentionShape(f, null);

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
  if (cfg.family === 'gpt_neo') return gptNeoHfConfig(cfg);
  if (cfg.family === 'gemma3') return gemma3HfConfig(cfg);
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
  if (cfg.family === 'qwen3') {
    if (cfg.attention_bias) throw new Error('toHfConfig: Qwen3 with attention biases is not supported');
    const types = cfg.layer_types ?? Array<LayerType>(cfg.num_hidden_layers).fill('full_attention');
    const sliding = cfg.sliding_window != null && types.includes('sliding_attention');
    const first = types.indexOf('sliding_attention');
    Object.assign(out, {
      attention_bias: false,
      use_sliding_window: sliding,
      sliding_window: sliding ? cfg.sliding_window : null,
      max_window_layers: sliding ? first : cfg.num_hidden_layers,
      layer_types: types,
    });
  } else if (cfg.family === 'qwen2') {
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

/** The smallest n such that `list` is its first n entries repeated (the whole list when it has no period). */
function period<T>(list: T[]): number {
  for (let n = 1; n < list.length; n++) if (list.length % n === 0 && list.every((x, i) => x === list[i % n])) return n;
  return list.length;
}

function gemma3HfConfig(cfg: ModelConfig): Record<string, unknown> {
  if (cfg.attention_bias) throw new Error('toHfConfig: Gemma 3 with attention biases is not supported');
  const types = cfg.layer_types ?? Array<LayerType>(cfg.num_hidden_layers).fill('full_attention');
  const out: Record<string, unknown> = {
    architectures: [cfg.architecture],
    model_type: 'gemma3_text',
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.hidden_size,
    intermediate_size: cfg.intermediate_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    num_key_value_heads: cfg.num_key_value_heads,
    head_dim: cfg.head_dim,
    hidden_activation: 'gelu_pytorch_tanh',
    max_position_embeddings: cfg.max_position_embeddings,
    rms_norm_eps: cfg.norm_eps,
    rope_theta: cfg.rope_theta,
    rope_local_base_freq: cfg.rope_local_base_freq ?? 10_000,
    rope_scaling: cfg.rope_scaling ?? null,
    query_pre_attn_scalar: cfg.query_pre_attn_scalar ?? cfg.head_dim,
    sliding_window: cfg.sliding_window ?? 4096,
    layer_types: types,
    attn_logit_softcapping: cfg.attn_logit_softcapping ?? null,
    final_logit_softcapping: cfg.final_logit_softcapping ?? null,
    attention_bias: false,
    attention_dropout: 0.0,
    use_bidirectional_attention: false,
    tie_word_embeddings: cfg.tie_word_embeddings,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_id,
    pad_token_id: 0,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: 'float32',
  };
  // transformers before layer_types (4.50-4.52) read the pattern: every n-th layer global.
  const n = period(types);
  if (types.slice(0, n).every((t, i) => (t === 'full_attention') === (i === n - 1))) out.sliding_window_pattern = n;
  return out;
}

function gptNeoHfConfig(cfg: ModelConfig): Record<string, unknown> {
  if (cfg.head_dim * cfg.num_attention_heads !== cfg.hidden_size || cfg.num_key_value_heads !== cfg.num_attention_heads)
    throw new Error('toHfConfig: GPT-Neo needs head_dim × heads = hidden_size and no grouped-query attention');
  const layers = (cfg.layer_types ?? Array<LayerType>(cfg.num_hidden_layers).fill('full_attention')).map((t) =>
    t === 'sliding_attention' ? 'local' : 'global',
  );
  const n = period(layers);
  return {
    architectures: [cfg.architecture],
    model_type: 'gpt_neo',
    vocab_size: cfg.vocab_size,
    max_position_embeddings: cfg.max_position_embeddings,
    hidden_size: cfg.hidden_size,
    num_layers: cfg.num_hidden_layers,
    num_heads: cfg.num_attention_heads,
    intermediate_size: cfg.intermediate_size,
    attention_types: [[layers.slice(0, n), cfg.num_hidden_layers / n]],
    attention_layers: layers,
    window_size: cfg.sliding_window ?? 256,
    activation_function: 'gelu_new',
    layer_norm_epsilon: cfg.norm_eps,
    resid_dropout: 0.0,
    embed_dropout: 0.0,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    tie_word_embeddings: cfg.tie_word_embeddings,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_id,
    use_cache: true,
    torch_dtype: 'float32',
  };
}
