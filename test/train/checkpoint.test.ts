/**
 * Checkpoints on a tiny random model (cpu): SHA-256 against node:crypto; checkpoint → bytes → a fresh model and
 * session → the rest of the run gives bit-for-bit the weights and the history of an uninterrupted run (dropout,
 * accumulation with a short last window, cosine warmup, validation); periodic saves during run() change nothing;
 * restores are refused with readable messages for another model, other data or another configuration, and a
 * damaged file is detected.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import type { ModelConfig, RawTensors } from '../../src/engine/config';
import type { Tokenizer } from '../../src/io/tokenizer';
import {
  CheckpointFormatError,
  CheckpointMismatchError,
  decodeCheckpointBundle,
  decodeCheckpointFiles,
  encodeCheckpointBundle,
  encodeCheckpointFiles,
  hashModelWeights,
  isCheckpointBundle,
  type SessionCheckpoint,
} from '../../src/train/checkpoint';
import { FinetuneSession } from '../../src/train/session';
import type { FinetuneConfig } from '../../src/train/config';
import { Rng } from '../../src/util/rng';
import { Sha256, sha256Hex, toHex } from '../../src/util/sha256';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';
import { adapterValues, expectSameBits } from '../fixtures/adapter-values';
import { ToyTokenizer } from '../data/toy-tokenizer';

/** History without the wall-clock fields (they differ between any two runs). */
const logged = (s: FinetuneSession) =>
  s.history.map(({ tokens_per_sec: _a, ms_per_step: _b, eval_runtime: _c, num_tensors: _d, ...h }) => h);

describe('SHA-256', () => {
  it('the JS implementation equals node:crypto for every padding case and in chunks', async () => {
    const rng = new Rng(5);
    for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 100_003]) {
      const b = Uint8Array.from({ length: n }, () => rng.int(256));
      const want = createHash('sha256').update(b).digest('hex');
      expect(toHex(new Sha256().update(b).digest()), `n=${n}`).toBe(want);
      const chunked = new Sha256();
      for (let i = 0; i < n;) {
        const k = 1 + rng.int(97);
        chunked.update(b.subarray(i, i + k));
        i += k;
      }
      expect(toHex(chunked.digest())).toBe(want);
      expect(await sha256Hex(b)).toBe(want); // crypto.subtle in Node
    }
    expect(toHex(new Sha256().update('abc').digest())).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});

