/**
 * Training loop with the semantics of the Hugging Face Trainer (transformers ≥ 4.46) for one device:
 *
 * Gradient accumulation — token-weighted, as HF does when it passes num_items_in_batch:
 *   every micro-batch i returns the mean CE Lᵢ over its Nᵢ trained tokens; the step's loss is
 *   L = Σᵢ Nᵢ·Lᵢ / Σᵢ Nᵢ (the mean over all trained tokens of the accumulation window), and the
 *   gradient applied is exactly ∇L. We differentiate Nᵢ·Lᵢ (= the summed CE of micro-batch i) per
 *   micro-batch, add those gradients, and divide the sum by N = Σᵢ Nᵢ (by max(N, 1): a window without
 *   trained tokens gives a zero gradient where HF would produce 0/0).
 *   So 2 micro-batches of 3 and 1 tokens weigh their tokens equally — not their means (that would be
 *   the older "loss / gradient_accumulation_steps" behaviour).
 * Clipping — torch.nn.utils.clip_grad_norm_: total = ‖(‖g₁‖, ‖g₂‖, …)‖₂, g ← g·min(1, max/(total + 1e-6));
 *   the reported grad_norm is the norm before clipping (as HF logs it). maxGradNorm 0 = no clipping
 *   (the norm is still computed, for the report and the divergence check).
 * Optimizer — AdamW as torch (./optimizer), HF's param groups: no weight decay for biases and norms.
 * Schedule — HF's LambdaLR convention: optimizer step s (1-based) uses lr = lr₀·lambda(s − 1); the metrics
 *   report that lr (the one actually applied, which is what recent HF versions log as learning_rate).
 *
 * Asynchrony: a step only enqueues work. Its loss, token counts and grad norm are packed in one small
 * tensor whose .data() is awaited one step later (trainSteps()), never with dataSync.
 *
 * Divergence: each step computes, on the device, ok = ok_prev ∧ isfinite(loss) ∧ isfinite(grad_norm) and
 * passes it to AdamW as a gate; a closed gate leaves parameters and moments bit-for-bit unchanged. The
 * flag is sticky, so whatever was launched after a bad step before the CPU learnt about it is a no-op
 * too. When the readback shows the failure, the CPU-side counters are rolled back, the flag is
 * re-armed and TrainingDivergedError is thrown: the variables hold the values after the last good step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { variableGrads } from '../engine/backprop';
import { GradSink, withGradSink } from '../engine/grad-sink';
import { webgpuKernelsActive } from '../engine/webgpu-program';
import { AdamW, type AdamWState } from './optimizer';
import { makeSchedule, warmupStepsFor, SCHEDULE_NAMES, type ScheduleName } from './schedule';
import { Rng, type RngState } from '../util/rng';
import { MetricsWindow, type StepMetrics, type WindowMetrics } from './metrics';

/** What the model's loss function returns for one micro-batch (all scalars). */
export interface LossOutput {
  /** Mean cross-entropy over the micro-batch's trained tokens (must be finite when count = 0, e.g. 0). */
  loss: tf.Scalar;
  /** Number of trained tokens whose argmax prediction is the label. */
  correct: tf.Scalar;
  /** Number of trained tokens (labels ≠ -100). */
  count: tf.Scalar;
}

export interface TrainableModel<B> {
  /** The trainable parameters (LoRA), by HF/PEFT name. */
  vars: Map<string, tf.Variable>;
  /** Called inside tf.variableGrads; must build its graph from `vars`. */
  lossFn: (batch: B) => LossOutput;
}

/** The Trainer's settings, with HF TrainingArguments' names. */
export interface TrainerConfig {
  /** Peak learning rate (default 5e-5). */
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  /** Clip the global L2 norm of the gradients to this; 0 = off. Default 1.0. */
  max_grad_norm: number;
  /** Micro-batches per optimizer step. */
  gradient_accumulation_steps: number;
  lr_scheduler_type: ScheduleName;
  /** Warmup steps; when 0, ceil(max_steps · warmup_ratio) (HF get_warmup_steps). */
  warmup_steps: number;
  warmup_ratio: number;
  /** Cosine cycles (HF lr_scheduler_kwargs num_cycles, default 0.5). */
  num_cycles: number;
  /** Total optimizer steps (HF max_steps / num_training_steps). */
  max_steps: number;
  /** Root seed; getBatch receives rng = Rng(seed).derive(step, micro). */
  seed: number;
  /** Call onMetrics every this many optimizer steps (with the window's aggregate). */
  logging_steps: number;
  /** Parameters without weight decay; default: HF's rule (biases and norm weights). */
  noDecay: (name: string) => boolean;
}

