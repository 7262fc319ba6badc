/**
 * `npm run bench:memory`: peak memory of one LoRA step (batch 4 x seq 128, gradient checkpointing, LoRA r 8 on
 * q_proj/v_proj) for the real shapes of the small models people fine-tune, per frozen_dtype, on wasm in Node, as
 * JSON lines. Each (shape, frozen_dtype) runs in a child process of its own so its peaks are its own: the process's
 * peak RSS, the wasm heap (linear memory only grows, so its final size is its peak: the 4 GB ceiling applies to it),
 * the compact weights held outside it, ms/step and the live tensor count after step 1 and after the last step.
 * Weights are random in the real shapes. A shape the memory guard refuses at a frozen_dtype is reported as refused
 * with the guard's figures instead of being run.
 *
 *   npm run bench:memory                       every shape at the frozen_dtypes listed in PLAN
 *   npm run bench:memory -- smollm2 int8       one shape at one frozen_dtype (what each child runs)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/engine/backend';
import type { FrozenDtype } from '../src/engine/frozen';
import type { ModelConfig } from '../src/engine/config';
import { compactWeightBytes, countParams } from '../src/engine/params';
import { wasmHeapBytes } from '../src/engine/wasm-heap';
import { backendMemoryLimit, checkModelFits } from '../src/train/memory-guard';
import {
  SMOLLM2_LORA,
  benchModel,
  gemma3_270m,
  plainMatmul,
  qwen25_05b,
  qwen3_06b,
  randomCompactModel,
  smollm2,
} from '../src/train/benchmark';

const SHAPES: Record<string, () => ModelConfig> = {
  smollm2,
  'qwen2.5-0.5b': qwen25_05b,
  'qwen3-0.6b': qwen3_06b,
  'gemma-3-270m': gemma3_270m,
};

/** What `npm run bench:memory` runs: each shape at the storage that should fit the 4 GB heap, and float32 beside. */
const PLAN: [string, FrozenDtype[]][] = [
  ['smollm2', ['float32', 'float16', 'int8']],
  ['qwen2.5-0.5b', ['float32', 'int8']],
  ['qwen3-0.6b', ['float32', 'int8']],
  ['gemma-3-270m', ['float32', 'float16']],
];

const STEPS = Number(process.env.BENCH_STEPS ?? 1);
const MB = (b: number) => Math.round(b / 2 ** 20);

async function one(shape: string, dtype: FrozenDtype): Promise<void> {
  const cfg = SHAPES[shape]?.();
  if (!cfg) throw new Error(`unknown shape ${shape} (known: ${Object.keys(SHAPES).join(', ')})`);
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 25);
  await initBackend('wasm');
  const params = countParams(cfg);
  const base = { bench: 'frozen_memory', model: shape, params, frozen_dtype: dtype, batch: 4, seq: 128 };
  try {
    checkModelFits(params, 'wasm', backendMemoryLimit('wasm'), { config: cfg, frozenDtype: dtype });
  } catch (e) {
    clearInterval(sampler);
    console.log(JSON.stringify({ ...base, refused: (e as Error).message.split('. ')[0] }));
    return;
  }
  const matmul = await plainMatmul(512);
  let line: Awaited<ReturnType<typeof benchModel>>;
  try {
    const model = randomCompactModel(cfg, dtype);
    line = await benchModel(shape, cfg, model, SMOLLM2_LORA, true, matmul.gflops, STEPS);
  } catch (e) {
    clearInterval(sampler);
    const m = (e as Error).message.split('\n')[0];
    console.log(JSON.stringify({ ...base, failed: m, wasm_heap_mb: MB(wasmHeapBytes() ?? 0) }));
    return;
  }
  clearInterval(sampler);
  console.log(
    JSON.stringify({
      ...base,
      ms_per_step: line.ms_per_step,
      tokens_per_s: line.tokens_per_s,
      peak_rss_mb: MB(Math.max(peakRss, process.memoryUsage().rss)),
      wasm_heap_mb: MB(wasmHeapBytes() ?? 0),
      compact_weights_mb: MB(compactWeightBytes(cfg, dtype)),
      live_tensors_after_step1: line.live_tensors_after_step1,
      live_tensors: line.live_tensors,
      tensors_now: tf.memory().numTensors,
    }),
  );
}

const [shape, dtype] = process.argv.slice(2);
if (shape && dtype) {
  await one(shape, dtype as FrozenDtype);
} else {
  const self = fileURLToPath(import.meta.url);
  for (const [s, dtypes] of PLAN) {
    for (const d of dtypes) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, s, d], {
        stdio: ['ignore', 'pipe', 'inherit'],
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      const out = r.stdout.trim();
      console.log(
        out ||
          JSON.stringify({
            bench: 'frozen_memory',
            model: s,
            frozen_dtype: d,
            failed: `exit ${r.status} ${r.signal ?? ''}`,
          }),
      );
    }
  }
}
