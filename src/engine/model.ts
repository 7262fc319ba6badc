/**
 * Causal language models of the supported families on frozen weights kept in Hugging Face names and layouts, with an
 * optional LoRA adapter beside each linear layer. One block per family, each read from its transformers modeling file:
 * Llama/Mistral/Qwen2 (modeling_llama.py, modeling_qwen2.py), Qwen3 (modeling_qwen3.py: q_norm/k_norm before RoPE),
 * Gemma 3 text (modeling_gemma3.py: scaled embeddings, (1 + w) RMSNorms around both sub-blocks, q/k norms, sliding
 * layers with their own RoPE base, soft-capping), GPT-2 (modeling_gpt2.py) and GPT-Neo (modeling_gpt_neo.py: no
 * score scaling, local layers).
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasLearnedPositions, hasQkNorm, layerType, type LayerType, type ModelConfig, type RawTensors } from './config';
import {
  GATE_UP_MODULES,
  QKV_MODULES,
  compactableWeights,
  embeddingName,
  fusedProjectionGroups,
  layerPrefix,
  paramShapes,
} from './params';
import {
  attentionSoftmax,
  bmm,
  customOp,
  gatherRows,
  geluNew,
  layerNorm,
  linearInOut,
  fusesLoraLinear,
  linearOutIn,
  loraLinear,
  matMul2d,
  slowTransposeB,
  rmsNorm,
  rmsNormOnePlus,
  ropeTables,
  headsOf,
  layerNormFork,
  rmsNormFork,
  selectRows,
  siluMul,
  softcap,
} from './ops';
import { LoraAdapter } from './lora';
import {
  compactWeight,
  expandRowRange,
  expandRows,
  expandWeight,
  type CompactWeight,
  type FrozenDtype,
} from './frozen';
import { chunkedCrossEntropy, projectLogits, type OutputRows } from './lm-head';
import { fusedAttention, fusedAttentionFits, fusedAttentionPacked, type FusedAttentionSpec } from './webgpu-attention';
import { fusedLinear, type FusedLinearSpec } from './webgpu-linear';
import { fusedProjection, fusedProjectionFits, fusedSiluMulPacked, type ProjectionMember } from './webgpu-projection';
import { webgpuKernelsActive } from './webgpu-program';
import { chunkedLoss } from './vocab-chunks';
import type { LoraConfig } from './lora-config';
import { IGNORE_INDEX, shiftLabels, sparseCrossEntropy, type LossOutput } from './loss';

/** One batch as plain typed arrays, row-major [batch, seq]. */
export interface ForwardInput {
  inputIds: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Defaults to 0..T-1 (plus the cache length). Packing restarts them per example. */
  positionIds?: Int32Array;
  /** 1 for real tokens, 0 for padding (keys with 0 are never attended to). */
  attentionMask?: ArrayLike<number>;
  /** Packing: tokens attend only to keys with the same segment id. */
  segmentIds?: Int32Array;
}

/** A training batch: labels aligned with inputIds (HF convention; shifted inside), -100 = not trained. */
export interface TrainBatch extends ForwardInput {
  labels: Int32Array;
}

/** Keys/values after RoPE, per layer, [B, kvHeads, S, headDim]. */
export interface KVCache {
  layers: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  length: number;
}

export interface ForwardOptions {
  cache?: KVCache;
  /** Seed for LoRA dropout; null/undefined = eval mode (no dropout). */
  dropoutSeed?: number | null;
  /**
   * Keep only each block's input for the backward pass and recompute the block there (HF's
   * gradient_checkpointing): activation memory O(layers · tokens · hidden) instead of every intermediate.
   */
  gradientCheckpointing?: boolean;
}

const MASKED = -1e9;

/** The masks and RoPE rows of one forward pass, shared by every block (a checkpointed block saves them). */
interface BlockTensors {
  /** Additive causal mask [B, 1, 1, T, S] of full-attention layers (null: nothing to mask). */
  bias: tf.Tensor | null;
  /** The same with the sliding window (layers of type sliding_attention). */
  slidingBias: tf.Tensor | null;
  /**
   * Whether every query row of bias (slidingBias) sees a key: then its probabilities are 0 past each query's last key,
   * which wasm's products skip (bmm's causal hint). A row masked everywhere (a left-padded query) is computed whole.
   */
  causal: boolean;
  slidingCausal: boolean;
  /** RoPE rows [B, 1, T, d/2] at the positions, for full layers ... */
  cos: tf.Tensor | null;
  sin: tf.Tensor | null;
  /** ... and for sliding layers when they have their own base (Gemma 3's rope_local_base_freq). */
  cosLocal: tf.Tensor | null;
  sinLocal: tf.Tensor | null;
}

/** The tensors among a pass's BlockTensors. */
type BlockTensorName = Exclude<keyof BlockTensors, 'causal' | 'slidingCausal'>;

interface BlockContext {
  B: number;
  T: number;
  aux: BlockTensors;
  cacheLayer: { k: tf.Tensor4D; v: tf.Tensor4D } | null;
  seed: (j: number) => number | null;
}

/** What one layer's attention needs besides q, k, v. */
interface AttentionOptions {
  B: number;
  T: number;
  bias: tf.Tensor | null;
  /** Every query row of bias sees a key (BlockTensors.causal). */
  causal: boolean;
  cos: tf.Tensor4D | null;
  sin: tf.Tensor4D | null;
  cacheLayer: { k: tf.Tensor4D; v: tf.Tensor4D } | null;
}

/** Positions the RoPE tables cover before a longer sequence asks for more (every training length in practice). */
export const ROPE_INITIAL_LENGTH = 4096;

/**
 * The positions whose target is trained; null when skipping the others would save the LM head less than 2^22
 * multiply-adds a product (`macsPerRow`: vocab · hidden), or when none is trained (the loss is 0 over no rows).
 */
