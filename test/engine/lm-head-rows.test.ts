/**
 * The loss runs the LM head only on trained positions (model.ts: prompt, padding and each row's last position are
 * skipped when that saves enough): its loss, accuracy and LoRA gradients must equal those of the full logits
 * (model.forward) with the same -100 targets, on cpu and wasm, and the row selection must really have run.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { variableGrads } from '../../src/engine/backprop';
import { CausalLM, type TrainBatch } from '../../src/engine/model';
import { IGNORE_INDEX, shiftLabels, sparseCrossEntropy } from '../../src/engine/loss';
import type { ModelFamily } from '../../src/engine/config';
import { Rng } from '../../src/util/rng';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';

const B = 2,
  T = 100,
  PROMPT = 70;

function batch(vocab: number): TrainBatch {
  const rng = new Rng(5);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(vocab));
  // the first PROMPT positions of each row are the prompt (not trained); the second row ends in 10 pads
  const labels = ids.map((t, i) => (i % T < PROMPT || (i >= T && i % T >= T - 10) ? IGNORE_INDEX : t));
  const attentionMask = Uint8Array.from({ length: B * T }, (_, i) => (i >= T && i % T >= T - 10 ? 0 : 1));
  return { inputIds: ids, labels, attentionMask, batchSize: B, seqLen: T };
}

async function lossAndGrads(model: CausalLM, vars: tf.Variable[], b: TrainBatch, full: boolean) {
  const { value, grads } = variableGrads(() => {
    if (!full) return model.loss(b).loss;
    const targets = shiftLabels(b.labels, B, T);
    const logits = tf.reshape(model.forward(b), [B * T, model.config.vocab_size]) as tf.Tensor2D;
    return sparseCrossEntropy(logits, targets).loss;
  }, vars);
  const out = [await value.data(), ...(await Promise.all(vars.map((v) => grads.get(v)!.data())))];
  tf.dispose([value, ...grads.values()].filter((t): t is tf.Tensor => t != null));
  return out.map((a) => Float32Array.from(a as Float32Array));
}

describe.each(['cpu', 'wasm'] as const)('LM head on trained positions only (%s)', (backend) => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  it.each(['llama', 'gpt2', 'gemma3'] as ModelFamily[])(
    '%s: the same loss and LoRA gradients as the full logits',
    async (family) => {
      await initBackend(backend);
      // 4096 x 8 multiply-adds a row: the 142 untrained positions are worth skipping (≥ 2^22)
      const cfg = tinyConfig(family, { vocab_size: 4096, max_position_embeddings: 128 });
      const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
      const adapter = model.attachLora(
        { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false },
        1,
      );
      const rng = new Rng(9);
      for (const l of adapter.layers.values())
        tf.tidy(() =>
          l.B.assign(
            tf.tensor(
              Float32Array.from({ length: l.B.size }, () => rng.uniform() - 0.5),
              l.B.shape,
            ),
          ),
        );
      const vars = [...adapter.variables().values()];
      const b = batch(cfg.vocab_size);
      try {
        const profile = await tf.profile(async () => {
          const [v] = await lossAndGrads(model, vars, b, false);
          return tf.scalar(v[0]);
        });
        expect(profile.kernelNames, 'the row selection ran').toContain('ScatterNd');
        const selected = await lossAndGrads(model, vars, b, false);
        const full = await lossAndGrads(model, vars, b, true);
        expect(selected[0][0]).toBeGreaterThan(1);
        expect(Math.abs(selected[0][0] - full[0][0])).toBeLessThan(1e-5 * full[0][0]);
        let worst = 0;
        let scale = 0;
        for (let i = 1; i < full.length; i++)
          for (let j = 0; j < full[i].length; j++) {
            worst = Math.max(worst, Math.abs(selected[i][j] - full[i][j]));
            scale = Math.max(scale, Math.abs(full[i][j]));
          }
        expect(scale).toBeGreaterThan(1e-3);
        expect(worst).toBeLessThan(1e-5 * scale);
      } finally {
        model.dispose();
      }
    },
    60_000,
  );
});
