/** The wasm backend's in-place Slice and SplitV (src/engine/wasm-slice.ts) against values picked out by hand. */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/util/rng';

const rng = new Rng(11);

/** The box [begin, begin + size) of a row-major array of `shape`, by index arithmetic. */
function box(data: Float32Array, shape: number[], begin: number[], size: number[]): number[] {
  const out: number[] = [];
  const n = size.reduce((a, b) => a * b, 1);
  for (let i = 0; i < n; i++) {
    let rest = i,
      off = 0,
      stride = 1;
    const idx = new Array<number>(shape.length);
    for (let a = shape.length - 1; a >= 0; a--) {
      idx[a] = rest % size[a];
      rest = Math.floor(rest / size[a]);
    }
    for (let a = shape.length - 1; a >= 0; a--) {
      off += (begin[a] + idx[a]) * stride;
      stride *= shape[a];
    }
    out.push(data[off]);
  }
  return out;
}

describe('wasm Slice / SplitV in place', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('slices random boxes of tensors of rank 1 to 5 exactly', async () => {
    for (let trial = 0; trial < 60; trial++) {
      const rank = 1 + (trial % 5);
      const shape = Array.from({ length: rank }, () => 1 + rng.int(5));
      const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i + 0.5);
      const begin = shape.map((d) => rng.int(d));
      const size = shape.map((d, a) => (rng.uniform() < 0.3 ? d - begin[a] : 1 + rng.int(d - begin[a])));
      const x = tf.tensor(data, shape);
      const y = tf.slice(x, begin, size);
      expect(y.shape).toEqual(size);
      expect(Array.from(await y.data()), `[${shape}] at [${begin}] size [${size}]`).toEqual(
        box(data, shape, begin, size),
      );
      tf.dispose([x, y]);
    }
  });

  it('splits along every axis into pieces that concatenate back to the input', async () => {
    const shape = [3, 4, 5];
    const data = Float32Array.from({ length: 60 }, (_, i) => i);
    const x = tf.tensor3d(data, shape as [number, number, number]);
    for (let axis = 0; axis < 3; axis++) {
      const sizes = axis === 0 ? [1, 2] : axis === 1 ? [1, 1, 2] : [2, 3];
      const parts = tf.split(x, sizes, axis);
      let begin = 0;
      for (const [i, p] of parts.entries()) {
        const b = [0, 0, 0],
          s = [...shape];
        b[axis] = begin;
        s[axis] = sizes[i];
        expect(Array.from(await p.data())).toEqual(box(data, shape, b, s));
        begin += sizes[i];
      }
      expect(Array.from(await tf.concat(parts, axis).data())).toEqual(Array.from(data));
    }
  });

  it('a split of a flat vector (the AdamW update) returns each piece once, leaving nothing behind', async () => {
    const v = tf.range(0, 1000, 1, 'float32');
    const before = tf.memory().numTensors;
    const parts = tf.split(v, [100, 400, 1, 499]);
    expect(tf.memory().numTensors).toBe(before + 4);
    expect(Array.from(await parts[2].data())).toEqual([500]);
    expect(Array.from(await parts[3].data()).slice(-2)).toEqual([998, 999]);
  });

  it('strings still slice (through tfjs-wasm own kernel)', async () => {
    const s = tf.tensor1d(['a', 'b', 'c', 'd'], 'string');
    expect(await tf.slice(s, [1], [2]).array()).toEqual(['b', 'c']);
  });
});
