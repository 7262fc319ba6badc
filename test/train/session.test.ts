/**
 * FinetuneSession: configuration, epoch/accumulation accounting, stop/resume determinism, estimates and metrics
 * export on a tiny random model (cpu); then real runs on stories260K (wasm): loss falls, validation runs, the
 * tensor count stays constant, divergence stops cleanly on the last good weights, adapter/merged exports.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import type { ModelConfig, RawTensors } from '../../src/engine/config';
import { loadHfCheckpoint } from '../../src/io/hf-model';
import { parseLlama2cCheckpoint } from '../../src/io/llama2c';
import { exportMergedModel, parsePeftAdapter } from '../../src/io/peft';
import { filesSource } from '../../src/io/source';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import type { Tokenizer } from '../../src/io/tokenizer';
import { DEFAULT_FINETUNE_CONFIG, resolveFinetuneConfig, type FinetuneConfig } from '../../src/train/config';
import { FinetuneSession } from '../../src/train/session';
import type { EvalMetrics, SampleReport, SessionMetrics } from '../../src/train/metrics';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';
import { adapterValues, expectSameBits } from '../fixtures/adapter-values';
import { ToyTokenizer } from '../data/toy-tokenizer';
import { HAVE_STORIES, ROOT, STORIES_DIR, sharedMissing } from '../helpers';

describe('FinetuneSession configuration', () => {
  it('HF-like defaults and readable errors', () => {
    const { config } = resolveFinetuneConfig({});
    expect(config).toMatchObject({
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
      learning_rate: 2e-4,
      num_train_epochs: 3,
      max_steps: -1,
      per_device_train_batch_size: 8,
      gradient_accumulation_steps: 1,
      lr_scheduler_type: 'linear',
      weight_decay: 0,
      max_grad_norm: 1,
      seed: 42,
    });
    expect(() => resolveFinetuneConfig({ r: 0 })).toThrow('r must be a positive integer, got 0');
    expect(() => resolveFinetuneConfig({ lr_scheduler_type: 'poly' as never })).toThrow(
      /lr_scheduler_type must be one of linear, cosine/,
    );
    expect(() => resolveFinetuneConfig({ lora_dropout: 1 })).toThrow(/lora_dropout must be in \[0, 1\)/);
    expect(() => resolveFinetuneConfig({ learning_rat: 1 } as never)).toThrow(
      'unknown fine-tuning option "learning_rat"',
    );
    const clipped = resolveFinetuneConfig({ max_length: 4096 }, 512);
    expect(clipped.config.max_length).toBe(512);
    expect(clipped.warnings[0]).toMatch(/max_length 4096 exceeds the model's context length 512/);
    expect(DEFAULT_FINETUNE_CONFIG.target_modules).toBeNull();
  });
});

describe('FinetuneSession on a tiny random model (cpu)', () => {
  const tok: Tokenizer = new ToyTokenizer();
  const cfg: ModelConfig = tinyConfig('llama', {
    vocab_size: tok.vocabSize,
    max_position_embeddings: 128,
    hidden_size: 16,
    num_attention_heads: 4,
    head_dim: 4,
  });
  const raw: RawTensors = randomWeights(cfg, 3, 0.2);
  const examples = Array.from({ length: 13 }, (_, i) => ({
    prompt: `q${i} ${'x'.repeat(i % 4)}`,
    completion: `a${i}`,
  }));
  const jsonl = examples
    .slice(0, 3)
    .map((e) => JSON.stringify({ instruction: e.prompt, output: e.completion }))
    .join('\n');
  const base: Partial<FinetuneConfig> = {
    template: { kind: 'instruction' },
    r: 2,
    lora_alpha: 4,
    learning_rate: 1e-2,
    logging_steps: 1,
    max_length: 64,
  };
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('epoch-aligned accumulation windows: every training batch once per epoch, HF step counts', async () => {
    const model = CausalLM.fromRaw(cfg, raw);
    const s = new FinetuneSession({
      model,
      tokenizer: tok,
      data: { train: [{ name: 'mem', examples }], validation: [{ name: 'val.jsonl', bytes: jsonl }] },
      config: {
        ...base,
        per_device_train_batch_size: 3,
        gradient_accumulation_steps: 3,
        num_train_epochs: 2,
        eval_strategy: 'epoch',
      },
    });
    // 13 examples / 3 → 5 batches; windows of 3 → 2 update steps per epoch (3 + 2 micro-batches); 2 epochs → 4 steps
    expect([s.batchesPerEpoch, s.stepsPerEpoch, s.maxSteps]).toEqual([5, 2, 4]);
    expect(s.data.validation.examples.length).toBe(3);
    const logs: SessionMetrics[] = [];
    const evals: EvalMetrics[] = [];
    const r = await s.train({
      onMetrics: (m) => {
        logs.push(m);
      },
      onEval: (e) => {
        evals.push(e);
      },
    });
    expect(r.status).toBe('completed');
    expect(logs.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(logs.map((m) => m.epoch)).toEqual([0.5, 1, 1.5, 2]);
    const perEpoch = s.data.report.splits.train.trainedTokens;
    expect(logs[0].trained_tokens + logs[1].trained_tokens).toBe(perEpoch);
    expect(logs[2].trained_tokens + logs[3].trained_tokens).toBe(perEpoch);
    expect(evals.map((e) => e.step)).toEqual([2, 4]); // eval_strategy 'epoch'
    expect(logs[1].eval_loss).toBe(evals[0].eval_loss);
    expect(evals[0].eval_tokens).toBe(s.data.report.splits.validation.trainedTokens);
    s.dispose();
    model.dispose();
  });

  it('stop mid-run and resume gives bit-for-bit the weights of an uninterrupted run (dropout on)', async () => {
    const config: Partial<FinetuneConfig> = {
      ...base,
      per_device_train_batch_size: 4,
      max_steps: 7,
      lora_dropout: 0.1,
      val_size: 2,
      eval_steps: 3,
      warmup_steps: 2,
      lr_scheduler_type: 'cosine',
    };
    const m1 = CausalLM.fromRaw(cfg, raw);
    const s1 = new FinetuneSession({ model: m1, tokenizer: tok, data: [{ name: 'mem', examples }], config });
    let seen = 0;
    const first = await s1.train({
      onMetrics: () => {
        seen++;
      },
      shouldStop: () => seen >= 2,
    });
    expect(first.status).toBe('stopped');
    expect(first.step).toBeGreaterThanOrEqual(2);
    expect(first.step).toBeLessThan(7);
    const rest = await s1.train();
    expect(rest.status).toBe('completed');
    expect(rest.step).toBe(7);

    const m2 = CausalLM.fromRaw(cfg, raw);
    const s2 = new FinetuneSession({ model: m2, tokenizer: tok, data: [{ name: 'mem', examples }], config });
    expect((await s2.train()).status).toBe('completed');
    expectSameBits(await adapterValues(m1), await adapterValues(m2));
    // the same logged losses, and evaluations at steps 3, 6 and the end
    const losses = (s: FinetuneSession) => s.history.filter((h) => h.loss !== undefined).map((h) => [h.step, h.loss]);
    expect(losses(s1)).toEqual(losses(s2));
    expect(s2.history.filter((h) => h.eval_loss !== undefined && h.loss === undefined).map((h) => h.step)).toEqual([
      3, 6, 7,
    ]);
    expect((await s1.train()).status).toBe('completed'); // nothing left to do
    s1.dispose();
    s2.dispose();
    m1.dispose();
    m2.dispose();
  });

  it('estimate(): trainable parameters, checkpointing saves activation memory; metrics CSV/JSON', async () => {
    const model = CausalLM.fromRaw(cfg, raw);
    const s = new FinetuneSession({
      model,
      tokenizer: tok,
      data: [{ name: 'mem', examples }],
      config: { ...base, target_modules: 'all-linear', max_steps: 2, val_size: 3 },
    });
    const e = s.estimate();
    expect(e.trainable_params).toBe(s.adapter.numTrainable());
    expect(e.total_params).toBe([...raw.values()].reduce((a, t) => a + t.data.length, 0));
    expect(e.activations_with_checkpointing).toBeLessThan(e.activations_without_checkpointing);
    expect(e.bytes.activations).toBe(e.activations_without_checkpointing);
    const b = e.bytes;
    expect(b.total).toBe(b.weights + b.lora + b.gradients + b.optimizer + b.activations + b.logits);
    expect(b.optimizer).toBe(8 * e.trainable_params);
    expect(e.tokens_per_micro_batch).toBe(e.batch_size * e.seq_len);
    const other = CausalLM.fromRaw(cfg, raw); // a session owns its model's adapter
    const ck = new FinetuneSession({
      model: other,
      tokenizer: tok,
      data: [{ name: 'mem', examples }],
      config: { ...base, gradient_checkpointing: true },
    }).estimate();
    expect(ck.bytes.activations).toBe(ck.activations_with_checkpointing);
    other.dispose();

    await s.train();
    const csv = s.metricsCsv().trim().split('\n');
    expect(csv[0]).toBe(
      'step,epoch,loss,accuracy,learning_rate,grad_norm,tokens_per_sec,trained_tokens,ms_per_step,num_tensors,eval_loss,eval_accuracy,eval_tokens,eval_runtime',
    );
    // eval_steps defaults to logging_steps (1): log, evaluation, log, evaluation
    expect(csv.length).toBe(1 + 4);
    const cells = csv.slice(1).map((r) => r.split(','));
    expect(cells.map((c) => c[0])).toEqual(['1', '1', '2', '2']);
    expect(cells[0][10]).toBe(cells[1][10]); // the log row carries the eval_loss of its step
    expect(cells[3].slice(2, 10).every((c) => c === '')).toBe(true); // evaluation rows have no training columns
    expect(cells[3].slice(10).every((c) => c !== '')).toBe(true);
    const j = JSON.parse(s.metricsJson());
    expect(j).toMatchObject({ global_step: 2, max_steps: 2, status: 'completed' });
    expect(j.log_history.length).toBe(4);
    expect(j.config.r).toBe(2);
    s.dispose();
    model.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------------

if (!HAVE_STORIES) {
  it.skip(sharedMissing('FinetuneSession on stories260K'), () => {});
} else {
  describe('FinetuneSession on stories260K (wasm)', () => {
    const ckpt = new Uint8Array(readFileSync(path.join(STORIES_DIR, 'stories260K.bin')));
    const tok = parseLlama2cTokenizer(
      new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin'))),
      'tok512.bin',
      512,
    );
    const trainText = readFileSync(path.join(ROOT, 'public/datasets/tiny-tasks.jsonl'), 'utf8');
    const evalText = readFileSync(path.join(ROOT, 'public/datasets/tiny-tasks-eval.jsonl'), 'utf8');
    const lines = trainText.trim().split('\n');
    // 16 examples of the demo set, a mix of its tasks
    const small = lines
      .filter((_, i) => i % 5 === 0)
      .slice(0, 16)
      .join('\n');
    const loadModel = () => {
      const { config, weights } = parseLlama2cCheckpoint(ckpt, 'stories260K.bin');
      return CausalLM.fromRaw(config, weights);
    };
    const config: Partial<FinetuneConfig> = {
      template: { kind: 'instruction' },
      eos_token: '\n',
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0,
      target_modules: 'all-linear',
      learning_rate: 3e-3,
      per_device_train_batch_size: 8,
      logging_steps: 1,
      eval_steps: 5,
      max_length: 64,
      seed: 7,
    };
    beforeAll(async () => {
      expect((await initBackend('wasm')).backend).toBe('wasm');
    });
    afterAll(() => {
      tf.disposeVariables();
    });

    it('a short run: loss falls, validation loss falls, tensor count constant; PEFT export round trip and merged export', async () => {
      const model = loadModel();
      const s = new FinetuneSession({
        model,
        tokenizer: tok,
        baseModelName: 'karpathy/tinyllamas/stories260K',
        data: {
          train: [{ name: 'tiny-tasks.jsonl', bytes: small }],
          validation: [{ name: 'tiny-tasks-eval.jsonl', bytes: evalText }],
        },
        config: { ...config, max_steps: 12, warmup_ratio: 0.1 },
      });
      expect(s.data.train.examples.length).toBe(16);
      expect(s.data.train.examples.every((e) => e.inputIds.length < 64)).toBe(true);
      const e = s.estimate();
      console.log(
        `[session] trainable ${e.trainable_params} of ${e.total_params} (${e.trainable_percent.toFixed(2)}%), ` +
          `est. memory ${(e.bytes.total / 2 ** 20).toFixed(2)} MiB (activations ${(e.activations_without_checkpointing / 2 ** 20).toFixed(2)} MiB, ` +
          `${(e.activations_with_checkpointing / 2 ** 20).toFixed(2)} MiB with checkpointing), ${e.max_steps} steps`,
      );
      const before = (await s.evaluate())!;
      const logs: SessionMetrics[] = [];
      const evals: EvalMetrics[] = [];
      const samples: SampleReport[] = [];
      const r = await s.train({
        onMetrics: (m) => {
          logs.push(m);
        },
        onEval: (x) => {
          evals.push(x);
        },
        onSample: (x) => {
          samples.push(x);
        },
        samplePrompts: 2,
        sampleMaxNewTokens: 8,
      });
      for (const m of logs) {
        console.log(
          `[session] step ${m.step} epoch ${m.epoch.toFixed(2)} loss ${m.loss.toFixed(4)} acc ${m.accuracy.toFixed(3)} lr ${m.learning_rate.toExponential(2)} grad_norm ${m.grad_norm.toFixed(3)} ${m.tokens_per_sec.toFixed(0)} tok/s tensors ${m.num_tensors}${m.eval_loss !== undefined ? ` eval_loss ${m.eval_loss.toFixed(4)}` : ''}`,
        );
      }
      console.log(
        `[session] eval_loss ${before.eval_loss.toFixed(4)} before → ${evals.map((x) => `${x.step}: ${x.eval_loss.toFixed(4)}`).join(', ')}; ${r.train_runtime.toFixed(1)} s`,
      );
      console.log(
        `[session] samples at step ${samples.at(-1)!.step}: ${samples
          .at(-1)!
          .samples.map((x) => `${JSON.stringify(x.prompt.split('\n')[1])} → ${JSON.stringify(x.prediction)}`)
          .join('; ')}`,
      );
      expect(r.status).toBe('completed');
      expect(logs.length).toBe(12);
      expect(logs.at(-1)!.loss).toBeLessThan(0.5 * logs[0].loss);
      expect(new Set(logs.map((m) => m.num_tensors)).size).toBe(1); // tensor count after step N = after step 1
      expect(evals.map((x) => x.step)).toEqual([5, 10, 12]);
      expect(evals.at(-1)!.eval_loss).toBeLessThan(before.eval_loss);
      expect(samples.map((x) => x.step)).toEqual([5, 10, 12]);
      expect(logs.every((m) => m.tokens_per_sec > 0 && Number.isFinite(m.grad_norm))).toBe(true);

      // PEFT export → import is bit-identical; merged export reloads with the adapter model's logits
      const files = await s.exportAdapter();
      const conf = JSON.parse(new TextDecoder().decode(files.get('adapter_config.json')!));
      expect(conf).toMatchObject({
        base_model_name_or_path: 'karpathy/tinyllamas/stories260K',
        r: 8,
        lora_alpha: 16,
        fan_in_fan_out: false,
      });
      const imported = parsePeftAdapter(model.config, {
        config: files.get('adapter_config.json')!,
        weights: files.get('adapter_model.safetensors')!,
      });
      expectSameBits(new Map([...imported.tensors].map(([n, t]) => [n, t.data])), await adapterValues(model));
      const merged = await exportMergedModel(model);
      const ck = await loadHfCheckpoint(
        filesSource(new Map([...merged].map(([n, b]) => [n, new Blob([b as BlobPart])]))),
      );
      const mm = CausalLM.fromRaw(ck.config, ck.weights);
      const ids = Int32Array.from(tok.encode('### Instruction:\nSay hello to Lom.\n\n### Response:\n'));
      const [a, b] = [model, mm].map((m) =>
        tf.tidy(() => m.forward({ inputIds: ids, batchSize: 1, seqLen: ids.length })),
      );
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
      console.log(`[session] merged stories260K: max |Δlogit| = ${d.toExponential(2)}`);
      expect(d).toBeLessThan(1e-3);
      tf.dispose([a, b]);

      const g = await s.generationEval({ maxExamples: 4, maxNewTokens: 8 });
      console.log(
        `[session] held-out generation (4): base EM ${g.base.exact_match} ROUGE-L ${g.base.rougeL.toFixed(1)} → tuned EM ${g.tuned.exact_match} ROUGE-L ${g.tuned.rougeL.toFixed(1)}`,
      );
      expect(g.base.count).toBe(4);
      expect(g.tuned.count).toBe(4);
      s.dispose();
      model.dispose();
      mm.dispose();
    });

    /** Run `cfg` from scratch for `steps` steps and return the adapter's values. */
    async function cleanRun(cfgRun: Partial<FinetuneConfig>, steps: number): Promise<Map<string, Float32Array>> {
      const m = loadModel();
      const s = new FinetuneSession({
        model: m,
        tokenizer: tok,
        data: [{ name: 'tiny-tasks.jsonl', bytes: small }],
        config: { ...cfgRun, max_steps: Math.max(1, steps) },
      });
      if (steps > 0) expect((await s.train()).status).toBe('completed');
      const v = await adapterValues(m);
      s.dispose();
      m.dispose();
      return v;
    }

    async function expectCleanDivergence(
      s: FinetuneSession,
      model: CausalLM,
      cfgRun: Partial<FinetuneConfig>,
      r: Awaited<ReturnType<FinetuneSession['train']>>,
      logs: SessionMetrics[],
    ) {
      expect(r.status).toBe('diverged');
      expect(r.message).toMatch(
        /^Training diverged at step \d+: .*The parameters were left at their values after step \d+\. Try a lower learning rate/,
      );
      expect(r.step).toBe(r.error!.lastGoodStep);
      expect(logs.map((m) => m.step)).toEqual(Array.from({ length: r.step }, (_, i) => i + 1)); // only good steps were logged
      expect(s.status).toBe('diverged');
      await expect(s.train()).rejects.toThrow(/diverged and cannot continue/);
      const got = await adapterValues(model);
      for (const [n, v] of got) expect(v.every(Number.isFinite), n).toBe(true);
      // the same run stopped at the last good step has exactly these weights
      expectSameBits(got, await cleanRun(cfgRun, r.step));
    }

    it('divergence from an absurd learning rate stops cleanly with the last good weights and a readable message', async () => {
      // (lr 1e6 only saturates this model — softmax one-hot, gradient 0, loss finite; 1e30 overflows to NaN)
      const bad: Partial<FinetuneConfig> = {
        ...config,
        learning_rate: 1e30,
        lr_scheduler_type: 'constant',
        max_grad_norm: 0,
        max_steps: 20,
      };
      const model = loadModel();
      const s = new FinetuneSession({
        model,
        tokenizer: tok,
        data: [{ name: 'tiny-tasks.jsonl', bytes: small }],
        config: bad,
      });
      const logs: SessionMetrics[] = [];
      const r = await s.train({
        onMetrics: (m) => {
          logs.push(m);
        },
      });
      console.log(`[session] lr 1e30: ${r.status}, weights kept from step ${r.step}: ${r.message}`);
      await expectCleanDivergence(s, model, bad, r, logs);
      // the last good state can be saved (and resumed: here the same rate diverges again at the same step)
      const ck = await s.checkpoint();
      expect(ck.meta.progress).toMatchObject({ global_step: r.step, status: r.step > 0 ? 'stopped' : 'idle' });
      expect(ck.meta.config.learning_rate).toBe(1e30);
      const atDivergence = await adapterValues(model);
      s.dispose();
      const again = await FinetuneSession.resume(
        { model, tokenizer: tok, data: [{ name: 'tiny-tasks.jsonl', bytes: small }] },
        ck,
      );
      expectSameBits(await adapterValues(model), atDivergence);
      const r2 = await again.train();
      expect(r2).toMatchObject({ status: 'diverged', step: r.step });
      again.dispose();
      model.dispose();
    });

    it('resumes a checkpoint with a lower learning rate (after a divergence): the schedule keeps its place, scaled', async () => {
      const cfgRun: Partial<FinetuneConfig> = { ...config, lr_scheduler_type: 'linear', warmup_steps: 0, max_steps: 8 };
      const data = [{ name: 'tiny-tasks.jsonl', bytes: small }];
      const model = loadModel();
      const s = new FinetuneSession({ model, tokenizer: tok, data, config: cfgRun });
      const first: SessionMetrics[] = [];
      await s.train({
        shouldStop: () => s.globalStep >= 3,
        onMetrics: (m) => {
          first.push(m);
        },
      });
      const ck = await s.checkpoint();
      s.dispose();
      const lr = cfgRun.learning_rate! / 4;
      const again = await FinetuneSession.resume({ model, tokenizer: tok, data }, ck, { learning_rate: lr });
      expect(again.config.learning_rate).toBe(lr);
      expect(again.history).toEqual(s.history);
      const later: SessionMetrics[] = [];
      expect(
        (
          await again.train({
            onMetrics: (m) => {
              later.push(m);
            },
          })
        ).status,
      ).toBe('completed');
      console.log(
        `[session] lr ${cfgRun.learning_rate} for 3 steps (${first.map((m) => m.learning_rate.toExponential(3)).join(' ')}), then ${lr}: ${later.map((m) => m.learning_rate.toExponential(3)).join(' ')}`,
      );
      expect(later.map((m) => m.step)).toEqual([4, 5, 6, 7, 8]);
      // linear decay from step 4 of 8, at a quarter of the peak: lr0/4 · (1 − 3/8), …
      for (const m of later) expect(m.learning_rate).toBeCloseTo(lr * (1 - (m.step - 1) / 8), 12);
      expect(later.every((m) => Number.isFinite(m.loss))).toBe(true);
      // no other setting may change on the way
      await expect(
        FinetuneSession.resume(
          { model, tokenizer: tok, data, config: { ...ck.meta.config, learning_rate: lr, weight_decay: 0.5 } },
          ck,
          { learning_rate: lr },
        ),
      ).rejects.toThrow(/configuration differs.*weight_decay/);
      again.dispose();
      model.dispose();
    });

    it('NaN injected mid-run: the steps already in flight are discarded, the last good weights kept', async () => {
      const cfgRun: Partial<FinetuneConfig> = { ...config, lr_scheduler_type: 'constant', max_steps: 20 };
      const model = loadModel();
      const s = new FinetuneSession({
        model,
        tokenizer: tok,
        data: [{ name: 'tiny-tasks.jsonl', bytes: small }],
        config: cfgRun,
      });
      const logs: SessionMetrics[] = [];
      const r = await s.train({
        onMetrics: (m) => {
          logs.push(m);
          if (m.step === 4) {
            // poison a frozen weight: every step launched from now on sees NaN
            const name = 'model.norm.weight';
            const old = model.weights.get(name)!;
            model.weights.set(name, tf.fill(old.shape, NaN));
            old.dispose();
          }
        },
      });
      console.log(`[session] NaN after step 4: ${r.status}, weights kept from step ${r.step}: ${r.message}`);
      expect(r.step).toBeGreaterThanOrEqual(4);
      await expectCleanDivergence(s, model, cfgRun, r, logs);
      s.dispose();
      model.dispose();
    });
  });
}
