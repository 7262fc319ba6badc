/**
 * `npm run soak`: 2,000 LoRA training steps on a tiny model (wasm), printing the live tensor count and memory
 * every 200 steps as JSON lines; exits non-zero if the tensor count after any step differs from step 1's.
 * STEPS / GC (gradient checkpointing) can be set from the environment.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/engine/backend';
import { CausalLM, type TrainBatch } from '../src/engine/model';
import { llamaConfig, type RawTensors } from '../src/engine/config';
import { paramShapes } from '../src/engine/params';
import { Trainer } from '../src/train/trainer';
import { Rng } from '../src/util/rng';

const STEPS = Number(process.env.STEPS ?? 2000);
const cfg = llamaConfig({
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  max_position_embeddings: 128,
});

async function main() {
  await initBackend('wasm');
  const rng = new Rng(1);
  const raw: RawTensors = new Map();
  for (const [name, shape] of paramShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    raw.set(name, {
      shape,
      data: Float32Array.from({ length: n }, () => (name.includes('norm') ? 1 : 0.1 * (2 * rng.uniform() - 1))),
    });
  }
  const model = CausalLM.fromRaw(cfg, raw);
  const adapter = model.attachLora(
    { r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: 'all-linear', use_rslora: false },
    0,
  );
  const B = 4,
    T = 64;
  const batches: TrainBatch[] = Array.from({ length: 8 }, () => {
    const ids = Int32Array.from({ length: B * T }, () => 3 + rng.int(250));
    return { inputIds: ids, labels: ids, batchSize: B, seqLen: T };
  });
  const trainer = new Trainer<TrainBatch>(
    {
      vars: adapter.variables(),
      lossFn: (b) => model.loss(b, { dropoutSeed: rng.int(1 << 30), gradientCheckpointing: !!process.env.GC }),
    },
    { learning_rate: 1e-3, max_steps: STEPS, lr_scheduler_type: 'cosine', warmup_ratio: 0.05, seed: 0 },
  );
  let first = -1,
    bad = 0;
  const wasmHeap = () => {
    const w = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm;
    return w ? Math.round(w.HEAPU8.length / 2 ** 20) : null;
  };
  const t0 = performance.now();
  await trainer.trainSteps({
    getBatch: ({ step }) => batches[step % batches.length],
    onStep: (m) => {
      if (m.step === 1) first = m.numTensors;
      if (m.numTensors !== first) bad++;
      if (m.step === 1 || m.step % 200 === 0) {
        console.log(
          JSON.stringify({
            step: m.step,
            loss: +m.loss.toFixed(4),
            live_tensors: m.numTensors,
            tf_bytes_mb: +(tf.memory().numBytes / 2 ** 20).toFixed(2),
            wasm_heap_mb: wasmHeap(),
            rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
            heap_used_mb: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
            elapsed_s: +((performance.now() - t0) / 1000).toFixed(1),
          }),
        );
      }
    },
  });
  console.log(JSON.stringify({ steps: STEPS, steps_with_other_tensor_count: bad, live_tensors_step1: first }));
  if (bad) process.exit(1);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
