/**
 * A frozen linear layer with its LoRA path and the residual it feeds, on webgpu, in as few programs as tfjs's fused
 * matMul (bias epilogue) and one small WGSL product of ours allow:
 *
 *   base  = x · Wᵀ (+ the layer's bias, or + the residual)         tfjs fused matMul
 *   xa    = scaling · xin · Aᵀ                                      ours (scaled, small output [M, r])
 *   y     = xa · Bᵀ + base                                          tfjs fused matMul, base as its bias
 *
 * backward, from dy:  dxa = scaling · dy · B (ours), dB = dyᵀ · xa, dA = dxaᵀ · xin, dx = dxa · A + dy · W (fused
 * matMul with dy · W as its bias). With LoRA dropout, xin = x ⊙ keep is never formed: our programs read the mask
 * for xa, dA and dx (dx = dy · W + (dxa · A) ⊙ keep).
 * 3 programs forward and 5 backward for a LoRA layer, with or without dropout, where the plain ops take 5 (6 with
 * dropout) and 7 (8) and the tape's add; the residual's add is folded into the base product. W, the bias and the
 * mask are constants (closed over: no gradient is formed).
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import { elementwiseProgram, run } from './webgpu-program';

/**
 * s · (a ⊙ keep) · op(b) for a small output [M, N] (one invocation per element, the depth K in a loop); `keep` (LoRA
 * dropout's scaled keep-mask, the shape of a) is optional.
 */
function scaledProductProgram(M: number, N: number, transposeB: boolean, masked: boolean) {
  const bAt = transposeB ? 'b[j * K + k]' : 'b[k * N + j]';
  const aAt = masked ? 'a[i * K + k] * keep[i * K + k]' : 'a[i * K + k]';
  const program = elementwiseProgram(
    `webtune_scaled_matmul_${transposeB ? 'bt' : 'b'}${masked ? '_masked' : ''}`,
    masked ? ['a', 'b', 'keep'] : ['a', 'b'],
    [M, N],
    `let K = uniforms.aShape.y;
     let N = ${transposeB ? 'uniforms.bShape.x' : 'uniforms.bShape.y'};
     let i = index / N;
     let j = index % N;
     var acc = 0.0;
     for (var k = 0; k < K; k = k + 1) { acc = acc + ${aAt} * ${bAt}; }
     result[index] = acc * uniforms.scale;`,
  );
  return { ...program, uniforms: 'scale : f32,' };
}

function scaledProduct(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  transposeB: boolean,
  scale: number,
  keep: tf.Tensor2D | null = null,
): tf.Tensor2D {
  const M = a.shape[0];
  const N = transposeB ? b.shape[0] : b.shape[1];
  return run(scaledProductProgram(M, N, transposeB, keep != null), keep ? [a, b, keep] : [a, b], 'float32', [
    { type: 'float32', data: [scale] },
  ]) as tf.Tensor2D;
}

/** dA [r, K] = dxaᵀ · (x ⊙ keep), the depth M (tokens) in a loop. */
function maskedWeightGrad(dxa: tf.Tensor2D, x: tf.Tensor2D, keep: tf.Tensor2D): tf.Tensor2D {
  const [r, K] = [dxa.shape[1], x.shape[1]];
  const program = elementwiseProgram(
    'webtune_lora_grad_a_masked',
    ['g', 'x', 'keep'],
    [r, K],
    `let M = uniforms.xShape.x;
     let R = uniforms.gShape.y;
     let K = uniforms.xShape.y;
     let j = index / K;
     let k = index % K;
     var acc = 0.0;
     for (var m = 0; m < M; m = m + 1) { acc = acc + g[m * R + j] * x[m * K + k] * keep[m * K + k]; }
     result[index] = acc;`,
  );
  return run(program, [dxa, x, keep], 'float32') as tf.Tensor2D;
}