function trainedPositions(targets: Int32Array, macsPerRow: number): Int32Array | null {
  let n = 0;
  for (const t of targets) if (t !== IGNORE_INDEX) n++;
  if ((targets.length - n) * macsPerRow < 2 ** 22 || n === 0) return null;
  const rows = new Int32Array(n);
  let j = 0;
  targets.forEach((t, i) => {
    if (t !== IGNORE_INDEX) rows[j++] = i;
  });
  return rows;
}

export class CausalLM {
  /** Float32 weights as tensors, by HF name (all of them when frozen_dtype is float32). */
  readonly weights: Map<string, tf.Tensor>;
  /** Frozen matrices kept compact (16-bit or int8, see frozen.ts), by HF name; expanded one at a time when used. */
  readonly compact: Map<string, CompactWeight>;
  /** How the frozen matrices are stored (HF-style `frozen_dtype`). */
  frozenDtype: FrozenDtype;
  adapter: LoraAdapter | null = null;
  /** RoPE tables per attention kind for positions [0, ropeLength): sized by use, not by the config (see ensureRope). */
  private rope = new Map<LayerType, { cos: tf.Tensor2D; sin: tf.Tensor2D }>();
  private ropeLength = 0;
  /** wasm only: the output projection stored once as [hidden, vocab] so neither pass needs a transpose of [tokens, vocab]. */
  private lmHeadT: tf.Tensor2D | null = null;
  /**
   * webgpu only: q/k/v and gate/up weights (and biases) concatenated along the output axis for fusedProjection, by
   * their modules' names; made on first use, dropped when the weights change (merge, frozen_dtype, dispose).
   */
  private fusedWeights = new Map<string, { W: tf.Tensor2D; bias: tf.Tensor1D | null }>();

  constructor(
    readonly config: ModelConfig,
    weights: Map<string, tf.Tensor>,
    compact: Map<string, CompactWeight> = new Map(),
  ) {
    const expected = paramShapes(config);
    for (const [name, shape] of expected) {
      const t = weights.get(name) ?? compact.get(name);
      if (!t) throw new Error(`model weights are missing ${name} (expected shape [${shape}])`);
      if (t.shape.join(',') !== shape.join(','))
        throw new Error(`model weight ${name} has shape [${t.shape}], expected [${shape}]`);
    }
    const compactable = compactableWeights(config);
    for (const name of compact.keys()) {
      if (!compactable.has(name)) throw new Error(`model weight ${name} cannot be stored compact`);
    }
    this.weights = weights;
    this.compact = compact;
    const first = compact.values().next();
    this.frozenDtype = first.done ? 'float32' : first.value.format === 'int8' ? 'int8' : 'float16';
    if (!hasLearnedPositions(config)) this.ensureRope(Math.min(config.max_position_embeddings, ROPE_INITIAL_LENGTH));
    if (slowTransposeB() && !this.compact.has(this.outputName()))
      this.lmHeadT = tf.keep(tf.transpose(this.outputWeight()));
  }

  /** HF name of the output projection's weight (the embedding when tied). */
  private outputName(): string {
    const cfg = this.config;
    return cfg.tie_word_embeddings ? embeddingName(cfg) : 'lm_head.weight';
  }

  private outputWeight(): tf.Tensor2D {
    return this.w(this.outputName()) as tf.Tensor2D;
  }

  /**
   * A model from float32 arrays. With `frozenDtype` float16/int8 the big frozen matrices (linear layers, embeddings,
   * LM head) go straight to compact storage and never become float32 tensors. `compact` adds weights already
   * compact (a model moving to another backend).
   */
  static fromRaw(
    config: ModelConfig,
    raw: RawTensors,
    opts: { frozenDtype?: FrozenDtype; compact?: Map<string, CompactWeight> } = {},
  ): CausalLM {
    const dtype = opts.frozenDtype ?? 'float32';
    const compactable = dtype === 'float32' ? new Map<string, 0 | 1>() : compactableWeights(config);
    const w = new Map<string, tf.Tensor>();
    const c = new Map<string, CompactWeight>(opts.compact);
    for (const [name, t] of raw) {
      const axis = compactable.get(name);
      if (axis !== undefined && dtype !== 'float32' && t.shape.length === 2) {
        c.set(name, compactWeight(t.data, [t.shape[0], t.shape[1]], dtype, axis));
      } else {
        w.set(name, tf.tensor(t.data, t.shape, 'float32'));
      }
    }
    return new CausalLM(config, w, c);
  }

  /**
   * Store the frozen matrices as `dtype`. Lowering from float32 is exact to the new format; going back up from a
   * compact format would only pretend to restore precision, so it is refused (load the model again instead).
   */
  async setFrozenDtype(dtype: FrozenDtype): Promise<void> {
    if (dtype === this.frozenDtype) return;
    if (this.frozenDtype !== 'float32') {
      throw new Error(
        `frozen_dtype: the model's frozen weights are already stored as ${this.frozenDtype}; load the model again ` +
          `to use ${dtype} (converting compact weights to ${dtype} would not bring their precision back)`,
      );
    }
    if (this.adapter?.merged)
      throw new Error('frozen_dtype: unmerge the adapter before changing how weights are stored');
    if (dtype === 'float32') return; // (from float32 to float32 returned above)
    this.dropFusedWeights();
    for (const [name, axis] of compactableWeights(this.config)) {
      const t = this.weights.get(name);
      if (!t || t.rank !== 2) continue;
      const data = (await t.data()) as Float32Array;
      this.compact.set(name, compactWeight(data, [t.shape[0], t.shape[1]!], dtype, axis));
      this.weights.delete(name);
      t.dispose();
    }
    if (this.compact.has(this.outputName())) {
      this.lmHeadT?.dispose();
      this.lmHeadT = null;
    }
    this.frozenDtype = dtype;
  }

  /** A weight's float32 values (compact ones expanded), e.g. for export. */
  async weightValues(name: string): Promise<Float32Array> {
    const cw = this.compact.get(name);
    if (cw) return expandWeight(cw);
    return (await this.w(name).data()) as Float32Array;
  }

