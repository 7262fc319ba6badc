/**
 * AdamW with the update of torch.optim.AdamW (decoupled weight decay), on tf.Variables.
 *
 * For each parameter p with gradient g, at its step t (per-parameter, as torch keeps state[p]['step']):
 *   p  ← p · (1 − lr·wd)                      (skipped when wd = 0)
 *   m  ← lerp(m, g, 1 − β1)                   (= β1·m + (1 − β1)·g)
 *   v  ← β2·v + (1 − β2)·g·g
 *   p  ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 * Scalars are computed in float64 (as torch does in Python) and applied in float32.
 * Config fields have HF TrainingArguments' names (learning_rate, adam_beta1, adam_beta2, adam_epsilon, weight_decay;
 * torch's lr, betas, eps, weight_decay). Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0 (HF's default;
 * torch's own AdamW default is 1e-2).
 *
 * As in torch, a parameter without a gradient in a step is skipped entirely (no decay, no moment
 * update, its step count does not advance).
 *
 * Moments are tf.Variables created once in the constructor; each step replaces their values in place
 * (Variable.assign inside tf.tidy), so the live tensor count does not change from step to step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readTensor } from '../engine/readback';
import { fusedAdamW, fusedAllFinite, webgpuKernelsActive, type AdamWScalars } from '../engine/webgpu-kernels';

export interface AdamWConfig {
  learning_rate: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  weight_decay: number;
  /** Parameters for which weight decay is 0 (a second param group with weight_decay 0). Default: none. */
  noDecay?: (name: string) => boolean;
}

export const ADAMW_DEFAULTS: AdamWConfig = {
  learning_rate: 1e-3,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  weight_decay: 0,
};

export interface AdamWParamState {
  /** Number of updates applied to this parameter (torch state[p]['step']). */
  step: number;
  shape: number[];
  /** First moment (torch exp_avg). */
  expAvg: Float32Array;
  /** Second moment (torch exp_avg_sq). */
  expAvgSq: Float32Array;
}

export interface AdamWState {
  /** Number of optimizer steps taken (calls to step()). */
  step: number;
  params: Record<string, AdamWParamState>;
}

export interface AdamWStepOptions {
  /** Learning rate for this step (default: config.learning_rate). */
  learning_rate?: number;
  /**
   * A bool scalar; where false the step changes nothing on the device (parameters and moments keep
   * their values, computed without a readback). Used by the Trainer to refuse non-finite updates.
   * The per-parameter step counters still advance on the CPU; restore them with setStepCounts().
   */
  gate?: tf.Scalar;
  /**
   * Also refuse, on the device, an update that leaves a parameter with a non-finite norm (NaN, ±Infinity, or a
   * weight so large its square overflows float32, about 1.8e19): nothing is changed then, and step() returns
   * the flag (a bool scalar, true = applied) for the caller to read back with its other values.
   */
  checkWeights?: boolean;
  /** Use (g / div) · mul for each gradient g (float32 scalars): the trainer's averaging and clipping, fused on webgpu. */
  gradScale?: { div: tf.Scalar; mul: tf.Scalar };
}

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  step: number;
  decay: boolean;
}

export function validateAdamW(c: AdamWConfig): void {
  // torch.optim.AdamW's messages
  if (!(Number.isFinite(c.learning_rate) && c.learning_rate >= 0))
    throw new Error(`Invalid learning rate: ${c.learning_rate}`);
  if (!(Number.isFinite(c.adam_epsilon) && c.adam_epsilon >= 0))
    throw new Error(`Invalid epsilon value: ${c.adam_epsilon}`);
  if (!(c.adam_beta1 >= 0 && c.adam_beta1 < 1)) throw new Error(`Invalid beta parameter at index 0: ${c.adam_beta1}`);
  if (!(c.adam_beta2 >= 0 && c.adam_beta2 < 1)) throw new Error(`Invalid beta parameter at index 1: ${c.adam_beta2}`);
  if (!(Number.isFinite(c.weight_decay) && c.weight_decay >= 0))
    throw new Error(`Invalid weight_decay value: ${c.weight_decay}`);
}

