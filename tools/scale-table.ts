/**
 * The README's "when to export" table: for each catalog model (models/catalog.json) and a 10,000-example dataset of
 * 128-token examples, one epoch, the estimated time of a LoRA run in the tab against one on a GPU.
 *
 *   npm run bench > bench.jsonl && npx tsx tools/scale-table.ts bench.jsonl
 *
 * In the tab: the useful GFLOP/s `npm run bench` measured on this machine's wasm backend (lora_step lines, batch 4 ×
 * 128) — a model it measured uses its own tokens/s, the others the GFLOP/s of the measured model nearest in size times
 * their FLOPs per token (the bench's count: 4 × the frozen matmul parameters plus attention, ≈ 4 × params). On a GPU:
 * one A100 (312 TFLOP/s bf16) at an assumed 30% MFU, and no faster than 20 ms per optimizer step of 8 examples
 * (kernel launches dominate tiny models); N GPUs with DDP divide it by about N.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLES = 10_000;
const TOKENS = 128;
const GPU_FLOPS = 312e12 * 0.3;
const GPU_MIN_STEP_S = 0.02;
const GPU_BATCH = 8;

interface BenchLine {
  bench: string;
  model?: string;
  tokens_per_s?: number;
  flops_per_token?: number;
  gflops?: number;
  threads?: number;
}

const BENCH_PARAMS: Record<string, number> = {
  stories260K: 260_032,
  'SmolLM2-135M': 134_515_008,
  'GPT-2-small': 124_439_808,
};

function fmt(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

const benchFile = process.argv[2];
if (!benchFile) {
  console.error('usage: npx tsx tools/scale-table.ts <npm run bench output (JSON lines)>');
  process.exit(2);
}
const lines = readFileSync(benchFile, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as BenchLine);
// "SmolLM2-135M (random init)" → "SmolLM2-135M": the bench's shapes, named as in BENCH_PARAMS
const steps = lines
  .filter((l) => l.bench === 'lora_step' && l.model && l.tokens_per_s && l.gflops)
  .map((l) => ({ ...l, model: l.model!.replace(/ \(.*\)$/, '') }));
if (steps.length === 0) throw new Error(`${benchFile}: no lora_step line`);
const catalog = JSON.parse(readFileSync(path.join(ROOT, 'models', 'catalog.json'), 'utf8')) as {
  models: { id: string; params: number }[];
};

console.log(
  `| model | parameters | in the tab (wasm, ${steps[0].threads ?? 1} thread) | 1 GPU (A100, est.) | 8 GPUs (DDP, est.) |`,
);
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const m of catalog.models) {
  // A measured shape is the model's own when their parameter counts agree (the bench builds the catalog's shapes).
  const own = steps.find(
    (s) => BENCH_PARAMS[s.model] !== undefined && Math.abs(BENCH_PARAMS[s.model] - m.params) / m.params < 0.05,
  );
  let tabSeconds: number;
  let how: string;
  if (own) {
    tabSeconds = (EXAMPLES * TOKENS) / own.tokens_per_s!;
    how = 'measured';
  } else {
    const nearest = [...steps].sort(
      (a, b) =>
        Math.abs(Math.log((BENCH_PARAMS[a.model!] ?? 1) / m.params)) -
        Math.abs(Math.log((BENCH_PARAMS[b.model!] ?? 1) / m.params)),
    )[0];
    const flopsPerToken = 4 * m.params;
    tabSeconds = (EXAMPLES * TOKENS * flopsPerToken) / (nearest.gflops! * 1e9);
    how = `scaled from ${nearest.model}`;
  }
  const gpu = Math.max((EXAMPLES * TOKENS * 4 * m.params) / GPU_FLOPS, (EXAMPLES / GPU_BATCH) * GPU_MIN_STEP_S);
  const gpu8 = Math.max(gpu / 8, (EXAMPLES / GPU_BATCH / 8) * GPU_MIN_STEP_S);
  console.log(
    `| ${m.id} | ${(m.params / 1e6).toFixed(m.params < 1e6 ? 2 : 0)} M | ${fmt(tabSeconds)} (${how}) | ${fmt(gpu)} | ${fmt(gpu8)} |`,
  );
}
