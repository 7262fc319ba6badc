/**
 * Small tensor building blocks shared by every model family.
 * Everything here is pure tfjs: no DOM, no Node.
 */
import * as tf from '@tensorflow/tfjs-core';
import { prefersNoTransposeB } from './backend';
import { customOp } from './custom-op';
export { customOp };
import {
  wasmAttentionSoftmax,
  wasmBatchMatMul,
  wasmGatherRows,
  wasmGeluNew,
  wasmKernelsAvailable,
  wasmLayerNorm,
  wasmLoraLinear,
  wasmMatMul2d,
  wasmRmsNorm,
  wasmRopeHeads,
  wasmSiluMul,
  wasmSoftmaxGrad,
  type CausalHint,
} from './wasm-kernels';
import {
  fusedAttentionSoftmax,
  fusedGeluNew,
  fusedLayerNorm,
  fusedRmsNorm,
  fusedRmsNormCarry,
  fusedLayerNormCarry,
  fusedRope,
  fusedSiluMul,
} from './webgpu-kernels';
import { webgpuKernelsActive } from './webgpu-program';

/**
 * wasm without our SIMD kernels (an engine without wasm SIMD): there tfjs's transposeB is slow, so large products
 * are rewritten as (W · xᵀ)ᵀ.
 */
export function slowTransposeB(): boolean {
  return prefersNoTransposeB() && !wasmKernelsAvailable();
}

/**
 * Rows `ids` of a frozen table [rows, D] (the embeddings, the RoPE tables), [ids.length, D]; no gradient with respect
 * to the table. On wasm our kernel copies the rows (tfjs-backend-wasm's GatherV2 took ~12 ms for 512 rows of 768);
 * elsewhere tf.gather.
 */
export function gatherRows(table: tf.Tensor2D, ids: Int32Array): tf.Tensor2D {
  const idx = tf.tensor1d(ids, 'int32');
  if (table.dtype === 'float32' && wasmKernelsAvailable()) return wasmGatherRows(table, idx);
  return tf.gather(table, idx) as tf.Tensor2D;
}

/**
 * Rows `rows` (distinct indices) of an activation x [N, D], [rows.length, D], differentiable in x: the gradient puts
 * each row's back in its place and zeros elsewhere (a scatter; tf.gather's own gradient needs UnsortedSegmentSum,
 * which the wasm backend lacks).
 */
export function selectRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const [N, D] = x.shape;
  const f = customOp<tf.Tensor2D>(([xi]) => ({
    value: gatherRows(xi as tf.Tensor2D, rows),
    gradFunc: (dy) => tf.scatterND(tf.tensor2d(rows, [rows.length, 1], 'int32'), dy, [N, D]) as tf.Tensor2D,
  }));
  return f(x);
}

/**
 * op(a) · op(b) of 2-D tensors, with no gradient of its own (for the hand-written backward passes below). On wasm our
 * SIMD kernels run it: small products tiled, large ones cache-blocked and split across threads (wasm-kernels.ts),
 * with transposed operands read in place; tfjs-backend-wasm's matMul (XNNPACK) is slower on these shapes and ~10x
 * slower with transposeB. Elsewhere tfjs's matMul.
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (wasmKernelsAvailable()) return wasmMatMul2d(a, b, transposeA, transposeB);
  if (slowTransposeB() && transposeB && !transposeA) return tf.transpose(tf.matMul(b, tf.transpose(a))) as tf.Tensor2D;
  return tf.matMul(a, b, transposeA, transposeB);
}

/**
 * y = x · Wᵀ for a frozen nn.Linear weight W [out, in] (x is 2-D [M, in]). On wasm both passes are matMul2d's
 * kernels and the input gradient dy · W is written out by hand. W is a constant (closed over, never an input), so
 * no gradient for it is ever formed.
 */
export function linearOutIn(x: tf.Tensor2D, W: tf.Tensor2D): tf.Tensor2D {
  if (!prefersNoTransposeB()) return tf.matMul(x, W, false, true);
  const f = customOp<tf.Tensor2D>(([xi]) => ({
    value: matMul2d(xi as tf.Tensor2D, W, false, true),
    gradFunc: (dy) => matMul2d(dy, W),
  }));
  return f(x);
}

