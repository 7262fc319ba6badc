/**
 * The check of the fused AdamW step (src/engine/webgpu-kernels.ts, used by AdamW.step on webgpu with a gate): the
 * same steps on cpu (plain ops) and on webgpu, with an open gate, a closed gate over non-finite gradients, two
 * weight-decayed parameters in the optimizer's flat vectors, and an update refused by the finiteness check (lr 1e30). Leaves webgpu
 * active.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../engine/backend';
import { relErr, type KernelCheck } from '../engine/webgpu-kernel-check';
import { startGpuCounting } from '../engine/gpu-counters';
import { setWebgpuKernels } from '../engine/webgpu-program';
import { AdamW } from './optimizer';
import { Trainer } from './trainer';
import { randomInit } from './benchmark';
import { CausalLM, type TrainBatch } from '../engine/model';
import { llamaConfig } from '../engine/config';

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let h = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    h = (Math.imul(h, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * h) / 4294967296;
  }
  return out;
}

/**
 * Parameters, moments and the applied flags after five scripted steps on the current backend, as arrays: an open
 * gate, a closed gate over a NaN gradient, an update refused by the finiteness check (lr 1e30), two weight-decayed
 * parameters.
 */
export async function scriptedAdamW(beta1: number): Promise<Float32Array[]> {
  const shapes: [number, number][] = [
    [8, 64],
    [172, 8],
  ];
  const params = new Map(
    shapes.map(
      (sh, i) => [`p${i}`, tf.tidy(() => tf.variable(tf.tensor2d(rand(sh[0] * sh[1], 7 + i), sh), true))] as const,
    ),
  );
  const opt = new AdamW(params, {
    learning_rate: 1e-3,
    weight_decay: 0.01,
    adam_beta1: beta1,
  });
  const flags: number[] = [];
  const step = async (k: number, gateOpen: boolean, nanGrad: boolean, lr = 1e-3 * (k + 1)) => {
    const applied = tf.tidy(() => {
      const grads = new Map<string, tf.Tensor>();
      shapes.forEach((sh, i) => {
        const g = rand(sh[0] * sh[1], 100 * k + i, -0.5, 0.5);
        if (nanGrad) g[3] = NaN;
        grads.set(`p${i}`, tf.tensor2d(g, sh));
      });
      return opt.step(grads, { learning_rate: lr, gate: tf.scalar(gateOpen, 'bool'), checkWeights: true })!;
    });
    flags.push((await applied.data())[0]);
    applied.dispose();
  };
  await step(0, true, false);
  await step(1, true, false);
  await step(2, false, true); // closed gate: a NaN gradient changes nothing
  await step(3, true, false, 1e30); // weights would overflow: refused
  await step(4, true, false);
  const out: Float32Array[] = [];
  for (const p of params.values()) out.push(Float32Array.from(await p.data()));
  for (const s of Object.values((await opt.state()).params)) out.push(s.expAvg, s.expAvgSq);
  out.push(Float32Array.from(flags));
  opt.dispose();
  for (const p of params.values()) p.dispose();
  return out;
}

export async function checkFusedAdamW(tolerance = 1e-4): Promise<KernelCheck[]> {
  const cases = [0.9, 0.3];
  await initBackend('cpu');
  const ref: Float32Array[][] = [];
  for (const b1 of cases) ref.push(await scriptedAdamW(b1));
  await initBackend('webgpu');
  const checks: KernelCheck[] = [];
  for (let i = 0; i < cases.length; i++) {
    const counting = startGpuCounting();
    try {
      const got = await scriptedAdamW(cases[i]);
      const forward = Math.max(...got.map((g, j) => relErr(g, ref[i][j])));
      const fusedPrograms = Object.entries(counting?.counts.byProgram ?? {})
        .filter(([k]) => k.startsWith('webtune_adamw'))
        .reduce((n, [, v]) => n + v, 0);
      checks.push({
        name: `AdamW 5 steps (β1 ${cases[i]}: lerp ${1 - cases[i] < 0.5 ? 'm + w(g − m)' : 'g − (g − m)w'}), gated`,
        forward,
        fusedPrograms,
        ok: forward <= tolerance && fusedPrograms > 0,
      });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      checks.push({ name: `AdamW β1 ${cases[i]}`, forward: Infinity, fusedPrograms: 0, ok: false, error });
    } finally {
      counting?.stop();
    }
  }
  return checks;
}

