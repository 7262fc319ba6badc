/**
 * One LoRA fine-tuning run — data preparation, adapter, Trainer loop, periodic validation, metrics history —
 * shared by the CLI and the web worker: the FinetuneSession class (like the Hugging Face Trainer built on a PEFT model
 * with TrainingArguments, driven by train()). Its configuration is ./config.ts, its data ./dataset.ts, its metrics
 * ./metrics.ts (exported as files by ./metrics-export.ts), its size estimate ./estimate.ts and its checkpoints
 * ./checkpoint.ts.
 *
 * Steps and epochs as the HF Trainer: batches per epoch nb (the last one may be short), update steps per epoch
 * ceil(nb / gradient_accumulation_steps) — the last accumulation window of an epoch may hold fewer micro-batches
 * (its gradient is still the token-weighted mean) — and max_steps = ceil(num_train_epochs × steps per epoch)
 * unless max_steps > 0. Epoch e's order is makeBatches(seed, epoch e): deterministic and resumable.
 *
 * Validation (eval_loss) is the token-weighted mean cross-entropy over all validation tokens (no dropout, no
 * gradients), run on the weights after step s when s is a multiple of eval_steps (or at each epoch's end), and
 * once more at the end of training. HF averages per-batch means instead; with equal-length batches they agree.
 *
 * Divergence: the Trainer refuses non-finite updates on the device; train() then resolves with status 'diverged',
 * a readable message, and the adapter at its values after the last good step.
 *
 * Checkpoints: checkpoint() / restore() / FinetuneSession.resume() and train({ saveSteps, onSave }) continue a run exactly
 * (same weights and logs as without the interruption); ./checkpoint.ts describes what a checkpoint holds.
 *
 * Browser-safe: no node: imports.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LoraAdapter } from '../engine/lora';
import { targetedModules, type LoraConfig } from '../engine/lora-config';
import { readRawTensors } from '../engine/readback';
import type { CausalLM } from '../engine/model';
import type { Tokenizer } from '../io/tokenizer';
import { exportPeftAdapter, type PeftExportOptions } from '../io/peft';
import { makeBatches, type Batch, type Example } from '../data';
import { compareBaseTuned, evaluateGeneration, type BaseVsTuned, type GenerationEvalExample } from './evaluate';
import {
  checkCheckpointTarget,
  CheckpointMismatchError,
  hashBatchOrder,
  hashDataset,
  hashModelWeights,
  modelHashMethod,
  type CheckpointMeta,
  type CheckpointOptions,
  type SessionCheckpoint,
} from './checkpoint';
import { loraConfigOf, resolveFinetuneConfig, type FinetuneConfig } from './config';
import { prepareSessionData, type DatasetSource, type SessionData, type SessionDataset } from './dataset';
import { estimateMemory, type MemoryEstimate } from './estimate';
import {
  MetricsWindow,
  sessionMetricsOf,
  type EvalMetrics,
  type LogEntry,
  type SampleReport,
  type SessionMetrics,
  type StepMetrics,
} from './metrics';
import { metricsCsv, metricsJson } from './metrics-export';
import { Trainer, TrainingDivergedError, type BatchRequest } from './trainer';

export interface TrainOptions {
  onMetrics?: (m: SessionMetrics) => void | Promise<void>;
  onEval?: (m: EvalMetrics) => void | Promise<void>;
  /** Greedy generations for a few held-out prompts at each evaluation point and at the end. */
  onSample?: (s: SampleReport) => void | Promise<void>;
  /** Prompts for onSample (default 3; taken from the test split, else validation, else train). */
  samplePrompts?: number;
  sampleMaxNewTokens?: number;
  /** Checked before each step: true ends train() after the step in flight (status 'stopped'); train() again resumes. */
  shouldStop?: () => boolean;
  /** Called as each micro-batch is handed to the trainer (a sign of life for watchdogs during long steps). */
  onBatch?: () => void;
  /**
   * Periodic checkpoints (HF save_steps): after every saveSteps-th step, and when train() ends 'stopped' or
   * 'completed', onSave receives checkpoint() of that moment. Training waits for onSave; if it throws, train()
   * rejects (a 'stopped' session that train() resumes), so handle storage errors inside onSave to keep training.
   * Saving does not change the run: the weights, losses and logs equal those of a run without saves.
   */
  saveSteps?: number;
  onSave?: (checkpoint: SessionCheckpoint) => void | Promise<void>;
  /** Options of the checkpoints given to onSave. */
  checkpointOptions?: CheckpointOptions;
}

