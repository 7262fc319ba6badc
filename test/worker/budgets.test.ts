/**
 * The worker applies the same budgets as the CLI (issue #12): its dataset preparation renders chat templates under
 * the template budget and tokenizes long rows in bounded windows (prepareSessionData), and its adapter import
 * checks target_modules patterns and warns about another base model (parsePeftAdapter, adapterBaseModelWarning).
 * Run at the worker-module level in Node: the same functions the engine worker calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { linearModules, paramShapes } from '../../src/engine/params';
import type { RawTensors } from '../../src/engine/config';
import { writeSafetensors } from '../../src/io/safetensors';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import type { FinetuneConfig, ModelInfo, ModelSource } from '../../src/worker/api';
import { adapterApi } from '../../src/worker/adapter';
import { datasetApi } from '../../src/worker/dataset';
import { createState, type WorkerState } from '../../src/worker/state';
import { LLAMA_VOCAB_SIZE, llamaStyleTokenizerConfig, llamaStyleTokenizerJson } from '../fixtures/tokenizers';
import { tinyConfig } from '../tiny-checkpoint';
import { Rng } from '../../src/util/rng';

const cfg = tinyConfig('llama', { vocab: LLAMA_VOCAB_SIZE, maxPositions: 512 });
let s: WorkerState;
let model: CausalLM;

beforeAll(async () => {
  await initBackend('cpu');
  const rng = new Rng(3);
  const weights: RawTensors = new Map();
  for (const [name, shape] of paramShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const norm = /norm\.weight$/.test(name);
    weights.set(name, {
      shape,
      data: Float32Array.from({ length: n }, () => (norm ? 1 : 0) + (rng.uniform() - 0.5) * 0.1),
    });
  }
  model = CausalLM.fromRaw(cfg, weights);
  const tokenizer = loadHfTokenizer(llamaStyleTokenizerJson(), llamaStyleTokenizerConfig());
  s = createState(() => {});
  s.loaded = {
    model,
    tokenizer,
    info: { name: 'base-a' } as ModelInfo,
    tokenizerFiles: new Map(),
    baseModel: 'org/base-a',
    source: { kind: 'files', files: [], name: 'base-a' } as ModelSource,
  };
});

afterAll(() => {
  model?.dispose();
});

const settings = (extra: Partial<FinetuneConfig>): FinetuneConfig =>
  ({ max_length: 64, val_size: 0, test_size: 0, ...extra }) as FinetuneConfig;

describe('worker budgets', () => {
  it('a runaway chat template is stopped by the template budget, not left to freeze the worker', async () => {
    const rows = [
      {
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'ok' },
        ],
      },
    ];
    const t0 = performance.now();
    const err = await datasetApi(s)
      .loadDataset(
        { files: [{ name: 'chat.json', data: JSON.stringify(rows), role: 'train' }] },
        settings({
          template: { kind: 'chat_template', template: '{% for i in range(1000000000) %}x{% endfor %}' },
        } as Partial<FinetuneConfig>),
      )
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('no training example is left after tokenization');
    expect((err as Error).message).toContain('rendering stopped');
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a 20 MB row is cut to max_length in a bounded window', async () => {
    const rows = [{ instruction: 'Repeat.', output: 'hello world '.repeat(20_000_000 / 12) }];
    const info = await datasetApi(s).loadDataset(
      { files: [{ name: 'big.json', data: JSON.stringify(rows), role: 'train' }] },
      settings({}),
    );
    expect(info.report.splits.train.examples).toBe(1);
    expect(info.report.truncated).toBe(1);
    // the row's length is counted in the window only: a lower bound far below the whole row's tokens
    expect(Math.max(...s.data!.prepared.train.examples.map((e) => e.fullLength))).toBeLessThan(10_000);
    expect(s.data!.prepared.train.examples[0].inputIds.length).toBe(64);
  });

  it('importAdapter: another base model → attached with a warning; a catastrophic target_modules → refused', async () => {
    const r = 2;
    const tensors: RawTensors = new Map();
    for (const m of linearModules(cfg).filter((x) => x.short === 'q_proj')) {
      tensors.set(`base_model.model.${m.name}.lora_A.weight`, {
        shape: [r, m.inFeatures],
        data: new Float32Array(r * m.inFeatures).fill(0.01),
      });
      tensors.set(`base_model.model.${m.name}.lora_B.weight`, {
        shape: [m.outFeatures, r],
        data: new Float32Array(m.outFeatures * r).fill(0.01),
      });
    }
    const weights = writeSafetensors(tensors, { format: 'pt' });
    const files = (config: object) => [
      { name: 'adapter_config.json', bytes: new TextEncoder().encode(JSON.stringify(config)) },
      { name: 'adapter_model.safetensors', bytes: weights },
    ];
    const base = { peft_type: 'LORA', r, lora_alpha: 4, target_modules: ['q_proj'] };
    const other = await adapterApi(s).importAdapter(files({ ...base, base_model_name_or_path: 'someone/other' }));
    expect(other.modules).toBe(cfg.num_hidden_layers);
    expect(other.warning).toContain('"someone/other"');
    expect(other.warning).toContain('the loaded model is "org/base-a"');
    const same = await adapterApi(s).importAdapter(files({ ...base, base_model_name_or_path: 'org/base-a' }));
    expect(same.warning).toBeUndefined();
    const bad = await adapterApi(s)
      .importAdapter(files({ ...base, target_modules: '(a+)+b|.*q_proj' }))
      .catch((e: Error) => e);
    expect((bad as Error).message).toMatch(/adapter_config\.json: "target_modules".*exponential time/);
  });
});
