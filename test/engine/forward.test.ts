import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend';
import { CausalLM, createCache, disposeCache } from '../../src/engine/model';
import { tinyConfig, randomWeights } from '../fixtures/tiny-model';
import { naiveForward } from '../fixtures/naive-forward';

const FAMILIES = [
  ['llama (GQA, untied, half RoPE)', tinyConfig('llama')],
  ['llama (interleaved RoPE, MHA)', tinyConfig('llama', { rope_layout: 'interleaved', num_key_value_heads: 4 })],
  ['qwen2 (q/k/v bias, tied)', tinyConfig('qwen2')],
  ['gpt2 (Conv1D, learned positions)', tinyConfig('gpt2')],
  ['qwen3 (q/k norms, head_dim 4 ≠ hidden/heads)', tinyConfig('qwen3')],
  ['gemma3 (sliding + full layers, two RoPE bases, soft-capping)', tinyConfig('gemma3')],
  ['gpt_neo (unscaled, global + local layers)', tinyConfig('gpt_neo')],
  [
    'qwen3 with a sliding layer (use_sliding_window)',
    tinyConfig('qwen3', { layer_types: ['full_attention', 'sliding_attention'], sliding_window: 3 }),
  ],
] as const;

async function logitsOf(
  model: CausalLM,
  ids: number[][],
  extra: { positionIds?: Int32Array; attentionMask?: Uint8Array; segmentIds?: Int32Array } = {},
) {
  const B = ids.length,
    T = ids[0].length;
  const t = tf.tidy(() => model.forward({ inputIds: Int32Array.from(ids.flat()), batchSize: B, seqLen: T, ...extra }));
  const out = Array.from(await t.data());
  t.dispose();
  return out;
}

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`forward on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    for (const [label, cfg] of FAMILIES) {
      it(`${label}: logits equal an independent float64 forward`, async () => {
        const raw = randomWeights(cfg, 7);
        const model = CausalLM.fromRaw(cfg, raw);
        const ids = [3, 1, 4, 1, 5, 9, 2, 6];
        const got = await logitsOf(model, [ids]);
        const want = naiveForward(cfg, raw, ids).flatMap((r) => Array.from(r));
        let maxDiff = 0;
        for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
        expect(got.length).toBe(ids.length * cfg.vocab_size);
        expect(maxDiff).toBeLessThan(1e-4);
        model.dispose();
      });
    }

    it('right padding: real tokens of a padded row get the same logits as the row alone', async () => {
      const cfg = tinyConfig('llama');
      const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
      const a = [5, 6, 7, 8, 9],
        b = [10, 11, 12];
      const alone = await logitsOf(model, [b]);
      const padded = await logitsOf(model, [a, [...b, 2, 2]], {
        attentionMask: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
      });
      const V = cfg.vocab_size;
      const rowB = padded.slice(5 * V, 5 * V + 3 * V);
      for (let i = 0; i < alone.length; i++) expect(rowB[i]).toBeCloseTo(alone[i], 5);
      model.dispose();
    });

    for (const fam of ['qwen2', 'gemma3', 'gpt_neo'] as const)
      it(`packing (${fam}): two examples in one row with segment ids and restarted positions equal each alone`, async () => {
        const cfg = tinyConfig(fam);
        const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 4));
        const a = [5, 6, 7],
          b = [8, 9, 10, 11];
        const la = await logitsOf(model, [a]),
          lb = await logitsOf(model, [b]);
        const packed = await logitsOf(model, [[...a, ...b]], {
          segmentIds: Int32Array.from([0, 0, 0, 1, 1, 1, 1]),
          positionIds: Int32Array.from([0, 1, 2, 0, 1, 2, 3]),
        });
        const want = [...la, ...lb];
        for (let i = 0; i < want.length; i++) expect(packed[i]).toBeCloseTo(want[i], 5);
        model.dispose();
      });

    for (const [label, cfg] of FAMILIES) {
      it(`${label}: KV-cache decoding reproduces full-sequence logits`, async () => {
        const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 9));
        const ids = [1, 7, 3, 3, 8, 12, 5, 9]; // past the sliding windows (3) of gemma3 and gpt_neo
        const full = await logitsOf(model, [ids]);
        const cache = createCache();
        const V = cfg.vocab_size;
        const before = tf.memory().numTensors;
        // prefill 3 tokens, then one at a time
        const chunks = [ids.slice(0, 3), [ids[3]], [ids[4]], [ids[5]], ids.slice(6)];
        let pos = 0;
        for (const c of chunks) {
          const t = tf.tidy(() =>
            model.forward({ inputIds: Int32Array.from(c), batchSize: 1, seqLen: c.length }, { cache }),
          );
          const got = Array.from(await t.data());
          t.dispose();
          for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(full[pos * V + i], 4);
          pos += c.length;
        }
        expect(cache.length).toBe(8);
        disposeCache(cache);
        expect(tf.memory().numTensors).toBe(before);
        model.dispose();
      });
    }

    it('gemma3: final_logit_softcapping is tanh(logits / c) · c of the uncapped logits, and softcapLogits is that hook', async () => {
      const capped = tinyConfig('gemma3');
      const raw = randomWeights(capped, 8, 2); // large weights: logits well beyond the cap
      const ids = [[3, 1, 4, 1, 5, 9]];
      const a = CausalLM.fromRaw(capped, raw);
      const b = CausalLM.fromRaw({ ...capped, final_logit_softcapping: null }, raw);
      const got = await logitsOf(a, ids);
      const plain = await logitsOf(b, ids);
      const c = capped.final_logit_softcapping!;
      expect(Math.max(...plain.map(Math.abs))).toBeGreaterThan(2 * c);
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(Math.tanh(plain[i] / c) * c, 4);
      const hook = tf.tidy(() => a.softcapLogits(tf.tensor1d(plain)));
      expect(Array.from(await hook.data())).toEqual(got.map((_, i) => expect.closeTo(got[i], 5)));
      hook.dispose();
      a.dispose();
      b.dispose();
    });

    it('refuses to run past the context length', () => {
      const cfg = tinyConfig('llama');
      const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 1));
      const ids = new Int32Array(cfg.max_position_embeddings + 1).fill(3);
      expect(() => tf.tidy(() => model.forward({ inputIds: ids, batchSize: 1, seqLen: ids.length }))).toThrow(
        /context length 16/,
      );
      model.dispose();
    });
  });
}