/** y = x · W for a frozen GPT-2 Conv1D weight W [in, out]; on wasm the input gradient dy · Wᵀ is matMul2d's. */
export function linearInOut(x: tf.Tensor2D, W: tf.Tensor2D): tf.Tensor2D {
  if (!prefersNoTransposeB()) return tf.matMul(x, W);
  const f = customOp<tf.Tensor2D>(([xi]) => ({
    value: matMul2d(xi as tf.Tensor2D, W),
    gradFunc: (dy) => matMul2d(dy, W, false, true),
  }));
  return f(x);
}

/**
 * PEFT's LoRA path x · Aᵀ · Bᵀ · scaling (A [r, in], B [out, r] trainable; x [M, in], after dropout). On wasm all
 * its products, forward and backward, run on our SIMD kernel: tfjs would run x · Aᵀ and the weight gradients with
 * transposed operands on its scalar loop. With g = dy · scaling: dB = gᵀ · xa, dxa = g · B, dA = dxaᵀ · x,
 * dx = dxa · A; it saves x and xa = x · Aᵀ [M, r].
 */
export function loraPath(x: tf.Tensor2D, A: tf.Tensor2D, B: tf.Tensor2D, scaling: number): tf.Tensor2D {
  if (!wasmKernelsAvailable())
    return tf.mul(tf.matMul(tf.matMul(x, A, false, true), B, false, true), scaling) as tf.Tensor2D;
  const f = customOp<tf.Tensor2D>(([xi, Ai, Bi], save) => {
    const xa = wasmMatMul2d(xi as tf.Tensor2D, Ai as tf.Tensor2D, false, true);
    save([xi, Ai, Bi, xa]);
    return {
      value: tf.tidy(() => tf.mul(wasmMatMul2d(xa, Bi as tf.Tensor2D, false, true), scaling) as tf.Tensor2D),
      gradFunc: (dy, saved) => {
        const [xs, As, Bs, xas] = saved as tf.Tensor2D[];
        const g = tf.mul(dy, scaling) as tf.Tensor2D;
        const dxa = wasmMatMul2d(g, Bs);
        return [wasmMatMul2d(dxa, As), wasmMatMul2d(dxa, xs, true, false), wasmMatMul2d(g, xas, true, false)];
      },
    };
  });
  return f(x, A, B);
}

/** Whether loraLinear runs here (our wasm kernels); elsewhere the caller composes the plain ops. */
export function fusesLoraLinear(): boolean {
  return wasmKernelsAvailable();
}

/**
 * A frozen linear layer (W: [out, in] with outIn, GPT-2's Conv1D [in, out] without; `bias` or a `residual` added)
 * with its LoRA path (A, B trainable; `xin` x after lora_dropout, null when x itself), in one wasm kernel each way
 * (wasmLoraLinear). Check fusesLoraLinear() first.
 */
export const loraLinear = wasmLoraLinear;

/** A frozen weight (not a variable) a fused kernel may close over: no gradient is ever asked of it. */
const frozen = (w: tf.Tensor) => !(w instanceof tf.Variable);

/**
 * A pre-norm block's fork of the residual stream: [rmsNorm(x, w, eps), x for the residual]. On webgpu one tape node
 * whose backward pass also adds the residual's gradient (fusedRmsNormCarry); elsewhere x itself is the second.
 */
export function rmsNormFork(x: tf.Tensor2D, w: tf.Tensor, eps: number): [tf.Tensor2D, tf.Tensor2D] {
  if (webgpuKernelsActive() && frozen(w)) return fusedRmsNormCarry(x, w, eps, false);
  return [rmsNorm(x, w, eps) as tf.Tensor2D, x];
}

/** LayerNorm's fork of the residual stream, as rmsNormFork. */
export function layerNormFork(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor, eps: number): [tf.Tensor2D, tf.Tensor2D] {
  if (webgpuKernelsActive() && frozen(w) && frozen(b)) return fusedLayerNormCarry(x, w, b, eps);
  return [layerNorm(x, w, b, eps) as tf.Tensor2D, x];
}