export type SessionStatus = 'idle' | 'running' | 'stopped' | 'completed' | 'diverged';

export interface TrainResult {
  status: 'completed' | 'stopped' | 'diverged';
  /** Optimizer steps whose update is in the weights. */
  step: number;
  max_steps: number;
  epoch: number;
  /** Seconds spent in this train() call. */
  train_runtime: number;
  /** For 'diverged': what happened and what to try. */
  message?: string;
  error?: TrainingDivergedError;
  last?: SessionMetrics;
}

type SessionBatch = Batch & { dropoutSeed: number | null };

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export interface RestoreOptions {
  /**
   * Continue with this learning_rate instead of the checkpoint's (e.g. after a divergence): the schedule keeps its
   * shape and position, scaled to the new peak; AdamW's moments carry over. Nothing else may differ.
   */
  learning_rate?: number;
}

export interface FinetuneSessionInit {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** Training files, or train/validation/test files. */
  data: SessionData | DatasetSource[];
  config?: Partial<FinetuneConfig>;
  /** For adapter_config.json base_model_name_or_path (e.g. the Hub repository id). */
  baseModelName?: string | null;
  /** Tokenization progress of the data (every 1000 examples of a split and at its end). */
  onDataProgress?: (split: 'train' | 'validation' | 'test', done: number, total: number) => void;
}

// ---------------------------------------------------------------------------------------------------------

export class FinetuneSession {
  readonly model: CausalLM;
  readonly tokenizer: Tokenizer;
  readonly config: FinetuneConfig;
  readonly lora: LoraConfig;
  readonly warnings: string[];
  readonly data: SessionDataset;
  readonly adapter: LoraAdapter;
  readonly batchesPerEpoch: number;
  readonly stepsPerEpoch: number;
  readonly maxSteps: number;
  readonly baseModelName: string | null;
  /** Training logs and evaluations in order (HF trainer_state.json log_history). */
  readonly history: LogEntry[] = [];

  private _status: SessionStatus = 'idle';
  private trainer: Trainer<SessionBatch> | null = null;
  private epochCache: { epoch: number; batches: Batch[] } | null = null;
  private readonly evalBatches: Batch[];
  private readonly stepTokens = new Map<number, number>();
  private readonly window = new MetricsWindow();
  private lastEmitted = 0;
  private lastEvalStep = -1;
  private pending: { step: number; eval: EvalMetrics | null; samples: GenerationEvalExample[] | null } | null = null;
  private stopRequested = false;
  private divergedMessage: string | null = null;
  private datasetHashCache: string | null = null;

  constructor(init: FinetuneSessionInit) {
    const { model, tokenizer } = init;
    this.model = model;
    this.tokenizer = tokenizer;
    this.baseModelName = init.baseModelName ?? null;
    const { config, warnings } = resolveFinetuneConfig(init.config ?? {}, model.config.max_position_embeddings);
    this.config = config;
    this.warnings = warnings;
    this.lora = loraConfigOf(config, model.config);
    targetedModules(model.config, this.lora); // a readable error before any data work
    const data: SessionData = Array.isArray(init.data) ? { train: init.data } : init.data;
    this.data = prepareSessionData(tokenizer, data, config, init.onDataProgress);
    if (this.data.dropped.length) {
      warnings.push(
        `${this.data.dropped.length} example(s) dropped during tokenization (first: ${this.data.dropped[0].message})`,
      );
    }
    this.batchesPerEpoch = this.epochBatches(0).length;
    this.stepsPerEpoch = Math.ceil(this.batchesPerEpoch / config.gradient_accumulation_steps);
    this.maxSteps =
      config.max_steps > 0 ? config.max_steps : Math.max(1, Math.ceil(config.num_train_epochs * this.stepsPerEpoch));
    this.evalBatches = this.data.validation.examples.length
      ? makeBatches(this.data.validation.examples, {
          batchSize: config.per_device_eval_batch_size,
          seed: config.seed,
          shuffle: false,
          padTokenId: tokenizer.padTokenId ?? 0,
          padToMultipleOf: config.pad_to_multiple_of ?? undefined,
        })
      : [];
    // As HF's set_seed before get_peft_model: the adapter's initialisation follows the run's seed.
    this.adapter = model.attachLora(this.lora, config.seed);
  }

