/** The Trainer driving the real engine (tiny random causal LMs with PEFT LoRA) through the lossFn interface. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM, type TrainBatch } from '../../src/engine/model';
import { Trainer } from '../../src/train/trainer';
import type { StepMetrics } from '../../src/train/metrics';
import { tinyConfig, randomWeights, tinyTrainBatch as batch } from '../fixtures/tiny-model';

type Batch = TrainBatch & { dropoutSeed: number | null };

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`Trainer + engine LoRA on ${backend}`, () => {
    beforeAll(async () => {
      expect((await initBackend(backend)).backend).toBe(backend);
    });
    afterAll(() => tf.disposeVariables());

    for (const family of ['llama', 'gpt2'] as const) {
      it(`${family}: loss falls on a memorised batch, only LoRA params move, tensor count constant`, async () => {
        const cfg = tinyConfig(family, {
          hidden_size: 16,
          num_attention_heads: 4,
          head_dim: 4,
          num_key_value_heads: family === 'gpt2' ? 4 : 2,
        });
        const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
        const ad = model.attachLora(
          { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: 'all-linear', use_rslora: false },
          7,
        );
        const base0 = new Map<string, Float32Array>();
        for (const [n, t] of model.weights) base0.set(n, Float32Array.from((await t.data()) as Float32Array));
        const tr = new Trainer<Batch>(
          { vars: ad.variables(), lossFn: (b) => model.loss(b, { dropoutSeed: b.dropoutSeed }) },
          {
            max_steps: 40,
            learning_rate: 1e-2,
            gradient_accumulation_steps: 2,
            warmup_steps: 4,
            lr_scheduler_type: 'cosine',
            weight_decay: 0.01,
            seed: 5,
          },
        );
        const steps: StepMetrics[] = [];
        await tr.trainSteps({
          getBatch: (req) => ({ ...batch(), dropoutSeed: req.rng.seed() }),
          onStep: (m) => {
            steps.push(m);
          },
        });
        const first = steps[0],
          lastM = steps[steps.length - 1];
        console.log(
          `[${backend}/${family}] loss ${first.loss.toFixed(4)} → ${lastM.loss.toFixed(4)}, acc ${first.accuracy.toFixed(2)} → ${lastM.accuracy.toFixed(2)}, grad_norm ${first.gradNorm.toFixed(3)} → ${lastM.gradNorm.toFixed(3)}, tensors ${first.numTensors}/${lastM.numTensors}, ${lastM.msPerStep.toFixed(1)} ms/step`,
        );
        expect(steps.map((m) => m.tokens)).toEqual(new Array(40).fill(2 * 6)); // 6 trained positions after the shift, 2 micro-batches
        expect(lastM.loss).toBeLessThan(0.5 * first.loss);
        expect(lastM.numTensors).toBe(first.numTensors);
        for (const [n, t] of model.weights) expect(Array.from(await t.data())).toEqual(Array.from(base0.get(n)!));
        tr.dispose();
        ad.dispose();
        model.dispose();
      });
    }
  });
}
