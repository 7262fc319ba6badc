/**
 * The webtune command line, run as a real subprocess (node bin/webtune.mjs …) against stories260K
 * (directly, through a local Hub-layout server) and tiny Hugging Face checkpoints.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { loadModel } from '../../src/io/load-model';
import { dirSource } from '../../src/io/node-source';
import { loadPeftAdapter, readPeftAdapter } from '../../src/io/peft';
import { DATASETS_DIR, HAVE_DATASETS, HAVE_STORIES, SHARED, STORIES_DIR, sharedMissing } from '../helpers';
import { cli, type CliResult } from './run-cli';
import { startHubServer, type HubServer } from '../hub-server';
import { writeTinyHfCheckpoint } from '../tiny-checkpoint';
import {
  GPT2_VOCAB_SIZE,
  LLAMA_VOCAB_SIZE,
  gpt2StyleTokenizerConfig,
  gpt2StyleTokenizerJson,
  llamaStyleTokenizerConfig,
  llamaStyleTokenizerJson,
} from '../fixtures/tokenizers';

const STORIES_BIN = path.join(STORIES_DIR, 'stories260K.bin');

function json(r: CliResult): any {
  expect(r.stderr, 'stderr').not.toMatch(/Error|tensorflow|Hi there/i);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines.length === 1 || r.stdout.trim().startsWith('{')).toBe(true);
  return JSON.parse(r.stdout);
}

const reference = HAVE_STORIES ? JSON.parse(await readFile(path.join(STORIES_DIR, 'reference.json'), 'utf8')) : null;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'webtune-cli-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('usage', () => {
  it('--help for the tool and every command', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['score', 'generate', 'data', 'train']) expect(top.stdout).toContain(c);
    for (const c of ['score', 'generate', 'data', 'train']) {
      const r = await cli([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: webtune ${c}`);
    }
  });

  it('unknown commands and options, bad values and missing arguments exit 2 with a clear message', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['score', '--model', 'x', '--text', 'y', '--bogus'], /Unknown option '--bogus'/],
      [['generate', '--model', 'x', '--max-new-tokens', 'ten'], /--max-new-tokens expects a number, got "ten"/],
      [['generate', '--model', 'x', '--max-new-tokens', '0'], /--max-new-tokens must be ≥ 1/],
      [['generate', '--model', 'x', '--top-p', '1.5'], /--top-p must be ≤ 1/],
      [['score', '--model', 'x', '--text', 'y', '--backend', 'tpu'], /--backend must be one of wasm, cpu, auto/],
      [['score', '--text', 'y'], /--model is required/],
      [['data'], /--data is required/],
      [['data', '--data', 'f.json', '--template', 'nonsense'], /--template must be one of/],
      [
        ['train', '--model', 'x', '--data', 'y', '--out', 'z', '--scheduler', 'exp'],
        /--scheduler must be one of linear, cosine/,
      ],
      [['train', '--model', 'x', '--data', 'y', '--out', 'z', '--lr=-1'], /--lr must be ≥ 0/],
      [['train', '--model', 'x', '--data', 'y', '--out', 'z', '--r', '2.5'], /--r expects a whole number/],
      [['train', '--model', 'x', '--data', 'y'], /--out is required/],
      [['train', '--model', 'x', '--data', 'y', '--out', ''], /--out must name a folder .*\(got an empty string\)/],
      [
        ['generate', '--model', 'x', '--temperature', '1e-310'],
        /--temperature 1e-310 is too small to sample with: use 0 for greedy decoding, or at least 0\.0001/,
      ],
      [['train', '--model', 'x', '--data', 'y', '--out', 'z', '--validation', '0.1'], /Unknown option '--validation'/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it('a missing model path: exit 1, the path in the message, no stack trace (unless --debug)', async () => {
    const missing = path.join(tmp, 'no-such-model');
    const r = await cli(['score', '--model', missing, '--text', 'hi']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const d = await cli(['score', '--model', missing, '--text', 'hi', '--debug']);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/\n\s+at /);
  });

  it('a corrupt llama2.c file and a folder without weights: exit 1 naming the file', async () => {
    const bad = path.join(tmp, 'garbage.bin');
    await writeFile(bad, new Uint8Array(1000).fill(7));
    const r = await cli(['score', '--model', bad, '--text', 'hi']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(bad);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const dir = path.join(tmp, 'no-weights');
    await writeTinyHfCheckpoint(dir, 'llama');
    await rm(path.join(dir, 'model.safetensors'));
    const r2 = await cli(['score', '--model', dir, '--text', 'hi']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(dir);
    expect(r2.stderr).toMatch(/model\.safetensors/);
  });
});

describe.skipIf(!HAVE_STORIES)('stories260K (llama2.c)', () => {
  it('score: reference tokens and mean NLL', async () => {
    const out = json(await cli(['score', '--model', STORIES_BIN, '--text', reference.teacher_forced.text]));
    expect(out.tokens).toEqual(reference.teacher_forced.tokens);
    expect(out.n_tokens).toBe(reference.teacher_forced.tokens.length);
    expect(Math.abs(out.mean_nll - reference.teacher_forced.mean_nll)).toBeLessThan(1e-4);
    expect(out.perplexity).toBeCloseTo(Math.exp(out.mean_nll), 10);
    expect(out.model).toBe('stories260K');
    expect(out.backend).toBe('wasm');
  });

  it('score on cpu, from the model folder (checkpoint found inside)', async () => {
    const out = json(
      await cli(['score', '--model', STORIES_DIR, '--text', reference.teacher_forced.text, '--backend', 'cpu']),
    );
    expect(out.backend).toBe('cpu');
    expect(Math.abs(out.mean_nll - reference.teacher_forced.mean_nll)).toBeLessThan(1e-4);
  });

  it('generate: greedy 40 tokens from BOS is the reference continuation', async () => {
    const r = await cli(['generate', '--model', STORIES_BIN, '--prompt', '', '--max-new-tokens', '40']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(reference.greedy_from_bos.text + '\n');
    expect(r.stderr).toBe('');
  });

  it('generate --json: prompt tokens, new tokens, text, finish reason', async () => {
    const out = json(await cli(['generate', '--model', STORIES_BIN, '-n', '40', '--json']));
    expect(out.prompt_tokens).toEqual([1]);
    expect([1, ...out.tokens]).toEqual(reference.greedy_from_bos.tokens);
    expect(out.text).toBe(reference.greedy_from_bos.text);
    expect(out.finish_reason).toBe('length');
  });

  it('generate: stop strings end the streamed text before them; sampling is seeded', async () => {
    const r = await cli(['generate', '--model', STORIES_BIN, '-n', '40', '--stop', '.']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(reference.greedy_from_bos.text.split('.')[0] + '\n');
    const args = [
      'generate',
      '--model',
      STORIES_BIN,
      '-p',
      'Once upon a time',
      '-n',
      '20',
      '--temperature',
      '1.2',
      '--top-k',
      '50',
      '--top-p',
      '0.95',
      '--seed',
      '7',
      '--json',
    ];
    const a = json(await cli(args)),
      b = json(await cli(args));
    expect(a.tokens).toEqual(b.tokens);
    expect(a.seed).toBe(7);
    expect(a.prompt_tokens[0]).toBe(1);
  });

  describe('through a local Hub-layout server', () => {
    let hub: HubServer;
    beforeAll(async () => {
      hub = await startHubServer(tmp, { mounts: { 'karpathy/tinyllamas': path.join(SHARED, 'models') } });
    });
    afterAll(async () => hub?.close());

    it('score and generate from {base}/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin', async () => {
      const url = `${hub.baseUrl}/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin`;
      const s = json(await cli(['score', '--model', url, '--text', reference.teacher_forced.text]));
      expect(s.tokens).toEqual(reference.teacher_forced.tokens);
      expect(Math.abs(s.mean_nll - reference.teacher_forced.mean_nll)).toBeLessThan(1e-4);
      const g = await cli(['generate', '--model', url, '--max-new-tokens', '40']);
      expect(g.code, g.stderr).toBe(0);
      expect(g.stdout).toBe(reference.greedy_from_bos.text + '\n');
      // the tokenizer was found beside the checkpoint on the server
      expect(hub.requests.some((q) => q.url.endsWith('/stories260K/tok512.bin') && q.status === 200)).toBe(true);
    });

    it('a missing file on the server: exit 1 naming it', async () => {
      const url = `${hub.baseUrl}/karpathy/tinyllamas/resolve/main/stories260K/nope.bin`;
      const r = await cli(['score', '--model', url, '--text', 'hi']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('nope.bin');
      expect(r.stderr).toMatch(/404/);
    });
  });

  it.skipIf(!HAVE_DATASETS)('data: tokenized report with the model', async () => {
    const out = json(
      await cli([
        'data',
        '--data',
        path.join(DATASETS_DIR, 'alpaca_en_demo.json'),
        '--model',
        STORIES_BIN,
        '--validation',
        '0.05',
      ]),
    );
    expect(out.examples).toBe(999);
    expect(out.template).toBe('alpaca');
    expect(out.maxLength).toBe(512);
    expect(out.splits.train.examples + out.splits.validation.examples + out.dropped.count).toBe(999);
    expect(out.splits.validation.examples).toBeGreaterThan(0);
    expect(out.sample[0]).toEqual({ id: 1, piece: '<s>', trained: false });
  });
});

if (!HAVE_STORIES) {
  describe('stories260K (llama2.c)', () => {
    it.skip(sharedMissing('the stories260K CLI tests (../shared/models/stories260K)'), () => {});
  });
}

describe.skipIf(!HAVE_DATASETS)('data', () => {
  it('alpaca_en_demo.json without a model: 999 Alpaca examples', async () => {
    const out = json(await cli(['data', '--data', path.join(DATASETS_DIR, 'alpaca_en_demo.json')]));
    expect(out.examples).toBe(999);
    expect(out.files[0].format).toBe('alpaca');
    expect(out.files[0].rows).toBe(999);
    expect(out.error_count).toBe(0);
  });

  it('a file that cannot be parsed: exit 1 naming it', async () => {
    const bad = path.join(tmp, 'broken.json');
    await writeFile(bad, '[{"instruction": "a", ');
    const r = await cli(['data', '--data', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('broken.json');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

if (!HAVE_DATASETS) {
  describe('data', () => {
    it.skip(sharedMissing('the dataset CLI tests (../shared/datasets)'), () => {});
  });
}

describe('tiny Hugging Face checkpoints', () => {
  const families = [
    {
      family: 'llama' as const,
      vocab: LLAMA_VOCAB_SIZE,
      tok: llamaStyleTokenizerJson(),
      tokCfg: llamaStyleTokenizerConfig(),
    },
    {
      family: 'gpt2' as const,
      vocab: GPT2_VOCAB_SIZE,
      tok: gpt2StyleTokenizerJson(),
      tokCfg: gpt2StyleTokenizerConfig(),
    },
  ];
  const text = 'hello world, the cat';

  beforeAll(async () => {
    await initBackend('cpu');
  });

  for (const f of families) {
    it(`${f.family}: score is finite and equals the in-process engine; generate runs`, async () => {
      const dir = path.join(tmp, `tiny-${f.family}`);
      await writeTinyHfCheckpoint(dir, f.family, {
        vocab: f.vocab,
        maxPositions: 64,
        seed: 3,
        extraFiles: { 'tokenizer.json': f.tok, 'tokenizer_config.json': f.tokCfg },
      });
      const out = json(await cli(['score', '--model', dir, '--text', text, '--backend', 'cpu']));
      expect(Number.isFinite(out.mean_nll)).toBe(true);
      expect(Number.isFinite(out.perplexity)).toBe(true);
      expect(out.model).toBe(`tiny-${f.family}`);

      const m = await loadModel({ source: dirSource(dir) });
      const ids = m.tokenizer.encode(text);
      expect(out.tokens).toEqual(ids);
      const model = CausalLM.fromRaw(m.config, m.weights);
      const inputIds = Int32Array.from(ids);
      const loss = tf.tidy(() => model.loss({ inputIds, labels: inputIds, batchSize: 1, seqLen: ids.length }).loss);
      const want = (await loss.data())[0];
      loss.dispose();
      model.dispose();
      expect(Math.abs(out.mean_nll - want)).toBeLessThan(1e-5);

      // the same through the model's config.json path, and on wasm
      const w = json(await cli(['score', '--model', path.join(dir, 'config.json'), '--text', text]));
      expect(Math.abs(w.mean_nll - want)).toBeLessThan(1e-4);

      const g = json(await cli(['generate', '--model', dir, '--prompt', 'hello', '-n', '5', '--json', '--ignore-eos']));
      expect(g.tokens).toHaveLength(5);
      expect(g.finish_reason).toBe('length');
    });
  }

  it('an HF repository root served in the Hub layout', async () => {
    const hub = await startHubServer(tmp);
    try {
      await writeTinyHfCheckpoint(path.join(tmp, 'local', 'tiny-llama'), 'llama', {
        vocab: LLAMA_VOCAB_SIZE,
        maxPositions: 64,
        seed: 3,
        shardBytes: 4000,
        extraFiles: {
          'tokenizer.json': llamaStyleTokenizerJson(),
          'tokenizer_config.json': llamaStyleTokenizerConfig(),
        },
      });
      const local = json(await cli(['score', '--model', path.join(tmp, 'local', 'tiny-llama'), '--text', text]));
      const remote = json(
        await cli(['score', '--model', `${hub.baseUrl}/local/tiny-llama/resolve/main`, '--text', text]),
      );
      expect(remote.tokens).toEqual(local.tokens);
      expect(remote.mean_nll).toBe(local.mean_nll);
      expect(remote.model).toBe('local/tiny-llama');
    } finally {
      await hub.close();
    }
  });
});

/** A small instruction dataset the stories260K tokenizer handles in a few tokens per example. */
const TINY_DATA = Array.from({ length: 12 }, (_, i) => ({
  instruction: ['Name a color', 'Name an animal', 'Say hello', 'Count to three'][i % 4],
  input: '',
  output: ['Red.', 'A cat.', 'Hello!', 'One, two, three.'][i % 4],
}));
const TINY_TEMPLATE = 'Q: {instruction}\nA: {output}';

