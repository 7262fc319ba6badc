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
 * Moments are two flat tf.Variables (all parameters end to end, as torch's fused AdamW works over a list of
 * tensors at once) created in the constructor; each step replaces their values in place (Variable.assign inside
 * tf.tidy), so the live tensor count does not change from step to step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readTensor } from '../engine/readback';
import { fusedAdamW, fusedAllFinite } from '../engine/webgpu-kernels';
import { wasmAdamW, wasmKernelsAvailable } from '../engine/wasm-kernels';
import type { AdamWScalars } from '../engine/adamw-scalars';
import { webgpuKernelsActive } from '../engine/webgpu-program';

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
}

interface Slot {
  /** Where the parameter's values sit in the flat moment vectors. */
  offset: number;
  size: number;
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
  /**
   * Both moments of every parameter as one flat vector each, in names() order (torch's fused / foreach AdamW):
   * a step is a few element-wise ops over all parameters at once, not a dozen per parameter.
   */
  private readonly m: tf.Variable<tf.Rank.R1>;
  private readonly v: tf.Variable<tf.Rank.R1>;
  /** 1 where weight decay applies, 0 where not; null when it is the same everywhere. */
  private readonly decayMask: tf.Tensor1D | null;
  private readonly total: number;
  /**
   * webgpu: the parameters end to end as the last fused step left them, and the data each parameter then held. Valid
   * while every parameter still holds it (an assign from elsewhere, e.g. a rollback or a loaded adapter, replaces a
   * variable's data); saves concatenating them again at every step.
   */
  private flatParams: { p: tf.Tensor1D; data: object[] } | null = null;
  private steps = 0;
  private disposed = false;

  constructor(params: Map<string, tf.Variable>, config: Partial<AdamWConfig> = {}) {
    this.config = {
      ...ADAMW_DEFAULTS,
      ...config,
    };
    validateAdamW(this.config);
    this.params = new Map(params);
    let offset = 0;
    for (const [name, p] of this.params) {
      if (p.dtype !== 'float32') throw new Error(`AdamW: parameter ${name} has dtype ${p.dtype}, expected float32`);
      this.slots.set(name, { offset, size: p.size, step: 0, decay: !(this.config.noDecay?.(name) ?? false) });
      offset += p.size;
    }
    this.total = offset;
    this.m = tf.tidy(() => tf.variable(tf.zeros([offset]), false)) as tf.Variable<tf.Rank.R1>;
    this.v = tf.tidy(() => tf.variable(tf.zeros([offset]), false)) as tf.Variable<tf.Rank.R1>;
    const decays = [...this.slots.values()].map((sl) => sl.decay);
    this.decayMask = decays.every((d) => d === decays[0])
      ? null
      : tf.keep(tf.tensor1d(this.perElement((sl) => +sl.decay)));
    // With our kernels the step keeps the parameters' flat vector (fusedStep); made here, it is the optimizer's state
    // from the start, as m and v are, and training adds no tensor.
    if (this.params.size > 1 && !this.decayMask && (webgpuKernelsActive() || wasmKernelsAvailable())) {
      const ps = [...this.slots.keys()].map((name) => this.params.get(name)!);
      this.flatParams = { p: tf.tidy(() => this.flatOf(ps)), data: ps.map((x) => x.dataId) };
    }
  }

  /** The parameters (in the slots' order) end to end, the flat layout of m and v. */
  private flatOf(params: tf.Variable[]): tf.Tensor1D {
    return (
      params.length === 1 ? tf.reshape(params[0], [this.total]) : tf.concat(params.map((x) => tf.reshape(x, [x.size])))
    ) as tf.Tensor1D;
  }

  /** Number of optimizer steps taken. */
  get stepCount(): number {
    return this.steps;
  }

  /** Parameter names, in update order. */
  names(): string[] {
    return [...this.params.keys()];
  }

  /** Length of the flat vectors (all parameters end to end). */
  get size(): number {
    return this.total;
  }

