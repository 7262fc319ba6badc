/**
 * The check of the fused AdamW step (src/engine/webgpu-kernels.ts, used by AdamW.step on webgpu with a gate): the
 * same steps on cpu (plain ops) and on webgpu, with an open gate, a closed gate over non-finite gradients, a
 * weight-decayed and a not-decayed parameter, and an update refused by the finiteness check (lr 1e30). Leaves webgpu
 * active.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../engine/backend';
import { relErr, type KernelCheck } from '../engine/webgpu-kernel-check';
import { startGpuCounting } from '../engine/gpu-counters';
import { AdamW } from './optimizer';

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let h = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    h = (Math.imul(h, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * h) / 4294967296;
  }
  return out;
}

/** Parameters, moments and the applied flags after the scripted steps, as arrays. */
async function run(beta1: number): Promise<Float32Array[]> {
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
    noDecay: (n) => n === 'p1',
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
  out.push(Float32Array.from(flags));
  opt.dispose();
  for (const p of params.values()) p.dispose();
  return out;
}

export async function checkFusedAdamW(tolerance = 1e-4): Promise<KernelCheck[]> {
  const cases = [0.9, 0.3];
  await initBackend('cpu');
  const ref: Float32Array[][] = [];
  for (const b1 of cases) ref.push(await run(b1));
  await initBackend('webgpu');
  const checks: KernelCheck[] = [];
  for (let i = 0; i < cases.length; i++) {
    const counting = startGpuCounting();
    try {
      const got = await run(cases[i]);
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