export class AdamW {
  readonly config: AdamWConfig;
  private readonly params: Map<string, tf.Variable>;
  private readonly slots = new Map<string, Slot>();
  private steps = 0;
  private disposed = false;

  constructor(params: Map<string, tf.Variable>, config: Partial<AdamWConfig> = {}) {
    this.config = {
      ...ADAMW_DEFAULTS,
      ...config,
    };
    validateAdamW(this.config);
    this.params = new Map(params);
    for (const [name, p] of this.params) {
      if (p.dtype !== 'float32') throw new Error(`AdamW: parameter ${name} has dtype ${p.dtype}, expected float32`);
      this.slots.set(name, {
        m: tf.tidy(() => tf.variable(tf.zeros(p.shape), false)),
        v: tf.tidy(() => tf.variable(tf.zeros(p.shape), false)),
        step: 0,
        decay: !(this.config.noDecay?.(name) ?? false),
      });
    }
  }

  /** Number of optimizer steps taken. */
  get stepCount(): number {
    return this.steps;
  }

  /** Parameter names, in update order. */
  names(): string[] {
    return [...this.params.keys()];
  }

  /** Whether weight decay applies to this parameter. */
  decays(name: string): boolean {
    return this.slot(name).decay;
  }

  private slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new Error(`AdamW: unknown parameter ${name}`);
    return s;
  }

  /**
   * One AdamW update. `grads` maps parameter names to gradients (missing = no gradient: skipped).
   * Call it with the gradients already clipped/scaled; it does not read anything back.
   */
  step(grads: Map<string, tf.Tensor> | Record<string, tf.Tensor>, opts: AdamWStepOptions = {}): tf.Scalar | undefined {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
    const gmap = grads instanceof Map ? grads : new Map(Object.entries(grads));
    // off webgpu (or without a gate) the scaling is applied here, with the ops the trainer used to apply it
    if (opts.gradScale && !(opts.gate && webgpuKernelsActive())) {
      const { div, mul } = opts.gradScale;
      const scaled = new Map([...gmap].map(([k, g]) => [k, tf.mul(tf.div(g, div), mul)] as [string, tf.Tensor]));
      try {
        return this.step(scaled, { ...opts, gradScale: undefined });
      } finally {
        tf.dispose([...scaled.values()]);
      }
    }
    for (const name of gmap.keys())
      if (!this.params.has(name)) throw new Error(`AdamW: gradient for unknown parameter ${name}`);
    const lr = opts.learning_rate ?? this.config.learning_rate;
    if (!(Number.isFinite(lr) && lr >= 0)) throw new Error(`Invalid learning rate: ${lr}`);
    const { adam_beta1: beta1, adam_beta2: beta2, adam_epsilon: eps, weight_decay: wd } = this.config;
    const gate = opts.gate;
    if (gate && (gate.rank !== 0 || gate.dtype !== 'bool')) throw new Error('AdamW: gate must be a bool scalar');
    this.steps++;

    if (gate && webgpuKernelsActive()) return this.fusedStep(gmap, lr, gate, !!opts.checkWeights, opts.gradScale);
    return tf.tidy((): tf.Scalar | undefined => {
      // Step-independent scalars (float64 in JS, cast to float32 once).
      const sc = (x: number) => tf.scalar(x, 'float32');
      const gated = (x: number, off: number): tf.Scalar =>
        gate ? (tf.where(gate, sc(x), sc(off)) as tf.Scalar) : sc(x);
      // lerp weight and form exactly as torch: w < 0.5 ? m + w·(g − m) : g − (g − m)·(1 − w)
      const w1 = 1 - beta1;
      const lerpSmall = w1 < 0.5;
      const lerpW = gated(lerpSmall ? w1 : 1 - w1, lerpSmall ? 0 : 1);
      const b2 = gated(beta2, 1);
      const c2 = gated(1 - beta2, 0);
      const epsT = sc(eps);
      const decayT = wd !== 0 ? gated(1 - lr * wd, 1) : null;
      const perStep = new Map<number, { negStep: tf.Scalar; bc2sqrt: tf.Scalar }>();
      const stepScalars = (t: number) => {
        let s = perStep.get(t);
        if (!s) {
          const bc1 = 1 - Math.pow(beta1, t);
          const bc2 = 1 - Math.pow(beta2, t);
          s = { negStep: gated(-(lr / bc1), 0), bc2sqrt: sc(Math.sqrt(bc2)) };
          perStep.set(t, s);
        }
        return s;
      };

      const updates: { p: tf.Variable; s: Slot; m: tf.Tensor; v: tf.Tensor; newP: tf.Tensor }[] = [];
      for (const [name, p] of this.params) {
        const gIn = gmap.get(name);
        if (!gIn) continue;
        if (gIn.shape.join(',') !== p.shape.join(',')) {
          throw new Error(`AdamW: gradient for ${name} has shape [${gIn.shape}], parameter has [${p.shape}]`);
        }
        const s = this.slot(name);
        s.step++;
        const { negStep, bc2sqrt } = stepScalars(s.step);
        // Non-finite gradients must not reach the moments when the gate is closed (NaN·0 = NaN).
        const g = gate ? tf.where(gate, gIn, tf.zerosLike(gIn)) : gIn;

        let pv: tf.Tensor = p;
        if (decayT && s.decay) pv = tf.mul(pv, decayT);
        const m = lerpSmall ? tf.add(s.m, tf.mul(lerpW, tf.sub(g, s.m))) : tf.sub(g, tf.mul(tf.sub(g, s.m), lerpW));
        const v = tf.add(tf.mul(s.v, b2), tf.mul(tf.mul(c2, g), g));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2sqrt), epsT);
        const newP = tf.add(pv, tf.mul(negStep, tf.div(m, denom)));
        updates.push({ p, s, m, v, newP });
      }
      if (!opts.checkWeights) {
        for (const u of updates) {
          u.s.m.assign(u.m);
          u.s.v.assign(u.v);
          u.p.assign(u.newP);
        }
        return undefined;
      }
      // ‖θ‖² is finite only if every weight is finite and below ~1.8e19 in magnitude.
      let applied = tf.scalar(true, 'bool') as tf.Scalar;
      for (const u of updates) applied = tf.logicalAnd(applied, tf.isFinite(tf.sum(tf.square(u.newP))));
      for (const u of updates) {
        u.s.m.assign(tf.where(applied, u.m, u.s.m));
        u.s.v.assign(tf.where(applied, u.v, u.s.v));
        u.p.assign(tf.where(applied, u.newP, u.p));
      }
      return applied;
    });
  }

  /**
   * step() on webgpu with a gate: the same formulas in our WGSL programs (src/engine/webgpu-kernels.ts), 4 programs
   * per parameter plus the finiteness check, instead of some 25 ops with their where/tile broadcasts.
   */
  private fusedStep(
    gmap: Map<string, tf.Tensor>,
    lr: number,
    gate: tf.Scalar,
    checkWeights: boolean,
    gradScale?: { div: tf.Scalar; mul: tf.Scalar },
  ): tf.Scalar | undefined {
    const { adam_beta1: beta1, adam_beta2: beta2, adam_epsilon: eps, weight_decay: wd } = this.config;
    const w1 = 1 - beta1;
    const lerpSmall = w1 < 0.5;
    return tf.tidy((): tf.Scalar | undefined => {
      const scale = gradScale ?? { div: tf.scalar(1), mul: tf.scalar(1) };
      const steps: { p: tf.Variable; s: Slot; step: ReturnType<typeof fusedAdamW> }[] = [];
      for (const [name, p] of this.params) {
        const g = gmap.get(name);
        if (!g) continue;
        if (g.shape.join(',') !== p.shape.join(',')) {
          throw new Error(`AdamW: gradient for ${name} has shape [${g.shape}], parameter has [${p.shape}]`);
        }
        const s = this.slot(name);
        s.step++;
        const scalars: AdamWScalars = {
          lerpW: lerpSmall ? w1 : 1 - w1,
          lerpSmall,
          b2: beta2,
          c2: 1 - beta2,
          eps,
          decay: wd !== 0 && s.decay ? 1 - lr * wd : 1,
          negStep: -(lr / (1 - Math.pow(beta1, s.step))),
          bc2sqrt: Math.sqrt(1 - Math.pow(beta2, s.step)),
        };
        steps.push({ p, s, step: fusedAdamW(p, s.m, s.v, g, gate, scalars, scale) });
      }
      // ‖θ‖² is finite only if every weight is finite and below ~1.8e19 in magnitude.
      let applied = tf.scalar(true, 'bool') as tf.Scalar;
      if (checkWeights) for (const u of steps) applied = fusedAllFinite(u.step.newP, applied);
      for (const u of steps) {
        const r = u.step.commit(applied);
        u.s.m.assign(r.m);
        u.s.v.assign(r.v);
        u.p.assign(r.p);
      }
      return checkWeights ? applied : undefined;
    });
  }

  /** Per-parameter step counters (for the Trainer's rollback of gated steps). */
  getStepCounts(): { step: number; params: Record<string, number> } {
    const params: Record<string, number> = {};
    for (const [name, s] of this.slots) params[name] = s.step;
    return { step: this.steps, params };
  }

  setStepCounts(c: { step: number; params: Record<string, number> }): void {
    for (const [name, s] of this.slots) s.step = c.params[name] ?? s.step;
    this.steps = c.step;
  }

  /** Export moments and step counters (async readback; no dataSync). */
  async state(): Promise<AdamWState> {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
    const params: Record<string, AdamWParamState> = {};
    const entries = [...this.slots.entries()];
    const datas = await Promise.all(entries.flatMap(([, s]) => [readTensor(s.m), readTensor(s.v)]));
    entries.forEach(([name, s], i) => {
      params[name] = {
        step: s.step,
        shape: [...s.m.shape],
        expAvg: datas[2 * i],
        expAvgSq: datas[2 * i + 1],
      };
    });
    return { step: this.steps, params };
  }

  /** Import moments and step counters; names and shapes must match this optimizer's parameters. */
  loadState(st: AdamWState): void {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
    for (const name of Object.keys(st.params)) {
      if (!this.slots.has(name)) throw new Error(`AdamW.loadState: state has unknown parameter ${name}`);
    }
    for (const [name, s] of this.slots) {
      const ps = st.params[name];
      if (!ps) throw new Error(`AdamW.loadState: state is missing parameter ${name}`);
      const size = s.m.size;
      if (ps.shape.join(',') !== s.m.shape.join(',') || ps.expAvg.length !== size || ps.expAvgSq.length !== size) {
        throw new Error(
          `AdamW.loadState: ${name} has shape [${ps.shape}] (${ps.expAvg.length} values), expected [${s.m.shape}]`,
        );
      }
      if (!(Number.isInteger(ps.step) && ps.step >= 0))
        throw new Error(`AdamW.loadState: ${name} has invalid step ${ps.step}`);
    }
    for (const [name, s] of this.slots) {
      const ps = st.params[name];
      tf.tidy(() => {
        s.m.assign(tf.tensor(ps.expAvg, s.m.shape, 'float32'));
        s.v.assign(tf.tensor(ps.expAvgSq, s.v.shape, 'float32'));
      });
      s.step = ps.step;
    }
    this.steps = st.step;
  }

  /** Reset moments and counters to a fresh optimizer. */
  reset(): void {
    for (const s of this.slots.values()) {
      tf.tidy(() => {
        s.m.assign(tf.zerosLike(s.m));
        s.v.assign(tf.zerosLike(s.v));
      });
      s.step = 0;
    }
    this.steps = 0;
  }

  /** Frees the moment variables (not the parameters). */
  dispose(): void {
    if (this.disposed) return;
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
    this.disposed = true;
  }
}