/**
 * HF LlamaRMSNorm: w · x / sqrt(mean(x²) + eps), over the last axis. The weight is frozen (no gradient). On webgpu
 * one fused program each way, on wasm one kernel of ours each way (wasm-kernels.ts); elsewhere the backward pass keeps only x: with r = (mean(x²) + eps)^-½ and
 * g = dy · w, dx = r · g − x · r³ · mean(g · x).
 */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  if (webgpuKernelsActive() && frozen(w)) return fusedRmsNorm(x, w, eps, false);
  if (wasmKernelsAvailable() && frozen(w)) return wasmRmsNorm(x, w, eps, 0);
  const f = customOp<tf.Tensor>(([xi], save) => {
    save([xi]);
    return {
      value: tf.tidy(() => tf.mul(tf.mul(xi, tf.rsqrt(tf.add(tf.mean(tf.square(xi), -1, true), eps))), w)),
      gradFunc: (dy, [xs]) => {
        const r = tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps));
        const g = tf.mul(dy, w);
        const m = tf.mean(tf.mul(g, xs), -1, true);
        return tf.sub(tf.mul(g, r), tf.mul(xs, tf.mul(tf.pow(r, 3), m)));
      },
    };
  });
  return f(x);
}

/** Gemma's RMSNorm: x / sqrt(mean(x²) + eps) · (1 + w), over the last axis (the weights are stored zero-centred). */
export function rmsNormOnePlus(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  if (webgpuKernelsActive() && frozen(w)) return fusedRmsNorm(x, w, eps, true);
  if (wasmKernelsAvailable() && frozen(w)) return wasmRmsNorm(x, w, eps, 1);
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), tf.add(w, 1));
}

/**
 * tf.dropout(x, rate, undefined, seed) (training mode, inverted scaling). On webgpu the keep/scale multiplier is
 * formed on the CPU from the same seeded uniforms, bit for bit as tf.dropout forms it (floor(u + keep) / keep in
 * float32), so the step runs one program forward and one backward instead of an add, floor, div and mul.
 */
export function dropout(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  if (!webgpuKernelsActive() || rate <= 0 || x.dtype !== 'float32') return tf.dropout(x, rate, undefined, seed);
  return tf.mul(x, dropoutMask(x.shape, rate, seed));
}

/**
 * The scaled keep-mask (0 or 1 / (1 − rate)) tf.dropout draws for `seed`, made on the CPU: on webgpu, tf.dropout's
 * own draw would read its uniform values back from the GPU; these are filled on the CPU and uploaded.
 */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  const keep = Math.fround(1 - rate);
  // randomUniform fills its values on the CPU: this dataSync reads nothing from the GPU
  const u = tf.randomUniform(shape, 0, 1, 'float32', seed);
  const vals = u.dataSync() as Float32Array;
  u.dispose();
  const m = new Float32Array(vals.length);
  for (let i = 0; i < m.length; i++) m[i] = Math.floor(Math.fround(vals[i] + keep)) / keep;
  return tf.tensor(m, shape);
}

/** Gemma's soft capping: tanh(x / cap) · cap (attention scores and final logits). */
export function softcap(x: tf.Tensor, cap: number): tf.Tensor {
  return tf.mul(tf.tanh(tf.div(x, cap)), cap);
}

/**
 * torch.nn.LayerNorm over the last axis (biased variance). On wasm, for a frozen w and b, one kernel of ours each way
 * (wasm-kernels.ts) that saves x only; elsewhere tfjs ops (and their gradients for w and b too).
 */
export function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  if (webgpuKernelsActive() && frozen(w) && frozen(b) && x.dtype === 'float32') return fusedLayerNorm(x, w, b, eps);
  if (wasmKernelsAvailable() && frozen(w) && frozen(b) && x.dtype === 'float32') return wasmLayerNorm(x, w, b, eps);
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
}

/**
 * GPT-2's gelu_new (tanh approximation); torch's gelu(approximate="tanh") — "gelu_pytorch_tanh" — is the same function:
 * 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³). Computed as x·σ(2u) (1 + tanh(u) = 2σ(2u)), because a
 * sigmoid is a vectorised kernel on wasm and tanh and pow are scalar loops there (a GPT-2-small step spent 1 s in
 * them); x³ as x·x·x. One op that saves x only: with s = σ(2u), d/dx = s + 2x·s·(1 − s)·√(2/π)·(1 + 3·0.044715·x²).
 * On wasm, one kernel of ours each way (wasm-kernels.ts, with an f32x4 exp of its own) instead of those tfjs ops.
 */