  /** Where each parameter starts in the flat vectors (flatten's layout), by name. */
  offsets(): Map<string, number> {
    return new Map([...this.slots].map(([name, s]) => [name, s.offset]));
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

  /** A value per element of the flat vector, constant over each parameter. */
  private perElement(f: (s: Slot, name: string) => number): Float32Array {
    const out = new Float32Array(this.total);
    for (const [name, s] of this.slots) out.fill(f(s, name), s.offset, s.offset + s.size);
    return out;
  }

  /**
   * Gradients by parameter name as one flat vector in names() order (zeros for a parameter without one), and the
   * names that had one. Call inside a tidy.
   */
  flatten(grads: Map<string, tf.Tensor>): { flat: tf.Tensor1D; present: Set<string> } {
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for unknown parameter ${name}`);
      if (g.shape.join(',') !== p.shape.join(','))
        throw new Error(`AdamW: gradient for ${name} has shape [${g.shape}], parameter has [${p.shape}]`);
    }
    const parts = [...this.slots].map(([name, s]) => {
      const g = grads.get(name);
      return g ? tf.reshape(g, [s.size]) : tf.zeros([s.size]);
    });
    const flat = (parts.length === 1 ? parts[0] : tf.concat(parts)) as tf.Tensor1D;
    return { flat, present: new Set([...grads.keys()]) };
  }

  /**
   * One AdamW update. `grads` maps parameter names to gradients (missing = no gradient: skipped).
   * Call it with the gradients already clipped/scaled; it does not read anything back.
   */
  step(grads: Map<string, tf.Tensor> | Record<string, tf.Tensor>, opts: AdamWStepOptions = {}): tf.Scalar | undefined {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
    const gmap = grads instanceof Map ? grads : new Map(Object.entries(grads));
    let present = new Set<string>();
    const flat = tf.tidy(() => {
      const r = this.flatten(gmap);
      present = r.present;
      return r.flat;
    });
    try {
      return this.stepFlat(flat, present, opts);
    } finally {
      flat.dispose();
    }
  }

  /**
   * One AdamW update from the flat gradient of flatten(): the parameters in `present` are updated, the others are
   * skipped entirely (as torch skips a parameter whose .grad is None).
   */
  stepFlat(g: tf.Tensor1D, present: ReadonlySet<string>, opts: AdamWStepOptions = {}): tf.Scalar | undefined {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
    if (g.size !== this.total) throw new Error(`AdamW: flat gradient has ${g.size} values, expected ${this.total}`);
    const lr = opts.learning_rate ?? this.config.learning_rate;
    if (!(Number.isFinite(lr) && lr >= 0)) throw new Error(`Invalid learning rate: ${lr}`);
    const { adam_beta1: beta1, adam_beta2: beta2, adam_epsilon: eps, weight_decay: wd } = this.config;
    const gate = opts.gate;
    if (gate && (gate.rank !== 0 || gate.dtype !== 'bool')) throw new Error('AdamW: gate must be a bool scalar');
    this.steps++;
    const slots = [...this.slots];
    for (const [name, s] of slots) if (present.has(name)) s.step++;
    // One step count for every parameter (the usual case): the per-step factors are scalars.
    const t0 = slots[0]?.[1].step ?? 0;
    const uniform = slots.every(([name, s]) => present.has(name) && s.step === t0);
    // lerp weight and form exactly as torch: w < 0.5 ? m + w·(g − m) : g − (g − m)·(1 − w)
    const w1 = 1 - beta1;
    const lerpSmall = w1 < 0.5;
    const lerpOff = lerpSmall ? 0 : 1;

    if (uniform && gate && !this.decayMask && (webgpuKernelsActive() || wasmKernelsAvailable())) {
      const first = slots[0][1];
      return this.fusedStep(g, gate, !!opts.checkWeights, {
        lerpW: lerpSmall ? w1 : 1 - w1,
        lerpSmall,
        b2: beta2,
        c2: 1 - beta2,
        eps,
        decay: wd !== 0 && first.decay ? 1 - lr * wd : 1,
        negStep: -(lr / (1 - Math.pow(beta1, t0))),
        bc2sqrt: Math.sqrt(1 - Math.pow(beta2, t0)),
      });
    }
    return tf.tidy((): tf.Scalar | undefined => {
      const sc = (x: number) => tf.scalar(x, 'float32');
      // A factor that becomes `off` (no change) where the gate is closed.
      const gated = (x: tf.Tensor, off: number): tf.Tensor => (gate ? select(gate, x, tf.fill(x.shape, off)) : x);
      // A factor per parameter: a scalar when every parameter has the same, else one value per element, `off`
      // for the parameters without a gradient.
      const factor = (f: (step: number, s: Slot) => number, off: number): tf.Tensor => {
        if (uniform) {
          const vals = slots.map(([, s]) => f(s.step, s));
          if (vals.every((x) => x === vals[0])) return gated(sc(vals[0] ?? off), off);
        }
        return gated(tf.tensor1d(this.perElement((s, name) => (present.has(name) ? f(s.step, s) : off))), off);
      };
      const lerpW = factor(() => (lerpSmall ? w1 : 1 - w1), lerpOff);
      const b2 = factor(() => beta2, 1);
      const c2 = factor(() => 1 - beta2, 0);
      const negStep = factor((t) => -(lr / (1 - Math.pow(beta1, t))), 0);
      const bc2sqrt = factor((t) => Math.sqrt(1 - Math.pow(beta2, t)), 1);
      const epsT = sc(eps);
      let decay: tf.Tensor | null = null;
      if (wd !== 0) {
        decay =
          uniform && this.decayMask
            ? gated(tf.add(tf.mul(this.decayMask, -lr * wd), 1), 1)
            : factor((_, s) => (s.decay ? 1 - lr * wd : 1), 1);
      }
      // Non-finite gradients must not reach the moments when the gate is closed (NaN·0 = NaN).
      const gg = gate ? select(gate, g, tf.zerosLike(g)) : g;
      const params = slots.map(([name]) => this.params.get(name)!);
      const p = this.flatOf(params);
      const pv = decay ? tf.mul(p, decay) : p;
      const m = lerpSmall
        ? tf.add(this.m, tf.mul(lerpW, tf.sub(gg, this.m)))
        : tf.sub(gg, tf.mul(tf.sub(gg, this.m), lerpW));
      const v = tf.add(tf.mul(this.v, b2), tf.mul(tf.mul(c2, gg), gg));
      const denom = tf.add(tf.div(tf.sqrt(v), bc2sqrt), epsT);
      let newP = tf.add(pv, tf.mul(negStep, tf.div(m, denom)));
      let applied: tf.Scalar | undefined;
      if (!opts.checkWeights) {
        this.m.assign(m as tf.Tensor1D);
        this.v.assign(v as tf.Tensor1D);
      } else {
        // ‖θ‖² is finite only if every weight is finite and below ~1.8e19 in magnitude.
        applied = tf.isFinite(tf.sum(tf.square(newP))) as tf.Scalar;
        const keep = spread(applied, [this.total]);
        this.m.assign(tf.where(keep, m, this.m) as tf.Tensor1D);
        this.v.assign(tf.where(keep, v, this.v) as tf.Tensor1D);
        newP = tf.where(keep, newP, p);
      }
      const parts =
        params.length === 1
          ? [newP]
          : tf.split(
              newP,
              slots.map(([, s]) => s.size),
            );
      params.forEach((x, i) => x.assign(tf.reshape(parts[i], x.shape)));
      return applied;
    });
  }

  /**
   * stepFlat() with our kernels (one step count, one decay, a gate): the same formulas over the flat vectors, on
   * webgpu as four WGSL programs and the finiteness check for all parameters (src/engine/webgpu-kernels.ts), on wasm
   * as one kernel (src/engine/wasm-kernels.ts). The parameters' flat vector is kept from the last step while no
   * parameter's data was replaced from outside.
   */
  private fusedStep(
    g: tf.Tensor1D,
    gate: tf.Scalar,
    checkWeights: boolean,
    scalars: AdamWScalars,
  ): tf.Scalar | undefined {
    return tf.tidy((): tf.Scalar | undefined => {
      const params = [...this.slots.keys()].map((name) => this.params.get(name)!);
      const cached = this.flatParams?.data.every((d, i) => params[i].dataId === d) ? this.flatParams.p : null;
      const p = cached ?? this.flatOf(params);
      let r: { p: tf.Tensor; m: tf.Tensor; v: tf.Tensor };
      let applied: tf.Tensor;
      if (wasmKernelsAvailable()) {
        const w = wasmAdamW(p as tf.Tensor1D, this.m, this.v, g, gate, scalars, checkWeights);
        r = w;
        applied = w.applied;
      } else {
        const one = tf.scalar(1, 'float32');
        const step = fusedAdamW(p, this.m, this.v, g, gate, scalars, { div: one, mul: one });
        const yes = tf.scalar(true, 'bool');
        // ‖θ‖² is finite only if every weight is finite and below ~1.8e19 in magnitude.
        applied = checkWeights ? fusedAllFinite(step.newP, yes) : yes;
        r = step.commit(applied);
      }
      this.m.assign(r.m as tf.Tensor1D);
      this.v.assign(r.v as tf.Tensor1D);
      const parts =
        params.length === 1
          ? [r.p]
          : tf.split(
              r.p,
              params.map((x) => x.size),
            );
      params.forEach((x, i) => x.assign(tf.reshape(parts[i], x.shape)));
      if (params.length > 1) {
        this.flatParams?.p.dispose();
        this.flatParams = { p: tf.keep(r.p as tf.Tensor1D), data: params.map((x) => x.dataId) };
      }
      return checkWeights ? (applied as tf.Scalar) : undefined;
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
    const [m, v] = await Promise.all([readTensor(this.m), readTensor(this.v)]);
    const params: Record<string, AdamWParamState> = {};
    for (const [name, s] of this.slots) {
      params[name] = {
        step: s.step,
        shape: [...this.params.get(name)!.shape],
        expAvg: m.slice(s.offset, s.offset + s.size),
        expAvgSq: v.slice(s.offset, s.offset + s.size),
      };
    }
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
      const shape = this.params.get(name)!.shape;
      if (ps.shape.join(',') !== shape.join(',') || ps.expAvg.length !== s.size || ps.expAvgSq.length !== s.size) {
        throw new Error(
          `AdamW.loadState: ${name} has shape [${ps.shape}] (${ps.expAvg.length} values), expected [${shape}]`,
        );
      }
      if (!(Number.isInteger(ps.step) && ps.step >= 0))
        throw new Error(`AdamW.loadState: ${name} has invalid step ${ps.step}`);
    }
    const m = new Float32Array(this.total);
    const v = new Float32Array(this.total);
    for (const [name, s] of this.slots) {
      const ps = st.params[name];
      m.set(ps.expAvg, s.offset);
      v.set(ps.expAvgSq, s.offset);
      s.step = ps.step;
    }
    tf.tidy(() => {
      this.m.assign(tf.tensor1d(m));
      this.v.assign(tf.tensor1d(v));
    });
    this.steps = st.step;
  }

  /** Reset moments and counters to a fresh optimizer. */
  reset(): void {
    tf.tidy(() => {
      this.m.assign(tf.zerosLike(this.m));
      this.v.assign(tf.zerosLike(this.v));
    });
    for (const s of this.slots.values()) s.step = 0;
    this.steps = 0;
  }

  /** Frees the moment variables (not the parameters). */
  dispose(): void {
    if (this.disposed) return;
    this.m.dispose();
    this.v.dispose();
    this.decayMask?.dispose();
    this.flatParams?.p.dispose();
    this.flatParams = null;
    this.slots.clear();
    this.disposed = true;
  }
}

/**
 * A bool scalar as a mask of `shape`. tf.where broadcasts a scalar condition with Tile, which on wasm took ~25 ms
 * per call over SmolLM2's 460,800 LoRA values; a multiply broadcasts it at memory speed.
 */
function spread(cond: tf.Scalar, shape: number[]): tf.Tensor {
  return tf.cast(tf.mul(tf.ones(shape), tf.cast(cond, 'float32')), 'bool');
}

/** tf.where(cond, a, b) for a bool scalar cond (see spread). */
function select(cond: tf.Scalar, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return a.rank === 0 ? tf.where(cond, a, b) : tf.where(spread(cond, a.shape), a, b);
}