  get status(): SessionStatus {
    return this._status;
  }
  /** Optimizer steps completed. */
  get globalStep(): number {
    return this.trainer?.globalStep ?? 0;
  }
  get epoch(): number {
    return this.globalStep / this.stepsPerEpoch;
  }

  /** Ask a running train() to finish the step in flight and return (status 'stopped'); train() again resumes. */
  stop(): void {
    this.stopRequested = true;
  }

  /** The training batches of epoch e (shuffled by seed and epoch). */
  epochBatches(e: number): Batch[] {
    if (this.epochCache?.epoch === e) return this.epochCache.batches;
    const c = this.config;
    const batches = makeBatches(this.data.train.examples, {
      batchSize: c.per_device_train_batch_size,
      seed: c.seed,
      epoch: e,
      groupByLength: c.group_by_length,
      packing: c.packing ? { seqLen: c.max_length } : false,
      padTokenId: this.tokenizer.padTokenId ?? 0,
      padToMultipleOf: c.pad_to_multiple_of ?? undefined,
    });
    this.epochCache = { epoch: e, batches };
    return batches;
  }

  private getTrainer(): Trainer<SessionBatch> {
    if (this.trainer) return this.trainer;
    const c = this.config;
    const model = this.model;
    this.trainer = new Trainer<SessionBatch>(
      {
        vars: this.adapter.variables(),
        lossFn: (b) => model.loss(b, { dropoutSeed: b.dropoutSeed, gradientCheckpointing: c.gradient_checkpointing }),
      },
      {
        learning_rate: c.learning_rate,
        weight_decay: c.weight_decay,
        adam_beta1: c.adam_beta1,
        adam_beta2: c.adam_beta2,
        adam_epsilon: c.adam_epsilon,
        max_grad_norm: c.max_grad_norm,
        gradient_accumulation_steps: c.gradient_accumulation_steps,
        lr_scheduler_type: c.lr_scheduler_type,
        warmup_steps: c.warmup_steps,
        warmup_ratio: c.warmup_ratio,
        max_steps: this.maxSteps,
        seed: c.seed,
      },
    );
    return this.trainer;
  }