  dispose(): void {
    for (const t of this.weights.values()) t.dispose();
    this.weights.clear();
    this.compact.clear();
    for (const t of this.rope.values()) tf.dispose([t.cos, t.sin]);
    this.rope.clear();
    this.lmHeadT?.dispose();
    this.lmHeadT = null;
    this.dropFusedWeights();
    this.adapter?.dispose();
    this.adapter = null;
  }

  private dropFusedWeights(): void {
    for (const f of this.fusedWeights.values()) tf.dispose([f.W, ...(f.bias ? [f.bias] : [])]);
    this.fusedWeights.clear();
  }

  /** Attach a fresh LoRA adapter (replacing any previous one). Only its tensors are trainable. */
  attachLora(config: LoraConfig, seed = 0): LoraAdapter {
    if (this.adapter?.merged) throw new Error('unmerge the current adapter before attaching another');
    this.adapter?.dispose();
    this.adapter = new LoraAdapter(this.config, config, seed);
    return this.adapter;
  }

  /** Fold the adapter into the base weights as PEFT's merge_adapter (W += scaling·B·A, transposed for Conv1D). */
  mergeAdapter(): void {
    this.foldAdapter(+1);
  }

  /** Undo mergeAdapter (W -= scaling·B·A), as PEFT's unmerge_adapter. */
  unmergeAdapter(): void {
    this.foldAdapter(-1);
  }

  private foldAdapter(sign: 1 | -1): void {
    const ad = this.adapter;
    if (!ad) throw new Error('no LoRA adapter attached');
    if (ad.merged === sign > 0) throw new Error(sign > 0 ? 'adapter is already merged' : 'adapter is not merged');
    if (this.compact.size) {
      throw new Error(
        `merging an adapter into ${this.frozenDtype} frozen weights would round the merge; export the merged model ` +
          'instead (it is computed in float32)',
      );
    }
    this.dropFusedWeights();
    for (const name of ad.layers.keys()) {
      const key = name + '.weight';
      const old = this.w(key);
      const next = tf.tidy(() => {
        const d = ad.deltaWeight(name);
        return sign > 0 ? tf.add(old, d) : tf.sub(old, d);
      });
      this.weights.set(key, next);
      old.dispose();
    }
    ad.merged = sign > 0;
  }

  private w(name: string): tf.Tensor {
    const t = this.weights.get(name);
    if (!t) throw new Error(`missing weight ${name}`);
    return t;
  }

  /**
   * Sibling linear layers of one input (q/k/v, gate/up: `modules` under prefix p) as one fused projection on webgpu,
   * their outputs side by side; null where it does not apply (another backend, compact weights, biases on some
   * members only, more LoRA members than its programs bind), and the caller runs them one by one.
   */
  private projection(p: string, modules: string[], x: tf.Tensor2D, seeds: (number | null)[]): tf.Tensor2D | null {
    if (!webgpuKernelsActive()) return null;
    const names = modules.map((m) => p + m);
    if (names.some((n) => this.compact.has(n + '.weight') || !this.weights.has(n + '.weight'))) return null;
    const biases = names.map((n) => this.weights.get(n + '.bias') as tf.Tensor1D | undefined);
    if (biases.some((b) => b) && !biases.every((b) => b)) return null;
    const ad = this.adapter && !this.adapter.merged ? this.adapter : null;
    const members: ProjectionMember[] = names.map((n, i) => {
      const l = ad?.layers.get(n);
      return {
        width: this.w(n + '.weight').shape[0],
        lora: l && ad ? { A: l.A as tf.Tensor2D, B: l.B as tf.Tensor2D, keep: ad.dropoutMaskFor(x, seeds[i]) } : null,
      };
    });
    if (!fusedProjectionFits(members)) {
      tf.dispose(members.flatMap((m) => (m.lora?.keep ? [m.lora.keep] : [])));
      return null;
    }
    const key = names.join('|');
    let fw = this.fusedWeights.get(key);
    if (!fw) {
      fw = {
        W: tf.keep(
          tf.concat(
            names.map((n) => this.w(n + '.weight') as tf.Tensor2D),
            0,
          ),
        ),
        bias: biases[0] ? tf.keep(tf.concat(biases as tf.Tensor1D[])) : null,
      };
      this.fusedWeights.set(key, fw);
    }
    return fusedProjection(x, { ...fw, members, scaling: ad?.scaling ?? 1 });
  }

  /**
   * A linear layer by HF module name: frozen base (+ bias) + LoRA path when targeted, + `residual` when given. x is
   * 2-D [M, in]. On webgpu (float32 weights) fusedLinear runs it: the residual and the LoRA path ride in the
   * products' epilogues.
   */
  linear(module: string, x: tf.Tensor2D, dropoutSeed: number | null, residual: tf.Tensor2D | null = null): tf.Tensor2D {
    const cw = this.compact.get(module + '.weight');
    if (!cw && webgpuKernelsActive()) {
      const bias = (this.weights.get(module + '.bias') as tf.Tensor1D | undefined) ?? null;
      const ad = this.adapter && !this.adapter.merged ? this.adapter : null;
      const l = ad?.layers.get(module);
      const spec: FusedLinearSpec = {
        W: this.w(module + '.weight') as tf.Tensor2D,
        layout: this.config.family === 'gpt2' ? 'in_out' : 'out_in',
        bias,
        lora:
          l && ad
            ? {
                A: l.A as tf.Tensor2D,
                B: l.B as tf.Tensor2D,
                scaling: ad.scaling,
                keep: ad.dropoutMaskFor(x, dropoutSeed),
              }
            : null,
      };
      const y = fusedLinear(x, spec, bias ? null : residual);
      return bias && residual ? (tf.add(residual, y) as tf.Tensor2D) : y;
    }
    const ad = this.adapter && !this.adapter.merged ? this.adapter : null;
    const l = ad?.layers.get(module);
    if (!cw && l && ad && fusesLoraLinear()) {
      // wasm: the layer and its LoRA path in one kernel each way (the residual too, on a layer without a bias)
      const bias = (this.weights.get(module + '.bias') as tf.Tensor1D | undefined) ?? null;
      const xin = ad.dropoutInput(x, dropoutSeed);
      const lora = { A: l.A as tf.Tensor2D, B: l.B as tf.Tensor2D, scaling: ad.scaling, xin: xin === x ? null : xin };
      const W = this.w(module + '.weight') as tf.Tensor2D;
      const y = loraLinear(x, W, this.config.family !== 'gpt2', lora, bias, bias ? null : residual);
      return bias && residual ? (tf.add(residual, y) as tf.Tensor2D) : y;
    }
    const out = this.plainLinear(module, x, cw, dropoutSeed);
    return residual ? (tf.add(residual, out) as tf.Tensor2D) : out;
  }

