/**
 * Tunes stories260K (wasm, single thread) on a demo training file with the catalog's preset, the way the page's
 * default demo run does (held-out file as the test split, 3 sample prompts at each evaluation), then scores
 * greedy generations on the held-out file, base vs tuned, per task.
 *
 *   npx tsx tools/measure-demo.ts <train.jsonl> <eval.jsonl> [outDir] ['{"num_train_epochs": 6, ...}']
 *
 * The optional JSON overrides preset fields (FinetuneConfig names). Prints a JSON summary (steps, wall times and
 * the training's CPU time, exact match / ROUGE-L base vs tuned, exact matches per task) and lists the tuned model's
 * misses on stderr; with outDir, writes generation_eval.json there. The model is read from ../shared/models/
 * stories260K next to the repository, or from $STORIES_DIR.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/engine/backend';
import { CausalLM } from '../src/engine/model';
import { parseLlama2cCheckpoint } from '../src/io/llama2c';
import { parseLlama2cTokenizer } from '../src/io/tokenizer-llama2c';
import type { FinetuneConfig } from '../src/train/config';
import { FinetuneSession } from '../src/train/session';

const MODEL_DIR =
  process.env.STORIES_DIR ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'models', 'stories260K');

async function main() {
  const [trainPath, evalPath, out, overrides] = process.argv.slice(2);
  if (!trainPath || !evalPath) {
    console.error('usage: npx tsx tools/measure-demo.ts <train.jsonl> <eval.jsonl> [outDir] [json overrides]');
    process.exit(2);
  }
  const root = path.resolve(import.meta.dirname, '..');
  const catalog = JSON.parse(readFileSync(path.join(root, 'models/catalog.json'), 'utf8')) as {
    models: { id: string; preset: Partial<FinetuneConfig> }[];
  };
  const preset = catalog.models.find((m) => m.id === 'stories260K')!.preset;
  const config: Partial<FinetuneConfig> = { ...preset, ...(overrides ? JSON.parse(overrides) : {}) };

  const t0 = performance.now();
  await initBackend('wasm');
  const ckpt = parseLlama2cCheckpoint(
    new Uint8Array(readFileSync(path.join(MODEL_DIR, 'stories260K.bin'))),
    'stories260K.bin',
  );
  const model = CausalLM.fromRaw(ckpt.config, ckpt.weights);
  const tok = parseLlama2cTokenizer(
    new Uint8Array(readFileSync(path.join(MODEL_DIR, 'tok512.bin'))),
    'tok512.bin',
    512,
  );
  const session = new FinetuneSession({
    model,
    tokenizer: tok,
    data: {
      train: [{ name: path.basename(trainPath), bytes: readFileSync(trainPath, 'utf8') }],
      test: [{ name: path.basename(evalPath), bytes: readFileSync(evalPath, 'utf8') }],
    },
    config,
  });
  const train = session.data.train.examples;
  console.error(
    `train ${train.length}, validation ${session.data.validation.examples.length}, test ${session.data.test.examples.length}; ` +
      `${train.filter((e) => e.truncated).length} truncated; tokens max ${Math.max(...train.map((e) => e.inputIds.length))}; ` +
      `${session.maxSteps} steps`,
  );
  const t1 = performance.now();
  const cpu1 = process.cpuUsage();
  let loss: number | undefined;
  const result = await session.train({
    onMetrics: (m: { loss?: number }) => {
      loss = m.loss;
    },
    onSample: () => {},
    samplePrompts: 3,
    sampleMaxNewTokens: 24,
  });
  const t2 = performance.now();
  const cpu = process.cpuUsage(cpu1);
  const g = await session.generationEval();
  const t3 = performance.now();

  const tasks = readFileSync(evalPath, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { task?: string }).task ?? '?');
  const byTask: Record<string, [number, number]> = {};
  g.tuned.examples.forEach((e, i) => {
    const t = (byTask[tasks[i]] ??= [0, 0]);
    t[0] += e.exact_match;
    t[1]++;
  });
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'generation_eval.json'), JSON.stringify(g, null, 2) + '\n');
  }
  const evals = session.history.filter((h) => h.eval_loss !== undefined && h.loss === undefined);
  const round = (x: number) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify({
      status: result.status,
      steps: result.step,
      setup_s: round((t1 - t0) / 1000),
      train_s: round((t2 - t1) / 1000),
      // CPU seconds of the training phase: on a busy machine a better measure of the work than the wall time
      train_cpu_s: round((cpu.user + cpu.system) / 1e6),
      generation_eval_s: round((t3 - t2) / 1000),
      train_loss: loss,
      eval_loss: evals.at(-1)?.eval_loss,
      base: { exact_match: round(g.base.exact_match), rougeL: round(g.base.rougeL) },
      tuned: { exact_match: round(g.tuned.exact_match), rougeL: round(g.tuned.rougeL) },
      tuned_by_task: Object.fromEntries(Object.entries(byTask).map(([k, [a, b]]) => [k, `${a}/${b}`])),
    }),
  );
  for (const e of g.tuned.examples)
    if (!e.exact_match) console.error(`  miss: ${JSON.stringify(e.reference)} <- got ${JSON.stringify(e.prediction)}`);
  session.dispose();
  model.dispose();
}

await main();