  /**
   * Train until max_steps, a stop request or divergence. Resolves (never rejects) on those three; rejects
   * only on unexpected errors. Calling it again after 'stopped' resumes where it stopped.
   */
  async train(opts: TrainOptions = {}): Promise<TrainResult> {
    if (this._status === 'running') throw new Error('FinetuneSession.train: already running');
    if (this._status === 'diverged')
      throw new Error(`FinetuneSession.train: this run diverged and cannot continue: ${this.divergedMessage}`);
    if (opts.saveSteps !== undefined && !(Number.isInteger(opts.saveSteps) && opts.saveSteps >= 1)) {
      throw new Error(`FinetuneSession.train: saveSteps must be a positive integer, got ${opts.saveSteps}`);
    }
    if (this.model.frozenDtype !== this.config.frozen_dtype) {
      // lowering the weights takes a while: nothing may checkpoint or restore meanwhile
      const before = this._status;
      this._status = 'running';
      try {
        await this.ensureFrozenDtype();
      } finally {
        this._status = before;
      }
    }
    const t0 = now();
    const trainer = this.getTrainer();
    this.stopRequested = false;
    if (this._status === 'completed') return this.result('completed', t0);
    this._status = 'running';
    let status: TrainResult['status'] = 'completed';
    let error: TrainingDivergedError | undefined;
    const saveSteps = opts.saveSteps;
    let lastSaved = -1;
    const save = async () => {
      if (!opts.onSave || lastSaved === trainer.globalStep) return;
      lastSaved = trainer.globalStep;
      await opts.onSave(await this.snapshot(opts.checkpointOptions ?? {}));
    };
    try {
      for (;;) {
        if (trainer.globalStep >= this.maxSteps) break;
        const before = trainer.globalStep;
        // the next save point strictly after `before` (the final step is saved after the final evaluation)
        const saveAt = saveSteps && opts.onSave ? (Math.floor(before / saveSteps) + 1) * saveSteps : null;
        const savePoint = saveAt !== null && saveAt < this.maxSteps ? saveAt : null;
        let userStop = false;
        const res = await trainer.trainSteps({
          getBatch: (req) => this.batchFor(req, opts),
          onStep: (m) => this.onStep(m, opts),
          shouldStop: () => {
            if (this.stopRequested || !!opts.shouldStop?.()) {
              userStop = true;
              return true;
            }
            return savePoint !== null && trainer.globalStep >= savePoint;
          },
        });
        if (res.reason === 'stopped' && userStop) {
          status = 'stopped';
          break;
        }
        if (savePoint !== null && trainer.globalStep >= savePoint) {
          await save();
          continue;
        }
        if (res.reason === 'stopped') {
          status = 'stopped';
          break;
        }
        // 'dataEnd': an epoch ended with a short accumulation window; the next epoch continues in a new trainer.trainSteps call
        if (res.reason === 'dataEnd' && trainer.globalStep === before)
          throw new Error('FinetuneSession: no training batch for the next step');
      }
    } catch (e) {
      if (!(e instanceof TrainingDivergedError)) {
        this._status = 'stopped';
        throw e;
      }
      status = 'diverged';
      error = e;
    }
    this.pending = null; // anything not yet committed belongs to a step that did not count
    await this.flushWindow(opts);
    if (status === 'completed') {
      await this.checkpointHooks(this.maxSteps, opts, true);
      await this.commitPending(opts);
    }
    this._status = status;
    if (error) {
      this.divergedMessage = `${error.message}`;
      return { ...this.result('diverged', t0), message: this.divergedMessage, error };
    }
    await save();
    return this.result(status, t0);
  }

  private result(status: TrainResult['status'], t0: number): TrainResult {
    const lastLog = [...this.history].reverse().find((h) => h.loss !== undefined) as SessionMetrics | undefined;
    return {
      status,
      step: this.globalStep,
      max_steps: this.maxSteps,
      epoch: this.epoch,
      train_runtime: (now() - t0) / 1000,
      last: lastLog,
    };
  }

  /** The micro-batch for (step, micro): epoch-aligned accumulation windows over epochBatches(epoch). */
  private async batchFor(req: BatchRequest, opts: TrainOptions): Promise<SessionBatch | null> {
    opts.onBatch?.();
    const s = req.step;
    if (req.micro === 0 && s > 1) {
      // The weights now are those after step s − 1 (its update is enqueued before this call): evaluate here.
      await this.checkpointHooks(s - 1, opts, false);
      if (this.lastEmitted >= s - 1) await this.commitPending(opts); // its metrics went out in an earlier trainer.trainSteps()
    }
    const c = this.config;
    const epoch = Math.floor((s - 1) / this.stepsPerEpoch);
    const window = (s - 1) % this.stepsPerEpoch;
    const idx = window * c.gradient_accumulation_steps + req.micro;
    const batches = this.epochBatches(epoch);
    if (idx >= batches.length) return null;
    const b = batches[idx];
    this.stepTokens.set(s, (this.stepTokens.get(s) ?? 0) + b.tokens);
    return { ...b, dropoutSeed: c.lora_dropout > 0 ? req.rng.seed() : null };
  }

  private evalDue(step: number, final: boolean): boolean {
    const c = this.config;
    if (step === this.lastEvalStep) return false;
    if (final) return true;
    if (c.eval_strategy === 'no') return false;
    if (c.eval_strategy === 'epoch') return step % this.stepsPerEpoch === 0;
    return step % (c.eval_steps ?? c.logging_steps) === 0;
  }

  /** Validation loss and samples for the weights after `step`, kept pending until that step is confirmed. */
  private async checkpointHooks(step: number, opts: TrainOptions, final: boolean): Promise<void> {
    if (!this.evalDue(step, final)) return;
    const wantEval = this.evalBatches.length > 0 && (final || this.config.eval_strategy !== 'no');
    const wantSamples = !!opts.onSample;
    if (!wantEval && !wantSamples) return;
    this.lastEvalStep = step;
    const ev = wantEval ? await this.evaluate(step) : null;
    const samples = wantSamples ? await this.samples(opts) : null;
    this.pending = { step, eval: ev, samples };
  }