export interface BatchRequest {
  /** Optimizer step being built (1-based). */
  step: number;
  /** Micro-batch index within the step, 0 … gradient_accumulation_steps − 1. */
  micro: number;
  /** Deterministic stream for this (seed, step, micro), e.g. for dropout seeds. */
  rng: Rng;
}

export interface TrainStepsOptions<B> {
  /** Return null/undefined when the data is exhausted (a partial accumulation window still makes a step, as HF). */
  getBatch: (req: BatchRequest) => B | null | undefined | Promise<B | null | undefined>;
  /** Every logging_steps steps and at the end of the run. Awaited. */
  onMetrics?: (m: WindowMetrics) => void | Promise<void>;
  /** Every step. Awaited. */
  onStep?: (m: StepMetrics) => void | Promise<void>;
  /** Checked before each step; true = finish the in-flight step and return (pause: call trainSteps() again). */
  shouldStop?: () => boolean;
}

export interface TrainStepsResult {
  reason: 'maxSteps' | 'stopped' | 'dataEnd';
  /** Optimizer steps completed so far (globalStep). */
  step: number;
  last: StepMetrics | null;
}

export interface TrainerState {
  globalStep: number;
  optimizer: AdamWState;
  rng: RngState;
}

export class TrainingDivergedError extends Error {
  constructor(
    /** The optimizer step (1-based) whose loss or gradient norm was not finite. */
    readonly step: number,
    /** What went wrong: a non-finite loss or gradient norm, a saturated model, or weights the update made non-finite. */
    readonly what: DivergenceCause[],
    readonly loss: number,
    readonly gradNorm: number,
    readonly lr: number,
  ) {
    super(
      `Training diverged at step ${step}: ${what.map((w) => describeCause(w, loss, gradNorm)).join(' and ')} ` +
        `(learning rate ${lr}). The parameters were left at their values after step ${step - 1}. ` +
        `Try a lower learning rate (e.g. ${fmtLr(lr > 0 ? lr / 10 : 1e-5)}), more warmup (warmup_steps), or a smaller max_grad_norm (gradient clipping).`,
    );
    this.name = 'TrainingDivergedError';
  }
  /** Last step whose update was applied. */
  get lastGoodStep(): number {
    return this.step - 1;
  }
}

/**
 * Why a step was refused: its loss or gradient norm is not finite; its gradient is exactly zero while trained
 * tokens have a positive loss (the model saturated); or its update would make a weight non-finite.
 */
export type DivergenceCause = 'loss' | 'grad_norm' | 'saturated' | 'weights';

function describeCause(w: DivergenceCause, loss: number, gradNorm: number): string {
  if (w === 'loss') return `loss is ${loss}`;
  if (w === 'grad_norm') return `gradient norm is ${gradNorm}`;
  if (w === 'saturated')
    return `the gradient is exactly 0 while the loss is ${loss} (the model's activations saturated: an earlier update was far too large)`;
  return 'its update would make LoRA weights non-finite (beyond the float32 range)';
}

function fmtLr(x: number): string {
  return Number(x.toPrecision(2)).toString();
}

const NORM_PATTERNS = [
  /bias/,
  /layernorm/,
  /rmsnorm/,
  /(?:^|\.)norm(?:$|\.)/,
  /_norm(?:$|\.)/,
  /(?:^|\.)ln_(?:\d+|f)(?:$|\.)/,
];

/**
 * HF Trainer.get_decay_parameter_names, by name: no decay for names (lower-cased) containing "bias",
 * "layernorm", "rmsnorm", a ".norm." / "_norm." component; GPT-2's nn.LayerNorm modules (ln_1, ln_2, ln_f),
 * which HF excludes by type, are matched by name. LoRA matrices (lora_A / lora_B) decay.
 */
