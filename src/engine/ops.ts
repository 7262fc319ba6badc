/**
 * Small tensor building blocks shared by every model family.
 * Everything here is pure tfjs: no DOM, no Node.
 */
import * as tf from '@tensorflow/tfjs-core';
import { prefersNoTransposeB } from './backend';
import { customOp } from './custom-op';
export { customOp };
import { wasmBatchMatMul, wasmMatMulAvailable } from './wasm-matmul';
import { fusedAttentionSoftmax, fusedRmsNorm, fusedRope, fusedSiluMul, webgpuKernelsActive } from './webgpu-kernels';

/**
 * y = x · Wᵀ for a frozen nn.Linear weight W [out, in] (x is 2-D [M, in]).
 * On wasm, matMul with transposeB (and transposeA) is ~10x slower than the plain form, so the
 * forward runs as (W · xᵀ)ᵀ and the input gradient dy · W is written out by hand.
 * W is a constant (closed over, never an input), so no gradient for it is ever formed.
 */
export function linearOutIn(x: tf.Tensor2D, W: tf.Tensor2D): tf.Tensor2D {
  if (!prefersNoTransposeB()) return tf.matMul(x, W, false, true);
  const f = customOp<tf.Tensor2D>(([xi]) => ({
    value: tf.transpose(tf.matMul(W, tf.transpose(xi as tf.Tensor2D))) as tf.Tensor2D,
    gradFunc: (dy) => tf.matMul(dy, W),
  }));
  return f(x);
}

/** y = x · W for a frozen GPT-2 Conv1D weight W [in, out]; the input gradient dy · Wᵀ avoids transposeB on wasm. */
export function linearInOut(x: tf.Tensor2D, W: tf.Tensor2D): tf.Tensor2D {
  if (!prefersNoTransposeB()) return tf.matMul(x, W);
  const f = customOp<tf.Tensor2D>(([xi]) => ({
    value: tf.matMul(xi as tf.Tensor2D, W),
    gradFunc: (dy) => tf.transpose(tf.matMul(W, tf.transpose(dy))),
  }));
  return f(x);
}

/** A frozen weight (not a variable) a fused kernel may close over: no gradient is ever asked of it. */
const frozen = (w: tf.Tensor) => !(w instanceof tf.Variable);

/**
 * HF LlamaRMSNorm: w · x / sqrt(mean(x²) + eps), over the last axis. The weight is frozen (no gradient). On webgpu
 * one fused program each way; elsewhere the backward pass keeps only x: with r = (mean(x²) + eps)^-½ and
 * g = dy · w, dx = r · g − x · r³ · mean(g · x).
 */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  if (webgpuKernelsActive() && frozen(w)) return fusedRmsNorm(x, w, eps, false);
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
  const keep = Math.fround(1 - rate);
  // randomUniform fills its values on the CPU: this dataSync reads nothing from the GPU
  const u = tf.randomUniform(x.shape, 0, 1, 'float32', seed);
  const vals = u.dataSync() as Float32Array;
  u.dispose();
  const m = new Float32Array(vals.length);
  for (let i = 0; i < m.length; i++) m[i] = Math.floor(Math.fround(vals[i] + keep)) / keep;
  return tf.mul(x, tf.tensor(m, x.shape));
}

/** Gemma's soft capping: tanh(x / cap) · cap (attention scores and final logits). */
export function softcap(x: tf.Tensor, cap: number): tf.Tensor {
  return tf.mul(tf.tanh(tf.div(x, cap)), cap);
}

/** torch.nn.LayerNorm over the last axis (biased variance). */
export function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
}

/** GPT-2's gelu_new (tanh approximation); torch's gelu(approximate="tanh") — "gelu_pytorch_tanh" — is the same function. */
export function geluNew(x: tf.Tensor): tf.Tensor {
  const c = Math.sqrt(2 / Math.PI);
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), c);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * SwiGLU's silu(g) · u as one op whose backward pass keeps g and u only (not also sigmoid(g) and silu(g)):
 * d/du = silu(g) · dy, d/dg = dy · u · σ(g) · (1 + g · (1 − σ(g))). On webgpu, one fused program forward and two
 * backward.
 */
export function siluMul(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (webgpuKernelsActive() && g.dtype === 'float32' && u.dtype === 'float32' && tf.util.arraysEqual(g.shape, u.shape))
    return fusedSiluMul(g, u);
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
 */
export function applyRope(
  x: tf.Tensor4D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  layout: 'half' | 'interleaved',
): tf.Tensor4D {
  const [B, Hn, T, d] = x.shape;
  if (webgpuKernelsActive() && cos.shape[1] === 1 && cos.shape[0] === B && cos.shape[2] === T && 2 * cos.shape[3] === d)
    return fusedRope(x, cos, sin, layout);
  if (layout === 'half') {
    const [x1, x2] = tf.split(x, 2, 3);
    const o1 = tf.sub(tf.mul(x1, cos), tf.mul(x2, sin));
    const o2 = tf.add(tf.mul(x2, cos), tf.mul(x1, sin));
    return tf.concat([o1, o2], 3) as tf.Tensor4D;
  }
  const x5 = tf.reshape(x, [B, Hn, T, d / 2, 2]);
  const [xe, xo] = tf.split(x5, 2, 4);
  const c = tf.expandDims(cos, 4),
    s = tf.expandDims(sin, 4);
  const oe = tf.sub(tf.mul(xe, c), tf.mul(xo, s));
  const oo = tf.add(tf.mul(xe, s), tf.mul(xo, c));
  return tf.reshape(tf.concat([oe, oo], 4), [B, Hn, T, d]) as tf.Tensor4D;
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
  let z: tf.Tensor = scale === 1 ? scores : tf.mul(scores, scale);
  if (bias) z = tf.add(tf.reshape(z, [B, KV, G, T, S]), bias);
  return tf.reshape(tf.softmax(z), [B * KV, G * T, S]) as tf.Tensor3D;
}

/**
 * Batched matmul of 3-D tensors a [N, M, K] · b [N, K, P] (or · bᵀ for b [N, P, K] with transposeB). On wasm, our
 * SIMD kernel (wasm-matmul.ts) runs every product of the pass, forward and backward, without a transpose; an engine
 * without wasm SIMD gets tfjs's own kernel.
 */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D, transposeB = false): tf.Tensor3D {
  if (!wasmMatMulAvailable()) return tf.matMul(a, b, false, transposeB);
  const f = customOp<tf.Tensor3D>(([ai, bi], save) => {
    save([ai, bi]);
    return {
      value: wasmBatchMatMul(ai as tf.Tensor3D, bi as tf.Tensor3D, false, transposeB),
      gradFunc: (dy, saved) => {
        const [sa, sb] = saved as tf.Tensor3D[];
        return transposeB
          ? [wasmBatchMatMul(dy, sb), wasmBatchMatMul(dy, sa, true, false)]
          : [wasmBatchMatMul(dy, sb, false, true), wasmBatchMatMul(sa, dy, true, false)];
      },
    };
  });
  return f(a, b);
}
