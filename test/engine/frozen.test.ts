/**
 * Frozen weights stored compact (src/engine/frozen.ts) and the chunked LM head / loss (src/engine/lm-head.ts):
 * the 16-bit conversion against an exhaustive decode of binary16, int8 error bounds, the model in float16/int8 giving
 * the same LoRA gradients as a float32 model holding the same (expanded) values, the chunked loss equal to the plain
 * one in value and gradient (soft-capped too), and no tensor outliving a step.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { compactableWeights } from '../../src/engine/params';
import { slowTransposeB } from '../../src/engine/ops';
import type { RawTensors } from '../../src/engine/config';
import {
  compactWeight,
  expandRowRange,
  expandRows,
  expandWeight,
  toHalfBits,
  type CompactWeight,
} from '../../src/engine/frozen';
import { chunkedCrossEntropy, projectLogits } from '../../src/engine/lm-head';
import { sparseCrossEntropy } from '../../src/engine/loss';
import { tinyConfig, randomWeights, tinyTrainBatch } from '../fixtures/tiny-model';
import { Rng } from '../../src/util/rng';
import { parseLlama2cCheckpoint } from '../../src/io/llama2c';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';

/** binary16 → number, written from the IEEE 754 definition. */
function halfValue(h: number): number {
  const s = h >> 15 ? -1 : 1,
    e = (h >> 10) & 31,
    m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * 2 ** (e - 15) * (1 + m / 1024);
}

describe('16-bit and 8-bit storage', () => {
  it('float → half rounds to the nearest binary16 (ties to even), including subnormals and overflow', () => {
    const rng = new Rng(3);
    const xs = [0, -0, 1, -2.5, 65504, 65519.99, 65520, 1e-8, 2 ** -25, 6.1e-5, 3.14159, -1e-3];
    for (let i = 0; i < 20000; i++) xs.push((rng.uniform() - 0.5) * 2 ** (Math.floor(rng.uniform() * 40) - 25));
    for (const x of xs) {
      const xf = Math.fround(x);
      const h = toHalfBits(xf);
      const v = halfValue(h);
      if (Math.abs(xf) >= 65520) {
        expect(v).toBe(Math.sign(xf) * Infinity);
        continue;
      }
      // no other finite half of the same sign is closer
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) > 0x7bff || n < 0 || n >> 15 !== h >> 15) continue;
        const d = Math.abs(halfValue(n) - xf),
          d0 = Math.abs(v - xf);
        expect(d0 <= d).toBe(true);
        if (d0 === d) expect(h & 1).toBe(0);
      }
    }
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(65504)).toBe(0x7bff);
    expect(toHalfBits(65520)).toBe(0x7c00);
    expect(toHalfBits(2 ** -24)).toBe(1);
  });

  it('16-bit storage: bfloat16 values are kept exactly; others as half within 2^-11 relative error', () => {
    const rng = new Rng(4);
    const bf = new Float32Array(64).map(() => Math.fround(rng.uniform() - 0.5));
    const u = new Uint32Array(bf.buffer);
    for (let i = 0; i < u.length; i++) u[i] &= 0xffff0000;
    const cb = compactWeight(bf, [8, 8], 'float16');
    expect(cb.format).toBe('bf16');
    expect(Array.from(expandWeight(cb))).toEqual(Array.from(bf));

    const x = new Float32Array(64).map(() => rng.uniform() - 0.5);
    const ch = compactWeight(x, [8, 8], 'float16');
    expect(ch.format).toBe('f16');
    expect(ch.data.byteLength).toBe(128);
    const back = expandWeight(ch);
    for (let i = 0; i < x.length; i++) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11);

    const big = Float32Array.from([1e5, -3, 0.5, 7]);
    expect(compactWeight(big, [2, 2], 'float16').format).toBe('bf16'); // beyond half's range
  });

  it('int8 keeps one absmax scale per output channel: error ≤ scale/2, the extreme exact, rows and columns', () => {
    const rng = new Rng(5);
    const R = 6,
      C = 10;
    const x = new Float32Array(R * C).map((_, i) => (rng.uniform() - 0.5) * (1 + (i % C)));
    for (const axis of [0, 1] as const) {
      const cw = compactWeight(x, [R, C], 'int8', axis);
      expect(cw.data.byteLength).toBe(R * C);
      expect(cw.scales!.length).toBe(axis === 0 ? R : C);
      const back = expandWeight(cw);
      for (let r = 0; r < R; r++) {
        for (let c = 0; c < C; c++) {
          const s = cw.scales![axis === 0 ? r : c];
          expect(Math.abs(back[r * C + c] - x[r * C + c])).toBeLessThanOrEqual(s / 2 + 1e-7);
        }
      }
      // rows and row ranges expand the same values as the whole matrix
      expect(Array.from(expandRows(cw, [3, 0, 3]))).toEqual([
        ...back.slice(3 * C, 4 * C),
        ...back.slice(0, C),
        ...back.slice(3 * C, 4 * C),
      ]);
      expect(Array.from(expandRowRange(cw, 2, 5))).toEqual(Array.from(back.slice(2 * C, 5 * C)));
    }
    expect(() => expandRows(compactWeight(x, [R, C], 'int8'), [R])).toThrow(/outside/);
  });
});