export function geluNew(x: tf.Tensor): tf.Tensor {
  if (webgpuKernelsActive() && x.dtype === 'float32') return fusedGeluNew(x);
  if (wasmKernelsAvailable() && x.dtype === 'float32') return wasmGeluNew(x);
  const c = Math.sqrt(2 / Math.PI);
  const sig2u = (xi: tf.Tensor, x2: tf.Tensor) =>
    tf.sigmoid(tf.mul(tf.mul(xi, tf.add(tf.mul(x2, 0.044715), 1)), 2 * c));
  const f = customOp<tf.Tensor>(([xi], save) => {
    save([xi]);
    return {
      value: tf.tidy(() => tf.mul(xi, sig2u(xi, tf.mul(xi, xi)))),
      gradFunc: (dy, [xs]) => {
        const x2 = tf.mul(xs, xs);
        const s = sig2u(xs, x2);
        const du = tf.mul(tf.add(tf.mul(x2, 3 * 0.044715), 1), 2 * c);
        return tf.mul(dy, tf.add(s, tf.mul(tf.mul(xs, tf.mul(s, tf.sub(1, s))), du)));
      },
    };
  });
  return f(x);
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * SwiGLU's silu(g) · u as one op whose backward pass keeps g and u only (not also sigmoid(g) and silu(g)):
 * d/du = silu(g) · dy, d/dg = dy · u · σ(g) · (1 + g · (1 − σ(g))). On webgpu, one fused program forward and two
 * backward; on wasm, one kernel of ours each way (wasm-kernels.ts: the backward one writes both gradients).
 */
export function siluMul(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (webgpuKernelsActive() && g.dtype === 'float32' && u.dtype === 'float32' && tf.util.arraysEqual(g.shape, u.shape))
    return fusedSiluMul(g, u);
  if (wasmKernelsAvailable() && g.dtype === 'float32' && u.dtype === 'float32' && tf.util.arraysEqual(g.shape, u.shape))
    return wasmSiluMul(g, u);
  const f = customOp<tf.Tensor>(([gi, ui], save) => {
    save([gi, ui]);
    return {
      value: tf.tidy(() => tf.mul(silu(gi), ui)),
      gradFunc: (dy, [gs, us]) => {
        const s = tf.sigmoid(gs);
        const dg = tf.mul(tf.mul(dy, us), tf.mul(s, tf.add(1, tf.mul(gs, tf.sub(1, s)))));
        return [dg, tf.mul(tf.mul(gs, s), dy)];
      },
    };
  });
  return f(g, u);
}

/**
 * RoPE tables in float32 exactly as HF LlamaRotaryEmbedding computes them:
 * inv_freq[i] = 1 / theta^(2i/d), angle = pos · inv_freq. Returns cos/sin of shape [maxPos, d/2].
 * `linearFactor` is transformers' "linear" rope_scaling (inv_freq / factor, i.e. positions / factor).
 */
export function ropeTables(
  maxPos: number,
  headDim: number,
  theta: number,
  linearFactor = 1,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / headDim) / linearFactor;
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * invFreq[i]);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * Apply RoPE to x [B, heads, T, d] with cos/sin [B, 1, T, d/2] gathered at the position ids.
 * 'half': HF rotate_half (dim i pairs with i + d/2). 'interleaved': dims (2i, 2i+1) pair (llama2.c / Meta).
 * Either way out = x · C + rotate(x) · S, with C, S the tables widened to d columns and rotate(x) = x · R, R the
 * signed permutation that puts each dimension's partner in its place (negated for the first of a pair); so
 * dx = dy · C + (dy · S) · Rᵀ. Small matmuls instead of a split and a concat (on wasm a split copies its whole input
 * per piece, and a gather along the last axis is slow); on webgpu, one fused program.
 */
export function applyRope(
  x: tf.Tensor4D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  layout: 'half' | 'interleaved',
): tf.Tensor4D {
  return ropeWith(cos, sin, layout, x.shape[3])(x);
}