describe.skipIf(!HAVE_STORIES)('train on stories260K', () => {
  it('a few steps write a PEFT adapter that loads in-process and through --adapter, plus metrics', async () => {
    const data = path.join(tmp, 'tiny.json');
    await writeFile(data, JSON.stringify(TINY_DATA));
    const out = path.join(tmp, 'run1');
    const r = await cli([
      'train',
      '--model',
      STORIES_BIN,
      '--data',
      data,
      '--out',
      out,
      '--template',
      TINY_TEMPLATE,
      '--max-steps',
      '6',
      '--batch-size',
      '4',
      '--lr',
      '1e-2',
      '--r',
      '4',
      '--alpha',
      '8',
      '--targets',
      'all-linear',
      '--val-size',
      '2',
      '--eval-steps',
      '3',
      '--logging-steps',
      '2',
      '--seed',
      '5',
      '--backend',
      'cpu',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.status).toBe('completed');
    expect(summary.step).toBe(6);
    expect(summary.files).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'metrics.json', 'metrics.csv']);
    expect(Number.isFinite(summary.train_loss)).toBe(true);
    expect(Number.isFinite(summary.eval_loss)).toBe(true);
    // progress on stderr (not a terminal: one line per logging window and evaluation)
    expect(r.stderr).toMatch(/step 2\/6 .*loss \d/);
    expect(r.stderr).toMatch(/step 6\/6 .*tok\/s .*eta/);
    expect(r.stderr).toMatch(/eval {2}step 3 {2}eval_loss \d/);

    const cfg = JSON.parse(await readFile(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg.peft_type).toBe('LORA');
    expect(cfg.r).toBe(4);
    expect(cfg.lora_alpha).toBe(8);
    expect(cfg.target_modules).toEqual(
      expect.arrayContaining(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
    );
    const metrics = JSON.parse(await readFile(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics.global_step).toBe(6);
    expect(metrics.log_history.filter((h: any) => h.loss !== undefined).map((h: any) => h.step)).toEqual([2, 4, 6]);
    expect(
      metrics.log_history.filter((h: any) => h.eval_loss !== undefined && h.loss === undefined).map((h: any) => h.step),
    ).toEqual([3, 6]);
    const csv = (await readFile(path.join(out, 'metrics.csv'), 'utf8')).trim().split('\n');
    expect(csv[0].split(',').slice(0, 3)).toEqual(['step', 'epoch', 'loss']);
    expect(csv.length).toBe(1 + metrics.log_history.length);

    // The adapter loads onto the base model in-process, and the CLI's --adapter gives the same score.
    const text = 'Q: Name a color\nA: Red.';
    await initBackend('cpu');
    const m = await loadModel({ source: dirSource(STORIES_DIR), file: 'stories260K.bin' });
    const model = CausalLM.fromRaw(m.config, m.weights);
    const imported = await readPeftAdapter(dirSource(out), m.config);
    const adapter = loadPeftAdapter(model, imported);
    expect(adapter.layers.size).toBe(7 * m.config.num_hidden_layers);
    const ids = Int32Array.from(m.tokenizer.encode(text));
    const loss = tf.tidy(() => model.loss({ inputIds: ids, labels: ids, batchSize: 1, seqLen: ids.length }).loss);
    const tuned = (await loss.data())[0];
    loss.dispose();
    model.dispose();

    const base = json(await cli(['score', '--model', STORIES_BIN, '--text', text, '--backend', 'cpu']));
    const withAdapter = json(
      await cli(['score', '--model', STORIES_BIN, '--adapter', out, '--text', text, '--backend', 'cpu']),
    );
    expect(Math.abs(withAdapter.mean_nll - tuned)).toBeLessThan(1e-5);
    // trained on this text: the adapter makes it more likely
    expect(withAdapter.mean_nll).toBeLessThan(base.mean_nll);

    const g = json(
      await cli([
        'generate',
        '--model',
        STORIES_BIN,
        '--adapter',
        out,
        '--template',
        TINY_TEMPLATE,
        '--prompt',
        'Say hello',
        '-n',
        '8',
        '--json',
      ]),
    );
    expect(g.tokens.length).toBeGreaterThan(0);
  });

  it('--dry-run prints the data report and memory estimate without training', async () => {
    const data = path.join(tmp, 'tiny-dry.json');
    await writeFile(data, JSON.stringify(TINY_DATA));
    const out = json(
      await cli([
        'train',
        '--model',
        STORIES_BIN,
        '--data',
        data,
        '--template',
        TINY_TEMPLATE,
        '--dry-run',
        '--batch-size',
        '4',
        '-q',
      ]),
    );
    expect(out.data.splits.train.examples + out.data.splits.validation.examples).toBe(12);
    expect(out.estimate.trainable_params).toBeGreaterThan(0);
    expect(out.config.per_device_train_batch_size).toBe(4);
    expect(out.memory_fit).toMatchObject({ fits: true, limit_bytes: 4294901760 });
    expect(out.memory_fit.needed_bytes).toBeGreaterThan(out.estimate.bytes.weights);
  });

  it('a run that cannot fit the wasm heap is refused before training, with the need and a batch size that fits', async () => {
    const data = path.join(tmp, 'long.json');
    const story = 'Once upon a time there was a little girl who liked to play in the park with her dog. ';
    await writeFile(
      data,
      JSON.stringify(
        Array.from({ length: 64 }, (_, i) => ({ instruction: `Tell story ${i}`, output: story.repeat(12) })),
      ),
    );
    const args = [
      'train',
      '--model',
      STORIES_BIN,
      '--data',
      data,
      '--template',
      TINY_TEMPLATE,
      '--max-length',
      '512',
      '--val-size',
      '0',
      '--max-steps',
      '1',
      '--out',
      path.join(tmp, 'oom-run'),
    ];
    const r = await cli([...args, '--batch-size', '64']);
    expect(r.code, r.stderr).toBe(1);
    const m =
      /This run needs about ([0-9.]+) GB on wasm \(.*\), more than wasm's 4 GB heap\. Reduce per_device_train_batch_size \(now 64; (\d+) would need about ([0-9.]+) GB\)/.exec(
        r.stderr,
      );
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(4);
    expect(r.stderr).toMatch(/max_length \(now 512/);
    expect(r.stderr).toMatch(/gradient_checkpointing/);
    expect(await readdir(path.join(tmp, 'oom-run')).catch(() => [])).not.toContain('adapter_model.safetensors');
    // the suggested batch size fits
    const fits = json(await cli([...args, '--batch-size', m![2], '--dry-run', '-q']));
    expect(fits.memory_fit.fits).toBe(true);
    expect(fits.memory_fit.needed_bytes).toBeLessThan(4294901760);
  });
});

describe('train on a tiny Hugging Face GPT-2', () => {
  it('two steps write an adapter on c_attn', async () => {
    const dir = path.join(tmp, 'tiny-gpt2-train');
    await writeTinyHfCheckpoint(dir, 'gpt2', {
      vocab: GPT2_VOCAB_SIZE,
      maxPositions: 64,
      seed: 4,
      extraFiles: { 'tokenizer.json': gpt2StyleTokenizerJson(), 'tokenizer_config.json': gpt2StyleTokenizerConfig() },
    });
    const data = path.join(tmp, 'tiny-gpt2.jsonl');
    await writeFile(
      data,
      TINY_DATA.map((x) => JSON.stringify({ prompt: x.instruction + '\n', completion: x.output })).join('\n') + '\n',
    );
    const out = path.join(tmp, 'run-gpt2');
    const r = await cli([
      'train',
      '--model',
      dir,
      '--data',
      data,
      '--out',
      out,
      '--max-steps',
      '2',
      '--batch-size',
      '2',
      '--val-size',
      '0',
      '--test-size',
      '2',
      '-q',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const summary = JSON.parse(r.stdout);
    expect(summary.status).toBe('completed');
    expect(summary.eval_loss).toBeNull();
    // held-out generation scored base vs tuned, and written out per example
    for (const side of ['base', 'tuned']) {
      expect(summary.generation_eval[side].count).toBe(2);
      expect(summary.generation_eval[side].exact_match).toBeGreaterThanOrEqual(0);
      expect(summary.generation_eval[side].rougeL).toBeLessThanOrEqual(100);
    }
    const gen = JSON.parse(await readFile(path.join(out, 'generation_eval.json'), 'utf8'));
    expect(gen.tuned.examples).toHaveLength(2);
    const cfg = JSON.parse(await readFile(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg.target_modules).toEqual(['c_attn']);
    expect(cfg.fan_in_fan_out).toBe(true);
    expect(cfg.base_model_name_or_path).toBe(dir);
    const s = json(await cli(['score', '--model', dir, '--adapter', out, '--text', 'hello world']));
    expect(Number.isFinite(s.mean_nll)).toBe(true);
  });
});

describe('train: checkpoints and --resume-from-checkpoint', () => {
  for (const frozen of ['float32', 'int8'] as const) {
    it(`frozen_dtype ${frozen}: resuming from the step-2 checkpoint of a 4-step run ends with a bit-identical adapter`, async () => {
      const dir = path.join(tmp, `tiny-gpt2-resume-${frozen}`);
      await writeTinyHfCheckpoint(dir, 'gpt2', {
        vocab: GPT2_VOCAB_SIZE,
        maxPositions: 64,
        seed: 5,
        extraFiles: { 'tokenizer.json': gpt2StyleTokenizerJson(), 'tokenizer_config.json': gpt2StyleTokenizerConfig() },
      });
      const data = path.join(tmp, 'tiny-gpt2-resume.jsonl');
      await writeFile(
        data,
        TINY_DATA.map((x) => JSON.stringify({ prompt: x.instruction + '\n', completion: x.output })).join('\n') + '\n',
      );
      const common = [
        'train',
        '--model',
        dir,
        '--data',
        data,
        '--max-steps',
        '4',
        '--batch-size',
        '2',
        '--val-size',
        '0',
        '--dropout',
        '0.1',
        '--lr',
        '1e-2',
        '--frozen-dtype',
        frozen,
        '-q',
      ];
      const full = path.join(tmp, `resume-full-${frozen}`);
      const r1 = await cli([...common, '--out', full, '--save-steps', '2']);
      expect(r1.code, r1.stderr).toBe(0);
      const { readdirSync, statSync } = await import('node:fs');
      // find the step-2 checkpoint folder written under <out>/checkpoints
      const found: string[] = [];
      const walk = (p: string) => {
        for (const e of readdirSync(p)) {
          const q = path.join(p, e);
          if (statSync(q).isDirectory()) walk(q);
          else if (e === 'checkpoint.json') found.push(p);
        }
      };
      walk(path.join(full, 'checkpoints'));
      const step2: string[] = [];
      for (const f of found)
        if (JSON.parse(await readFile(path.join(f, 'checkpoint.json'), 'utf8')).progress.global_step === 2)
          step2.push(f);
      expect(found.length, `checkpoints: ${found.join(', ')}`).toBeGreaterThanOrEqual(2);
      expect(step2).toHaveLength(1);
      if (frozen !== 'float32') {
        // the same checkpoint with another frozen_dtype names the setting (not "a different base model")
        const at = common.indexOf('--frozen-dtype');
        const other = [...common.slice(0, at), ...common.slice(at + 2)];
        const bad = await cli([
          ...other,
          '--frozen-dtype',
          'float16',
          '--out',
          path.join(tmp, 'resume-bad'),
          '--resume-from-checkpoint',
          step2[0],
        ]);
        expect(bad.code).not.toBe(0);
        expect(bad.stderr).toMatch(
          /trained with frozen_dtype int8, this session has float16; resume with frozen_dtype int8/,
        );
      }
      const resumed = path.join(tmp, `resume-second-half-${frozen}`);
      const r2 = await cli([
        ...common.filter((a) => a !== '-q'),
        '--out',
        resumed,
        '--resume-from-checkpoint',
        step2[0],
      ]);
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.stderr).toMatch(/resumed from .*ckpt-\d+ at step 2\n/);
      expect(JSON.parse(r2.stdout).step).toBe(4);
      const a = await readFile(path.join(full, 'adapter_model.safetensors'));
      const b = await readFile(path.join(resumed, 'adapter_model.safetensors'));
      expect(Buffer.compare(a, b)).toBe(0);
    });
  }
});