/** A float32 model holding exactly the values a compact model expands to. */
function expandedTwin(raw: RawTensors, compact: Map<string, CompactWeight>): RawTensors {
  const out: RawTensors = new Map();
  for (const [name, t] of raw) {
    const cw = compact.get(name);
    out.set(name, { shape: t.shape, data: cw ? expandWeight(cw) : t.data });
  }
  return out;
}

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`compact frozen weights on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    for (const fam of ['llama', 'qwen2', 'qwen3', 'gemma3', 'gpt2', 'gpt_neo'] as const) {
      for (const dtype of ['float16', 'int8'] as const) {
        it(`${fam}, ${dtype}: loss and LoRA gradients equal a float32 model of the expanded values; no float32 copy stays`, async () => {
          const cfg = tinyConfig(fam, { tie_word_embeddings: fam !== 'llama' });
          const raw = randomWeights(cfg, 21);
          const model = CausalLM.fromRaw(cfg, raw, { frozenDtype: dtype });
          expect(model.frozenDtype).toBe(dtype);
          expect([...model.compact.keys()].sort()).toEqual([...compactableWeights(cfg).keys()].sort());
          for (const name of model.compact.keys()) expect(model.weights.has(name)).toBe(false);
          const twin = CausalLM.fromRaw(cfg, expandedTwin(raw, model.compact));
          const lora = {
            r: 2,
            lora_alpha: 4,
            lora_dropout: 0,
            target_modules: 'all-linear' as const,
            use_rslora: false,
          };
          for (const m of [model, twin]) {
            m.attachLora(lora, 7);
            const rng = new Rng(8);
            for (const l of m.adapter!.layers.values())
              l.B.assign(
                tf.tensor(
                  new Float32Array(l.B.size).map(() => 0.3 * (2 * rng.uniform() - 1)),
                  l.B.shape,
                ),
              );
          }
          const b = tinyTrainBatch();
          const run = (m: CausalLM, gradientCheckpointing = false) =>
            tf.variableGrads(() => m.loss(b, { gradientCheckpointing }).loss, [...m.adapter!.variables().values()]);
          const want = run(twin);
          const got = run(model);
          const before = tf.memory().numTensors;
          const again = run(model, true);
          tf.dispose([again.value, ...Object.values(again.grads)]);
          expect(tf.memory().numTensors).toBe(before); // forward and backward leave no expanded matrix behind
          expect((await got.value.data())[0]).toBeCloseTo((await want.value.data())[0], 5);
          let maxDiff = 0,
            maxAbs = 0;
          const gotGrads = Object.values(got.grads);
          expect(gotGrads.length).toBe(Object.keys(want.grads).length);
          for (const [k, g] of Object.values(want.grads).entries()) {
            const a = await g.data(),
              c = await gotGrads[k].data();
            for (let i = 0; i < a.length; i++) {
              maxDiff = Math.max(maxDiff, Math.abs(a[i] - c[i]));
              maxAbs = Math.max(maxAbs, Math.abs(a[i]));
            }
          }
          expect(maxAbs).toBeGreaterThan(1e-3);
          expect(maxDiff).toBeLessThan(1e-5 * Math.max(1, maxAbs));
          // and generation's forward (KV cache path uses the same linear) gives the twin's logits
          const ids = Int32Array.from([1, 4, 2, 7]);
          const [l1, l2] = tf.tidy(() => [
            model.forward({ inputIds: ids, batchSize: 1, seqLen: 4 }),
            twin.forward({ inputIds: ids, batchSize: 1, seqLen: 4 }),
          ]);
          const d1 = await l1.data(),
            d2 = await l2.data();
          for (let i = 0; i < d1.length; i++) expect(Math.abs(d1[i] - d2[i])).toBeLessThan(1e-4);
          tf.dispose([l1, l2, want.value, got.value, ...Object.values(want.grads), ...Object.values(got.grads)]);
          model.dispose();
          twin.dispose();
        });
      }
    }

    it('setFrozenDtype lowers a float32 model in place (same result as loading it compact) and refuses going back up', async () => {
      const cfg = tinyConfig('llama');
      const raw = randomWeights(cfg, 31);
      const a = CausalLM.fromRaw(cfg, raw);
      const tensorsBefore = tf.memory().numTensors;
      await a.setFrozenDtype('int8');
      // the matrices leave the tensor store (and on wasm without SIMD the transposed LM head the engine kept for speed)
      expect(tf.memory().numTensors).toBe(tensorsBefore - compactableWeights(cfg).size - (slowTransposeB() ? 1 : 0));
      const b = CausalLM.fromRaw(cfg, raw, { frozenDtype: 'int8' });
      for (const [name, cw] of b.compact) expect(Array.from(a.compact.get(name)!.data)).toEqual(Array.from(cw.data));
      await expect(a.setFrozenDtype('float16')).rejects.toThrow(/already stored as int8; load the model again/);
      a.attachLora({ r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q_proj'], use_rslora: false });
      expect(() => a.mergeAdapter()).toThrow(/export the merged model instead/);
      a.dispose();
      b.dispose();
    });

    it('chunked cross-entropy equals the plain one in loss, accuracy and gradient (with and without soft-capping)', async () => {
      const rng = new Rng(9);
      const N = 12,
        D = 6,
        V = 700;
      const h = tf.tensor2d(
        new Float32Array(N * D).map(() => 2 * rng.uniform() - 1),
        [N, D],
      );
      const Wdata = new Float32Array(V * D).map(() => 2 * rng.uniform() - 1);
      const W = tf.tensor2d(Wdata, [V, D]);
      const targets = Int32Array.from({ length: N }, (_, i) => (i % 4 === 3 ? -100 : Math.floor(rng.uniform() * V)));
      const rows = {
        vocab: V,
        hidden: D,
        rows: (a: number, b: number) => tf.tensor2d(Wdata.slice(a * D, b * D), [b - a, D]),
      };
      for (const cap of [null, 3]) {
        const plain = tf.valueAndGrad((x: tf.Tensor) => {
          let z = tf.matMul(x as tf.Tensor2D, W, false, true);
          if (cap) z = tf.mul(tf.tanh(tf.div(z, cap)), cap);
          return sparseCrossEntropy(z, targets).loss;
        })(h);
        const before = tf.memory().numTensors;
        const chunked = tf.valueAndGrad(
          (x: tf.Tensor) => chunkedCrossEntropy(x as tf.Tensor2D, rows, targets, { softcap: cap, chunk: 256 }).loss,
        )(h);
        const lv = (await chunked.value.data())[0],
          pv = (await plain.value.data())[0];
        expect(Math.abs(lv - pv)).toBeLessThan(1e-5);
        const g1 = await chunked.grad.data(),
          g2 = await plain.grad.data();
        let maxDiff = 0;
        for (let i = 0; i < g1.length; i++) maxDiff = Math.max(maxDiff, Math.abs(g1[i] - g2[i]));
        expect(maxDiff).toBeLessThan(1e-6);
        tf.dispose([chunked.value, chunked.grad]);
        // accuracy: the count of argmax hits equals the plain path's
        const [c1, c2] = tf.tidy(() => {
          let z = tf.matMul(h, W, false, true);
          if (cap) z = tf.mul(tf.tanh(tf.div(z, cap)), cap);
          return [
            chunkedCrossEntropy(h, rows, targets, { softcap: cap, chunk: 256 }).correct,
            sparseCrossEntropy(z, targets).correct,
          ];
        });
        expect((await c1.data())[0]).toBe((await c2.data())[0]);
        tf.dispose([c1, c2, plain.value, plain.grad]);
        expect(tf.memory().numTensors).toBe(before - 2);
      }
      // the chunked projection and its gradient match too
      const pz = tf.valueAndGrad((x: tf.Tensor) => tf.sum(tf.square(projectLogits(x as tf.Tensor2D, rows))))(h);
      const qz = tf.valueAndGrad((x: tf.Tensor) => tf.sum(tf.square(tf.matMul(x as tf.Tensor2D, W, false, true))))(h);
      expect(Math.abs((await pz.value.data())[0] - (await qz.value.data())[0])).toBeLessThan(1e-2);
      const a1 = await pz.grad.data(),
        a2 = await qz.grad.data();
      for (let i = 0; i < a1.length; i++) expect(Math.abs(a1[i] - a2[i])).toBeLessThan(1e-3);
      tf.dispose([h, W, pz.value, pz.grad, qz.value, qz.grad]);
    });
  });
}

describe('NLL change from compact storage', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  const meanNll = (model: CausalLM, ids: Int32Array) =>
    tf.tidy(() => model.loss({ inputIds: ids, labels: ids, batchSize: 1, seqLen: ids.length }).loss.dataSync()[0]);

  it.skipIf(!HAVE_STORIES)(
    HAVE_STORIES
      ? 'stories260K: float16 within 1e-3 and int8 within 2e-2 of the float32 mean NLL of the reference text'
      : sharedMissing('stories260K NLL under compact storage'),
    () => {
      const ref = JSON.parse(readFileSync(path.join(STORIES_DIR, 'reference.json'), 'utf8'));
      const ck = new Uint8Array(readFileSync(path.join(STORIES_DIR, 'stories260K.bin')));
      const { config, weights } = parseLlama2cCheckpoint(ck, 'stories260K.bin');
      const ids = Int32Array.from(ref.teacher_forced.tokens as number[]);
      const nll: Record<string, number> = {};
      for (const d of ['float32', 'float16', 'int8'] as const) {
        const m = CausalLM.fromRaw(config, weights, { frozenDtype: d });
        nll[d] = meanNll(m, ids);
        m.dispose();
      }
      console.log(
        `stories260K mean NLL: float32 ${nll.float32.toFixed(6)} (reference ${ref.teacher_forced.mean_nll}), ` +
          `float16 Δ ${(nll.float16 - nll.float32).toExponential(2)}, int8 Δ ${(nll.int8 - nll.float32).toExponential(2)}`,
      );
      expect(Math.abs(nll.float32 - ref.teacher_forced.mean_nll)).toBeLessThan(1e-4);
      expect(Math.abs(nll.float16 - nll.float32)).toBeLessThan(1e-3);
      expect(Math.abs(nll.int8 - nll.float32)).toBeLessThan(2e-2);
      expect(nll.int8).not.toBe(nll.float32); // the int8 path really ran on rounded weights
    },
  );

  for (const fam of ['llama', 'qwen2', 'qwen3', 'gemma3', 'gpt2', 'gpt_neo'] as const) {
    it(`tiny ${fam} (weights uniform in ±0.08): float16 within 1e-3, int8 within 2e-2`, () => {
      const cfg = tinyConfig(fam, { vocab_size: 64, hidden_size: 32, intermediate_size: 64, head_dim: 8 });
      const raw = randomWeights(cfg, 51, 0.08);
      const rng = new Rng(52);
      const ids = Int32Array.from({ length: 16 }, () => Math.floor(rng.uniform() * 64));
      const nll: Record<string, number> = {};
      for (const d of ['float32', 'float16', 'int8'] as const) {
        const m = CausalLM.fromRaw(cfg, raw, { frozenDtype: d });
        nll[d] = meanNll(m, ids);
        m.dispose();
      }
      console.log(
        `tiny ${fam} mean NLL ${nll.float32.toFixed(6)}: float16 Δ ${(nll.float16 - nll.float32).toExponential(2)}, ` +
          `int8 Δ ${(nll.int8 - nll.float32).toExponential(2)}`,
      );
      expect(Math.abs(nll.float16 - nll.float32)).toBeLessThan(1e-3);
      expect(Math.abs(nll.int8 - nll.float32)).toBeLessThan(2e-2);
    });
  }
});
