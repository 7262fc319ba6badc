/** A tiny softmax classifier with the engine's loss interface, plus a float64 HF/torch reference trainer. */
import * as tf from '@tensorflow/tfjs-core';
import type { LossOutput, TrainableModel } from '../../src/train/trainer';
import { Rng } from '../../src/util/rng';

export const D = 6;
export const C = 5;
export const W_NAME = 'base_model.model.cls.lora_A.weight';
export const B_NAME = 'base_model.model.cls.bias';

export interface Batch {
  x: Float32Array; // [n, D]
  labels: Int32Array; // [n], -100 = not trained
  n: number;
  /** Test hook: make this micro-batch's loss non-finite, or only its gradient. */
  poison?: 'nan-loss' | 'nan-grad' | 'saturated';
}

export function makeBatch(r: Rng, n: number, ignoreFrac = 0.25): Batch {
  const x = Float32Array.from({ length: n * D }, () => r.normal());
  const labels = Int32Array.from({ length: n }, () => (r.next() < ignoreFrac ? -100 : r.int(C)));
  return { x, labels, n };
}

export function concatBatches(bs: Batch[]): Batch {
  const n = bs.reduce((a, b) => a + b.n, 0);
  const x = new Float32Array(n * D),
    labels = new Int32Array(n);
  let o = 0;
  for (const b of bs) {
    x.set(b.x, o * D);
    labels.set(b.labels, o);
    o += b.n;
  }
  return { x, labels, n };
}

export interface Toy extends TrainableModel<Batch> {
  W: tf.Variable;
  b: tf.Variable;
  initW: Float32Array;
  initB: Float32Array;
  values(): Promise<{ W: Float32Array; b: Float32Array }>;
  dispose(): void;
}

export function makeToy(seed = 1, init?: { W: Float32Array; b: Float32Array }): Toy {
  const r = new Rng(seed);
  const initW = init?.W ?? Float32Array.from({ length: C * D }, () => r.normal() * 0.5);
  const initB = init?.b ?? Float32Array.from({ length: C }, () => r.normal() * 0.1);
  // tf variable names deliberately differ from the HF names used as keys
  const W: tf.Variable = tf.tidy(() => tf.variable(tf.tensor2d(initW, [C, D])));
  const b: tf.Variable = tf.tidy(() => tf.variable(tf.tensor1d(initB)));
  const lossFn = (batch: Batch): LossOutput => {
    const X = tf.tensor2d(batch.x, [batch.n, D]);
    let count = 0;
    const mask = new Float32Array(batch.n),
      safe = new Int32Array(batch.n);
    batch.labels.forEach((l, i) => {
      if (l !== -100) {
        mask[i] = 1;
        safe[i] = l;
        count++;
      }
    });
    const logits = tf.add(tf.matMul(X, W, false, true), b);
    const logp = tf.logSoftmax(logits);
    const m = tf.tensor1d(mask);
    const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(safe, 'int32'), C), logp), 1));
    let loss = tf.div(tf.sum(tf.mul(ce, m)), Math.max(count, 1)) as tf.Scalar;
    if (batch.poison === 'nan-loss') loss = tf.add(loss, tf.scalar(NaN)) as tf.Scalar;
    if (batch.poison === 'nan-grad') loss = tf.add(loss, tf.sum(tf.sqrt(tf.square(tf.sub(W, W))))) as tf.Scalar; // value +0, gradient 0/0
    // A saturated model: a positive loss that no longer depends on the weights (gradient exactly 0).
    if (batch.poison === 'saturated') loss = tf.add(tf.mul(loss, 0), Math.log(C)) as tf.Scalar;
    const correct = tf.sum(
      tf.mul(tf.cast(tf.equal(tf.argMax(logits, 1), tf.tensor1d(safe, 'int32')), 'float32'), m),
    ) as tf.Scalar;
    return { loss, correct, count: tf.scalar(count) };
  };
  return {
    vars: new Map<string, tf.Variable>([
      [W_NAME, W],
      [B_NAME, b],
    ]),
    lossFn,
    W,
    b,
    initW,
    initB,
    async values() {
      return { W: (await W.data()) as Float32Array, b: (await b.data()) as Float32Array };
    },
    dispose() {
      W.dispose();
      b.dispose();
    },
  };
}

