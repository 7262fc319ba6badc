/**
 * The output projection and the causal-LM loss over it, one slice of the vocabulary at a time.
 *
 * Gemma 3's 262,144-token vocabulary gives 512 tokens x 262k float32 logits = 537 MB, twice that with the softmax of
 * the backward pass. Here the logits of a batch are never materialised at once: the loss keeps a running
 * log-sum-exp per token over vocabulary chunks (and the chunk maxima for token accuracy), and its backward pass
 * recomputes each chunk's logits to form (softmax − e_target) · W_chunk. Memory is O(tokens · chunk), at the cost of
 * one more LM-head matmul. The weight rows come from an `OutputRows` source, so a compact (16/8-bit) LM head is
 * expanded chunk by chunk too.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp, matMul2d, slowTransposeB } from './ops';
import { IGNORE_INDEX, type LossOutput } from './loss';
import { vocabChunk } from './vocab-chunks';

/** Rows of the [vocab, hidden] output weight, as a float32 tensor the caller disposes. */
export interface OutputRows {
  readonly vocab: number;
  readonly hidden: number;
  rows(start: number, end: number): tf.Tensor2D;
}

/** z = h · Wᵀ for W [rows, hidden]; where transposeB is slow, as (W · hᵀ)ᵀ with hᵀ given. */
function logitsOf(h: tf.Tensor2D, hT: tf.Tensor2D | null, W: tf.Tensor2D): tf.Tensor2D {
  return hT ? (tf.transpose(tf.matMul(W, hT)) as tf.Tensor2D) : matMul2d(h, W, false, true);
}

/** Gemma's logit soft-capping cap·tanh(z/cap); returns the capped logits and tanh(z/cap) for the gradient. */
function softcap(z: tf.Tensor2D, cap: number | null): { z: tf.Tensor2D; t: tf.Tensor2D | null } {
  if (cap == null) return { z, t: null };
  const t = tf.tanh(tf.div(z, cap)) as tf.Tensor2D;
  return { z: tf.mul(t, cap) as tf.Tensor2D, t };
}

/**
 * Logits [N, vocab] = h · Wᵀ computed chunk by chunk from `out` (the full matrix is never expanded at once),
 * differentiable in h: dh = Σ_chunks dz_chunk · W_chunk.
 */
export function projectLogits(h: tf.Tensor2D, out: OutputRows): tf.Tensor2D {
  const chunk = vocabChunk(h.shape[0], out.vocab);
  const f = customOp<tf.Tensor2D>(([hi], save) => {
    save([hi]);
    const value = tf.tidy(() => {
      const x = hi as tf.Tensor2D;
      const xT = slowTransposeB() ? (tf.transpose(x) as tf.Tensor2D) : null;
      const parts: tf.Tensor2D[] = [];
      for (let c0 = 0; c0 < out.vocab; c0 += chunk) {
        const W = out.rows(c0, Math.min(out.vocab, c0 + chunk));
        parts.push(logitsOf(x, xT, W));
        W.dispose();
      }
      return parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D);
    });
    return {
      value,
      gradFunc: (dy) => {
        let dh: tf.Tensor2D | null = null;
        for (let c0 = 0; c0 < out.vocab; c0 += chunk) {
          const c1 = Math.min(out.vocab, c0 + chunk);
          const next: tf.Tensor2D = tf.tidy(() => {
            const W = out.rows(c0, c1);
            const g = matMul2d(tf.slice(dy, [0, c0], [-1, c1 - c0]) as tf.Tensor2D, W);
            return (dh ? tf.add(dh, g) : g) as tf.Tensor2D;
          });
          dh?.dispose();
          dh = next;
        }
        return dh!;
      },
    };
  });
  return f(h);
}

/**
 * Mean next-token cross-entropy of h · Wᵀ (optionally soft-capped) against shifted targets (IGNORE_INDEX = skip),
 * without the [N, vocab] logits: the same LossOutput as sparseCrossEntropy, equal to it up to float rounding.
 */
