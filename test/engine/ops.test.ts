/** The wasm fast paths (hand-written gradients) agree with plain tfjs ops, values and gradients. */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { applyRope, bmm, geluNew, linearInOut, linearOutIn, loraPath } from '../../src/engine/ops';
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

  it('loraPath (all products on the SIMD kernel) equals x·Aᵀ·Bᵀ·s, and so do its gradients for x, A and B', async () => {
    const x = rand([37, 24]) as tf.Tensor2D,
      A = rand([4, 24]) as tf.Tensor2D,
      B = rand([13, 4]) as tf.Tensor2D,
      w = rand([37, 13]);
    const plain = (xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor) =>
      tf.mul(tf.matMul(tf.matMul(xi, a, false, true), b, false, true), 2.5);
    expect(await maxDiff(loraPath(x, A, B, 2.5), plain(x, A, B))).toBeLessThan(1e-5);
    const ours = tf.grads((xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(loraPath(xi as tf.Tensor2D, a as tf.Tensor2D, b as tf.Tensor2D, 2.5), w)),
    )([x, A, B]);
    const theirs = tf.grads((xi: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plain(xi, a, b), w)))([
      x,
      A,
      B,
    ]);
    for (let i = 0; i < 3; i++) {
      expect(ours[i].shape).toEqual(theirs[i].shape);
      expect(await maxDiff(ours[i], theirs[i])).toBeLessThan(1e-4);
    }
  });

  // RoPE written out as the papers do: pairs (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin)
  const ropeByPairs = (x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, layout: 'half' | 'interleaved') => {
    const [B, H, T, d] = x.shape;
    if (layout === 'half') {
      const [x1, x2] = tf.split(x, 2, 3);
      return tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x2, cos), tf.mul(x1, sin))], 3);
    }
    const [xe, xo] = tf.split(tf.reshape(x, [B, H, T, d / 2, 2]), 2, 4);
    const c = tf.expandDims(cos, 4),
      s = tf.expandDims(sin, 4);
    const pairs = tf.concat([tf.sub(tf.mul(xe, c), tf.mul(xo, s)), tf.add(tf.mul(xe, s), tf.mul(xo, c))], 4);
    return tf.reshape(pairs, [B, H, T, d]);
  };
  for (const layout of ['half', 'interleaved'] as const)
    it(`applyRope (${layout}) equals RoPE by pairs, value and input gradient`, async () => {
      const x = rand([2, 3, 5, 8]) as tf.Tensor4D,
        cos = rand([2, 1, 5, 4]) as tf.Tensor4D,
        sin = rand([2, 1, 5, 4]) as tf.Tensor4D,
        w = rand([2, 3, 5, 8]);
      expect(await maxDiff(applyRope(x, cos, sin, layout), ropeByPairs(x, cos, sin, layout))).toBeLessThan(1e-6);
      const g1 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(applyRope(v as tf.Tensor4D, cos, sin, layout), w)))(x);
      const g2 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(ropeByPairs(v as tf.Tensor4D, cos, sin, layout), w)))(x);
      expect(await maxDiff(g1, g2)).toBeLessThan(1e-6);
    });

  it("geluNew (x·σ(2u), one op) equals HF's 0.5·x·(1 + tanh(u)), value and gradient, over [-8, 8]", async () => {
    const x = tf.linspace(-8, 8, 1601);
    const tanhForm = (v: tf.Tensor) =>
      tf.mul(
        tf.mul(v, 0.5),
        tf.add(tf.tanh(tf.mul(tf.add(v, tf.mul(tf.pow(v, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1),
      );
    expect(await maxDiff(geluNew(x), tanhForm(x))).toBeLessThan(2e-6);
    expect(await maxDiff(tf.grad(geluNew)(x), tf.grad(tanhForm)(x))).toBeLessThan(2e-6);
  });
});
