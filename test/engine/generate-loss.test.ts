import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { generate } from '../../src/engine/generate';
import { checkSampling, sampleToken } from '../../src/engine/sampling';
import { shiftLabels, sparseCrossEntropy, IGNORE_INDEX } from '../../src/engine/loss';
import { Rng } from '../../src/util/rng';
import { tinyConfig, randomWeights } from '../fixtures/tiny-model';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('sparse cross-entropy', () => {
  it('equals log-softmax picked by hand, skips -100, and counts correct argmax', async () => {
    const logits = [
      [2, 1, 0],
      [0, 3, 1],
      [1, 1, 5],
      [0, 0, 0],
    ];
    const targets = Int32Array.from([0, 2, IGNORE_INDEX, 1]);
    const out = tf.tidy(() => sparseCrossEntropy(tf.tensor2d(logits), targets));
    const nll = (row: number[], t: number) => Math.log(row.reduce((s, x) => s + Math.exp(x), 0)) - row[t];
    const want = (nll(logits[0], 0) + nll(logits[1], 2) + nll(logits[3], 1)) / 3;
    expect((await out.loss.data())[0]).toBeCloseTo(want, 5);
    expect((await out.count.data())[0]).toBe(3);
    expect((await out.correct.data())[0]).toBe(1); // row 0 right, row 1 wrong, row 3 ties → argmax 0 ≠ 1
    tf.dispose([out.loss, out.count, out.correct]);
    // rows of 9 (on wasm: the kernel's 4-wide sweep and its tail): targets in the tail and in the sweep, a tie
    const wide = [
      [0.5, -1, 2, 0, 0.25, 1.5, -0.75, 3, 4],
      [2, 0, 2, 1, 1, 1, 1, 1, 0],
      [3, 0, -2, 1, 0.5, -1, 2, 6, 1],
    ];
    const wt = Int32Array.from([8, 2, 3]);
    const before = tf.memory().numTensors;
    const o2 = tf.tidy(() => sparseCrossEntropy(tf.tensor2d(wide), wt));
    expect(tf.memory().numTensors).toBe(before + 3);
    expect((await o2.loss.data())[0]).toBeCloseTo(wide.reduce((s, row, i) => s + nll(row, wt[i]), 0) / 3, 5);
    expect((await o2.correct.data())[0]).toBe(1); // row 0 right (4 at 8), row 1 ties 0 and 2 → 0 ≠ 2, row 2 wrong
    tf.dispose([o2.loss, o2.count, o2.correct]);
  });

  // (on wasm the gradient is one kernel of ours: rows of 4 and 7 cover its 4-wide sweep and its tail, targets at
  // both ends of a row)
  it('its hand-written gradient equals softmax − onehot over counted rows / count', async () => {
    const cases: [number[][], Int32Array][] = [
      [
        [
          [0.5, -1, 2, 0],
          [1, 1, 1, 1],
          [3, 0, -2, 1],
        ],
        Int32Array.from([2, IGNORE_INDEX, 0]),
      ],
      [
        [
          [0.5, -1, 2, 0, 0.25, 1.5, -0.75],
          [1, 1, 1, 1, 1, 1, 1],
          [3, 0, -2, 1, 0.5, -1, 2],
        ],
        Int32Array.from([6, 0, IGNORE_INDEX]),
      ],
    ];
    for (const [raw, targets] of cases) {
      const counted = targets.filter((t) => t !== IGNORE_INDEX).length;
      const x = tf.tensor2d(raw);
      const g = tf.grad((l: tf.Tensor) => sparseCrossEntropy(l, targets).loss)(x);
      const got = (await g.array()) as number[][];
      raw.forEach((row, i) => {
        const z = row.reduce((s, v) => s + Math.exp(v), 0);
        row.forEach((v, j) => {
          const want = targets[i] === IGNORE_INDEX ? 0 : (Math.exp(v) / z - (j === targets[i] ? 1 : 0)) / counted;
          expect(got[i][j]).toBeCloseTo(want, 6);
        });
      });
      tf.dispose([x, g]);
    }
  });

  it('rejects labels outside the vocabulary with the position', () => {
    expect(() =>
      tf.tidy(() => {
        sparseCrossEntropy(tf.zeros([2, 4]), Int32Array.from([1, 9]));
      }),
    ).toThrow(/label 9 at position 1.*\[0, 4\)/);
  });

  it('shiftLabels: position t predicts t+1; packed rows never predict across examples', () => {
    expect(Array.from(shiftLabels([5, 6, 7, 8], 1, 4))).toEqual([6, 7, 8, -100]);
    expect(Array.from(shiftLabels([5, 6, 7, 8], 1, 4, [0, 0, 1, 1]))).toEqual([6, -100, 8, -100]);
  });
});