/** dx [M, K] = base + (dxa · A) ⊙ keep: the LoRA path's input gradient through dropout, added to the base one. */
function maskedInputGrad(base: tf.Tensor2D, dxa: tf.Tensor2D, A: tf.Tensor2D, keep: tf.Tensor2D): tf.Tensor2D {
  const program = elementwiseProgram(
    'webtune_lora_grad_x_masked',
    ['base', 'g', 'loraA', 'keep'],
    base.shape,
    `let R = uniforms.gShape.y;
     let K = uniforms.loraAShape.y;
     let m = index / K;
     let k = index % K;
     var acc = 0.0;
     for (var j = 0; j < R; j = j + 1) { acc = acc + g[m * R + j] * loraA[j * K + k]; }
     result[index] = base[index] + acc * keep[index];`,
  );
  return run(program, [base, dxa, A, keep], 'float32') as tf.Tensor2D;
}

export interface FusedLinearSpec {
  /** The frozen weight: nn.Linear [out, in] ('out_in') or GPT-2's Conv1D [in, out] ('in_out'). */
  W: tf.Tensor2D;
  layout: 'out_in' | 'in_out';
  /** The layer's own bias [out] (frozen), if any. */
  bias: tf.Tensor1D | null;
  /** The LoRA path; `keep`: lora_dropout's scaled keep-mask [M, in] in training mode (null: no dropout). */
  lora: { A: tf.Tensor2D; B: tf.Tensor2D; scaling: number; keep: tf.Tensor2D | null } | null;
}

/**
 * y = x · W(ᵀ) (+ bias) (+ residual) + scaling · (x ⊙ keep) · Aᵀ · Bᵀ with x [M, in]. A residual is only taken by a
 * layer without a bias of its own (the product's epilogue adds one tensor).
 */
export function fusedLinear(x: tf.Tensor2D, spec: FusedLinearSpec, residual: tf.Tensor2D | null): tf.Tensor2D {
  const { W, layout, bias, lora } = spec;
  if (bias && residual) throw new Error('fusedLinear: a layer with a bias takes no residual');
  const tb = layout === 'out_in';
  const base = (xi: tf.Tensor2D, add: tf.Tensor | null) =>
    (add ? tf.fused.matMul({ a: xi, b: W, transposeB: tb, bias: add }) : tf.matMul(xi, W, false, tb)) as tf.Tensor2D;
  const dxBase = (dy: tf.Tensor2D) => tf.matMul(dy, W, false, !tb) as tf.Tensor2D;
  const inputs: tf.Tensor[] = [x];
  if (residual) inputs.push(residual);
  if (lora) inputs.push(lora.A, lora.B);
  const f = customOp<tf.Tensor2D>((args, save) => {
    const [xi, ...rest] = args as tf.Tensor2D[];
    const res = residual ? rest.shift()! : null;
    const add = bias ?? res;
    if (!lora) {
      return {
        value: base(xi, add),
        gradFunc: (dy) => (residual ? [dxBase(dy), tf.clone(dy)] : dxBase(dy)),
      };
    }
    const [Ai, Bi] = rest;
    const { scaling, keep } = lora;
    const xa = scaledProduct(xi, Ai, true, scaling, keep);
    // the mask is saved too: it is made in the caller's scope, gone when the backward pass runs
    save(keep ? [xi, Ai, Bi, xa, keep] : [xi, Ai, Bi, xa]);
    const value = tf.tidy(() => tf.fused.matMul({ a: xa, b: Bi, transposeB: true, bias: base(xi, add) }));
    return {
      value: value as tf.Tensor2D,
      gradFunc: (dy, saved) => {
        const [xs, As, Bs, xas, ks] = saved as tf.Tensor2D[];
        const dxa = scaledProduct(dy, Bs, false, scaling);
        const dB = tf.matMul(dy, xas, true, false);
        const dA = ks ? maskedWeightGrad(dxa, xs, ks) : tf.matMul(dxa, xs, true, false);
        const dx = ks ? maskedInputGrad(dxBase(dy), dxa, As, ks) : tf.fused.matMul({ a: dxa, b: As, bias: dxBase(dy) });
        return residual ? [dx, tf.clone(dy), dA, dB] : [dx, dA, dB];
      },
    };
  });
  return f(...inputs);
}
