/** The live tensor count after step 100 equals that after step 1: stories260K, LoRA with dropout, both with and without gradient checkpointing. */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM, type TrainBatch } from '../../src/engine/model';
import { parseLlama2cCheckpoint } from '../../src/io/llama2c';
import { Trainer } from '../../src/train/trainer';
import { Rng } from '../../src/util/rng';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';

if (!HAVE_STORIES) {
  it.skip(sharedMissing('the stories260K leak test'), () => {});
} else {
  describe('no tensor leaks over 100 optimizer steps (stories260K, wasm)', () => {
    beforeAll(async () => {
      await initBackend('wasm');
    });
    for (const gradientCheckpointing of [false, true]) {
      it(`gradient_checkpointing=${gradientCheckpointing}`, async () => {
        const { config, weights } = parseLlama2cCheckpoint(
          new Uint8Array(readFileSync(path.join(STORIES_DIR, 'stories260K.bin'))),
          'stories260K.bin',
        );
        const model = CausalLM.fromRaw(config, weights);
        const ad = model.attachLora(
          { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: 'all-linear', use_rslora: false },
          1,
        );
        const rng = new Rng(3);
        const B = 2,
          T = 24;
        const batches: TrainBatch[] = Array.from({ length: 4 }, () => {
          const ids = Int32Array.from({ length: B * T }, () => 3 + rng.int(500));
          const labels = ids.map((v, i) => (i % T < 4 ? -100 : v));
          return {
            inputIds: ids,
            labels,
            batchSize: B,
            seqLen: T,
            attentionMask: Uint8Array.from({ length: B * T }, (_, i) => (i >= B * T - 3 ? 0 : 1)),
          };
        });
        const trainer = new Trainer<TrainBatch>(
          {
            vars: ad.variables(),
            lossFn: (b) => model.loss(b, { dropoutSeed: rng.int(1 << 30), gradientCheckpointing }),
          },
          {
            learning_rate: 1e-3,
            max_steps: 100,
            gradient_accumulation_steps: 2,
            warmup_steps: 10,
            lr_scheduler_type: 'cosine',
            seed: 1,
          },
        );
        const counts: number[] = [];
        const res = await trainer.trainSteps({
          getBatch: ({ step, micro }) => batches[(2 * step + micro) % batches.length],
          onStep: (m) => {
            counts[m.step] = m.numTensors;
          },
        });
        expect(res.step).toBe(100);
        const outside = tf.memory().numTensors;
        console.log(
          `live tensors after step 1: ${counts[1]}, after step 100: ${counts[100]} (gradient_checkpointing=${gradientCheckpointing})`,
        );
        expect(counts[100]).toBe(counts[1]);
        expect(counts.filter((c) => c !== undefined && c !== counts[1])).toEqual([]);
        trainer.dispose();
        model.dispose();
        expect(tf.memory().numTensors).toBeLessThan(outside);
      });
    }
  });
}
