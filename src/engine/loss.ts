/**
 * Causal-LM cross-entropy over token ids, computed sparsely (never a one-hot over the vocabulary),
 * with ignore index -100 and a hand-written gradient: d loss / d logits = (softmax − e_target) · mask / count.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './ops';
import { fusedCrossEntropy } from './webgpu-kernels';
import { webgpuKernelsActive } from './webgpu-program';
import { wasmCrossEntropyGrad, wasmCrossEntropySoftmax, wasmKernelsAvailable } from './wasm-kernels';

export const IGNORE_INDEX = -100;

/**
 * HF shifts labels inside the model: position t predicts labels[t+1]. Returns per-position targets
 * of the same shape [B·T] with IGNORE_INDEX at each row's last position.
 */
export function shiftLabels(
  labels: ArrayLike<number>,
  batchSize: number,
  seqLen: number,
  segmentIds?: ArrayLike<number>,
): Int32Array {
  const out = new Int32Array(batchSize * seqLen).fill(IGNORE_INDEX);
  for (let b = 0; b < batchSize; b++) {
    for (let t = 0; t + 1 < seqLen; t++) {
      const i = b * seqLen + t;
      // packed rows: the last token of one example never predicts the first of the next
      if (segmentIds && segmentIds[i] !== segmentIds[i + 1]) continue;
      out[i] = labels[i + 1];
    }
  }
  return out;
}

export type LossOutput = {
  /** Mean CE (nats) over positions whose target is not ignored. */
  loss: tf.Scalar;
  /** Number of those positions whose argmax equals the target. */
  correct: tf.Scalar;
  /** Number of positions counted. */
  count: tf.Scalar;
};

/**
 * logits [N, V] (or [B, T, V]) against targets [N] (already shifted; IGNORE_INDEX = skip).
 * Count is taken from the targets on the CPU, so the mean is exact and there is no division by zero
 * (an all-ignored batch gives loss 0).
 */
export function sparseCrossEntropy(logitsIn: tf.Tensor, targets: Int32Array): LossOutput {
  const V = logitsIn.shape[logitsIn.shape.length - 1];
  const N = logitsIn.size / V;
  if (targets.length !== N) throw new Error(`targets has ${targets.length} entries, logits have ${N} positions`);
  let count = 0;
  const safe = new Int32Array(N);
  const maskArr = new Float32Array(N);
  const flatIdx = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const t = targets[i];
    if (t === IGNORE_INDEX) continue;
    if (t < 0 || t >= V) throw new Error(`label ${t} at position ${i} is outside the vocabulary [0, ${V})`);
    safe[i] = t;
    maskArr[i] = 1;
    count++;
  }
  const logits = tf.reshape(logitsIn, [N, V]) as tf.Tensor2D;
  // webgpu: one program per row block forward (plus the sum), one backward, two for the correct count
  if (webgpuKernelsActive() && logits.dtype === 'float32')
    return { ...fusedCrossEntropy(logits, targets, count), count: tf.scalar(count) };
  for (let i = 0; i < N; i++) flatIdx[i] = i * V + safe[i];
  const denom = Math.max(count, 1);
  const mask = tf.tensor1d(maskArr);
  const idx = tf.tensor1d(flatIdx, 'int32');

  // wasm: the token accuracy comes out of the forward pass's own sweep (wasmCrossEntropySoftmax) and is kept here
  const wasm = wasmKernelsAvailable() && V > 0;
  let keptCorrect: tf.Scalar | null = null;
  const ce = customOp<tf.Scalar>(([lg], save) => {
    const l2 = lg as tf.Tensor2D;
    // One softmax (a fused kernel on every backend) serves both passes. The log-sum-exp comes from it at each row's
    // largest logit m, where p = exp(m − lse) >= 1/V cannot underflow: lse = m − log(max p).
    // wasm: one sweep of our kernel gives p and [max z, max p, z at the target, argMax hit] per row
    const [probs, stats] = wasm ? wasmCrossEntropySoftmax(l2, tf.tensor1d(safe, 'int32')) : [tf.softmax(l2), null];
    const value = tf.tidy(() => {
      if (stats) {
        const [m, pm, picked, hit] = tf.unstack(stats, 1);
        keptCorrect = tf.keep(tf.sum(tf.mul(hit, mask)) as tf.Scalar);
        return tf.div(tf.sum(tf.mul(tf.sub(tf.sub(m, tf.log(pm)), picked), mask)), denom) as tf.Scalar;
      }
      const lse = tf.sub(tf.max(l2, 1), tf.log(tf.max(probs, 1)));
      const picked = tf.gather(tf.reshape(l2, [N * V]), idx);
      return tf.div(tf.sum(tf.mul(tf.sub(lse, picked), mask)), denom) as tf.Scalar;
    });
    save([probs]);
    return {
      value,
      gradFunc: (dy, [p]) => {
        // tensors from the forward scope are gone by now (variableGrads tidies it): rebuild from JS arrays
        const scale = tf.mul(tf.div(tf.tensor1d(maskArr), denom), dy) as tf.Tensor1D; // [N]
        // wasm: one sweep of our kernel (no [N, V] temporaries but the result)
        if (wasmKernelsAvailable()) return wasmCrossEntropyGrad(p as tf.Tensor2D, scale, tf.tensor1d(safe, 'int32'));
        // subtract 1 at each counted target: a sparse update, not a one-hot
        const idx2 = tf.tensor2d(Array.from(safe, (t, i) => [i, t]).flat(), [N, 2], 'int32');
        const onTarget = tf.scatterND(idx2, tf.neg(scale), [N, V]);
        return tf.add(tf.mul(p, tf.expandDims(scale, 1)), onTarget);
      },
    };
  });

  const loss = ce(logits);
  const kept = keptCorrect as tf.Scalar | null;
  const correct = kept
    ? tf.clone(kept) // tracked by the caller's scope, like the loss
    : tf.tidy(
        () =>
          tf.sum(
            tf.mul(tf.cast(tf.equal(tf.argMax(logits, 1), tf.tensor1d(safe, 'int32')), 'float32'), mask),
          ) as tf.Scalar,
      );
  kept?.dispose();
  return { loss, correct, count: tf.scalar(count) };
}
