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
 * dropout) and 7 (8) and the tape's add; the residual's add is folded into the base product. The small programs are
 * webgpu-projection.ts's for one member. W, the bias and the mask are constants (closed over: no gradient). Under a
 * gradient sink (grad-sink.ts) dA and dB are one program that adds them into the sink's flat vector.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import {
  aGradProgram,
  downGradProgram,
  downProgram,
  loraLayout,
  scaleUniform,
  sinkLoraGrads,
  upGradProgram,
} from './webgpu-projection';
import { run } from './webgpu-program';

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
    // the LoRA path is fusedProjection's with one member: its programs
    const l = loraLayout([{ width: Bi.shape[0], lora: { A: Ai, B: Bi, keep } }]);
    const r = Ai.shape[0];
    const M = xi.shape[0];
    const xa = run(downProgram(l, M, r), [xi, Ai, ...(keep ? [keep] : [])], 'float32', scaleUniform(scaling));
    // the mask is saved too: it is made in the caller's scope, gone when the backward pass runs
    save(keep ? [xi, Ai, Bi, xa, keep] : [xi, Ai, Bi, xa]);
    const value = tf.tidy(() => tf.fused.matMul({ a: xa, b: Bi, transposeB: true, bias: base(xi, add) }));
    return {
      value: value as tf.Tensor2D,
      gradFunc: (dy, saved) => {
        const [xs, As, Bs, xas, ks] = saved as tf.Tensor2D[];
        const dxa = run(upGradProgram(l, M, r), [dy, Bs], 'float32', scaleUniform(scaling));
        const dx = ks
          ? run(downGradProgram(l, xs.shape, r), [dxBase(dy), dxa, As, ks], 'float32')
          : tf.fused.matMul({ a: dxa, b: As, bias: dxBase(dy) });
        const head = residual ? [dx, tf.clone(dy)] : [dx];
        const sunk = sinkLoraGrads(l, r, [lora], { dy, xa: xas, dxa, x: xs, keeps: ks ? [ks] : [] });
        if (sunk) return [...head, ...sunk];
        const dB = tf.matMul(dy, xas, true, false);
        const dA = ks
          ? run(aGradProgram(l, l[0], r, xs.shape[1]), [dxa, xs, ks], 'float32')
          : tf.matMul(dxa, xs, true, false);
        return [...head, dA, dB];
      },
    };
  });
  return f(...inputs);
}