  private async commitPending(opts: TrainOptions): Promise<void> {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    if (p.eval) {
      this.history.push({ ...p.eval });
      await opts.onEval?.(p.eval);
    }
    if (p.samples && opts.onSample)
      await opts.onSample({ step: p.step, epoch: p.step / this.stepsPerEpoch, samples: p.samples });
  }

  private async onStep(m: StepMetrics, opts: TrainOptions): Promise<void> {
    const inputTokens = this.stepTokens.get(m.step) ?? 0;
    this.stepTokens.delete(m.step);
    this.lastEmitted = m.step;
    this.window.add(m, inputTokens);
    // Nothing launched after this step (end of an epoch's short window, the last step, a stop): the weights are
    // exactly those after it, so evaluate now and log eval_loss with the step.
    if (this.trainer?.globalStep === m.step) await this.checkpointHooks(m.step, opts, m.step === this.maxSteps);
    const pend = this.pending?.step === m.step ? this.pending : null;
    if (m.step % this.config.logging_steps === 0 || m.step === this.maxSteps)
      await this.flushWindow(opts, pend?.eval?.eval_loss);
    if (pend) await this.commitPending(opts);
  }

  private async flushWindow(opts: TrainOptions, evalLoss?: number): Promise<void> {
    const w = this.window.take();
    if (!w) return;
    const m = sessionMetricsOf(w, this.stepsPerEpoch);
    if (evalLoss !== undefined) m.eval_loss = evalLoss;
    this.history.push({ ...m });
    await opts.onMetrics?.(m);
  }

  /**
   * Validation loss of the current weights: token-weighted mean CE over the validation split, eval mode (no
   * dropout), no gradients. Null without validation data.
   */
  async evaluate(step = this.globalStep): Promise<EvalMetrics | null> {
    if (this.evalBatches.length === 0) return null;
    const t0 = now();
    let lossSum = 0,
      correct = 0,
      count = 0;
    for (const b of this.evalBatches) {
      const packed = tf.tidy(() => {
        const o = this.model.loss(b);
        return tf.stack([tf.mul(o.loss, o.count), o.correct, o.count]);
      });
      const v = await packed.data();
      packed.dispose();
      lossSum += v[0];
      correct += v[1];
      count += v[2];
    }
    return {
      step,
      epoch: step / this.stepsPerEpoch,
      eval_loss: count > 0 ? lossSum / count : 0,
      eval_accuracy: count > 0 ? correct / count : 0,
      eval_tokens: count,
      eval_runtime: (now() - t0) / 1000,
    };
  }

  private sampleSource(): Example[] {
    const d = this.data;
    return d.test.source.length ? d.test.source : d.validation.source.length ? d.validation.source : d.train.source;
  }

  private async samples(opts: TrainOptions): Promise<GenerationEvalExample[]> {
    const r = await evaluateGeneration(this.model, this.tokenizer, this.sampleSource(), {
      template: this.data.template,
      eosToken: this.config.eos_token,
      maxExamples: opts.samplePrompts ?? 3,
      maxNewTokens: opts.sampleMaxNewTokens ?? 32,
    });
    return r.examples;
  }

  /**
   * Generation metrics (exact match, ROUGE-L) of the base model (adapter detached) and the tuned model on the
   * test split (or the given examples; default: test, else validation).
   */
  async generationEval(
    opts: {
      examples?: Example[];
      maxNewTokens?: number;
      maxExamples?: number;
      signal?: { aborted: boolean };
      onProgress?: (done: number, total: number) => void;
    } = {},
  ): Promise<BaseVsTuned> {
    if (this._status === 'running')
      throw new Error('FinetuneSession.generationEval: training is running; stop it first');
    const examples =
      opts.examples ?? (this.data.test.source.length ? this.data.test.source : this.data.validation.source);
    if (examples.length === 0)
      throw new Error('generationEval: no held-out examples (set test_size or pass test files)');
    return compareBaseTuned(this.model, this.tokenizer, examples, {
      template: this.data.template,
      eosToken: this.config.eos_token,
      maxNewTokens: opts.maxNewTokens,
      maxExamples: opts.maxExamples,
      signal: opts.signal,
      onProgress: opts.onProgress,
    });
  }

