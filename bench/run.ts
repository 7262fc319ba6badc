/**
 * `npm run bench`: LoRA training-step throughput on the wasm backend in Node, as JSON lines.
 * One line for a large plain matMul (the backend's attainable rate), then one per model:
 * stories260K (real weights, when ../shared is present) and randomly initialised SmolLM2-135M and
 * GPT-2-small shapes, batch 4 x seq 128. ms/step is the median of >= 5 steps after warm-up.
 *
 * FLOPs are counted from the matmuls a LoRA step needs: forward 2·N per token through every frozen
 * projection and the LM head, the same again for gradients w.r.t. activations (no weight gradients for
 * frozen weights), attention scores/values forward (4·T·d per layer and token) and twice that backward,
 * plus the LoRA matmuls (3 x forward). Recomputation under gradient checkpointing is not useful work and
 * is reported separately (hardware FLOPs). MFU = useful GFLOP/s / plain-matMul GFLOP/s.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_SINGLE_THREAD_REASON, initBackend } from '../src/engine/backend';
import { parseLlama2cCheckpoint } from '../src/io/llama2c';
import { wasmHeapBytes } from '../src/engine/wasm-heap';
import {
  GPT2_LORA,
  SMOLLM2_LORA,
  STORIES_LORA,
  benchModel,
  gpt2small,
  plainMatmul,
  randomInit,
  smollm2,
  type BenchLine,
} from '../src/train/benchmark';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STORIES = path.resolve(ROOT, '..', 'shared', 'models', 'stories260K', 'stories260K.bin');
const args = new Set(process.argv.slice(2));
const STEPS = Number(process.env.BENCH_STEPS ?? 5);
/** Gradient checkpointing for the SmolLM2 and GPT-2 workloads: off by default, BENCH_CHECKPOINTING=1 turns it on. */
const CHECKPOINTING = process.env.BENCH_CHECKPOINTING === '1';
/** BENCH_PROFILE=1 adds `kernel_ms` to each model's line: its kernels by time per step. */
const PROFILE = process.env.BENCH_PROFILE === '1';
const noop = () => {};

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);
const emit = (o: object) => console.log(JSON.stringify(o));

async function main() {
  const report = await initBackend((process.env.BENCH_BACKEND as 'wasm' | 'cpu') ?? 'wasm');
  // tfjs-backend-wasm's Node build is single-threaded; `npm run bench:browser` measures the threaded build
  const threads: BenchLine = { threads: report.wasmThreads ?? 1, threads_note: NODE_SINGLE_THREAD_REASON };
  const matmul = await plainMatmul();
  emit({ ...matmul, ...threads });
  const rate = matmul.gflops;
  const withRss = (line: BenchLine) => ({
    ...line,
    ...threads,
    peak_rss_mb: Math.round(Math.max(peakRss, process.memoryUsage().rss) / 2 ** 20),
    // linear memory only grows: its size now is the peak of every workload so far (run one model for its own)
    wasm_heap_mb: Math.round((wasmHeapBytes() ?? 0) / 2 ** 20),
  });
  const only = (n: string) => args.size === 0 || args.has(n);
  if (only('stories260K')) {
    if (existsSync(STORIES)) {
      const { config, weights } = parseLlama2cCheckpoint(new Uint8Array(readFileSync(STORIES)), 'stories260K.bin');
      emit(withRss(await benchModel('stories260K', config, weights, STORIES_LORA, false, rate, STEPS, noop, PROFILE)));
    } else emit({ bench: 'lora_step', model: 'stories260K', skipped: `not found: ${STORIES}` });
  }
  if (only('smollm2'))
    emit(
      withRss(
        await benchModel(
          'SmolLM2-135M (random init)',
          smollm2(),
          randomInit(smollm2()),
          SMOLLM2_LORA,
          CHECKPOINTING,
          rate,
          STEPS,
          noop,
          PROFILE,
        ),
      ),
    );
  if (only('gpt2'))
    emit(
      withRss(
        await benchModel(
          'GPT-2-small (random init)',
          gpt2small(),
          randomInit(gpt2small()),
          GPT2_LORA,
          CHECKPOINTING,
          rate,
          STEPS,
          noop,
          PROFILE,
        ),
      ),
    );
  clearInterval(sampler);
}

main().catch((e) => {
  clearInterval(sampler);
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