  private plainLinear(
    module: string,
    x: tf.Tensor2D,
    cw: CompactWeight | undefined,
    dropoutSeed: number | null,
  ): tf.Tensor2D {
    let y = cw
      ? compactLinear(x, cw)
      : this.config.family === 'gpt2'
        ? linearInOut(x, this.w(module + '.weight') as tf.Tensor2D)
        : linearOutIn(x, this.w(module + '.weight') as tf.Tensor2D);
    const b = this.weights.get(module + '.bias');
    if (b) y = tf.add(y, b);
    const d = this.adapter?.delta(module, x, dropoutSeed) ?? null;
    return d ? tf.add(y, d) : y;
  }

  /**
   * The token embeddings of ids (+ learned positions for GPT-2/GPT-Neo; × sqrt(hidden_size) for Gemma 3, the scale
   * rounded to float32, the embedding's dtype here, as Gemma3TextScaledWordEmbedding does). The one place that
   * reads the embedding tables.
   */
  private embed(inputIds: Int32Array, positions: Int32Array): tf.Tensor2D {
    const cfg = this.config;
    // rows expanded on the CPU when the embedding is stored compact
    const cw = this.compact.get(embeddingName(cfg));
    const tok = cw
      ? tf.tensor2d(expandRows(cw, inputIds), [inputIds.length, cw.shape[1]])
      : gatherRows(this.w(embeddingName(cfg)) as tf.Tensor2D, inputIds);
    if (hasLearnedPositions(cfg))
      return tf.add(tok, gatherRows(this.w('transformer.wpe.weight') as tf.Tensor2D, positions));
    if (cfg.family === 'gemma3') return tf.mul(tok, Math.fround(Math.sqrt(cfg.hidden_size)));
    return tok;
  }

  /** RoPE base and linear scaling per attention kind: Gemma 3's sliding layers have their own base. */
  private ropeSpecs(): Map<LayerType, { theta: number; factor: number }> {
    const cfg = this.config;
    const specs = new Map<LayerType, { theta: number; factor: number }>();
    if (hasLearnedPositions(cfg)) return specs;
    specs.set('full_attention', { theta: cfg.rope_theta, factor: cfg.rope_scaling?.factor ?? 1 });
    if (cfg.family === 'gemma3' && cfg.layer_types?.includes('sliding_attention'))
      specs.set('sliding_attention', { theta: cfg.rope_local_base_freq ?? 10000, factor: 1 });
    return specs;
  }

  /**
   * Make the RoPE tables cover positions [0, length). They start at min(context, ROPE_INITIAL_LENGTH) positions and
   * grow on demand up to the context length: a config may claim a context of 1e9 positions, and tables of that size
   * would be built before any check of what a run needs. Growth replaces the tables (kept outside any tidy).
   */
  private ensureRope(length: number): void {
    if (length <= this.ropeLength) return;
    const cfg = this.config;
    const n = Math.min(cfg.max_position_embeddings, Math.max(length, 2 * this.ropeLength));
    for (const [kind, { theta, factor }] of this.ropeSpecs()) {
      const { cos, sin } = ropeTables(n, cfg.head_dim, theta, factor);
      const old = this.rope.get(kind);
      if (old) tf.dispose([old.cos, old.sin]);
      this.rope.set(kind, {
        cos: tf.keep(tf.tensor2d(cos, [n, cfg.head_dim / 2])),
        sin: tf.keep(tf.tensor2d(sin, [n, cfg.head_dim / 2])),
      });
    }
    this.ropeLength = n;
  }

  /** Logits [B, T, vocab]. Call inside tf.tidy; with a cache, the cache is advanced in place (its tensors are kept). */
  forward(inp: ForwardInput, opts: ForwardOptions = {}): tf.Tensor3D {
    const h = this.hidden(inp, opts);
    const logits = this.softcapLogits(this.lmHead(h));
    return tf.reshape(logits, [inp.batchSize, inp.seqLen, this.config.vocab_size]) as tf.Tensor3D;
  }

  /** The final hidden states [B·T, hidden] (after the last norm), before the output projection. */
  hidden(inp: ForwardInput, opts: ForwardOptions = {}): tf.Tensor2D {
    const cfg = this.config;
    const { batchSize: B, seqLen: T } = inp;
    if (inp.inputIds.length !== B * T)
      throw new Error(`inputIds has ${inp.inputIds.length} ids, expected batch ${B} x seq ${T}`);
    const past = opts.cache?.length ?? 0;
    if (past + T > cfg.max_position_embeddings) {
      throw new Error(
        `sequence of ${past + T} tokens exceeds the model's context length ${cfg.max_position_embeddings}`,
      );
    }
    const seed = opts.dropoutSeed ?? null;
    const layerSeed = (i: number, j: number) => (seed == null ? null : seed * 1009 + i * 31 + j);
    const positions = inp.positionIds ?? defaultPositions(B, T, past);
    let maxPos = 0;
    for (const p of positions) if (p > maxPos) maxPos = p;
    if (maxPos >= cfg.max_position_embeddings) {
      throw new Error(`position ${maxPos} is beyond the model's context length ${cfg.max_position_embeddings}`);
    }
    let h = this.embed(inp.inputIds, positions);
    const aux = this.blockTensors(inp, positions, past, maxPos);

    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const cacheLayer = opts.cache ? (opts.cache.layers[i] ??= emptyLayerCache(B, cfg)) : null;
      // One scope per block: its temporaries are freed as soon as it is done (what backprop needs is kept by the tape).
      const hIn = h;
      const ctx: BlockContext = { B, T, aux, cacheLayer, seed: (j: number) => layerSeed(i, j) };
      h =
        opts.gradientCheckpointing && !cacheLayer
          ? this.checkpointedBlock(i, hIn, ctx)
          : tf.tidy(() => this.block(i, hIn, ctx));
    }
    if (opts.cache) opts.cache.length = past + T;

