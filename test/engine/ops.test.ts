/** The wasm fast paths (hand-written gradients) agree with plain tfjs ops, values and gradients. */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { bmm, linearInOut, linearOutIn } from '../../src/engine/ops';
import { Rng } from '../../src/util/rng';

const rng = new Rng(9);
const rand = (shape: number[]) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * rng.uniform() - 1),
    shape,
  );

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const x = await a.data(),
    y = await b.data();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('wasm fast paths', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  for (const [label, shape] of [
    ['large items', [3, 200, 100, 120]],
    ['small items', [5, 8, 4, 6]],
  ] as const) {
    it(`bmm (${label}) equals matMul, and so do both gradients`, async () => {
      const [N, M, K, P] = shape;
      const a = rand([N, M, K]) as tf.Tensor3D,
        b = rand([N, K, P]) as tf.Tensor3D,
        w = rand([N, M, P]);
      const f1 = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(bmm(x as tf.Tensor3D, y as tf.Tensor3D), w));
      const f2 = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D), w));
      const [ga1, gb1] = tf.grads(f1)([a, b]);
      const [ga2, gb2] = tf.grads(f2)([a, b]);
      expect(await maxDiff(bmm(a, b), tf.matMul(a, b))).toBeLessThan(1e-4);
      expect(await maxDiff(ga1, ga2)).toBeLessThan(1e-4);
      expect(await maxDiff(gb1, gb2)).toBeLessThan(1e-4);
    });
  }

  it('linearOutIn / linearInOut and their input gradients equal x·Wᵀ and x·W', async () => {
    const x = rand([7, 5]) as tf.Tensor2D,
      Woi = rand([3, 5]) as tf.Tensor2D,
      Wio = rand([5, 3]) as tf.Tensor2D,
      w = rand([7, 3]);
    expect(await maxDiff(linearOutIn(x, Woi), tf.matMul(x, Woi, false, true))).toBeLessThan(1e-5);
    expect(await maxDiff(linearInOut(x, Wio), tf.matMul(x, Wio))).toBeLessThan(1e-5);
    const g1 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(linearOutIn(v as tf.Tensor2D, Woi), w)))(x);
    const g2 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.matMul(v as tf.Tensor2D, Woi, false, true), w)))(x);
    const g3 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(linearInOut(v as tf.Tensor2D, Wio), w)))(x);
    const g4 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.matMul(v as tf.Tensor2D, Wio), w)))(x);
    expect(await maxDiff(g1, g2)).toBeLessThan(1e-5);
    expect(await maxDiff(g3, g4)).toBeLessThan(1e-5);
  });
});
