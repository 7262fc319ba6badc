/** The ops that save less for the backward pass equal the plain tfjs compositions, values and gradients. */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend';
import { rmsNorm, silu, siluMul } from '../../src/engine/ops';
import { Rng } from '../../src/util/rng';

const rng = new Rng(11);
const rand = (shape: number[], scale = 1) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * (2 * rng.uniform() - 1)),
    shape,
  );

/** max |a − b| / max |b|. */
function relErr(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync(),
    y = b.dataSync();
  let num = 0,
    den = 0;
  for (let i = 0; i < x.length; i++) {
    num = Math.max(num, Math.abs(x[i] - y[i]));
    den = Math.max(den, Math.abs(y[i]));
  }
  return num / den;
}

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`ops saving less on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    it('rmsNorm (keeps x) equals w · x / sqrt(mean(x²) + eps), and so does its gradient', () => {
      const x = rand([6, 32], 3),
        w = rand([32]),
        probe = rand([6, 32]);
      const plain = (v: tf.Tensor) => tf.mul(tf.mul(v, tf.rsqrt(tf.add(tf.mean(tf.square(v), -1, true), 1e-5))), w);
      const loss = (op: (v: tf.Tensor) => tf.Tensor) => (v: tf.Tensor) => tf.sum(tf.mul(op(v), probe));
      expect(relErr(rmsNorm(x, w, 1e-5), plain(x))).toBeLessThan(1e-5);
      expect(relErr(tf.grad(loss((v) => rmsNorm(v, w, 1e-5)))(x), tf.grad(loss(plain))(x))).toBeLessThan(1e-5);
    });

    it('siluMul (keeps g and u) equals silu(g) · u, and so do both gradients', () => {
      const g = rand([5, 40], 4),
        u = rand([5, 40], 2),
        probe = rand([5, 40]);
      const loss = (op: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(op(a, b), probe));
      const plain = (a: tf.Tensor, b: tf.Tensor) => tf.mul(silu(a), b);
      expect(relErr(siluMul(g, u), plain(g, u))).toBeLessThan(1e-5);
      const [dg, du] = tf.grads(loss(siluMul))([g, u]);
      const [rg, ru] = tf.grads(loss(plain))([g, u]);
      expect(relErr(dg, rg)).toBeLessThan(1e-5);
      expect(relErr(du, ru)).toBeLessThan(1e-5);
    });
  });
}