    return this.finalNorm(h);
  }

  /** Masks and RoPE rows for this pass: the sliding-window mask and local RoPE only when some layer uses them. */
  private blockTensors(inp: ForwardInput, positions: Int32Array, past: number, maxPos: number): BlockTensors {
    const cfg = this.config;
    const { batchSize: B, seqLen: T } = inp;
    const masks = buildAttentionBias(inp, past, null);
    const sliding = cfg.layer_types?.includes('sliding_attention') ?? false;
    const window = sliding ? (cfg.sliding_window ?? null) : null;
    const windowed = window !== null && past + T > window ? buildAttentionBias(inp, past, window) : masks;
    const aux: BlockTensors = {
      bias: masks.bias,
      slidingBias: windowed.bias,
      causal: masks.everyRowSees,
      slidingCausal: windowed.everyRowSees,
      cos: null,
      sin: null,
      cosLocal: null,
      sinLocal: null,
    };
    if (hasLearnedPositions(cfg)) return aux;
    this.ensureRope(maxPos + 1);
    const rows = (t: tf.Tensor2D) => tf.reshape(gatherRows(t, positions), [B, 1, T, cfg.head_dim / 2]);
    const full = this.rope.get('full_attention')!;
    aux.cos = rows(full.cos);
    aux.sin = rows(full.sin);
    const local = this.rope.get('sliding_attention');
    if (local) {
      aux.cosLocal = rows(local.cos);
      aux.sinLocal = rows(local.sin);
    }
    return aux;
  }

  /** The final norm before the LM head. */
  private finalNorm(h: tf.Tensor2D): tf.Tensor2D {
    const cfg = this.config;
    if (hasLearnedPositions(cfg))
      return layerNorm(
        h,
        this.w('transformer.ln_f.weight'),
        this.w('transformer.ln_f.bias'),
        cfg.norm_eps,
      ) as tf.Tensor2D;
    return this.rmsNorm(h, 'model.norm.weight');
  }

  /** The family's RMSNorm with weight `name`: Gemma's x·(1 + w), else x·w. */
  private rmsNorm(x: tf.Tensor2D, name: string): tf.Tensor2D {
    const cfg = this.config;
    return (cfg.family === 'gemma3' ? rmsNormOnePlus : rmsNorm)(x, this.w(name), cfg.norm_eps) as tf.Tensor2D;
  }

  /** q_norm / k_norm: the RMSNorm over each head's head_dim of x [N, heads·head_dim]. */
  private headNorm(x: tf.Tensor2D, name: string): tf.Tensor2D {
    const hd = this.config.head_dim;
    const [N, F] = x.shape;
    return tf.reshape(this.rmsNorm(tf.reshape(x, [(N * F) / hd, hd]) as tf.Tensor2D, name), [N, F]) as tf.Tensor2D;
  }

  /**
   * Gemma's final_logit_softcapping (tanh(logits / c) · c), identity for the other families. forward() applies it to
   * its logits; a loss that computes logits its own way (e.g. chunked over the vocabulary) applies it the same way.
   */
  softcapLogits<T extends tf.Tensor>(logits: T): T {
    const cap = this.config.final_logit_softcapping;
    return cap ? (softcap(logits, cap) as T) : logits;
  }

  /** Rows of the output weight [vocab, hidden], for the chunked projection and loss. */
  private outputRows(): OutputRows {
    const name = this.outputName();
    const cw = this.compact.get(name);
    const { vocab_size: vocab, hidden_size: hidden } = this.config;
    if (cw) return { vocab, hidden, rows: (a, b) => tf.tensor2d(expandRowRange(cw, a, b), [b - a, hidden]) };
    const W = this.w(name);
    return {
      vocab,
      hidden,
      rows: (a, b) =>
        a === 0 && b === vocab
          ? (tf.clone(W) as tf.Tensor2D)
          : (tf.gather(W, tf.range(a, b, 1, 'int32')) as tf.Tensor2D),
    };
  }

  /** The output projection (tied to the embedding or lm_head.weight [vocab, hidden]). */
  private lmHead(h: tf.Tensor2D): tf.Tensor2D {
    if (this.compact.has(this.outputName())) return projectLogits(h, this.outputRows());
    const W = this.outputWeight();
    if (!slowTransposeB()) return linearOutIn(h, W);
    // wasm without SIMD: (W·hᵀ)ᵀ would transpose a [tokens, vocab] tensor each pass (~0.7 s at 512 x 49k); keep Wᵀ
    if (!this.lmHeadT) this.lmHeadT = tf.keep(tf.transpose(W));
    const WT = this.lmHeadT;
    const f = customOp<tf.Tensor2D>(([x]) => ({
      value: tf.matMul(x as tf.Tensor2D, WT),
      gradFunc: (dy) => tf.matMul(dy, W),
    }));
    return f(h);
  }

  /** Mean next-token cross-entropy over trained positions (HF's causal-LM loss), with token accuracy. Call inside a tidy. */
  loss(batch: TrainBatch, opts: ForwardOptions = {}): LossOutput {
    const all = shiftLabels(batch.labels, batch.batchSize, batch.seqLen, batch.segmentIds);
    // The LM head runs only on positions that are trained (prompt, padding and each row's last position are not):
    // the same loss and gradients, without the logits nobody reads.
    const rows = trainedPositions(all, this.config.vocab_size * this.config.hidden_size);
    const hAll = this.hidden(batch, opts);
    const h = rows ? selectRows(hAll, rows) : hAll;
    const targets = rows ? rows.map((i) => all[i]) : all;
    // A compact LM head, or a vocabulary whose logits are too big to hold (Qwen, Gemma 3), go through vocabulary chunks.
    if (chunkedLoss(this.config.vocab_size, this.compact.has(this.outputName())))
      return chunkedCrossEntropy(h, this.outputRows(), targets, { softcap: this.config.final_logit_softcapping });
    return sparseCrossEntropy(this.softcapLogits(this.lmHead(h)), targets);
  }

  /**
   * A block whose backward pass recomputes it: the block's LoRA variables are explicit inputs of one
   * custom op, so the outer tape holds just the block input, and the gradient is a VJP of the recomputed block.
   */
  private checkpointedBlock(i: number, h: tf.Tensor2D, ctx: BlockContext): tf.Tensor2D {
    const vars = this.adapter ? this.adapter.variablesUnder(layerPrefix(this.config, i)) : [];
    // The forward scope (and with it the masks and RoPE rows) is freed before backprop: save them too.
    const keys = (Object.keys(ctx.aux) as (keyof BlockTensors)[]).filter(
      (k): k is BlockTensorName => ctx.aux[k] instanceof tf.Tensor,
    );
    const extras = keys.map((k) => ctx.aux[k] as tf.Tensor);
    const f = customOp<tf.Tensor2D>(([hi], save) => {
      save([hi, ...extras]);
      return {
        value: tf.tidy(() => this.block(i, hi as tf.Tensor2D, ctx)),
        gradFunc: (dy, saved) => {
          const hs = saved[0] as tf.Tensor2D;
          const aux: BlockTensors = { ...ctx.aux };
          keys.forEach((k, j) => (aux[k] = saved[1 + j]));
          const c2: BlockContext = { ...ctx, aux };
          // A gradient computed inside backprop: tfjs (4.22) would replace the outer tape with its own and then
          // null it, so the outer pass could neither free its saved tensors nor finish. Keep the outer tape aside.
          const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
          const outerTape = state.activeTape;
          let res: { value: tf.Tensor; grads: tf.Tensor[] };
          try {
            res = tf.engine().gradients(() => this.block(i, hs, c2), [hs, ...vars], dy, true);
          } finally {
            state.activeTape = outerTape;
          }
          const { value, grads } = res;
          value.dispose();
          return grads.map((g, k) => g ?? tf.zerosLike(k === 0 ? hs : vars[k - 1]));
        },
      };
    });
    return f(h, ...vars);
  }

  /** One transformer block of the model's family; layer i's mask and RoPE rows follow its attention kind. */
  private block(i: number, h: tf.Tensor2D, c: BlockContext): tf.Tensor2D {
    const sliding = layerType(this.config, i) === 'sliding_attention';
    const att: AttentionOptions = {
      B: c.B,
      T: c.T,
      bias: sliding ? c.aux.slidingBias : c.aux.bias,
      causal: sliding ? c.aux.slidingCausal : c.aux.causal,
      cos: ((sliding && c.aux.cosLocal) || c.aux.cos) as tf.Tensor4D | null,
      sin: ((sliding && c.aux.sinLocal) || c.aux.sin) as tf.Tensor4D | null,
      cacheLayer: c.cacheLayer,
    };
    const p = layerPrefix(this.config, i);
    switch (this.config.family) {
      case 'gpt2':
        return this.gpt2Block(p, h, att, c.seed);
      case 'gpt_neo':
        return this.gptNeoBlock(p, h, att, c.seed);
      case 'gemma3':
        return this.gemma3Block(p, h, att, c.seed);
      default:
        return this.llamaBlock(p, h, att, c.seed);
    }
  }

  /** GPT-2: pre-LayerNorm, fused Conv1D qkv, gelu_new MLP. */
  private gpt2Block(p: string, h: tf.Tensor2D, att: AttentionOptions, seed: (j: number) => number | null): tf.Tensor2D {
    const eps = this.config.norm_eps;
    const [a, hIn] = layerNormFork(h, this.w(p + 'ln_1.weight'), this.w(p + 'ln_1.bias'), eps);
    const qkv = this.linear(p + 'attn.c_attn', a, seed(0));
    const fused = this.fusedAttentionSpec(att);
    let o: tf.Tensor2D;
    if (fused) o = fusedAttentionPacked(qkv, fused);
    else {
      const [q, k, v] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
      o = this.attention(q, k, v, att);
    }
    const h1 = this.linear(p + 'attn.c_proj', o, seed(1), hIn);
    const [m, h1In] = layerNormFork(h1, this.w(p + 'ln_2.weight'), this.w(p + 'ln_2.bias'), eps);
    const f = geluNew(this.linear(p + 'mlp.c_fc', m, seed(2))) as tf.Tensor2D;
    return this.linear(p + 'mlp.c_proj', f, seed(3), h1In);
  }

  /** GPT-Neo: as GPT-2 with nn.Linear q/k/v (no bias) and out_proj, and unscaled scores (local layers: window). */
  private gptNeoBlock(
    p: string,
    h: tf.Tensor2D,
    att: AttentionOptions,
    seed: (j: number) => number | null,
  ): tf.Tensor2D {
    const eps = this.config.norm_eps;
    const [a, hIn] = layerNormFork(h, this.w(p + 'ln_1.weight'), this.w(p + 'ln_1.bias'), eps);
    const q = this.linear(p + 'attn.attention.q_proj', a, seed(0));
    const k = this.linear(p + 'attn.attention.k_proj', a, seed(1));
    const v = this.linear(p + 'attn.attention.v_proj', a, seed(2));
    const h1 = this.linear(p + 'attn.attention.out_proj', this.attention(q, k, v, att), seed(3), hIn);
    const [m, h1In] = layerNormFork(h1, this.w(p + 'ln_2.weight'), this.w(p + 'ln_2.bias'), eps);
    const f = geluNew(this.linear(p + 'mlp.c_fc', m, seed(4))) as tf.Tensor2D;
    return this.linear(p + 'mlp.c_proj', f, seed(5), h1In);
  }

  /** Llama / Mistral / Qwen2 / Qwen3: pre-RMSNorm attention (Qwen3: q_norm/k_norm per head) and SwiGLU MLP. */
  private llamaBlock(
    p: string,
    h: tf.Tensor2D,
    att: AttentionOptions,
    seed: (j: number) => number | null,
  ): tf.Tensor2D {
    const cfg = this.config;
    // the residual stream forks into the norm and the residual (one node each way on webgpu)
    const [a, hIn] = rmsNormFork(h, this.w(p + 'input_layernorm.weight'), cfg.norm_eps);
    // webgpu: q/k/v as one projection, read in place by the attention (q_norm/k_norm need them apart)
    const groups = fusedProjectionGroups(cfg);
    const qkv = groups.includes(QKV_MODULES) ? this.projection(p, QKV_MODULES, a, [seed(0), seed(1), seed(2)]) : null;
    const fused = qkv && this.fusedAttentionSpec(att);
    let o: tf.Tensor2D;
    if (qkv && fused) o = fusedAttentionPacked(qkv, fused);
    else {
      const hd = cfg.head_dim;
      const parts = qkv
        ? (tf.split(
            qkv,
            [cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd, cfg.num_key_value_heads * hd],
            1,
          ) as tf.Tensor2D[])
        : [
            this.linear(p + 'self_attn.q_proj', a, seed(0)),
            this.linear(p + 'self_attn.k_proj', a, seed(1)),
            this.linear(p + 'self_attn.v_proj', a, seed(2)),
          ];
      let [q, k] = parts;
      const v = parts[2];
      if (hasQkNorm(cfg)) {
        q = this.headNorm(q, p + 'self_attn.q_norm.weight');
        k = this.headNorm(k, p + 'self_attn.k_norm.weight');
      }
      o = this.attention(q, k, v, att);
    }
    const h1 = this.linear(p + 'self_attn.o_proj', o, seed(3), hIn);
    const [m, h1In] = rmsNormFork(h1, this.w(p + 'post_attention_layernorm.weight'), cfg.norm_eps);
    const gu = groups.includes(GATE_UP_MODULES) ? this.projection(p, GATE_UP_MODULES, m, [seed(4), seed(5)]) : null;
    const f = gu
      ? fusedSiluMulPacked(gu)
      : siluMul(this.linear(p + 'mlp.gate_proj', m, seed(4)), this.linear(p + 'mlp.up_proj', m, seed(5)));
    return this.linear(p + 'mlp.down_proj', f as tf.Tensor2D, seed(6), h1In);
  }

  /**
   * Gemma 3: input_layernorm → attention (q_norm/k_norm, then RoPE) → post_attention_layernorm → residual;
   * pre_feedforward_layernorm → GeGLU MLP (tanh GELU gate) → post_feedforward_layernorm → residual.
   */
  private gemma3Block(
    p: string,
    h: tf.Tensor2D,
    att: AttentionOptions,
    seed: (j: number) => number | null,
  ): tf.Tensor2D {
    const a = this.rmsNorm(h, p + 'input_layernorm.weight');
    const q = this.headNorm(this.linear(p + 'self_attn.q_proj', a, seed(0)), p + 'self_attn.q_norm.weight');
    const k = this.headNorm(this.linear(p + 'self_attn.k_proj', a, seed(1)), p + 'self_attn.k_norm.weight');
    const v = this.linear(p + 'self_attn.v_proj', a, seed(2));
    const o = this.linear(p + 'self_attn.o_proj', this.attention(q, k, v, att), seed(3));
    h = tf.add(h, this.rmsNorm(o, p + 'post_attention_layernorm.weight')) as tf.Tensor2D;
    const m = this.rmsNorm(h, p + 'pre_feedforward_layernorm.weight');
    const g = geluNew(this.linear(p + 'mlp.gate_proj', m, seed(4)));
    const u = this.linear(p + 'mlp.up_proj', m, seed(5));
    const f = this.linear(p + 'mlp.down_proj', tf.mul(g, u) as tf.Tensor2D, seed(6));
    return tf.add(h, this.rmsNorm(f, p + 'post_feedforward_layernorm.weight')) as tf.Tensor2D;
  }

  /** Attention scores' scale: head_dim^-0.5, Gemma 3's query_pre_attn_scalar^-0.5, none for GPT-Neo. */
  private attentionScale(): number {
    const cfg = this.config;
    if (cfg.family === 'gpt_neo') return 1;
    if (cfg.family === 'gemma3') return 1 / Math.sqrt(cfg.query_pre_attn_scalar ?? cfg.head_dim);
    return 1 / Math.sqrt(cfg.head_dim);
  }

  /**
   * The spec of webgpu's fused attention (webgpu-attention.ts) when it applies to this pass: our kernels active, no
   * KV cache (training and prefill without one), no score soft-capping, shapes it holds; else null.
   */
  private fusedAttentionSpec(o: AttentionOptions): FusedAttentionSpec | null {
    const cfg = this.config;
    const { B, T, bias, cos, sin } = o;
    const spec = { H: cfg.num_attention_heads, KV: cfg.num_key_value_heads, hd: cfg.head_dim };
    if (!webgpuKernelsActive() || o.cacheLayer || cfg.attn_logit_softcapping || !fusedAttentionFits(spec)) return null;
    if (bias && bias.size !== B * T * T) return null;
    const rope = cos && sin ? { cos, sin, layout: cfg.rope_layout } : null;
    if (rope && (cos!.size !== (B * T * spec.hd) / 2 || spec.hd % 2 !== 0)) return null;
    return { ...spec, B, T, scale: this.attentionScale(), bias, rope };
  }

  /** Multi-head attention with grouped KV heads; q/k/v 2-D [B·T, heads·hd]; returns [B·T, H·hd]. */
  private attention(q2: tf.Tensor2D, k2: tf.Tensor2D, v2: tf.Tensor2D, o: AttentionOptions): tf.Tensor2D {
    const fused = this.fusedAttentionSpec(o);
    if (fused) return fusedAttention(q2, k2, v2, fused);
    const cfg = this.config;
    const { B, T, bias, cos, sin, cacheLayer } = o;
    const H = cfg.num_attention_heads,
      KV = cfg.num_key_value_heads,
      hd = cfg.head_dim,
      G = H / KV;
    // [B, heads, T, hd], queries and keys turned by RoPE
    const heads = headsOf(cos && sin ? { cos, sin, layout: cfg.rope_layout } : null, B, T, hd);
    const q = heads(q2, H, true);
    let k = heads(k2, KV, true);
    let v = heads(v2, KV, false);
    if (cacheLayer) {
      const nk = cacheLayer.k.shape[2] === 0 ? k : (tf.concat([cacheLayer.k, k], 2) as tf.Tensor4D);
      const nv = cacheLayer.v.shape[2] === 0 ? v : (tf.concat([cacheLayer.v, v], 2) as tf.Tensor4D);
      tf.keep(nk);
      tf.keep(nv);
      if (cacheLayer.k !== nk) cacheLayer.k.dispose();
      if (cacheLayer.v !== nv) cacheLayer.v.dispose();
      cacheLayer.k = nk;
      cacheLayer.v = nv;
      k = nk;
      v = nv;
    }
    const S = k.shape[2];
    // Group query heads by their KV head: [B, KV, G·T, hd] (head h uses kv head h / G, as HF repeat_kv).
    const qg = tf.reshape(q, [B * KV, G * T, hd]) as tf.Tensor3D;
    const scale = this.attentionScale();
    // every row sees a key: the probabilities are 0 past each query's last key, and wasm's products skip them
    const causal = o.causal ? { T, past: S - T } : null;
    let scores = bmm(qg, tf.reshape(k, [B * KV, S, hd]) as tf.Tensor3D, true, causal);
    let scoreScale = scale;
    // Gemma's attn_logit_softcapping caps the scaled scores, before the mask
    if (cfg.attn_logit_softcapping) {
      scores = softcap(scale === 1 ? scores : tf.mul(scores, scale), cfg.attn_logit_softcapping) as tf.Tensor3D;
      scoreScale = 1;
    }
    const probs = attentionSoftmax(scores, scoreScale, bias, { B, KV, G, T });
    const out = tf.reshape(bmm(probs, tf.reshape(v, [B * KV, S, hd]) as tf.Tensor3D, false, causal), [B, H, T, hd]);
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, H * hd]) as tf.Tensor2D;
  }
}

