import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { Trainer, TrainingDivergedError, hfNoDecay, type BatchRequest } from '../../src/train/trainer';
import type { WindowMetrics } from '../../src/train/metrics';
import type { StepMetrics } from '../../src/train/metrics';
import { Rng } from '../../src/util/rng';
import { B_NAME, C, W_NAME, RefTrainer, concatBatches, makeBatch, makeToy, relErr, type Batch } from './toy';

const BACKENDS = ['cpu', 'wasm'] as const;

/** Deterministic data: a function of (step, micro) only, sizes 1..8 rows, some rows ignored. */
function dataBatch(req: { step: number; micro: number }, dataSeed = 77): Batch {
  const r = new Rng(dataSeed).derive(req.step, req.micro);
  return makeBatch(r, 1 + r.int(8));
}

const bits = (a: ArrayLike<number>) => Array.from(a);

describe.each(BACKENDS)('Trainer on %s', (backend) => {
  beforeAll(async () => {
    const rep = await initBackend(backend);
    expect(rep.backend).toBe(backend);
  });
  afterAll(() => tf.disposeVariables());

  it('matches a float64 HF reference: token-weighted accumulation, clipping, warmup, AdamW with decay groups', async () => {
    const cfg = {
      learning_rate: 0.05,
      weight_decay: 0.05,
      adam_beta1: 0.9,
      adam_beta2: 0.999,
      adam_epsilon: 1e-8,
      max_grad_norm: 0.9,
      warmup_steps: 2,
      max_steps: 10,
    };
    const norms: number[] = [];
    const toy = makeToy(1);
    const ref = new RefTrainer(toy.initW, toy.initB, cfg);
    const tr = new Trainer(toy, { ...cfg, lr_scheduler_type: 'linear', gradient_accumulation_steps: 3 });
    expect(tr.optimizer.decays(W_NAME)).toBe(true);
    expect(tr.optimizer.decays(B_NAME)).toBe(false);
    const r = new Rng(5);
    let clipped = 0,
      unclipped = 0;
    const worst = { loss: 0, norm: 0, W: 0, b: 0 };
    for (let s = 1; s <= 10; s++) {
      // unequal micro-batches; at step 3 one of them has no trained token at all
      const micro = [
        makeBatch(r, 1 + r.int(6)),
        makeBatch(r, 1 + r.int(6)),
        makeBatch(r, 1 + r.int(6), s === 3 ? 1 : 0.25),
      ];
      const want = ref.step(micro);
      const got = await tr.step(micro);
      expect(got.step).toBe(s);
      expect(got.tokens).toBe(want.tokens);
      expect(got.correct).toBe(want.correct);
      expect(got.learning_rate).toBe(want.learning_rate);
      worst.loss = Math.max(worst.loss, Math.abs(got.loss - want.loss) / want.loss);
      worst.norm = Math.max(worst.norm, Math.abs(got.gradNorm - want.gradNorm) / want.gradNorm);
      norms.push(want.gradNorm);
      if (want.gradNorm > cfg.max_grad_norm) clipped++;
      else unclipped++;
      const v = await toy.values();
      worst.W = Math.max(worst.W, relErr(v.W, ref.W));
      worst.b = Math.max(worst.b, relErr(v.b, ref.b));
    }
    console.log(
      `[${backend}] trainer vs float64 HF reference, 10 steps × 3 micro-batches: max rel err loss ${worst.loss.toExponential(2)}, grad_norm ${worst.norm.toExponential(2)}, W ${worst.W.toExponential(2)}, b ${worst.b.toExponential(2)} (clipped steps ${clipped}, unclipped ${unclipped}; norms ${norms.map((n) => n.toFixed(3))})`,
    );
    expect(clipped).toBeGreaterThan(0);
    expect(unclipped).toBeGreaterThan(0);
    expect(worst.loss).toBeLessThan(1e-5);
    expect(worst.norm).toBeLessThan(1e-5);
    expect(worst.W).toBeLessThan(5e-5);
    expect(worst.b).toBeLessThan(5e-5);
    tr.dispose();
    toy.dispose();
  });

  it('accumulation weighs tokens, not micro-batch means: [3 tokens, 1 token] ≡ one batch of 4', async () => {
    const r = new Rng(8);
    const b1 = makeBatch(r, 3, 0),
      b2 = makeBatch(r, 1, 0);
    const a = makeToy(2),
      b = makeToy(2);
    const ta = new Trainer(a, { max_steps: 1, learning_rate: 0.1, lr_scheduler_type: 'constant', max_grad_norm: 0 });
    const tb = new Trainer(b, { max_steps: 1, learning_rate: 0.1, lr_scheduler_type: 'constant', max_grad_norm: 0 });
    const ma = await ta.step([b1, b2]);
    const mb = await tb.step([concatBatches([b1, b2])]);
    expect(Math.abs(ma.loss - mb.loss)).toBeLessThan(1e-6);
    expect(Math.abs(ma.gradNorm - mb.gradNorm) / mb.gradNorm).toBeLessThan(1e-5);
    expect(relErr((await a.values()).W, (await b.values()).W)).toBeLessThan(1e-6);
    // and differs from the mean of the two means
    ta.dispose();
    tb.dispose();
    a.dispose();
    b.dispose();
  });

  it('trainSteps(): metrics, lr schedule, logging_steps aggregation, one-step-late readback', async () => {
    const toy = makeToy(3);
    const tr = new Trainer(toy, {
      max_steps: 7,
      learning_rate: 0.01,
      warmup_steps: 2,
      lr_scheduler_type: 'linear',
      logging_steps: 3,
      gradient_accumulation_steps: 2,
    });
    const steps: StepMetrics[] = [];
    const logs: WindowMetrics[] = [];
    const reqs: BatchRequest[] = [];
    const res = await tr.trainSteps({
      getBatch: (req) => {
        reqs.push(req);
        return dataBatch(req);
      },
      onStep: (m) => {
        steps.push(m);
      },
      onMetrics: (m) => {
        logs.push(m);
      },
    });
    expect(res).toMatchObject({ reason: 'maxSteps', step: 7 });
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(steps.map((m) => m.learning_rate)).toEqual([0, 1, 2, 3, 4, 5, 6].map((s) => tr.lrAt(s)));
    expect(steps[0].learning_rate).toBe(0); // HF: the first step of a warmup runs with lr 0
    expect(steps[1].learning_rate).toBe(0.005);
    expect(steps[2].learning_rate).toBe(0.01);
    expect(reqs.map((q) => `${q.step}.${q.micro}`)).toEqual([1, 2, 3, 4, 5, 6, 7].flatMap((s) => [`${s}.0`, `${s}.1`]));
    for (const m of steps) {
      expect(m.loss).toBeGreaterThan(0);
      expect(m.tokens).toBeGreaterThan(0);
      expect(m.accuracy).toBeCloseTo(m.correct / m.tokens, 12);
      expect(m.gradNorm).toBeGreaterThan(0);
      expect(m.msPerStep).toBeGreaterThan(0);
      expect(m.tokensPerSec).toBeCloseTo(m.tokens / (m.msPerStep / 1000), 6);
    }
    expect(logs.map((l) => [l.step, l.steps])).toEqual([
      [3, 3],
      [6, 3],
      [7, 1],
    ]);
    const w = steps.slice(0, 3);
    expect(logs[0].loss).toBeCloseTo(w.reduce((a, m) => a + m.loss, 0) / 3, 6);
    expect(logs[0].tokens).toBe(w.reduce((a, m) => a + m.tokens, 0));
    expect(logs[0].gradNorm).toBe(w[2].gradNorm);
    expect(logs[0].learning_rate).toBe(w[2].learning_rate);
    tr.dispose();
    toy.dispose();
  });

  it('live tensor count is the same after step 1 and step 100, and nothing leaks across run()', async () => {
    const toy = makeToy(4);
    const tr = new Trainer(toy, {
      max_steps: 100,
      learning_rate: 0.01,
      gradient_accumulation_steps: 2,
      warmup_ratio: 0.1,
      lr_scheduler_type: 'cosine',
    });
    const before = tf.memory().numTensors;
    const steps: StepMetrics[] = [];
    await tr.trainSteps({
      getBatch: (req) => dataBatch(req),
      onStep: (m) => {
        steps.push(m);
      },
    });
    expect(steps.length).toBe(100);
    const counts = new Set(steps.map((m) => m.numTensors));
    console.log(
      `[${backend}] live tensors: step 1 ${steps[0].numTensors}, step 100 ${steps[99].numTensors}; before run ${before}, after ${tf.memory().numTensors}`,
    );
    expect(steps[99].numTensors).toBe(steps[0].numTensors);
    expect(counts.size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    // step() API too
    const n0 = tf.memory().numTensors;
    const t2 = new Trainer(toy, { max_steps: 10 });
    const n1 = tf.memory().numTensors;
    const m1 = await t2.step([dataBatch({ step: 1, micro: 0 })]);
    for (let i = 2; i <= 9; i++) await t2.step([dataBatch({ step: i, micro: 0 })]);
    const m10 = await t2.step([dataBatch({ step: 10, micro: 0 })]);
    expect(m10.numTensors).toBe(m1.numTensors);
    expect(tf.memory().numTensors).toBe(n1);
    t2.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    tr.dispose();
    toy.dispose();
  });

  it('is deterministic for a seed (bit-identical weights and losses)', async () => {
    const once = async (seed: number) => {
      const toy = makeToy(5);
      const tr = new Trainer(toy, {
        max_steps: 12,
        learning_rate: 0.02,
        gradient_accumulation_steps: 2,
        seed,
        warmup_steps: 3,
        weight_decay: 0.01,
      });
      const losses: number[] = [];
      // data drawn from the trainer-provided rng (as dropout seeds / sampling would be)
      await tr.trainSteps({
        getBatch: (req) => makeBatch(req.rng, 1 + req.rng.int(8)),
        onStep: (m) => {
          losses.push(m.loss);
        },
      });
      const v = await toy.values();
      tr.dispose();
      toy.dispose();
      return { losses, W: bits(v.W), b: bits(v.b) };
    };
    const a = await once(42),
      b = await once(42),
      c = await once(43);
    expect(b).toEqual(a);
    expect(c.losses).not.toEqual(a.losses);
  });

  it('pause via shouldStop and resume with run() gives the same result as an uninterrupted run', async () => {
    const full = makeToy(6);
    const tf1 = new Trainer(full, {
      max_steps: 8,
      learning_rate: 0.03,
      gradient_accumulation_steps: 2,
      warmup_steps: 2,
    });
    await tf1.trainSteps({ getBatch: (req) => dataBatch(req) });
    const paused = makeToy(6);
    const tp = new Trainer(paused, {
      max_steps: 8,
      learning_rate: 0.03,
      gradient_accumulation_steps: 2,
      warmup_steps: 2,
    });
    let seen = 0;
    const r1 = await tp.trainSteps({
      getBatch: (req) => dataBatch(req),
      onStep: () => {
        seen++;
      },
      shouldStop: () => seen >= 3,
    });
    expect(r1.reason).toBe('stopped');
    // one step was already in flight when shouldStop turned true: it is completed, not dropped
    expect(r1.step).toBe(4);
    expect(seen).toBe(4);
    const r2 = await tp.trainSteps({ getBatch: (req) => dataBatch(req) });
    expect(r2).toMatchObject({ reason: 'maxSteps', step: 8 });
    const a = await full.values(),
      b = await paused.values();
    expect(bits(b.W)).toEqual(bits(a.W));
    expect(bits(b.b)).toEqual(bits(a.b));
    for (const t of [tf1, tp]) t.dispose();
    full.dispose();
    paused.dispose();
  });

  it('checkpoint: state() + weights → new Trainer.loadState() continues bit-identically', async () => {
    const a = makeToy(7);
    const ta = new Trainer(a, { max_steps: 6, learning_rate: 0.03, weight_decay: 0.1, warmup_steps: 1 });
    await ta.trainSteps({ getBatch: (req) => dataBatch(req), shouldStop: () => ta.globalStep >= 3 });
    expect(ta.globalStep).toBe(3);
    const st = JSON.parse(
      JSON.stringify(await ta.state(), (_k, v) => (v instanceof Float32Array ? { f32: Array.from(v) } : v)),
      (_k, v) => (v && typeof v === 'object' && Array.isArray(v.f32) ? Float32Array.from(v.f32) : v),
    );
    const w = await a.values();
    const b = makeToy(7, { W: Float32Array.from(w.W), b: Float32Array.from(w.b) });
    const tb = new Trainer(b, { max_steps: 6, learning_rate: 0.03, weight_decay: 0.1, warmup_steps: 1 });
    tb.loadState(st);
    expect(tb.globalStep).toBe(3);
    await ta.trainSteps({ getBatch: (req) => dataBatch(req) });
    await tb.trainSteps({ getBatch: (req) => dataBatch(req) });
    expect(bits((await b.values()).W)).toEqual(bits((await a.values()).W));
    const other = new Trainer(makeToy(7), { max_steps: 6, seed: 1 });
    expect(() => other.loadState(st)).toThrow(/different seed/);
    for (const t of [ta, tb, other]) t.dispose();
  });

  it('stops at the end of the data; a partial accumulation window still makes a step', async () => {
    const toy = makeToy(8);
    const tr = new Trainer(toy, { max_steps: 100, gradient_accumulation_steps: 2 });
    let served = 0;
    const res = await tr.trainSteps({ getBatch: (req) => (served++ < 5 ? dataBatch(req) : null) });
    expect(res).toMatchObject({ reason: 'dataEnd', step: 3 });
    tr.dispose();
    toy.dispose();
  });

  for (const poison of ['nan-loss', 'nan-grad'] as const) {
    it(`${poison} at step 5 → TrainingDivergedError, weights and optimizer left at step 4, training can go on`, async () => {
      const opts = {
        max_steps: 8,
        learning_rate: 0.05,
        gradient_accumulation_steps: 2,
        weight_decay: 0.01,
        warmup_steps: 1,
      };
      const clean = makeToy(9);
      const tc = new Trainer(clean, opts);
      await tc.trainSteps({ getBatch: (req) => dataBatch(req), shouldStop: () => tc.globalStep >= 4 });
      expect(tc.globalStep).toBe(4);
      const at4 = await clean.values();
      const opt4 = await tc.optimizer.state();

      const toy = makeToy(9);
      const tr = new Trainer(toy, opts);
      const launched: number[] = [];
      const seen: number[] = [];
      const err = await tr
        .trainSteps({
          getBatch: (req) => {
            if (req.micro === 0) launched.push(req.step);
            const b = dataBatch(req);
            return req.step === 5 && req.micro === 1 ? { ...b, poison } : b;
          },
          onStep: (m) => {
            seen.push(m.step);
          },
        })
        .then(
          () => null,
          (e) => e,
        );
      expect(err).toBeInstanceOf(TrainingDivergedError);
      const e = err as TrainingDivergedError;
      expect(e.step).toBe(5);
      expect(e.lastGoodStep).toBe(4);
      expect(e.what).toEqual(poison === 'nan-loss' ? ['loss'] : ['grad_norm']); // a NaN constant added to the loss has finite gradients
      expect(e.message).toMatch(/diverged at step 5/);
      expect(e.message).toMatch(/lower learning rate/);
      if (poison === 'nan-grad') expect(Number.isFinite(e.loss)).toBe(true);
      expect(seen).toEqual([1, 2, 3, 4]);
      // step 6's batch was already requested when step 5 was read back (one step late); if it was launched,
      // the sticky device flag made it a no-op
      expect(launched).toEqual([1, 2, 3, 4, 5, 6]);
      // weights and moments: exactly those after step 4
      const v = await toy.values();
      expect(bits(v.W)).toEqual(bits(at4.W));
      expect(bits(v.b)).toEqual(bits(at4.b));
      const os = await tr.optimizer.state();
      expect(os.step).toBe(4);
      for (const name of [W_NAME, B_NAME]) {
        expect(os.params[name].step).toBe(4);
        expect(bits(os.params[name].expAvg)).toEqual(bits(opt4.params[name].expAvg));
        expect(bits(os.params[name].expAvgSq)).toEqual(bits(opt4.params[name].expAvgSq));
      }
      expect(tr.globalStep).toBe(4);
      // resuming on clean data reproduces the clean run
      await tr.trainSteps({ getBatch: (req) => dataBatch(req) });
      await tc.trainSteps({ getBatch: (req) => dataBatch(req) });
      expect(bits((await toy.values()).W)).toEqual(bits((await clean.values()).W));
      tr.dispose();
      tc.dispose();
      toy.dispose();
      clean.dispose();
    });
  }

  it('step() API: a NaN step rejects, later in-flight steps reject with the same error and change nothing', async () => {
    const toy = makeToy(10);
    const tr = new Trainer(toy, { max_steps: 10, learning_rate: 0.05 });
    await tr.step([dataBatch({ step: 1, micro: 0 })]);
    const w1 = await toy.values();
    const p2 = tr.step([{ ...dataBatch({ step: 2, micro: 0 }), poison: 'nan-loss' }]);
    const p3 = tr.step([dataBatch({ step: 3, micro: 0 })]);
    const [e2, e3] = await Promise.all([
      p2.then(
        () => null,
        (e) => e,
      ),
      p3.then(
        () => null,
        (e) => e,
      ),
    ]);
    expect(e2).toBeInstanceOf(TrainingDivergedError);
    expect(e3).toBe(e2);
    expect((e2 as TrainingDivergedError).step).toBe(2);
    expect(bits((await toy.values()).W)).toEqual(bits(w1.W));
    expect(tr.globalStep).toBe(1);
    const m = await tr.step([dataBatch({ step: 2, micro: 0 })]);
    expect(m.step).toBe(2);
    tr.dispose();
    toy.dispose();
  });

  it('learning_rate 1e30: the first update would overflow the weights → refused as a divergence, weights untouched', async () => {
    const toy = makeToy(12);
    const tr = new Trainer(toy, { max_steps: 4, learning_rate: 1e30, max_grad_norm: 0 });
    const e = await tr.step([dataBatch({ step: 1, micro: 0 })]).then(
      () => null,
      (err) => err as TrainingDivergedError,
    );
    expect(e).toBeInstanceOf(TrainingDivergedError);
    expect(e!.step).toBe(1);
    expect(e!.what).toEqual(['weights']);
    expect(Number.isFinite(e!.loss)).toBe(true);
    expect(e!.gradNorm).toBeGreaterThan(0);
    expect(e!.message).toMatch(/would make LoRA weights non-finite/);
    const v = await toy.values();
    expect(bits(v.W)).toEqual(bits(toy.initW));
    expect(bits(v.b)).toEqual(bits(toy.initB));
    expect(tr.globalStep).toBe(0);
    const os = await tr.optimizer.state();
    expect(os.step).toBe(0);
    expect(Array.from(os.params[W_NAME].expAvg).every((x) => x === 0)).toBe(true);
    tr.dispose();
    toy.dispose();
  });

  it('a saturated step (positive loss, gradient exactly 0) is a divergence, not a completed step', async () => {
    const toy = makeToy(13);
    const tr = new Trainer(toy, { max_steps: 4, learning_rate: 0.05, weight_decay: 0.1 });
    await tr.step([dataBatch({ step: 1, micro: 0 })]);
    const w1 = await toy.values();
    const e = await tr.step([{ ...dataBatch({ step: 2, micro: 0 }), poison: 'saturated' }]).then(
      () => null,
      (err) => err as TrainingDivergedError,
    );
    expect(e).toBeInstanceOf(TrainingDivergedError);
    expect(e!.what).toEqual(['saturated']);
    expect(e!.gradNorm).toBe(0);
    expect(e!.loss).toBeCloseTo(Math.log(C), 5);
    expect(e!.message).toMatch(/gradient is exactly 0 while the loss is 1\.6/);
    // weight decay alone would have moved W: the gate kept it at step 1
    expect(bits((await toy.values()).W)).toEqual(bits(w1.W));
    expect(tr.globalStep).toBe(1);
    tr.dispose();
    toy.dispose();
  });

  it('validates its configuration and the loss function', async () => {
    const toy = makeToy(11);
    expect(() => new Trainer(toy, { max_steps: 0 })).toThrow(/max_steps/);
    expect(() => new Trainer(toy, { max_steps: 5, gradient_accumulation_steps: 1.5 })).toThrow(
      /gradient_accumulation_steps/,
    );
    expect(() => new Trainer(toy, { max_steps: 5, max_grad_norm: -1 })).toThrow(/max_grad_norm/);
    expect(() => new Trainer(toy, { max_steps: 5, lr_scheduler_type: 'poly' as never })).toThrow(/lr_scheduler_type/);
    expect(() => new Trainer(toy, { max_steps: 5, adam_beta2: 1 })).toThrow(/beta parameter at index 1/);
    expect(() => new Trainer(toy, { max_steps: 5, warmup_ratio: 2 })).toThrow(/warmupRatio/);
    const n = tf.memory().numTensors;
    const bad = new Trainer(
      {
        vars: toy.vars,
        lossFn: () => ({ loss: tf.ones([2]) as unknown as tf.Scalar, correct: tf.scalar(0), count: tf.scalar(1) }),
      },
      { max_steps: 2 },
    );
    await expect(bad.step([0])).rejects.toThrow(/scalars/);
    bad.dispose();
    expect(tf.memory().numTensors).toBe(n);
    expect(hfNoDecay('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toBe(false);
    expect(hfNoDecay('model.layers.0.input_layernorm.weight')).toBe(true);
    expect(hfNoDecay('model.norm.weight')).toBe(true);
    expect(hfNoDecay('transformer.h.0.ln_1.weight')).toBe(true);
    expect(hfNoDecay('transformer.ln_f.bias')).toBe(true);
    expect(hfNoDecay('model.layers.0.self_attn.q_proj.bias')).toBe(true);
    expect(hfNoDecay('transformer.h.0.attn.c_attn.weight')).toBe(false);
    toy.dispose();
  });
});