  /** The adapter as PEFT files (adapter_config.json, adapter_model.safetensors). */
  exportAdapter(opts: PeftExportOptions = {}): Promise<Map<string, Uint8Array>> {
    return exportPeftAdapter(this.model, { baseModelNameOrPath: this.baseModelName, ...opts });
  }

  // -------------------------------------------------------------------------------------------------------
  // Checkpoints (./checkpoint.ts describes what they hold)

  /** Hash of the tokenized train/validation/test splits (computed once). */
  datasetHash(): string {
    this.datasetHashCache ??= hashDataset({
      train: this.data.train.examples,
      validation: this.data.validation.examples,
      test: this.data.test.examples,
    });
    return this.datasetHashCache;
  }

  /**
   * Everything needed to continue this run exactly: LoRA weights, AdamW moments and step counts, schedule position,
   * data cursor, RNG state, metrics history, configuration, model and dataset hashes. Not while train() is in progress
   * (stop first, or use train({ saveSteps, onSave })). Serialise with encodeCheckpointFiles / encodeCheckpointBundle.
   */
  /**
   * Store the model's frozen weights as config.frozen_dtype before anything trains or hashes them (a float32 model is
   * lowered in place; a model already compact in another format is refused, see CausalLM.setFrozenDtype).
   */
  private async ensureFrozenDtype(): Promise<void> {
    await this.model.setFrozenDtype(this.config.frozen_dtype);
  }

  async checkpoint(opts: CheckpointOptions = {}): Promise<SessionCheckpoint> {
    if (this._status === 'running')
      throw new Error(
        'FinetuneSession.checkpoint: training is running; stop it first or pass saveSteps/onSave to train()',
      );
    return this.snapshot(opts);
  }

  private async snapshot(opts: CheckpointOptions): Promise<SessionCheckpoint> {
    await this.ensureFrozenDtype();
    // After a divergence the trainer has rolled back to the last good step: that state is what gets saved (and can be
    // resumed, e.g. with a lower learning rate: resume(init, ck, { learning_rate })).
    if (this.adapter.merged)
      throw new Error('FinetuneSession.checkpoint: the adapter is merged into the base weights; unmerge it first');
    const trainer = this.getTrainer();
    const st = await trainer.state(); // waits for any step in flight
    const lora = await readRawTensors(this.adapter.variables());
    const expAvg = new Map<string, { shape: number[]; data: Float32Array }>();
    const expAvgSq = new Map<string, { shape: number[]; data: Float32Array }>();
    const paramSteps: Record<string, number> = {};
    for (const [n, p] of Object.entries(st.optimizer.params)) {
      expAvg.set(n, { shape: [...p.shape], data: p.expAvg });
      expAvgSq.set(n, { shape: [...p.shape], data: p.expAvgSq });
      paramSteps[n] = p.step;
    }
    const step = st.globalStep;
    const c = this.config;
    const cursorEpoch = Math.floor(step / this.stepsPerEpoch);
    const stepInEpoch = step % this.stepsPerEpoch;
    const meta: CheckpointMeta = {
      format: 'webtune-checkpoint',
      version: 1,
      created: new Date().toISOString(),
      model: {
        id: opts.modelId !== undefined ? opts.modelId : this.baseModelName,
        hash: await hashModelWeights(this.model.weights, opts.modelHash ?? 'sha256', this.model.compact),
        config: { ...this.model.config },
      },
      dataset: {
        hash: this.datasetHash(),
        train_examples: this.data.train.examples.length,
        validation_examples: this.data.validation.examples.length,
        test_examples: this.data.test.examples.length,
      },
      config: JSON.parse(JSON.stringify(c)) as FinetuneConfig,
      lora: JSON.parse(JSON.stringify(this.lora)) as LoraConfig,
      progress: {
        global_step: step,
        max_steps: this.maxSteps,
        epoch: step / this.stepsPerEpoch,
        status: step >= this.maxSteps ? 'completed' : step > 0 ? 'stopped' : 'idle',
      },
      optimizer: { step: st.optimizer.step, param_steps: paramSteps },
      schedule: {
        lr_scheduler_type: c.lr_scheduler_type,
        warmup_steps: trainer.warmupSteps,
        last_lr: step > 0 ? trainer.lrAt(step - 1) : null,
        next_lr: trainer.lrAt(step),
      },
      data_cursor: {
        epoch: cursorEpoch,
        step_in_epoch: stepInEpoch,
        batch_in_epoch: stepInEpoch * c.gradient_accumulation_steps,
        batches_per_epoch: this.batchesPerEpoch,
        steps_per_epoch: this.stepsPerEpoch,
        order_hash: hashBatchOrder(this.epochBatches(cursorEpoch)),
      },
      rng: st.rng,
      session: {
        history: JSON.parse(JSON.stringify(this.history)) as LogEntry[],
        window: this.window.records(),
        last_eval_step: this.lastEvalStep,
      },
    };
    return { meta, lora, expAvg, expAvgSq };
  }