/**
 * applyRope as a function of x for one set of tables: the constant matrices and the widened tables are built once
 * and shared by every tensor it rotates (a layer's queries and keys).
 */
export function ropeWith(
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  layout: 'half' | 'interleaved',
  d: number,
): (x: tf.Tensor4D) => tf.Tensor4D {
  const [Bc, one, Tc, half] = cos.shape;
  if (!webgpuKernelsActive() || one !== 1 || 2 * half !== d) return ropeByMatrices(cos, sin, layout, d);
  let general: ((x: tf.Tensor4D) => tf.Tensor4D) | null = null;
  return (x) =>
    x.shape[0] === Bc && x.shape[2] === Tc
      ? fusedRope(x, cos, sin, layout)
      : (general ??= ropeByMatrices(cos, sin, layout, d))(x);
}

/** RoPE's tables as gathered at the position ids ([B, 1, T, hd / 2] each) and the layout they rotate by. */
export interface RopeTables {
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  layout: 'half' | 'interleaved';
}

/**
 * Attention's heads from a projection's token rows, as a function of (x [B·T, n·hd], n, rotate): [B, n, T, hd], with
 * RoPE (`rope`'s tables) when `rotate` is true. On wasm one kernel each way (wasmRopeHeads: the reshape, the
 * transpose and RoPE in one sweep); elsewhere a reshape and a transpose, then ropeWith, built once for every x
 * rotated (a layer's queries and keys).
 */