describe('sampling', () => {
  const logits = Float32Array.from([1, 3, 2, 0.5, 2.9]);
  it('greedy picks the argmax; temperature with top-k 1 is greedy', () => {
    expect(sampleToken(logits, {}, new Rng(1))).toBe(1);
    expect(sampleToken(logits, { temperature: 5, topK: 1 }, new Rng(1))).toBe(1);
  });
  it('top-k 2 only ever returns the two best; frequencies follow softmax/T', () => {
    const rng = new Rng(3);
    const counts = new Map<number, number>();
    const N = 20000;
    for (let i = 0; i < N; i++) {
      const t = sampleToken(logits, { temperature: 1, topK: 2 }, rng);
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([1, 4]);
    const p1 = Math.exp(3) / (Math.exp(3) + Math.exp(2.9));
    expect(counts.get(1)! / N).toBeCloseTo(p1, 1);
  });
  it('top-p keeps the smallest prefix reaching p', () => {
    const rng = new Rng(5);
    const seen = new Set<number>();
    // softmax of [1,3,2,0.5,2.9]: 3 and 2.9 carry ~0.74 together; p=0.7 keeps exactly those two
    for (let i = 0; i < 2000; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.7 }, rng));
    expect([...seen].sort()).toEqual([1, 4]);
  });
  it('is deterministic for a seed', () => {
    const a = Array.from(
      { length: 50 },
      (
        (r) => () =>
          sampleToken(logits, { temperature: 1.5 }, r)
      )(new Rng(9)),
    );
    const b = Array.from(
      { length: 50 },
      (
        (r) => () =>
          sampleToken(logits, { temperature: 1.5 }, r)
      )(new Rng(9)),
    );
    expect(a).toEqual(b);
    expect(new Set(a).size).toBeGreaterThan(2);
  });
});

describe('generate', () => {
  it('greedy with cache equals argmax of full forwards, streams tokens, stops at the context length without leaking', async () => {
    const cfg = tinyConfig('llama', { max_position_embeddings: 12 });
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 21));
    const before = tf.memory().numTensors;
    const streamed: number[] = [];
    const res = await generate(model, [1, 5], {
      maxNewTokens: 50,
      onToken: (id) => {
        streamed.push(id);
      },
    });
    expect(res.finishReason).toBe('context');
    expect(res.ids.length).toBe(10); // 2 prompt + 10 new = context 12
    expect(streamed).toEqual(res.ids);
    expect(tf.memory().numTensors).toBe(before);
    // recompute greedily without cache
    const seq = [1, 5];
    for (let i = 0; i < res.ids.length; i++) {
      const row = tf.tidy(() =>
        tf.slice(
          model.forward({ inputIds: Int32Array.from(seq), batchSize: 1, seqLen: seq.length }),
          [0, seq.length - 1, 0],
          [1, 1, cfg.vocab_size],
        ),
      );
      const d = await row.data();
      row.dispose();
      seq.push(d.indexOf(Math.max(...d)));
    }
    expect(seq.slice(2)).toEqual(res.ids);
    model.dispose();
  });

  it('stops on EOS (excluded) and on stop strings (text cut before them)', async () => {
    const cfg = tinyConfig('gpt2');
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 4));
    const free = await generate(model, [1], { maxNewTokens: 8 });
    expect(free.finishReason).toBe('length');
    expect(free.ids).toHaveLength(8);
    const eos = free.ids[3];
    const firstEos = free.ids.indexOf(eos);
    const r1 = await generate(model, [1], { maxNewTokens: 8, eosTokenIds: [eos] });
    expect(r1.finishReason).toBe('eos');
    expect(r1.ids).toEqual(free.ids.slice(0, firstEos));
    const decode = (ids: number[]) => ids.map((i) => String.fromCharCode(97 + i)).join('');
    const stop = decode([free.ids[2]]);
    const r2 = await generate(model, [1], { maxNewTokens: 8, decode, stopStrings: [stop] });
    expect(r2.finishReason).toBe('stop_string');
    expect(r2.text).toBe(decode(free.ids).slice(0, decode(free.ids).indexOf(stop)));
    model.dispose();
  });

  it('sampled generation is reproducible for a seed', async () => {
    const cfg = tinyConfig('qwen2');
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 8));
    const opts = { maxNewTokens: 10, temperature: 1.2, topK: 5, topP: 0.9, seed: 77 };
    const a = await generate(model, [1, 2], opts),
      b = await generate(model, [1, 2], opts);
    expect(a.ids).toEqual(b.ids);
    model.dispose();
  });
});

describe('sampling settings that would give garbage are refused', () => {
  it('a denormal temperature, a negative one, top_p 0 and a fractional top_k', () => {
    expect(() => checkSampling({ temperature: 1e-310 })).toThrow(
      'temperature 1e-310 cannot be sampled with: use 0 for greedy decoding, or a value of at least 0.0001',
    );
    expect(() => checkSampling({ temperature: -1 })).toThrow(/temperature -1 cannot be sampled with/);
    expect(() => checkSampling({ temperature: NaN })).toThrow(/temperature NaN cannot be sampled with/);
    expect(() => checkSampling({ temperature: 1, topP: 0 })).toThrow('top_p must be in (0, 1], got 0');
    expect(() => checkSampling({ topK: 2.5 })).toThrow('top_k must be a whole number ≥ 0 (0 = off), got 2.5');
    for (const ok of [{}, { temperature: 0 }, { temperature: 1e-4, topK: 40, topP: 0.95 }]) checkSampling(ok);
    // At the smallest temperature allowed, sampling still gives a real token (the top one).
    const logits = Float32Array.from([0.1, 3, -2, 2.9]);
    expect(sampleToken(logits, { temperature: 1e-4 }, new Rng(1))).toBe(1);
  });
});