  /**
   * Continue from a checkpoint of this run: the session must have been built with the same model weights, data
   * and configuration (refused with a CheckpointMismatchError saying what differs; nothing is changed then).
   * Afterwards train() continues exactly where the checkpointed session was.
   */
  async restore(ck: SessionCheckpoint, opts: RestoreOptions = {}): Promise<void> {
    if (this._status === 'running') throw new Error('FinetuneSession.restore: training is running; stop it first');
    if (this.adapter.merged)
      throw new Error('FinetuneSession.restore: the adapter is merged into the base weights; unmerge it first');
    const m = ck.meta;
    // compact weights hash differently: name the setting rather than report another model
    const ckDtype = m.config.frozen_dtype ?? 'float32';
    if (ckDtype !== this.config.frozen_dtype) {
      throw new CheckpointMismatchError(
        `cannot resume: the checkpoint was trained with frozen_dtype ${ckDtype}, this session has ${this.config.frozen_dtype}; ` +
          `resume with frozen_dtype ${ckDtype}`,
        'config',
      );
    }
    await this.ensureFrozenDtype();
    const modelHash = await hashModelWeights(this.model.weights, modelHashMethod(m.model.hash), this.model.compact);
    // a new learning rate (opts.learning_rate) is the one difference allowed: the schedule keeps its shape, scaled
    const newLr = opts.learning_rate !== undefined && opts.learning_rate !== m.config.learning_rate;
    if (newLr && this.config.learning_rate !== opts.learning_rate) {
      throw new Error(
        `FinetuneSession.restore: learning_rate ${opts.learning_rate} is not this session's learning_rate (${this.config.learning_rate})`,
      );
    }
    checkCheckpointTarget(m, {
      modelHash,
      modelId: this.baseModelName,
      datasetHash: this.datasetHash(),
      config: newLr ? { ...this.config, learning_rate: m.config.learning_rate } : this.config,
      counts: {
        train: this.data.train.examples.length,
        validation: this.data.validation.examples.length,
        test: this.data.test.examples.length,
      },
    });
    const step = m.progress.global_step;
    const dc = m.data_cursor;
    if (
      m.progress.max_steps !== this.maxSteps ||
      dc.steps_per_epoch !== this.stepsPerEpoch ||
      dc.batches_per_epoch !== this.batchesPerEpoch
    ) {
      throw new CheckpointMismatchError(
        `cannot resume: the checkpoint has ${m.progress.max_steps} steps of ${dc.steps_per_epoch} per epoch (${dc.batches_per_epoch} batches), ` +
          `this session ${this.maxSteps} of ${this.stepsPerEpoch} (${this.batchesPerEpoch} batches)`,
        'data-order',
      );
    }
    if (
      dc.epoch !== Math.floor(step / this.stepsPerEpoch) ||
      hashBatchOrder(this.epochBatches(dc.epoch)) !== dc.order_hash
    ) {
      throw new CheckpointMismatchError(
        `cannot resume: the batch order of epoch ${dc.epoch} differs from the checkpoint's (a different version of the batching code?)`,
        'data-order',
      );
    }
    const vars = this.adapter.variables();
    const names = [...vars.keys()].sort().join('\n');
    if ([...ck.lora.keys()].sort().join('\n') !== names) {
      throw new CheckpointMismatchError(
        `cannot resume: the checkpoint's LoRA tensors (${ck.lora.size}) are not this adapter's (${vars.size})`,
        'tensors',
      );
    }
    for (const [n, v] of vars) {
      const t = ck.lora.get(n)!;
      if (t.shape.join(',') !== v.shape.join(',') || t.data.length !== v.size)
        throw new CheckpointMismatchError(
          `cannot resume: LoRA tensor ${n} has shape [${t.shape}], expected [${v.shape}]`,
          'tensors',
        );
    }
    const trainer = this.getTrainer();
    const wantLr = newLr
      ? (m.schedule.next_lr * this.config.learning_rate) / m.config.learning_rate
      : m.schedule.next_lr;
    if (newLr ? Math.abs(trainer.lrAt(step) - wantLr) > 1e-9 * Math.abs(wantLr) : trainer.lrAt(step) !== wantLr) {
      throw new CheckpointMismatchError(
        `cannot resume: the learning rate of step ${step + 1} would be ${trainer.lrAt(step)}, the checkpoint says ${wantLr}`,
        'schedule',
      );
    }
    const params: Record<string, { step: number; shape: number[]; expAvg: Float32Array; expAvgSq: Float32Array }> = {};
    for (const [n, t] of ck.expAvg) {
      params[n] = {
        step: m.optimizer.param_steps[n],
        shape: t.shape,
        expAvg: t.data,
        expAvgSq: ck.expAvgSq.get(n)?.data ?? new Float32Array(0),
      };
    }
    // optimizer first: it validates every name and shape before assigning anything
    trainer.loadState({ globalStep: step, optimizer: { step: m.optimizer.step, params }, rng: m.rng });
    tf.tidy(() => this.adapter.assign(ck.lora)); // tidy: the source tensors of assign() are freed
    this.history.splice(0, this.history.length, ...(JSON.parse(JSON.stringify(m.session.history)) as LogEntry[]));
    this.window.restore(m.session.window);
    this.lastEmitted = step;
    this.lastEvalStep = m.session.last_eval_step;
    this.pending = null;
    this.stepTokens.clear();
    this.stopRequested = false;
    this.divergedMessage = null;
    this._status = step >= this.maxSteps ? 'completed' : step > 0 ? 'stopped' : 'idle';
  }

