/**
 * Exact resume on stories260K (wasm) with 84 examples of the demo data (public/datasets/tiny-tasks.jsonl): dropout
 * 0.1 and gradient accumulation 2, so the RNG (dropout seeds) and the data cursor really matter. Runs N steps uninterrupted,
 * then for each k: k steps, checkpoint, serialise to bytes, dispose everything, a fresh model and session from the
 * bytes, the remaining steps. The per-step losses after the resume equal the uninterrupted run's within 1e-5 and the
 * final LoRA weights within 1e-6 (in practice they are bit-identical).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { parseLlama2cCheckpoint } from '../../src/io/llama2c';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import {
  decodeCheckpointBundle,
  decodeCheckpointFiles,
  encodeCheckpointBundle,
  encodeCheckpointFiles,
} from '../../src/train/checkpoint';
import { FinetuneSession } from '../../src/train/session';
import type { FinetuneConfig } from '../../src/train/config';
import { HAVE_STORIES, ROOT, STORIES_DIR, sharedMissing } from '../helpers';

if (!HAVE_STORIES) {
  it.skip(sharedMissing('exact resume on stories260K (models/stories260K/stories260K.bin)'), () => {});
} else {
  describe('exact resume on stories260K (wasm)', () => {
    const ckptBytes = new Uint8Array(readFileSync(path.join(STORIES_DIR, 'stories260K.bin')));
    const tok = parseLlama2cTokenizer(
      new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin'))),
      'tok512.bin',
      512,
    );
    // the first 84 examples of the demo set (an epoch of 6 steps, so that N steps cross an epoch boundary)
    const demo = readFileSync(path.join(ROOT, 'public/datasets/tiny-tasks.jsonl'), 'utf8').split('\n');
    const data = [{ name: 'tiny-tasks-84.jsonl', bytes: demo.slice(0, 84).join('\n') }];
    const loadModel = () => {
      const { config, weights } = parseLlama2cCheckpoint(ckptBytes, 'stories260K.bin');
      return CausalLM.fromRaw(config, weights);
    };
    const N = 14;
    const config: Partial<FinetuneConfig> = {
      template: { kind: 'instruction' },
      eos_token: '\n',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.1,
      target_modules: 'all-linear',
      learning_rate: 3e-3,
      per_device_train_batch_size: 8,
      gradient_accumulation_steps: 2,
      max_length: 64,
      seed: 3,
      logging_steps: 1,
      warmup_ratio: 0.1,
      lr_scheduler_type: 'cosine',
      weight_decay: 0.01,
      max_steps: N,
    };
    beforeAll(async () => {
      expect((await initBackend('wasm')).backend).toBe('wasm');
    });
    afterAll(() => {
      tf.disposeVariables();
    });

    const stepLosses = (s: FinetuneSession) =>
      new Map(s.history.filter((h) => h.loss !== undefined).map((h) => [h.step, h.loss!]));
    async function weightsOf(model: CausalLM): Promise<Map<string, Float32Array>> {
      const out = new Map<string, Float32Array>();
      for (const [n, v] of model.adapter!.variables()) out.set(n, Float32Array.from((await v.data()) as Float32Array));
      return out;
    }

    let ref: { losses: Map<number, number>; weights: Map<string, Float32Array> };
    it(`uninterrupted: ${N} steps across an epoch boundary`, async () => {
      const model = loadModel();
      const s = new FinetuneSession({
        model,
        tokenizer: tok,
        data,
        config,
        baseModelName: 'karpathy/tinyllamas/stories260K',
      });
      // 84 examples / 8 → 11 batches; accumulation 2 → 6 steps per epoch, the 6th with one micro-batch
      expect([s.data.train.examples.length, s.batchesPerEpoch, s.stepsPerEpoch, s.maxSteps]).toEqual([84, 11, 6, N]);
      expect((await s.train()).status).toBe('completed');
      ref = { losses: stepLosses(s), weights: await weightsOf(model) };
      expect(ref.losses.size).toBe(N);
      console.log(`[resume] uninterrupted losses: ${[...ref.losses.values()].map((x) => x.toFixed(5)).join(' ')}`);
      s.dispose();
      model.dispose();
    });

    for (const [k, form] of [
      [5, 'files'],
      [6, 'bundle'],
      [9, 'files'],
    ] as const) {
      it(`k = ${k}: checkpoint (${form}) → bytes → fresh model + session → remaining ${N - k} steps match`, async () => {
        const model = loadModel();
        const s = new FinetuneSession({
          model,
          tokenizer: tok,
          data,
          config,
          baseModelName: 'karpathy/tinyllamas/stories260K',
        });
        expect((await s.train({ shouldStop: () => s.globalStep >= k })).status).toBe('stopped');
        expect(s.globalStep).toBe(k);
        const before = stepLosses(s);
        const ck = await s.checkpoint();
        let bytes: Uint8Array[];
        if (form === 'files') {
          const f = await encodeCheckpointFiles(ck);
          bytes = [f.get('checkpoint.json')!, f.get('tensors.safetensors')!];
        } else {
          bytes = [encodeCheckpointBundle(ck)];
        }
        s.dispose();
        model.dispose();
        tf.disposeVariables();

        const ck2 =
          form === 'files'
            ? await decodeCheckpointFiles({ json: bytes[0], tensors: bytes[1] })
            : decodeCheckpointBundle(bytes[0]);
        const model2 = loadModel();
        const s2 = await FinetuneSession.resume({ model: model2, tokenizer: tok, data }, ck2);
        expect(s2.globalStep).toBe(k);
        const live = tf.memory().numTensors; // restore made the optimizer; training after it must not add tensors
        expect((await s2.train()).status).toBe('completed');
        expect(tf.memory().numTensors).toBe(live);
        const after = stepLosses(s2);
        let dLoss = 0;
        for (let step = 1; step <= N; step++) {
          const want = ref.losses.get(step)!;
          const got = step <= k ? before.get(step)! : after.get(step)!;
          expect(Math.abs(got - want), `step ${step}`).toBeLessThanOrEqual(1e-5);
          if (step > k) dLoss = Math.max(dLoss, Math.abs(got - want));
        }
        const w = await weightsOf(model2);
        let dW = 0;
        for (const [n, x] of ref.weights) {
          const y = w.get(n)!;
          for (let i = 0; i < x.length; i++) dW = Math.max(dW, Math.abs(x[i] - y[i]));
        }
        expect(dW).toBeLessThanOrEqual(1e-6);
        const size = bytes.reduce((a, b) => a + b.length, 0);
        console.log(
          `[resume] k=${k} (${form}, ${size} bytes): losses before ${[...before.values()].map((x) => x.toFixed(5)).join(' ')} | ` +
            `after ${[...after.entries()]
              .filter(([st]) => st > k)
              .map(([, x]) => x.toFixed(5))
              .join(' ')}; ` +
            `max |Δloss| ${dLoss.toExponential(2)}, max |ΔLoRA| ${dW.toExponential(2)}`,
        );
        s2.dispose();
        model2.dispose();
      });
    }
  });
}