function emptyLayerCache(B: number, cfg: ModelConfig): { k: tf.Tensor4D; v: tf.Tensor4D } {
  const k = tf.keep(tf.zeros([B, cfg.num_key_value_heads, 0, cfg.head_dim])) as tf.Tensor4D;
  const v = tf.keep(tf.zeros([B, cfg.num_key_value_heads, 0, cfg.head_dim])) as tf.Tensor4D;
  return { k, v };
}

export function createCache(): KVCache {
  return { layers: [], length: 0 };
}

export function disposeCache(c: KVCache): void {
  for (const l of c.layers) {
    l.k.dispose();
    l.v.dispose();
  }
  c.layers = [];
  c.length = 0;
}

function defaultPositions(B: number, T: number, past: number): Int32Array {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = past + t;
  return p;
}

/**
 * Additive attention bias [B, 1, 1, T, S] (S = past + T): 0 where query t may see key s, else -1e9.
 * Causal, keys with attentionMask 0 hidden, and with segment ids only within the same segment. With a sliding
 * `window`, also keys `window` or more places back (transformers' sliding_window_overlay: kv > q - window).
 * Returns null when nothing needs masking (a single new token without padding, within the window).
 */
function buildAttentionBias(
  inp: ForwardInput,
  past: number,
  window: number | null,
): { bias: tf.Tensor | null; everyRowSees: boolean } {
  const { batchSize: B, seqLen: T, attentionMask: am, segmentIds: seg } = inp;
  const S = past + T;
  if (T === 1 && !am && !seg && (window === null || S <= window)) return { bias: null, everyRowSees: true };
  const bias = new Float32Array(B * T * S);
  let everyRowSees = true;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * S;
      let sees = false;
      for (let s = 0; s < S; s++) {
        let ok = s <= past + t && (window === null || s > past + t - window);
        if (ok && s >= past) {
          const ks = s - past;
          if (am && !am[b * T + ks]) ok = false;
          if (seg && seg[b * T + ks] !== seg[b * T + t]) ok = false;
        }
        if (!ok) bias[row + s] = MASKED;
        else sees = true;
      }
      if (!sees) everyRowSees = false;
    }
  }
  return { bias: tf.tensor(bias, [B, 1, 1, T, S]), everyRowSees };
}

/**
 * A frozen linear layer whose weight is compact: the float32 matrix exists only while the forward matmul runs, and
 * again in the backward pass for dx (the weight has no gradient), so no float32 copy outlives the op. x is [M, in];
 * cw is [out, in] (nn.Linear, channelAxis 0) or [in, out] (GPT-2 Conv1D, channelAxis 1).
 */
function compactLinear(x: tf.Tensor2D, cw: CompactWeight): tf.Tensor2D {
  const outIn = cw.channelAxis === 0;
  const expand = () => tf.tensor2d(expandWeight(cw), [cw.shape[0], cw.shape[1]]);
  const f = customOp<tf.Tensor2D>(([xi]) => {
    const W = expand();
    const value = tf.tidy(() => (outIn ? linearOutIn(xi as tf.Tensor2D, W) : linearInOut(xi as tf.Tensor2D, W)));
    W.dispose();
    return {
      value,
      gradFunc: (dy) => {
        const Wb = expand();
        const dx = tf.tidy(() => (outIn ? matMul2d(dy, Wb) : matMul2d(dy, Wb, false, true)));
        Wb.dispose();
        return dx;
      },
    };
  });
  return f(x);
}