export function hfNoDecay(name: string): boolean {
  const n = name.toLowerCase();
  return NORM_PATTERNS.some((re) => re.test(n));
}

export const TRAINER_DEFAULTS: Omit<TrainerConfig, 'max_steps'> = {
  learning_rate: 5e-5,
  weight_decay: 0,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  max_grad_norm: 1.0,
  gradient_accumulation_steps: 1,
  lr_scheduler_type: 'linear',
  warmup_steps: 0,
  warmup_ratio: 0,
  num_cycles: 0.5,
  seed: 42,
  logging_steps: 1,
  noDecay: hfNoDecay,
};

interface Pending {
  step: number;
  lr: number;
  packed: tf.Tensor1D;
  data: Promise<Float32Array>;
  countsBefore: { step: number; params: Record<string, number> };
  tStart: number;
  tEnd: number | null;
  numTensors: number;
  /** The step's read-back values (after the divergence check), settled in launch order. */
  result: Promise<Float32Array>;
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export class Trainer<B> {
  readonly config: TrainerConfig;
  readonly optimizer: AdamW;
  readonly warmupSteps: number;
  /** Root RNG of the run (its key depends only on config.seed). */
  readonly rng: Rng;
  private readonly model: TrainableModel<B>;
  private readonly varList: tf.Variable[];
  private readonly keyOfVarName = new Map<string, string>();
  /** Each variable's offset in the optimizer's flat layout, for the gradient sink (built at its first use). */
  private sinkOffsets: Map<tf.Variable, number> | null = null;
  private readonly schedule: (currentStep: number) => number;
  private readonly okFlag: tf.Variable;
  private steps = 0;
  /**
   * Set when a readback shows a closed gate. Until the error has been delivered to the caller and every
   * in-flight step has been read back, launch() refuses to start steps; then rearm() rolls the CPU-side
   * counters back to the last good step and re-opens the device flag.
   */
  private halt: {
    error: TrainingDivergedError;
    stepsBefore: number;
    countsBefore: { step: number; params: Record<string, number> };
    delivered: boolean;
  } | null = null;
  /** Readback tensors of launched steps not yet read back (excluded from the reported tensor count). */
  private pendingReadbacks = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private inflight = 0;
  private running = false;
  private disposed = false;

  constructor(model: TrainableModel<B>, config: Partial<TrainerConfig> & { max_steps: number }) {
    const c: TrainerConfig = { ...TRAINER_DEFAULTS, ...config };
    validateTrainerConfig(c);
    if (model.vars.size === 0) throw new Error('Trainer: the model has no trainable variables');
    this.config = c;
    this.model = model;
    this.varList = [];
    for (const [key, v] of model.vars) {
      if (this.keyOfVarName.has(v.name)) throw new Error(`Trainer: variable ${v.name} is listed twice`);
      this.keyOfVarName.set(v.name, key);
      this.varList.push(v);
    }
    this.warmupSteps = warmupStepsFor(c.max_steps, { warmupSteps: c.warmup_steps, warmupRatio: c.warmup_ratio });
    this.schedule = makeSchedule(c.learning_rate, {
      name: c.lr_scheduler_type,
      warmupSteps: this.warmupSteps,
      totalSteps: c.max_steps,
      numCycles: c.num_cycles,
    });
    this.rng = new Rng(c.seed);
    this.optimizer = new AdamW(model.vars, {
      learning_rate: c.learning_rate,
      adam_beta1: c.adam_beta1,
      adam_beta2: c.adam_beta2,
      adam_epsilon: c.adam_epsilon,
      weight_decay: c.weight_decay,
      noDecay: c.noDecay,
    });
    this.okFlag = tf.tidy(() => tf.variable(tf.scalar(true, 'bool'), false));
  }

  /** Optimizer steps taken (launched and not rolled back). */
  get globalStep(): number {
    return this.steps;
  }

  /** The learning rate used by the step that follows `currentStep` completed steps. */
  lrAt(currentStep: number): number {
    return this.schedule(currentStep);
  }

  /** The RNG stream getBatch receives for (step, micro). */
  batchRng(step: number, micro: number): Rng {
    return this.rng.derive(step, micro);
  }

  /**
   * One optimizer step over `batches` (the micro-batches of one accumulation window; their number may
   * differ from gradient_accumulation_steps). Resolves with the step's metrics once its values are read back;
   * rejects with TrainingDivergedError if the loss or gradient norm is not finite.
   * Several step() calls may be in flight; they settle in order.
   */
  step(batches: B[]): Promise<StepMetrics> {
    let p: Pending;
    try {
      if (this.running) throw new Error('Trainer.step: trainSteps() is in progress');
      p = this.launch(batches, now());
    } catch (e) {
      return Promise.reject(e);
    }
    p.numTensors = this.liveTensors();
    return p.result.then(
      (vals) => toMetrics(p, vals, now()),
      (e) => {
        this.delivered(e);
        throw e;
      },
    );
  }

  /** tf.memory().numTensors without the trainer's own in-flight readback tensors (one per unread step). */
  private liveTensors(): number {
    return tf.memory().numTensors - this.pendingReadbacks;
  }

  /** The caller has received `e`: if it is the divergence, roll back as soon as nothing is in flight. */
  private delivered(e: unknown): void {
    if (this.halt && e === this.halt.error) {
      this.halt.delivered = true;
      this.rearm();
    }
  }

  private rearm(): void {
    const h = this.halt;
    if (!h || !h.delivered || this.inflight > 0 || this.disposed) return;
    // Parameters and moments were never touched (gate); undo the CPU-side counters and re-open the flag.
    this.steps = h.stepsBefore;
    this.optimizer.setStepCounts(h.countsBefore);
    tf.tidy(() => this.okFlag.assign(tf.scalar(true, 'bool')));
    this.halt = null;
  }

  /** Trains until max_steps, shouldStop() or the end of the data, reading each step back one step late. */
  async trainSteps(opts: TrainStepsOptions<B>): Promise<TrainStepsResult> {
    if (this.running) throw new Error('Trainer.trainSteps: already running');
    this.running = true;
    const c = this.config;
    let prev: Pending | null = null;
    let last: StepMetrics | null = null;
    let reason: TrainStepsResult['reason'];
    const win = new MetricsWindow();
    const emit = async (m: StepMetrics) => {
      last = m;
      if (opts.onStep) await opts.onStep(m);
      win.add(m);
      if (m.step % c.logging_steps === 0 && opts.onMetrics) await opts.onMetrics(win.take()!);
      else if (m.step % c.logging_steps === 0) win.take();
    };
    try {
      await this.chain.catch(() => undefined); // steps started with step() before trainSteps()
      if (this.halt) throw this.halt.error; // a divergence not yet reported
      for (;;) {
        if (this.steps >= c.max_steps) {
          reason = 'maxSteps';
          break;
        }
        if (opts.shouldStop?.()) {
          reason = 'stopped';
          break;
        }
        const t0 = now();
        const stepNo = this.steps + 1;
        const batches: B[] = [];
        for (let micro = 0; micro < c.gradient_accumulation_steps; micro++) {
          const b = await opts.getBatch({ step: stepNo, micro, rng: this.batchRng(stepNo, micro) });
          if (b == null) break;
          batches.push(b);
        }
        if (batches.length === 0) {
          reason = 'dataEnd';
          break;
        }
        const p = this.launch(batches, t0);
        const done: Pending | null = prev;
        prev = p; // drained by the catch below if anything throws from here on
        if (done) await emit(toMetrics(done, await done.result, done.tEnd ?? now()));
        p.numTensors = this.liveTensors();
        p.tEnd = now();
        if (batches.length < c.gradient_accumulation_steps) {
          reason = 'dataEnd';
          break;
        }
      }
      if (prev) {
        const done: Pending = prev;
        prev = null;
        const vals = await done.result;
        await emit(toMetrics(done, vals, now())); // the last step's time runs until its readback
      }
      const rest = win.take();
      if (rest && opts.onMetrics) await opts.onMetrics(rest);
      return { reason, step: this.steps, last };
    } catch (e) {
      if (prev) await (prev as Pending).result.catch(() => undefined);
      await this.chain.catch(() => undefined);
      if (this.halt) {
        // A divergence outranks whatever else went wrong after it (e.g. launch() refusing to start a step).
        const err = this.halt.error;
        this.delivered(err);
        throw err;
      }
      throw e;
    } finally {
      this.running = false;
    }
  }

  /** Enqueue one optimizer step. Synchronous: nothing is read back here. */
  private launch(batches: B[], tStart: number): Pending {
    if (this.disposed) throw new Error('Trainer: used after dispose()');
    if (this.halt) {
      this.rearm();
      if (this.halt) throw this.halt.error; // still waiting for in-flight steps or for the error to be reported
    }
    if (batches.length === 0) throw new Error('Trainer.step: no micro-batches');
    const stepNo = this.steps + 1;
    const lr = this.lrAt(this.steps);
    const countsBefore = this.optimizer.getStepCounts();

    let gradSum: Map<string, tf.Tensor> | null = null;
    let lossSum: tf.Tensor | null = null;
    let correctSum: tf.Tensor | null = null;
    let countSum: tf.Tensor | null = null;
    const addInto = (acc: tf.Tensor | null, x: tf.Tensor): tf.Tensor => {
      if (!acc) return x;
      const s = tf.add(acc, x);
      acc.dispose();
      x.dispose();
      return s;
    };
    let packed: tf.Tensor1D;
    // On webgpu the LoRA layers add their gradients straight into the flat vector (engine/grad-sink.ts).
    const sink = webgpuKernelsActive() ? this.newGradSink() : null;
    try {
      for (const batch of batches) {
        const r = this.microGrads(batch, sink);
        lossSum = addInto(lossSum, r.value);
        correctSum = addInto(correctSum, r.correct);
        countSum = addInto(countSum, r.count);
        if (!gradSum) gradSum = new Map();
        for (const [k, g] of r.grads) gradSum.set(k, addInto(gradSum.get(k) ?? null, g));
      }
      const gs = gradSum!,
        ls = lossSum!,
        cs = correctSum!,
        ns = countSum!;
      packed = tf.tidy(() => {
        const nSafe = tf.maximum(ns, 1);
        const loss = tf.div(ls, nSafe) as tf.Scalar;
        // Every gradient end to end in one vector (the optimizer's flat layout): the rest of the step is a few
        // ops over all parameters at once.
        const { flat, present } = this.flatGrads(gs, sink);
        const grads = tf.div(flat, nSafe) as tf.Tensor1D;
        // torch clip_grad_norm_: the norm of the per-tensor norms, i.e. the L2 norm of all gradients together
        const norm = tf.sqrt(tf.sum(tf.square(grads))) as tf.Scalar;
        const lossOk = tf.isFinite(loss);
        const normOk = tf.isFinite(norm);
        // Saturation: trained tokens with a positive loss but an exactly zero gradient (activations overflowed
        // into a constant output, e.g. after an update of 1e30): nothing can be learnt any more.
        const alive = tf.logicalNot(
          tf.logicalAnd(tf.equal(norm, 0), tf.logicalAnd(tf.greater(ns, 0), tf.greater(loss, 0))),
        );
        const gate = tf.logicalAnd(this.okFlag, tf.logicalAnd(tf.logicalAnd(lossOk, normOk), alive)) as tf.Scalar;
        let applied = grads;
        if (this.config.max_grad_norm > 0) {
          const coef = tf.minimum(tf.div(tf.scalar(this.config.max_grad_norm), tf.add(norm, 1e-6)), 1);
          applied = tf.mul(grads, coef);
        }
        // An update that would leave a weight non-finite (or above ~1.8e19) is refused on the device too.
        const weightsOk = this.optimizer.stepFlat(applied, present, { learning_rate: lr, gate, checkWeights: true })!;
        const ok = tf.logicalAnd(gate, weightsOk) as tf.Scalar;
        this.okFlag.assign(ok); // sticky: once closed, later steps are no-ops until rearm()
        const f = (t: tf.Tensor) => tf.cast(t, 'float32');
        return tf.stack([loss, cs, ns, norm, f(lossOk), f(normOk), f(ok), f(weightsOk), f(alive)]) as tf.Tensor1D;
      });
    } catch (e) {
      // Nothing was applied if we got here before optimizer.step; restore counters in any case.
      this.optimizer.setStepCounts(countsBefore);
      throw e;
    } finally {
      if (gradSum) for (const g of gradSum.values()) g.dispose();
      sink?.dispose();
      lossSum?.dispose();
      correctSum?.dispose();
      countSum?.dispose();
    }
    this.steps = stepNo;
    const data = packed.data() as Promise<Float32Array>;
    data.catch(() => undefined); // observed in settle(); avoid an unhandled-rejection report meanwhile
    const p: Pending = {
      step: stepNo,
      lr,
      packed,
      data,
      countsBefore,
      tStart,
      tEnd: null,
      numTensors: 0,
      result: null as unknown as Promise<Float32Array>,
    };
    this.inflight++;
    this.pendingReadbacks++;
    p.result = this.chain.catch(() => undefined).then(() => this.settle(p));
    p.result.catch(() => undefined); // rejections are delivered to step()/trainSteps(); never reported as unhandled
    this.chain = p.result;
    return p;
  }

  /** A zero flat gradient with this trainer's variables at the optimizer's offsets (the layout is fixed). */
  private newGradSink(): GradSink {
    if (!this.sinkOffsets) {
      const offsets = this.optimizer.offsets();
      this.sinkOffsets = new Map(this.varList.map((v) => [v, offsets.get(this.keyOfVarName.get(v.name)!)!]));
    }
    return new GradSink(this.optimizer.size, this.sinkOffsets);
  }

  /**
   * The step's gradients as one flat vector in the optimizer's layout, and the names that have one: the sink's
   * vector plus the gradients returned by name (inside a tidy).
   */
  private flatGrads(gs: Map<string, tf.Tensor>, sink: GradSink | null): { flat: tf.Tensor1D; present: Set<string> } {
    if (!sink || sink.written.size === 0) return this.optimizer.flatten(gs);
    const present = new Set(gs.keys());
    for (const v of this.varList) if (sink.written.has(v.id)) present.add(this.keyOfVarName.get(v.name)!);
    const flat = gs.size ? (tf.add(sink.flat, this.optimizer.flatten(gs).flat) as tf.Tensor1D) : sink.flat;
    return { flat, present };
  }

  /**
   * Gradients of count·loss (= summed CE) of one micro-batch, plus its correct/count. With a sink, the gradients it
   * took are in it (their placeholders from the tape are dropped here).
   */
  private microGrads(
    batch: B,
    sink: GradSink | null = null,
  ): {
    value: tf.Scalar;
    grads: Map<string, tf.Tensor>;
    correct: tf.Tensor;
    count: tf.Tensor;
  } {
    const aux: { correct: tf.Tensor | null; count: tf.Tensor | null } = { correct: null, count: null };
    try {
      const { value, grads } = withGradSink(sink, () =>
        variableGrads(() => {
          const out = this.model.lossFn(batch);
          if (!out || !out.loss || !out.correct || !out.count)
            throw new Error('Trainer: lossFn must return { loss, correct, count }');
          if (out.loss.rank !== 0 || out.correct.rank !== 0 || out.count.rank !== 0)
            throw new Error('Trainer: lossFn must return scalars');
          aux.correct = tf.keep(tf.cast(out.correct, 'float32'));
          aux.count = tf.keep(tf.cast(out.count, 'float32'));
          return tf.mul(out.loss, aux.count) as tf.Scalar;
        }, this.varList),
      );
      const named = new Map<string, tf.Tensor>();
      for (const [v, g] of grads) {
        if (g && sink?.written.has(v.id)) g.dispose();
        else if (g) named.set(this.keyOfVarName.get(v.name)!, g);
      }
      return { value, grads: named, correct: aux.correct!, count: aux.count! };
    } catch (e) {
      aux.correct?.dispose();
      aux.count?.dispose();
      throw e;
    }
  }

  /** Read a launched step back (in launch order) and check it. */
  private async settle(p: Pending): Promise<Float32Array> {
    let vals: Float32Array;
    try {
      vals = await p.data;
    } finally {
      p.packed.dispose();
      this.pendingReadbacks--;
      this.inflight--;
    }
    const [loss, , , gradNorm, lossOk, normOk, ok, weightsOk, alive] = vals;
    if (ok !== 1) {
      if (this.halt) {
        // Launched after the bad step, before the CPU knew: gated by the sticky flag, a no-op.
        const err = this.halt.error;
        this.rearm();
        throw err;
      }
      // The first closed gate is always the step's own non-finite value (the flag was open before it).
      const what: DivergenceCause[] = [];
      if (lossOk !== 1) what.push('loss');
      if (normOk !== 1) what.push('grad_norm');
      if (alive !== 1) what.push('saturated');
      if (weightsOk !== 1) what.push('weights');
      const error = new TrainingDivergedError(p.step, what, loss, gradNorm, p.lr);
      this.halt = { error, stepsBefore: p.step - 1, countsBefore: p.countsBefore, delivered: false };
      throw error;
    }
    return vals;
  }

  /** Checkpoint state (call when no step is in flight). The LoRA variables themselves are saved by the caller. */
  async state(): Promise<TrainerState> {
    await this.chain.catch(() => undefined);
    return { globalStep: this.steps, optimizer: await this.optimizer.state(), rng: this.rng.state() };
  }

  /** Restore from state(); the variables must be restored separately to the same step's values. */
  loadState(st: TrainerState): void {
    if (this.inflight > 0 || this.running) throw new Error('Trainer.loadState: steps are in flight');
    if (!(Number.isInteger(st.globalStep) && st.globalStep >= 0))
      throw new Error(`Trainer.loadState: invalid globalStep ${st.globalStep}`);
    const key = Rng.fromState(st.rng).state().key;
    const mine = this.rng.state().key;
    if (key[0] !== mine[0] || key[1] !== mine[1])
      throw new Error('Trainer.loadState: the checkpoint was made with a different seed');
    this.optimizer.loadState(st.optimizer);
    this.steps = st.globalStep;
  }

  dispose(): void {
    if (this.disposed) return;
    this.optimizer.dispose();
    this.okFlag.dispose();
    this.disposed = true;
  }
}

function toMetrics(p: Pending, vals: Float32Array, tEnd: number): StepMetrics {
  const [loss, correct, tokens, gradNorm] = vals;
  const ms = Math.max(tEnd - p.tStart, 1e-6);
  return {
    step: p.step,
    loss,
    accuracy: tokens > 0 ? correct / tokens : 0,
    correct,
    tokens,
    learning_rate: p.lr,
    gradNorm,
    msPerStep: ms,
    tokensPerSec: tokens / (ms / 1000),
    numTensors: p.numTensors,
  };
}

export function validateTrainerConfig(c: TrainerConfig): void {
  const posInt = (x: number) => Number.isInteger(x) && x >= 1;
  if (!posInt(c.max_steps)) throw new Error(`max_steps must be a positive integer, got ${c.max_steps}`);
  if (!posInt(c.gradient_accumulation_steps))
    throw new Error(`gradient_accumulation_steps must be a positive integer, got ${c.gradient_accumulation_steps}`);
  if (!posInt(c.logging_steps)) throw new Error(`logging_steps must be a positive integer, got ${c.logging_steps}`);
  if (!(Number.isFinite(c.max_grad_norm) && c.max_grad_norm >= 0))
    throw new Error(`max_grad_norm must be ≥ 0 (0 = off), got ${c.max_grad_norm}`);
  if (!SCHEDULE_NAMES.includes(c.lr_scheduler_type))
    throw new Error(
      `lr_scheduler_type must be one of ${SCHEDULE_NAMES.join(', ')}, got ${JSON.stringify(c.lr_scheduler_type)}`,
    );
  if (!Number.isFinite(c.num_cycles)) throw new Error(`num_cycles must be finite, got ${c.num_cycles}`);
  if (!Number.isSafeInteger(c.seed)) throw new Error(`seed must be an integer, got ${c.seed}`);
  // learning_rate, adam_*, weight_decay are checked by AdamW; warmup by warmupStepsFor.
}