export function headsOf(
  rope: RopeTables | null,
  B: number,
  T: number,
  hd: number,
): (x: tf.Tensor2D, n: number, rotate: boolean) => tf.Tensor4D {
  if (wasmKernelsAvailable() && (!rope || rope.cos.size === (B * T * hd) / 2))
    return (x, n, rotate) => wasmRopeHeads(x, rotate ? rope : null, B, T, n, hd);
  let rotation: ((x: tf.Tensor4D) => tf.Tensor4D) | null = null;
  return (x, n, rotate) => {
    const h = tf.transpose(tf.reshape(x, [B, T, n, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    if (!rotate || !rope) return h;
    rotation ??= ropeWith(rope.cos, rope.sin, rope.layout, hd);
    return rotation(h);
  };
}

/** RoPE as x · C + (x · R) · S (see applyRope), C and S widened once for every x it is applied to. */
function ropeByMatrices(
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  layout: 'half' | 'interleaved',
  d: number,
): (x: tf.Tensor4D) => tf.Tensor4D {
  const [Bc, , Tc] = cos.shape;
  const { widen, rotate, rotateT } = ropeMatrices(d, layout);
  const wide = (t: tf.Tensor4D) =>
    tf.reshape(matMul2d(tf.reshape(t, [Bc * Tc, d / 2]) as tf.Tensor2D, widen), [Bc, 1, Tc, d]);
  const C = wide(cos),
    S = wide(sin);
  const rows = (t: tf.Tensor) => tf.reshape(t, [t.size / d, d]) as tf.Tensor2D;
  return (x) => {
    const f = customOp<tf.Tensor4D>(([xi], save) => {
      save([C, S, rotateT]);
      return {
        value: tf.tidy(
          () => tf.add(tf.mul(xi, C), tf.mul(tf.reshape(matMul2d(rows(xi), rotate), x.shape), S)) as tf.Tensor4D,
        ),
        gradFunc: (dy, [Cs, Ss, Rt]) =>
          tf.add(tf.mul(dy, Cs), tf.reshape(matMul2d(rows(tf.mul(dy, Ss)), Rt as tf.Tensor2D), x.shape)),
      };
    });
    return f(x);
  };
}

/**
 * RoPE's constant matrices for head size d: `widen` [d/2, d] copies each table column to the dimensions that use it,
 * `rotate` [d, d] (and its transpose) maps x to rotate(x) (see applyRope).
 */
function ropeMatrices(d: number, layout: 'half' | 'interleaved') {
  const half = d / 2;
  const widen = new Float32Array(half * d),
    rotate = new Float32Array(d * d),
    rotateT = new Float32Array(d * d);
  for (let j = 0; j < d; j++) {
    const first = layout === 'half' ? j < half : j % 2 === 0;
    widen[(layout === 'half' ? j % half : j >> 1) * d + j] = 1;
    const partner = layout === 'half' ? (first ? j + half : j - half) : first ? j + 1 : j - 1;
    rotate[partner * d + j] = first ? -1 : 1;
    rotateT[j * d + partner] = first ? -1 : 1;
  }
  return {
    widen: tf.tensor2d(widen, [half, d]),
    rotate: tf.tensor2d(rotate, [d, d]),
    rotateT: tf.tensor2d(rotateT, [d, d]),
  };
}

/**
 * Attention probabilities softmax(scores · scale + bias) for scores [B·KV, G·T, S] (query heads grouped by their KV
 * head) and an additive mask bias [B, 1, 1, T, S] or null; on webgpu one program forward and one backward.
 */
export function attentionSoftmax(
  scores: tf.Tensor3D,
  scale: number,
  bias: tf.Tensor | null,
  dims: { B: number; KV: number; G: number; T: number },
): tf.Tensor3D {
  const { B, KV, G, T } = dims;
  const S = scores.shape[2];
  if (webgpuKernelsActive() && (!bias || bias.size === B * T * S))
    return fusedAttentionSoftmax(scores, scale, bias, dims);
  const forward = (x: tf.Tensor) => {
    let z: tf.Tensor = scale === 1 ? x : tf.mul(x, scale);
    if (bias) z = tf.add(tf.reshape(z, [B, KV, G, T, S]), bias);
    return tf.reshape(tf.softmax(z), [B * KV, G * T, S]) as tf.Tensor3D;
  };
  if (!wasmKernelsAvailable()) return forward(scores);
  // wasm: each pass in one sweep of our kernels — forward the scale, the mask and the softmax, skipping a causal row's
  // masked end (tfjs: a multiply, an add and a softmax over every column); backward from the saved probabilities
  // only (tfjs: a multiply, a sum, a subtract, a multiply, and the scale's multiply)
  const fused = !bias || bias.size === B * T * S;
  const f = customOp<tf.Tensor3D>(([x], save) => {
    const p = fused ? wasmAttentionSoftmax(x as tf.Tensor3D, bias, scale, B, T) : tf.tidy(() => forward(x));
    save([p]);
    return { value: p, gradFunc: (dy, [ps]) => wasmSoftmaxGrad(ps as tf.Tensor3D, dy, scale) };
  });
  return f(scores);
}

/**
 * Batched matmul of 3-D tensors a [N, M, K] · b [N, K, P] (or · bᵀ for b [N, P, K] with transposeB). On wasm, our
 * SIMD kernel (wasm-kernels.ts) runs every product of the pass, forward and backward, without a transpose; an engine
 * without wasm SIMD gets tfjs's own kernel.
 */
export function bmm(
  a: tf.Tensor3D,
  b: tf.Tensor3D,
  transposeB = false,
  causal: { T: number; past: number } | null = null,
): tf.Tensor3D {
  if (!wasmKernelsAvailable()) return tf.matMul(a, b, false, transposeB);
  // causal attention (wasm): with transposeB the output is the [G·T, S] scores, else a is the probabilities; every
  // product of both passes then skips the entries past each query's last key (wasmBatchMatMul's CausalHint)
  const at = (where: CausalHint['at']): CausalHint | null => (causal ? { ...causal, at: where } : null);
  const f = customOp<tf.Tensor3D>(([ai, bi], save) => {
    save([ai, bi]);
    return {
      value: wasmBatchMatMul(ai as tf.Tensor3D, bi as tf.Tensor3D, false, transposeB, at(transposeB ? 'out' : 'a')),
      gradFunc: (dy, saved) => {
        const [sa, sb] = saved as tf.Tensor3D[];
        return transposeB
          ? [wasmBatchMatMul(dy, sb, false, false, at('a')), wasmBatchMatMul(dy, sa, true, false, at('aT'))]
          : [wasmBatchMatMul(dy, sb, false, true, at('out')), wasmBatchMatMul(sa, dy, true, false, at('aT'))];
      },
    };
  });
  return f(a, b);
}