export function chunkedCrossEntropy(
  h: tf.Tensor2D,
  out: OutputRows,
  targets: Int32Array,
  opts: { softcap?: number | null; chunk?: number } = {},
): LossOutput {
  const [N] = h.shape;
  const V = out.vocab;
  const cap = opts.softcap ?? null;
  const chunk = opts.chunk ?? vocabChunk(N, V);
  if (targets.length !== N) throw new Error(`targets has ${targets.length} entries, hidden states have ${N} positions`);
  let count = 0;
  const safe = new Int32Array(N);
  const maskArr = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const t = targets[i];
    if (t === IGNORE_INDEX) continue;
    if (t < 0 || t >= V) throw new Error(`label ${t} at position ${i} is outside the vocabulary [0, ${V})`);
    safe[i] = t;
    maskArr[i] = 1;
    count++;
  }
  const denom = Math.max(count, 1);
  // Per chunk: the counted positions whose target falls in it, as flat indices into the chunk's [N, rows] logits.
  const chunkTargets: { rows: Int32Array; flat: Int32Array }[] = [];
  for (let c0 = 0; c0 < V; c0 += chunk) {
    const rows: number[] = [],
      flat: number[] = [];
    const width = Math.min(V, c0 + chunk) - c0;
    for (let i = 0; i < N; i++) {
      if (maskArr[i] && safe[i] >= c0 && safe[i] < c0 + width) {
        rows.push(i);
        flat.push(i * width + (safe[i] - c0));
      }
    }
    chunkTargets.push({ rows: Int32Array.from(rows), flat: Int32Array.from(flat) });
  }
  let correct: tf.Scalar | null = null;

  const ce = customOp<tf.Scalar>(([hi], save) => {
    const x = hi as tf.Tensor2D;
    const xT = slowTransposeB() ? (tf.transpose(x) as tf.Tensor2D) : null;
    // running max M, sum of exp(z − M), sum of target logits, best logit and its index, per position
    let M: tf.Tensor1D | null = null,
      S: tf.Tensor1D | null = null,
      picked: tf.Scalar = tf.scalar(0),
      best: tf.Tensor1D | null = null,
      arg: tf.Tensor1D | null = null;
    for (let c0 = 0, k = 0; c0 < V; c0 += chunk, k++) {
      const c1 = Math.min(V, c0 + chunk);
      const [nM, nS, nPicked, nBest, nArg] = tf.tidy(() => {
        const W = out.rows(c0, c1);
        const z = softcap(logitsOf(x, xT, W), cap).z;
        const m = tf.max(z, 1) as tf.Tensor1D;
        const newM = M ? (tf.maximum(M, m) as tf.Tensor1D) : m;
        const s = tf.sum(tf.exp(tf.sub(z, tf.expandDims(newM, 1))), 1) as tf.Tensor1D;
        const newS = S && M ? (tf.add(tf.mul(S, tf.exp(tf.sub(M, newM))), s) as tf.Tensor1D) : s;
        const { flat } = chunkTargets[k];
        const p = flat.length
          ? (tf.add(picked, tf.sum(tf.gather(tf.reshape(z, [-1]), tf.tensor1d(flat, 'int32')))) as tf.Scalar)
          : tf.clone(picked);
        const a = tf.add(tf.argMax(z, 1), c0) as tf.Tensor1D;
        // the first maximum wins, as argMax over the whole vocabulary
        const newBest = best ? (tf.maximum(best, m) as tf.Tensor1D) : m;
        const newArg = best && arg ? (tf.where(tf.greater(m, best), a, arg) as tf.Tensor1D) : a;
        return [newM, newS, p, newBest, newArg] as const;
      });
      for (const t of [M, S, picked, best, arg]) t?.dispose();
      [M, S, picked, best, arg] = [nM, nS, nPicked, nBest, nArg];
    }
    xT?.dispose();
    const mask = tf.tensor1d(maskArr);
    const lse = tf.tidy(() => tf.add(M!, tf.log(S!))) as tf.Tensor1D;
    const value = tf.tidy(() => tf.div(tf.sub(tf.sum(tf.mul(lse, mask)), picked), denom)) as tf.Scalar;
    // The forward runs in a scope of its own that ends with it: keep the side output, hand it over below.
    correct = tf.keep(
      tf.tidy(() => tf.sum(tf.mul(tf.cast(tf.equal(arg!, tf.tensor1d(safe, 'int32')), 'float32'), mask)) as tf.Scalar),
    );
    for (const t of [M, S, picked, best, arg, mask]) t?.dispose();
    save([x, lse]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [hs, lse2] = saved as [tf.Tensor2D, tf.Tensor1D];
        const scale = tf.mul(tf.div(tf.tensor1d(maskArr), denom), dy) as tf.Tensor1D; // [N]
        const hsT = slowTransposeB() ? (tf.transpose(hs) as tf.Tensor2D) : null;
        let dh: tf.Tensor2D | null = null;
        for (let c0 = 0, k = 0; c0 < V; c0 += chunk, k++) {
          const c1 = Math.min(V, c0 + chunk);
          const next: tf.Tensor2D = tf.tidy(() => {
            const W = out.rows(c0, c1);
            const { z, t } = softcap(logitsOf(hs, hsT, W), cap);
            let g = tf.mul(tf.exp(tf.sub(z, tf.expandDims(lse2, 1))), tf.expandDims(scale, 1)) as tf.Tensor2D;
            const { rows, flat } = chunkTargets[k];
            if (rows.length) {
              // subtract the scale at each counted target in this chunk: a sparse update, not a one-hot
              const width = c1 - c0;
              const idx = tf.tensor2d(
                Array.from(flat, (f) => [Math.floor(f / width), f % width]).flat(),
                [flat.length, 2],
                'int32',
              );
              const upd = tf.neg(tf.gather(scale, tf.tensor1d(rows, 'int32')));
              g = tf.add(g, tf.scatterND(idx, upd, [N, width])) as tf.Tensor2D;
            }
            if (t) g = tf.mul(g, tf.sub(1, tf.square(t))) as tf.Tensor2D;
            const d = matMul2d(g, W);
            return (dh ? tf.add(dh, d) : d) as tf.Tensor2D;
          });
          dh?.dispose();
          dh = next;
        }
        hsT?.dispose();
        return dh!;
      },
    };
  });
  const loss = ce(h);
  const kept = correct as tf.Scalar | null;
  const owned = tf.clone(kept!); // tracked by the caller's scope, like the loss
  kept!.dispose();
  return { loss, correct: owned, count: tf.scalar(count) };
}