/**
 * Five training steps of a tiny llama (LoRA with dropout on every linear layer, gradients clipped at 0.05), each of
 * two micro-batches (gradient accumulation: on webgpu both add into the step's gradient sink).
 */
async function trainRun(): Promise<Float32Array[]> {
  const cfg = llamaConfig({
    vocab_size: 13,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 16,
  });
  const model = CausalLM.fromRaw(cfg, randomInit(cfg, 3));
  const adapter = model.attachLora(
    { r: 2, lora_alpha: 4, lora_dropout: 0.1, target_modules: 'all-linear', use_rslora: false },
    1,
  );
  const batches: TrainBatch[] = [
    {
      inputIds: Int32Array.from([1, 5, 6, 7, 8, 9]),
      labels: Int32Array.from([-100, -100, 6, 7, 8, 9]),
      batchSize: 1,
      seqLen: 6,
    },
    {
      inputIds: Int32Array.from([1, 10, 11, 12, 2, 2]),
      labels: Int32Array.from([-100, -100, 11, 12, -100, -100]),
      attentionMask: Uint8Array.from([1, 1, 1, 1, 0, 0]),
      batchSize: 1,
      seqLen: 6,
    },
  ];
  const trainer = new Trainer<TrainBatch>(
    { vars: adapter.variables(), lossFn: (b) => model.loss(b, { dropoutSeed: 7 }) },
    { learning_rate: 0.05, max_steps: 5, lr_scheduler_type: 'constant', seed: 0, max_grad_norm: 0.05 },
  );
  const metrics: number[] = [];
  try {
    for (let s = 0; s < 5; s++) {
      // a weight set from outside the optimizer mid-run (as loading an adapter does) must be what it steps from
      const B0 = [...adapter.variables().values()][1];
      if (s === 3) tf.tidy(() => B0.assign(tf.fill(B0.shape, 0.01)));
      const m = await trainer.step(batches);
      metrics.push(m.loss, m.gradNorm, m.correct);
    }
    const out = [Float32Array.from(metrics)];
    for (const v of adapter.variables().values()) out.push(Float32Array.from(await v.data()));
    return out;
  } finally {
    trainer.dispose();
    model.dispose();
  }
}

/** The Trainer's step on webgpu (grad norms, clipping and AdamW in our programs) against cpu. Leaves webgpu active. */
export async function checkFusedTrainer(tolerance = 1e-4): Promise<KernelCheck> {
  await initBackend('cpu');
  const ref = await trainRun();
  await initBackend('webgpu');
  // Five Adam steps amplify float rounding (an update is about lr · sign(g) where g is small): the same run on
  // webgpu with the plain ops is the yardstick, and our programs may not drift further from cpu than it does
  setWebgpuKernels(false);
  let plain: Float32Array[];
  try {
    plain = await trainRun();
  } finally {
    setWebgpuKernels(true);
  }
  const plainErr = Math.max(...plain.map((g, j) => relErr(g, ref[j])));
  const counting = startGpuCounting();
  const name = `Trainer: 5 LoRA steps of 2 micro-batches, tiny llama, gradient sink (loss, grad norm, correct, adapter weights; plain webgpu ops: ${plainErr.toExponential(2)})`;
  try {
    const got = await trainRun();
    const forward = Math.max(...got.map((g, j) => relErr(g, ref[j])));
    const programs = Object.entries(counting?.counts.byProgram ?? {});
    const count = (prefix: string) => programs.filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
    const fusedPrograms = count('webtune_');
    // the LoRA gradients went through the sink (one program per layer or fused group, added into the flat vector)
    const sunk = count('webtune_proj_ab_grad');
    const ok = forward <= Math.max(tolerance, 2 * plainErr) && fusedPrograms > 0 && sunk > 0;
    return { name, forward, fusedPrograms, ok, ...(sunk > 0 ? {} : { error: 'no gradient went through the sink' }) };
  } catch (e) {
    return { name, forward: Infinity, fusedPrograms: 0, ok: false, error: e instanceof Error ? e.message : String(e) };
  } finally {
    counting?.stop();
  }
}
