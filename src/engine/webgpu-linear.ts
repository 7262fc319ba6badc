/**
 * A frozen linear layer with its LoRA path and the residual it feeds, on webgpu, in as few programs as tfjs's fused
 * matMul (bias epilogue) and one small WGSL product of ours allow:
 *
 *   base  = x · Wᵀ (+ the layer's bias, or + the residual)         tfjs fused matMul
 *   xa    = scaling · xin · Aᵀ                                      ours (scaled, small output [M, r])
 *   y     = xa · Bᵀ + base                                          tfjs fused matMul, base as its bias
 *
 * backward, from dy:  dxa = scaling · dy · B (ours), dB = dyᵀ · xa, dA = dxaᵀ · xin, dx = dxa · A + dy · W (fused
 * matMul with dy · W as its bias; with LoRA dropout xin ≠ x, so the two terms go to their own inputs).
 * 3 programs forward and 5 backward for a LoRA layer, where the plain ops take 5 and 7 (and the tape's add); the
 * residual's add is folded into the base product. W and the bias are frozen (closed over: no gradient is formed).
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import { elementwiseProgram, run } from './webgpu-program';

/** s · op(a) · op(b) for a small output [M, N] (one invocation per element, the depth K in a loop). */
function scaledProductProgram(M: number, N: number, transposeB: boolean) {
  const bAt = transposeB ? 'b[j * K + k]' : 'b[k * N + j]';
  const program = elementwiseProgram(
    `webtune_scaled_matmul_${transposeB ? 'bt' : 'b'}`,
    ['a', 'b'],
    [M, N],
    `let K = uniforms.aShape.y;
     let N = ${transposeB ? 'uniforms.bShape.x' : 'uniforms.bShape.y'};
     let i = index / N;
     let j = index % N;
     var acc = 0.0;
     for (var k = 0; k < K; k = k + 1) { acc = acc + a[i * K + k] * ${bAt}; }
     result[index] = acc * uniforms.scale;`,
  );
  return { ...program, uniforms: 'scale : f32,' };
}

function scaledProduct(a: tf.Tensor2D, b: tf.Tensor2D, transposeB: boolean, scale: number): tf.Tensor2D {
  const M = a.shape[0];
  const N = transposeB ? b.shape[0] : b.shape[1];
  return run(scaledProductProgram(M, N, transposeB), [a, b], 'float32', [
    { type: 'float32', data: [scale] },
  ]) as tf.Tensor2D;
}

export interface FusedLinearSpec {
  /** The frozen weight: nn.Linear [out, in] ('out_in') or GPT-2's Conv1D [in, out] ('in_out'). */
  W: tf.Tensor2D;
  layout: 'out_in' | 'in_out';
  /** The layer's own bias [out] (frozen), if any. */
  bias: tf.Tensor1D | null;
  lora: { A: tf.Tensor2D; B: tf.Tensor2D; scaling: number } | null;
}

/**
 * y = x · W(ᵀ) (+ bias) (+ residual) + scaling · xin · Aᵀ · Bᵀ with x [M, in]; xin is x after LoRA dropout (x itself
 * without). A residual is only taken by a layer without a bias of its own (the product's epilogue adds one tensor).
 */
export function fusedLinear(
  x: tf.Tensor2D,
  xin: tf.Tensor2D,
  spec: FusedLinearSpec,
  residual: tf.Tensor2D | null,
): tf.Tensor2D {
  const { W, layout, bias, lora } = spec;
  if (bias && residual) throw new Error('fusedLinear: a layer with a bias takes no residual');
  const tb = layout === 'out_in';
  const base = (xi: tf.Tensor2D, add: tf.Tensor | null) =>
    (add ? tf.fused.matMul({ a: xi, b: W, transposeB: tb, bias: add }) : tf.matMul(xi, W, false, tb)) as tf.Tensor2D;
  const dxBase = (dy: tf.Tensor2D, add: tf.Tensor | null) =>
    (add ? tf.fused.matMul({ a: dy, b: W, transposeB: !tb, bias: add }) : tf.matMul(dy, W, false, !tb)) as tf.Tensor2D;
  const sameInput = xin === x;
  const inputs: tf.Tensor[] = [x];
  if (!sameInput && lora) inputs.push(xin);
  if (residual) inputs.push(residual);
  if (lora) inputs.push(lora.A, lora.B);
  const f = customOp<tf.Tensor2D>((args, save) => {
    const rest = [...args] as tf.Tensor2D[];
    const xi = rest.shift()!;
    const xini = !sameInput && lora ? rest.shift()! : xi;
    const res = residual ? rest.shift()! : null;
    const [Ai, Bi] = lora ? rest : [null, null];
    const add = bias ?? res;
    if (!lora) {
      return {
        value: base(xi, add),
        gradFunc: (dy) => (residual ? [dxBase(dy, null), tf.clone(dy)] : dxBase(dy, null)),
      };
    }
    const xa = scaledProduct(xini, Ai!, true, lora.scaling);
    save([xini, Ai!, Bi!, xa]);
    const value = tf.tidy(() => tf.fused.matMul({ a: xa, b: Bi!, transposeB: true, bias: base(xi, add) }));
    return {
      value: value as tf.Tensor2D,
      gradFunc: (dy, saved) => {
        const [xs, As, Bs, xas] = saved as tf.Tensor2D[];
        const dxa = scaledProduct(dy, Bs, false, lora.scaling);
        const dB = tf.matMul(dy, xas, true, false);
        const dA = tf.matMul(dxa, xs, true, false);
        const grads: tf.Tensor[] = [];
        if (sameInput) grads.push(tf.fused.matMul({ a: dxa, b: As, bias: dxBase(dy, null) }));
        else grads.push(dxBase(dy, null), tf.matMul(dxa, As));
        if (residual) grads.push(tf.clone(dy));
        grads.push(dA, dB);
        return grads;
      },
    };
  });
  return f(...inputs);
}
