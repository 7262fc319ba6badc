/** The freeing backward pass gives tf.variableGrads' value and gradients, holds less at its peak and leaks nothing. */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend';
import { variableGrads } from '../../src/engine/backprop';
import { customOp } from '../../src/engine/ops';
import { CausalLM } from '../../src/engine/model';
import type { ModelFamily } from '../../src/engine/config';
import { tinyConfig, randomWeights, tinyTrainBatch } from '../fixtures/tiny-model';
import { Rng } from '../../src/util/rng';

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

function model(family: ModelFamily, layers = 2): CausalLM {
  const cfg = tinyConfig(family, { num_hidden_layers: layers });
  const m = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
  const ad = m.attachLora(
    { r: 2, lora_alpha: 4, lora_dropout: 0.1, target_modules: 'all-linear', use_rslora: false },
    5,
  );
  // non-zero B so that gradients reach A too
  const rng = new Rng(7);
  for (const l of ad.layers.values())
    l.B.assign(
      tf.tensor(
        new Float32Array(l.B.size).map(() => 0.3 * (2 * rng.uniform() - 1)),
        l.B.shape,
      ),
    );
  return m;
}

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`variableGrads (freeing) on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    for (const [family, checkpointing] of [
      ['llama', false],
      ['gpt2', false],
      ['gemma3', false],
      ['llama', true],
    ] as [ModelFamily, boolean][]) {
      it(`${family}${checkpointing ? ' (checkpointed blocks)' : ''}: value and gradients equal tf.variableGrads'`, async () => {
        const m = model(family);
        const vars = [...m.adapter!.variables().values()];
        const batch = tinyTrainBatch();
        const f = () => m.loss(batch, { dropoutSeed: 3, gradientCheckpointing: checkpointing }).loss;
        const ref = tf.variableGrads(f, vars);
        const before = tf.memory().numTensors;
        const got = variableGrads(f, vars);
        expect(tf.memory().numTensors - before).toBe(1 + vars.length); // the value and one gradient per variable
        expect(Math.abs((await got.value.data())[0] - (await ref.value.data())[0])).toBeLessThan(1e-5);
        for (const v of vars) {
          const g = got.grads.get(v)!;
          const r = ref.grads[v.name];
          expect(g.shape).toEqual(r.shape);
          expect(relErr((await g.data()) as Float32Array, (await r.data()) as Float32Array)).toBeLessThan(1e-5);
        }
        got.value.dispose();
        for (const g of got.grads.values()) g?.dispose();
        tf.dispose([ref.value, ...Object.values(ref.grads)]);
        m.dispose();
      });
    }

    it('frees each node as it goes (tfjs holds every gradient to the end), a variable not reached gets null', async () => {
      const x = tf.variable(tf.ones([1000]));
      const unused = tf.variable(tf.zeros([3]));
      // thirty ops that save nothing; each notes the bytes in use when its gradient runs
      let inUse: number[] = [];
      const neg = customOp<tf.Tensor>(([a]) => ({
        value: tf.neg(a),
        gradFunc: (dy) => {
          inUse.push(tf.memory().numBytes);
          return tf.neg(dy);
        },
      }));
      const f = () => {
        let h: tf.Tensor = x;
        for (let i = 0; i < 30; i++) {
          const prev = h;
          h = neg(prev);
          if (prev !== x) prev.dispose(); // the tape needs its id, not its values
        }
        return tf.sum(h) as tf.Scalar;
      };
      const held = () => Math.max(...inUse) - Math.min(...inUse);
      const ref = tf.variableGrads(f, [x]);
      const refHeld = held();
      inUse = [];
      const got = variableGrads(f, [x, unused]);
      expect(got.grads.get(unused)).toBeNull();
      expect(got.grads.get(x)!.dataSync()[0]).toBe(1); // (-1)^30
      expect(refHeld).toBeGreaterThanOrEqual(28 * 4000);
      expect(held()).toBeLessThan(2 * 4000);
      tf.dispose([ref.value, ...Object.values(ref.grads), got.value, got.grads.get(x)!, x, unused]);
    });
  });
}