export interface RefConfig {
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  max_grad_norm: number;
  warmup_steps: number;
  max_steps: number;
}

/**
 * HF Trainer semantics in float64: token-weighted accumulation (num_items_in_batch), clip_grad_norm_
 * (norm before clipping), torch AdamW, linear schedule with warmup, bias without weight decay.
 */
export class RefTrainer {
  W: Float64Array;
  b: Float64Array;
  mW: Float64Array;
  vW: Float64Array;
  mB: Float64Array;
  vB: Float64Array;
  t = 0;
  constructor(
    initW: Float32Array,
    initB: Float32Array,
    readonly c: RefConfig,
  ) {
    this.W = Float64Array.from(initW);
    this.b = Float64Array.from(initB);
    this.mW = new Float64Array(C * D);
    this.vW = new Float64Array(C * D);
    this.mB = new Float64Array(C);
    this.vB = new Float64Array(C);
  }
  lrAt(s: number): number {
    const { warmup_steps: w, max_steps: T, learning_rate: lr } = this.c;
    if (s < w) return (lr * s) / Math.max(1, w);
    return lr * Math.max(0, (T - s) / Math.max(1, T - w));
  }
  step(micro: Batch[]): { loss: number; gradNorm: number; learning_rate: number; tokens: number; correct: number } {
    const gW = new Float64Array(C * D),
      gB = new Float64Array(C);
    let lossSum = 0,
      N = 0,
      correct = 0;
    for (const bt of micro) {
      for (let i = 0; i < bt.n; i++) {
        const y = bt.labels[i];
        if (y === -100) continue;
        N++;
        const z = new Float64Array(C);
        for (let c = 0; c < C; c++) {
          let s = this.b[c];
          for (let d = 0; d < D; d++) s += this.W[c * D + d] * bt.x[i * D + d];
          z[c] = s;
        }
        const mx = Math.max(...z);
        let se = 0;
        for (let c = 0; c < C; c++) se += Math.exp(z[c] - mx);
        const lse = mx + Math.log(se);
        lossSum += lse - z[y];
        let am = 0;
        for (let c = 1; c < C; c++) if (z[c] > z[am]) am = c;
        if (am === y) correct++;
        for (let c = 0; c < C; c++) {
          const dz = Math.exp(z[c] - lse) - (c === y ? 1 : 0);
          gB[c] += dz;
          for (let d = 0; d < D; d++) gW[c * D + d] += dz * bt.x[i * D + d];
        }
      }
    }
    const Ns = Math.max(N, 1);
    for (let i = 0; i < gW.length; i++) gW[i] /= Ns;
    for (let i = 0; i < gB.length; i++) gB[i] /= Ns;
    let sq = 0;
    for (const g of gW) sq += g * g;
    for (const g of gB) sq += g * g;
    const gradNorm = Math.sqrt(sq);
    if (this.c.max_grad_norm > 0) {
      const coef = Math.min(1, this.c.max_grad_norm / (gradNorm + 1e-6));
      for (let i = 0; i < gW.length; i++) gW[i] *= coef;
      for (let i = 0; i < gB.length; i++) gB[i] *= coef;
    }
    const lr = this.lrAt(this.t);
    this.t++;
    const { adam_beta1: b1, adam_beta2: b2 } = this.c;
    const bc1 = 1 - b1 ** this.t,
      bc2 = 1 - b2 ** this.t;
    const adam = (p: Float64Array, m: Float64Array, v: Float64Array, g: Float64Array, wd: number) => {
      for (let i = 0; i < p.length; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= ((lr / bc1) * m[i]) / (Math.sqrt(v[i]) / Math.sqrt(bc2) + this.c.adam_epsilon);
      }
    };
    adam(this.W, this.mW, this.vW, gW, this.c.weight_decay);
    adam(this.b, this.mB, this.vB, gB, 0); // HF: no decay for biases
    return { loss: lossSum / Ns, gradNorm, learning_rate: lr, tokens: N, correct };
  }
}

/** max |a − b| / max(|b|, floor). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  let e = 0;
  for (let i = 0; i < b.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  return e;
}