  /**
   * A new session continuing a checkpoint: built with the checkpoint's configuration (or init.config, which must then
   * resolve to the same) on `model` (same weights as at checkpoint time) and the same data, then restore()d.
   */
  static async resume(
    init: FinetuneSessionInit,
    ck: SessionCheckpoint,
    opts: RestoreOptions = {},
  ): Promise<FinetuneSession> {
    const config = init.config ?? ck.meta.config;
    const s = new FinetuneSession({
      ...init,
      config: opts.learning_rate !== undefined ? { ...config, learning_rate: opts.learning_rate } : config,
      baseModelName: init.baseModelName !== undefined ? init.baseModelName : ck.meta.model.id,
    });
    try {
      await s.restore(ck, opts);
    } catch (e) {
      s.dispose();
      throw e;
    }
    return s;
  }

  // -------------------------------------------------------------------------------------------------------
  // Estimates and metrics files

  /** Trainable parameters and an approximate memory budget for this configuration and data (./estimate.ts). */
  estimate(): MemoryEstimate {
    return estimateMemory({
      modelConfig: this.model.config,
      config: this.config,
      lora: this.lora,
      batches: this.epochBatches(0),
      batchesPerEpoch: this.batchesPerEpoch,
      stepsPerEpoch: this.stepsPerEpoch,
      maxSteps: this.maxSteps,
    });
  }

  /** The history as metrics.csv (./metrics-export.ts). */
  metricsCsv(): string {
    return metricsCsv(this.history);
  }

  /** A trainer_state.json-like record: steps, epochs, config and log_history (./metrics-export.ts). */
  metricsJson(): string {
    return metricsJson({
      globalStep: this.globalStep,
      maxSteps: this.maxSteps,
      stepsPerEpoch: this.stepsPerEpoch,
      status: this._status,
      config: this.config,
      history: this.history,
    });
  }

  /** Free the optimizer state. The adapter stays attached to the model (export or generate with it). */
  dispose(): void {
    this.trainer?.dispose();
    this.trainer = null;
  }
}