describe('FinetuneSession checkpoints (tiny model, cpu)', () => {
  const tok: Tokenizer = new ToyTokenizer();
  const cfg: ModelConfig = tinyConfig('llama', {
    vocab_size: tok.vocabSize,
    max_position_embeddings: 128,
    hidden_size: 16,
    num_attention_heads: 4,
    head_dim: 4,
  });
  const raw: RawTensors = randomWeights(cfg, 3, 0.2);
  const examples = Array.from({ length: 15 }, (_, i) => ({
    prompt: `q${i} ${'x'.repeat(i % 4)}`,
    completion: `a${i}`,
  }));
  const data = [{ name: 'mem', examples }];
  // 13 train examples (val_size 2) / batch 3 → 5 batches; accumulation 2 → 3 steps per epoch (the last window has 1)
  const config: Partial<FinetuneConfig> = {
    template: { kind: 'instruction' },
    r: 2,
    lora_alpha: 4,
    learning_rate: 2e-2,
    max_length: 64,
    target_modules: 'all-linear',
    per_device_train_batch_size: 3,
    gradient_accumulation_steps: 2,
    lora_dropout: 0.1,
    val_size: 2,
    eval_steps: 4,
    logging_steps: 3,
    warmup_steps: 2,
    lr_scheduler_type: 'cosine',
    weight_decay: 0.01,
    max_steps: 10,
    seed: 11,
  };
  const fresh = () => {
    const model = CausalLM.fromRaw(cfg, raw);
    return { model, s: new FinetuneSession({ model, tokenizer: tok, data, config, baseModelName: 'tiny' }) };
  };
  beforeAll(async () => {
    await initBackend('cpu');
  });

  let reference: { weights: Map<string, Float32Array>; history: ReturnType<typeof logged> };
  it('uninterrupted reference run', async () => {
    const { model, s } = fresh();
    expect([s.batchesPerEpoch, s.stepsPerEpoch, s.maxSteps]).toEqual([5, 3, 10]);
    expect((await s.train()).status).toBe('completed');
    reference = { weights: await adapterValues(model), history: logged(s) };
    expect(
      reference.history.filter((h) => h.eval_loss !== undefined && h.loss === undefined).map((h) => h.step),
    ).toEqual([4, 8, 10]);
    s.dispose();
    model.dispose();
  });

  for (const k of [0, 1, 3, 4, 5, 9]) {
    it(`stop after ${k} step(s), checkpoint → bytes → fresh model and session → the same weights and history`, async () => {
      const a = fresh();
      if (k > 0) {
        const r = await a.s.train({ shouldStop: () => a.s.globalStep >= k });
        expect(r.status).toBe('stopped');
      }
      expect(a.s.globalStep).toBe(k);
      const ck = await a.s.checkpoint();
      expect(ck.meta.progress).toMatchObject({ global_step: k, max_steps: 10, status: k ? 'stopped' : 'idle' });
      expect(ck.meta.data_cursor).toMatchObject({
        epoch: Math.floor(k / 3),
        step_in_epoch: k % 3,
        batch_in_epoch: (k % 3) * 2,
        batches_per_epoch: 5,
        steps_per_epoch: 3,
      });
      expect(ck.meta.optimizer.step).toBe(k);
      const files = await encodeCheckpointFiles(ck);
      const historyAtStop = logged(a.s);
      a.s.dispose();
      a.model.dispose();
      tf.disposeVariables();

      const back = await decodeCheckpointFiles({
        json: files.get('checkpoint.json')!,
        tensors: files.get('tensors.safetensors')!,
      });
      const model = CausalLM.fromRaw(cfg, raw);
      const s = await FinetuneSession.resume({ model, tokenizer: tok, data }, back);
      expect(s.globalStep).toBe(k);
      expect(s.status).toBe(k ? 'stopped' : 'idle');
      expect(logged(s)).toEqual(historyAtStop);
      expect((await s.train()).status).toBe('completed');
      expectSameBits(await adapterValues(model), reference.weights);
      // stopping flushed a partial logging window, so the logs differ only in how steps were grouped
      const losses = (h: ReturnType<typeof logged>) => h.filter((x) => x.loss !== undefined).map((x) => x.step);
      expect(losses(logged(s)).at(-1)).toBe(10);
      expect(logged(s).filter((h) => h.eval_loss !== undefined && h.loss === undefined)).toEqual(
        reference.history.filter((h) => h.eval_loss !== undefined && h.loss === undefined),
      );
      s.dispose();
      model.dispose();
    });
  }

  it('run({ saveSteps, onSave }): saving changes nothing, and every saved checkpoint resumes to the same end', async () => {
    const { model, s } = fresh();
    const saved: { step: number; bundle: Uint8Array }[] = [];
    const r = await s.train({
      saveSteps: 2,
      onSave: (ck) => {
        saved.push({ step: ck.meta.progress.global_step, bundle: encodeCheckpointBundle(ck) });
      },
    });
    expect(r.status).toBe('completed');
    expect(saved.map((x) => x.step)).toEqual([2, 4, 6, 8, 10]);
    expectSameBits(await adapterValues(model), reference.weights);
    expect(logged(s)).toEqual(reference.history); // identical logging windows and evaluations
    s.dispose();
    model.dispose();
    for (const { step, bundle } of saved.slice(0, -1)) {
      expect(isCheckpointBundle(bundle)).toBe(true);
      const ck = decodeCheckpointBundle(bundle);
      const m2 = CausalLM.fromRaw(cfg, raw);
      const s2 = await FinetuneSession.resume({ model: m2, tokenizer: tok, data }, ck);
      expect(s2.globalStep).toBe(step);
      expect((await s2.train()).status).toBe('completed');
      expectSameBits(await adapterValues(m2), reference.weights);
      expect(logged(s2)).toEqual(reference.history); // the unflushed window (steps 7–8 at step 8) was carried over
      s2.dispose();
      m2.dispose();
    }
    // the completed checkpoint restores as completed
    const done = decodeCheckpointBundle(saved.at(-1)!.bundle);
    const m3 = CausalLM.fromRaw(cfg, raw);
    const s3 = await FinetuneSession.resume({ model: m3, tokenizer: tok, data }, done);
    expect(s3.status).toBe('completed');
    expect((await s3.train()).step).toBe(10);
    s3.dispose();
    m3.dispose();
    await expect(s3.train({ saveSteps: 0 })).rejects.toThrow(/saveSteps must be a positive integer/);
  });

  async function stoppedCheckpoint(steps: number): Promise<SessionCheckpoint> {
    const { model, s } = fresh();
    await s.train({ shouldStop: () => s.globalStep >= steps });
    const ck = await s.checkpoint();
    s.dispose();
    model.dispose();
    return ck;
  }

  it('refuses another model, other data, another configuration — and leaves the session untouched', async () => {
    const ck = await stoppedCheckpoint(4);

    const otherRaw = randomWeights(cfg, 4, 0.2);
    const m1 = CausalLM.fromRaw(cfg, otherRaw);
    await expect(FinetuneSession.resume({ model: m1, tokenizer: tok, data }, ck)).rejects.toThrow(
      /cannot resume: the checkpoint was made with a different base model \(tiny, hash sha256:[0-9a-f]+…\) than the one loaded now/,
    );
    m1.dispose();

    // one changed value in one weight is enough
    const tweaked: RawTensors = new Map(
      [...raw].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]),
    );
    tweaked.get('model.norm.weight')!.data[3] += 1e-6;
    const m2 = CausalLM.fromRaw(cfg, tweaked);
    await expect(FinetuneSession.resume({ model: m2, tokenizer: tok, data }, ck)).rejects.toThrow(
      CheckpointMismatchError,
    );
    m2.dispose();

    const m3 = CausalLM.fromRaw(cfg, raw);
    const otherData = [
      { name: 'mem', examples: [...examples.slice(0, 14), { prompt: 'q14 changed', completion: 'a14' }] },
    ];
    await expect(FinetuneSession.resume({ model: m3, tokenizer: tok, data: otherData }, ck)).rejects.toThrow(
      /cannot resume: the training data differ from the checkpoint's \(dataset hash .*examples train\/validation\/test: 13\/2\/0 in the checkpoint, 13\/2\/0 now\)/,
    );

    const s4 = new FinetuneSession({
      model: m3,
      tokenizer: tok,
      data,
      config: { ...config, learning_rate: 1e-2, lora_dropout: 0.2 },
    });
    const before = await adapterValues(m3);
    await expect(s4.restore(ck)).rejects.toThrow(
      /configuration differs from the checkpoint's — learning_rate: 0.02 in the checkpoint, 0.01 now; lora_dropout: 0.1 in the checkpoint, 0.2 now/,
    );
    expect(s4.globalStep).toBe(0);
    expectSameBits(await adapterValues(m3), before);
    expect((await s4.train()).status).toBe('completed'); // still usable
    s4.dispose();
    m3.dispose();
  });

  it('detects damaged and mismatched files; sampled model hashes; no restore while running', async () => {
    const ck = await stoppedCheckpoint(2);
    const files = await encodeCheckpointFiles(ck);
    const t = files.get('tensors.safetensors')!.slice();
    t[t.length - 5] ^= 1;
    await expect(decodeCheckpointFiles({ json: files.get('checkpoint.json')!, tensors: t })).rejects.toThrow(
      /tensors.safetensors: does not match checkpoint.json .* a damaged or mismatched checkpoint/,
    );
    await expect(
      decodeCheckpointFiles({
        json: files.get('checkpoint.json')!.subarray(0, 100),
        tensors: files.get('tensors.safetensors')!,
      }),
    ).rejects.toThrow(CheckpointFormatError);
    const bundle = encodeCheckpointBundle(ck);
    expect(() => decodeCheckpointBundle(bundle.subarray(0, bundle.length - 4))).toThrow(CheckpointFormatError);
    const j = JSON.parse(new TextDecoder().decode(files.get('checkpoint.json')!));
    expect(Object.keys(j).sort()).toEqual([
      'config',
      'created',
      'data_cursor',
      'dataset',
      'format',
      'lora',
      'model',
      'optimizer',
      'progress',
      'rng',
      'schedule',
      'session',
      'tensors',
      'version',
    ]);
    expect(() => decodeCheckpointBundle(encodeCheckpointBundle({ ...ck, meta: { ...ck.meta, version: 99 } }))).toThrow(
      /checkpoint version 99 is not supported/,
    );

    const model = CausalLM.fromRaw(cfg, raw);
    const sampled = await hashModelWeights(model.weights, 'sampled');
    expect(sampled).toMatch(/^sampled:[0-9a-f]{64}$/);
    expect(sampled).not.toBe(ck.meta.model.hash);
    const s = new FinetuneSession({ model, tokenizer: tok, data, config });
    const running = s.train();
    await expect(s.checkpoint()).rejects.toThrow(/training is running/);
    await expect(s.restore(ck)).rejects.toThrow(/training is running/);
    await running;
    const c2 = await s.checkpoint({ modelHash: 'sampled', modelId: 'x/y' });
    expect(c2.meta.model).toMatchObject({ id: 'x/y', hash: sampled });
    s.dispose();
    model.dispose();
  });
});
