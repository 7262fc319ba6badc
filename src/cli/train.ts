/**
 * `webtune train`: LoRA fine-tuning of a model on dataset files through FinetuneSession, with a progress bar
 * on stderr, and the PEFT adapter plus metrics written to --out.
 */
import { stringifyFinite } from '../util/finite';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BACKEND_OPT,
  COMMON,
  CliError,
  DATA_OPTS,
  MODEL_OPTS,
  UsageError,
  choice,
  frozenDtypeArg,
  num,
  openModel,
  parseOptionsArg,
  readDataFiles,
  splitSize,
  startBackend,
  str,
  templateArg,
  type Command,
  type Options,
  type Io,
  type Values,
  dataProgress,
} from './common';
import type { FinetuneConfig } from '../train/config';
import type { SessionMetrics, EvalMetrics } from '../train/metrics';
import type { DatasetSource } from '../train/dataset';

// The data command's split options are --val-size / --test-size here (FinetuneSession's names).
const { validation: _validation, evaluation: _evaluation, ...trainDataOpts } = DATA_OPTS;
export const TRAIN_DATA_OPTS: Options = trainDataOpts;

const SCHEDULERS = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;

export const TRAIN_USAGE = `Usage: webtune train --model <folder|file.bin|url> --data <file> --out <dir> [options]

Fine-tunes a LoRA adapter on the dataset and writes to --out:
  adapter_config.json, adapter_model.safetensors   the adapter in PEFT's format
                                                    (PeftModel.from_pretrained(base, out); webtune score/generate --adapter out)
  metrics.json, metrics.csv                        the log history (loss, learning_rate, grad_norm, tokens/s, eval_loss …)
Progress goes to stderr; a JSON summary to stdout. Ctrl-C stops after the current step and saves the adapter.

Model and data:
  -m, --model <m>              Hugging Face folder, llama2.c .bin file, or Hub URL {base}/{repo}/resolve/{rev}[/{path}]
      --tokenizer <f>          tokenizer file to use instead of the model's
  -d, --data <file>            training data: JSON, JSONL, CSV, TSV or text (repeatable)
      --validation-data <f>    validation files (repeatable; default: --val-size of the training data)
      --format, --columns      as for webtune data
      --template <t>           alpaca | chatml | instruction | chat_template | raw, or a custom template with {output}
      --template-file <f>      a custom template or Jinja chat template from a file
      --train-on-inputs        also train on prompt tokens
      --eos-token <s>          string that ends each response (default the tokenizer's EOS; e.g. "\\n" for llama2.c
                               TinyStories models, whose </s> was never trained)
      --max-length <n>         tokens per example (default 1024, at most the model's context)
      --packing                pack several examples per row
      --group-by-length        batch examples of similar length together
      --val-size <x>           validation split: fraction in (0, 1) or a count (default 0.05; 0 with < 10 examples)
      --test-size <x>          held-out split never trained on (default 0); after training, greedy generations on it
                               are scored (exact match, ROUGE-L; base vs tuned) into generation_eval.json
  -o, --out <dir>              output folder (created)

Training (transformers.TrainingArguments names in brackets):
      --lr <x>                 learning rate (2e-4) [learning_rate]
      --epochs <x>             epochs, may be fractional (3) [num_train_epochs]
      --max-steps <n>          optimizer steps; overrides --epochs [max_steps]
      --batch-size <n>         examples per micro-batch (8) [per_device_train_batch_size]
      --eval-batch-size <n>    examples per validation batch (8) [per_device_eval_batch_size]
      --grad-accum <n>         micro-batches per step (1) [gradient_accumulation_steps]
      --warmup-ratio <x>       warmup as a fraction of the steps (0) [warmup_ratio]
      --warmup-steps <n>       warmup steps; overrides --warmup-ratio [warmup_steps]
      --scheduler <s>          ${SCHEDULERS.join(' | ')} (linear) [lr_scheduler_type]
      --weight-decay <x>       AdamW weight decay (0) [weight_decay]
      --max-grad-norm <x>      gradient clipping, 0 = off (1) [max_grad_norm]
      --seed <n>               data order, splits, adapter initialisation, dropout (42) [seed]
      --logging-steps <n>      log every n steps (10) [logging_steps]
      --eval-steps <n>         validate every n steps (default: --logging-steps) [eval_steps]
      --eval-strategy <s>      steps | epoch | no (steps) [eval_strategy]; a final validation always runs
      --gradient-checkpointing recompute each block in the backward pass (less memory, ~30% slower)
      --frozen-dtype <d>       keep the frozen weights as float32 (default) | float16 | int8, expanded one
                               layer at a time; LoRA and optimizer stay float32 [frozen_dtype]
      --save-steps <n>         write a checkpoint (LoRA, optimizer, data position, RNG, metrics) to
                               <out>/checkpoints every n steps and at the end [save_steps]
      --resume-from-checkpoint <p>  continue exactly from a checkpoint: a run's checkpoints folder, one
                               checkpoint folder or a bundle file [resume_from_checkpoint]

LoRA (peft.LoraConfig names in brackets):
      --r <n>                  rank (8) [r]
      --alpha <x>              scaling numerator (16) [lora_alpha]
      --dropout <x>            dropout on the LoRA input (0.05) [lora_dropout]
      --targets <t>            q_proj,v_proj | all-linear | module names (default q_proj,v_proj; GPT-2 c_attn) [target_modules]
      --rslora                 scale by alpha/sqrt(r) [use_rslora]

Other:
      --dry-run                prepare the data and print the data report and memory estimate; do not train
      --backend <b>            wasm (default) | cpu | auto
  -q, --quiet                  no progress on stderr
      --debug                  stack traces on errors
  -h, --help                   this help`;

function fmtTime(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

const fmt = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

/** Step progress on stderr: an in-place bar on a terminal, one line per logging window otherwise. */
class Progress {
  private t0 = performance.now();
  private lastDraw = 0;
  private loss: number | null = null;
  private tps: number | null = null;
  private barShown = false;

  constructor(
    private io: Io,
    private maxSteps: number,
    private quiet: boolean,
  ) {}

  private eta(step: number): string {
    const el = (performance.now() - this.t0) / 1000;
    return step > 0 ? fmtTime((el / step) * (this.maxSteps - step)) : '?';
  }

  /** Called before each step with the number of steps done. */
  tick(step: number): void {
    if (this.quiet || !this.io.tty) return;
    const t = performance.now();
    if (t - this.lastDraw < 200 && step < this.maxSteps) return;
    this.lastDraw = t;
    const width = 24;
    const filled = Math.round((width * step) / this.maxSteps);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const parts = [`step ${step}/${this.maxSteps}`, bar];
    if (this.loss !== null) parts.push(`loss ${fmt(this.loss)}`);
    if (this.tps !== null) parts.push(`${this.tps.toFixed(0)} tok/s`);
    parts.push(`eta ${this.eta(step)}`);
    this.io.err(`\r\x1b[2K${parts.join('  ')}`);
    this.barShown = true;
  }

  private line(s: string): void {
    if (this.quiet) return;
    if (this.barShown) this.io.err('\r\x1b[2K');
    this.io.err(s + '\n');
    this.barShown = false;
  }

  metrics(m: SessionMetrics): void {
    this.loss = m.loss;
    this.tps = m.tokens_per_sec;
    this.line(
      `step ${m.step}/${this.maxSteps}  epoch ${m.epoch.toFixed(2)}  loss ${fmt(m.loss)}  acc ${fmt(m.accuracy, 3)}  ` +
        `lr ${m.learning_rate.toExponential(2)}  grad_norm ${fmt(m.grad_norm, 3)}  ${m.tokens_per_sec.toFixed(0)} tok/s  eta ${this.eta(m.step)}`,
    );
    this.tick(m.step);
  }

  evaluation(e: EvalMetrics): void {
    this.line(
      `eval  step ${e.step}  eval_loss ${fmt(e.eval_loss)}  eval_acc ${fmt(e.eval_accuracy, 3)}  (${e.eval_tokens} tokens, ${e.eval_runtime.toFixed(1)}s)`,
    );
  }

  note(s: string): void {
    this.line(s);
  }

  done(): void {
    if (this.barShown && !this.quiet) this.io.err('\r\x1b[2K');
    this.barShown = false;
  }
}

/** The training and LoRA options configFromArgs reads (webtune train and export-run). */
export const TRAIN_CONFIG_OPTS: Options = {
  lr: { type: 'string' },
  epochs: { type: 'string' },
  'max-steps': { type: 'string' },
  'batch-size': { type: 'string' },
  'eval-batch-size': { type: 'string' },
  'grad-accum': { type: 'string' },
  'warmup-ratio': { type: 'string' },
  'warmup-steps': { type: 'string' },
  scheduler: { type: 'string' },
  'weight-decay': { type: 'string' },
  'max-grad-norm': { type: 'string' },
  'logging-steps': { type: 'string' },
  'eval-steps': { type: 'string' },
  'eval-strategy': { type: 'string' },
  'gradient-checkpointing': { type: 'boolean' },
  packing: { type: 'boolean' },
  'group-by-length': { type: 'boolean' },
  'eos-token': { type: 'string' },
  'val-size': { type: 'string' },
  'test-size': { type: 'string' },
  r: { type: 'string' },
  alpha: { type: 'string' },
  dropout: { type: 'string' },
  targets: { type: 'string' },
  rslora: { type: 'boolean' },
};

/** FinetuneConfig fields from the command line (only those given; the session supplies the defaults). */
export async function configFromArgs(v: Values): Promise<Partial<FinetuneConfig>> {
  const c: Partial<FinetuneConfig> = {};
  const set = <K extends keyof FinetuneConfig>(k: K, x: FinetuneConfig[K] | undefined) => {
    if (x !== undefined) c[k] = x;
  };
  set('learning_rate', num(v, 'lr', { min: 0 }));
  set('num_train_epochs', num(v, 'epochs', { min: 0, minExclusive: true }));
  set('max_steps', num(v, 'max-steps', { int: true, min: 1 }));
  set('per_device_train_batch_size', num(v, 'batch-size', { int: true, min: 1 }));
  set('per_device_eval_batch_size', num(v, 'eval-batch-size', { int: true, min: 1 }));
  set('gradient_accumulation_steps', num(v, 'grad-accum', { int: true, min: 1 }));
  set('warmup_ratio', num(v, 'warmup-ratio', { min: 0, max: 1 }));
  set('warmup_steps', num(v, 'warmup-steps', { int: true, min: 0 }));
  set('lr_scheduler_type', choice(v, 'scheduler', SCHEDULERS));
  set('weight_decay', num(v, 'weight-decay', { min: 0 }));
  set('max_grad_norm', num(v, 'max-grad-norm', { min: 0 }));
  set('seed', num(v, 'seed', { int: true, min: 0, max: Number.MAX_SAFE_INTEGER }));
  set('logging_steps', num(v, 'logging-steps', { int: true, min: 1 }));
  set('eval_steps', num(v, 'eval-steps', { int: true, min: 1 }));
  set('eval_strategy', choice(v, 'eval-strategy', ['steps', 'epoch', 'no'] as const));
  if (v['gradient-checkpointing']) c.gradient_checkpointing = true;
  if (v['frozen-dtype'] !== undefined) c.frozen_dtype = frozenDtypeArg(v);
  if (v.packing) c.packing = true;
  if (v['group-by-length']) c.group_by_length = true;
  if (v['train-on-inputs']) c.train_on_inputs = true;
  set('max_length', num(v, 'max-length', { int: true, min: 2 }));
  const eos = str(v, 'eos-token');
  if (eos !== undefined) {
    if (eos === '') throw new UsageError('--eos-token must not be empty');
    c.eos_token = eos.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
  }
  set('val_size', splitSize(v, 'val-size'));
  set('test_size', splitSize(v, 'test-size'));
  set('r', num(v, 'r', { int: true, min: 1 }));
  set('lora_alpha', num(v, 'alpha', { min: 0, minExclusive: true }));
  set('lora_dropout', num(v, 'dropout', { min: 0, max: 0.999999 }));
  const targets = str(v, 'targets');
  if (targets !== undefined) {
    const list = targets
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    if (list.length === 0) throw new UsageError('--targets expects module names separated by commas, or all-linear');
    c.target_modules = list.length === 1 && list[0] === 'all-linear' ? 'all-linear' : list;
  }
  if (v.rslora) c.use_rslora = true;
  const template = await templateArg(v);
  if (template) c.template = template;
  return c;
}

export const train: Command = {
  name: 'train',
  summary: 'fine-tune a LoRA adapter on a dataset and save it in PEFT format',
  usage: TRAIN_USAGE,
  options: {
    ...COMMON,
    ...MODEL_OPTS,
    ...BACKEND_OPT,
    ...TRAIN_DATA_OPTS,
    'validation-data': { type: 'string', multiple: true },
    out: { type: 'string', short: 'o' },
    ...TRAIN_CONFIG_OPTS,
    'dry-run': { type: 'boolean' },
    'save-steps': { type: 'string' },
    'resume-from-checkpoint': { type: 'string' },
  },
  async run(v, io) {
    // Everything about the command line is checked before any model or data is read.
    const dryRun = !!v['dry-run'];
    const out = str(v, 'out', !dryRun);
    if (out !== undefined && out.trim() === '') {
      throw new UsageError('--out must name a folder for the adapter and metrics (got an empty string)');
    }
    const config = await configFromArgs(v);
    const parse = await parseOptionsArg(v);
    const { resolveFinetuneConfig } = await import('../train/config');
    const { FinetuneSession } = await import('../train/session');
    try {
      resolveFinetuneConfig(config);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!(v.data as string[] | undefined)?.length) throw new UsageError('--data is required');
    const files = await readDataFiles(v);
    const valFiles = (v['validation-data'] as string[] | undefined)?.length
      ? await readDataFiles({ data: v['validation-data'] })
      : [];
    const quiet = !!v.quiet;
    const saveSteps = v['save-steps'] === undefined ? undefined : num(v, 'save-steps', { int: true, min: 1 });
    const resumeFrom = v['resume-from-checkpoint'] as string | undefined;

    // Default validation split: 5% (at least one example) when the data is big enough to spare it.
    if (config.val_size === undefined && valFiles.length === 0) {
      const { parseDataset } = await import('../data');
      let count = 0;
      for (const f of files) {
        try {
          count += parseDataset(f.data, f.name, parse).examples.length;
        } catch (e) {
          throw new CliError(
            (e as Error).message.includes(f.name) ? (e as Error).message : `${f.name}: ${(e as Error).message}`,
            e,
          );
        }
      }
      config.val_size = count >= 10 ? 0.05 : 0;
    }

    const backend = await startBackend(v, io);
    const m = await openModel(v, io);
    // TRL's default max_length 1024, clipped to the model's context without a warning when not asked for.
    if (config.max_length === undefined) config.max_length = Math.min(1024, m.config.max_position_embeddings);
    const { CausalLM } = await import('../engine/model');
    const { countParams } = await import('../engine/params');
    const mem = await import('../train/memory-guard');
    const limits = mem.backendMemoryLimit(backend);
    let model: InstanceType<typeof CausalLM>;
    try {
      const frozenDtype = config.frozen_dtype ?? 'float32';
      mem.checkModelFits(countParams(m.config), backend, limits, { config: m.config, modelName: m.name, frozenDtype });
      model = CausalLM.fromRaw(m.config, m.weights, { frozenDtype });
    } catch (e) {
      const oom = mem.explainOutOfMemory(e, {
        phase: 'load',
        backend,
        modelName: m.name,
        limits,
        extra: { modelConfig: m.config },
      });
      throw new CliError(oom?.message ?? (e as Error).message, e);
    }
    const toSource = (f: { name: string; data: Uint8Array }): DatasetSource => ({
      name: f.name,
      bytes: f.data,
      options: parse,
    });
    const isUrl = /^https?:\/\//i.test(m.arg);
    let session: InstanceType<typeof FinetuneSession>;
    try {
      session = new FinetuneSession({
        model,
        tokenizer: m.tokenizer,
        data: { train: files.map(toSource), ...(valFiles.length ? { validation: valFiles.map(toSource) } : {}) },
        config,
        baseModelName: isUrl ? m.name : path.resolve(m.arg),
        onDataProgress: dataProgress(io, quiet),
      });
    } catch (e) {
      model.dispose();
      throw new CliError((e as Error).message, e);
    }

    try {
      for (const w of session.warnings) if (!quiet) io.err(`webtune train: warning: ${w}\n`);
      const fit = mem.sessionFit(session, backend, limits);
      const est = fit.estimate;
      const d = session.data;
      if (!quiet) {
        io.err(
          `model ${m.name} (${m.config.family}, ${(est.total_params / 1e6).toFixed(2)}M params) on ${backend}; ` +
            `LoRA r=${session.lora.r} on ${Array.isArray(session.lora.target_modules) ? session.lora.target_modules.join(',') : session.lora.target_modules}: ` +
            `${est.trainable_params} trainable (${est.trainable_percent.toFixed(3)}%)\n` +
            `data: ${d.train.examples.length} train, ${d.validation.examples.length} validation, ${d.test.examples.length} test examples; ` +
            `${session.stepsPerEpoch} steps/epoch, ${session.maxSteps} steps\n`,
        );
      }
      if (dryRun) {
        io.out(
          stringifyFinite(
            {
              model: m.name,
              backend,
              config: session.config,
              lora: session.lora,
              estimate: est,
              memory_fit: {
                needed_bytes: fit.report.neededBytes,
                limit_bytes: fit.report.limits.totalBytes,
                fits: fit.report.fits,
              },
              data: d.report,
            },
            2,
          ) + '\n',
        );
        return;
      }
      if (fit.refusal) throw new CliError(fit.refusal.message, fit.refusal);

      const outDir = path.resolve(out!);
      try {
        await mkdir(outDir, { recursive: true });
      } catch (e) {
        throw new CliError(`cannot create output folder ${out}: ${(e as Error).message}`, e);
      }

      if (resumeFrom) {
        // HF's --resume_from_checkpoint: a run folder, a checkpoint folder or a single-file bundle.
        const { loadCheckpointFromPath } = await import('../store/node');
        let loaded;
        try {
          loaded = await loadCheckpointFromPath(path.resolve(resumeFrom));
          await session.restore(loaded.checkpoint);
        } catch (e) {
          throw new CliError(`cannot resume from ${resumeFrom}: ${(e as Error).message}`, e);
        }
        if (!quiet) io.err(`resumed from ${loaded.source} at step ${session.globalStep}\n`);
      }
      const { saveCheckpointToDir } = await import('../store/node');
      const checkpointDir = path.join(outDir, 'checkpoints');

      const progress = new Progress(io, session.maxSteps, quiet);
      let interrupts = 0;
      const onSigint = () => {
        interrupts++;
        if (interrupts === 1) {
          progress.note('interrupted: stopping after this step and saving the adapter (Ctrl-C again to quit at once)');
          session.stop();
        } else {
          process.exit(130);
        }
      };
      process.on('SIGINT', onSigint);
      let result;
      try {
        result = await session.train({
          ...(saveSteps
            ? {
                saveSteps,
                onSave: async (ck) => {
                  await saveCheckpointToDir(checkpointDir, ck);
                },
              }
            : {}),
          onMetrics: (x) => progress.metrics(x),
          onEval: (e) => progress.evaluation(e),
          shouldStop: () => {
            progress.tick(session.globalStep);
            return false;
          },
        });
      } catch (e) {
        const oom = mem.explainOutOfMemory(e, {
          phase: session.globalStep === 0 ? 'first-step' : 'step',
          backend,
          estimate: est,
          config: session.config,
          limits,
          extra: fit.extra,
        });
        throw oom ? new CliError(oom.message, e) : e;
      } finally {
        process.off('SIGINT', onSigint);
        progress.done();
      }

      // Save whatever was reached (the last good values after a divergence).
      const written: string[] = [];
      const save = async (name: string, data: Uint8Array | string) => {
        try {
          await writeFile(path.join(outDir, name), data);
        } catch (e) {
          throw new CliError(`cannot write ${path.join(outDir, name)}: ${(e as Error).message}`, e);
        }
        written.push(name);
      };
      for (const [name, bytes] of await session.exportAdapter()) await save(name, bytes);
      await save('metrics.json', session.metricsJson() + '\n');
      await save('metrics.csv', session.metricsCsv());

      // Held-out generation: exact match and ROUGE-L (Super-NaturalInstructions normalisation), base vs tuned.
      let generation: {
        base: { exact_match: number; rougeL: number; count: number };
        tuned: { exact_match: number; rougeL: number; count: number };
      } | null = null;
      if (result.status !== 'diverged' && d.test.examples.length > 0) {
        if (!quiet)
          io.err(`evaluating greedy generations on ${d.test.examples.length} held-out examples (base vs tuned)\n`);
        const g = await session.generationEval();
        await save('generation_eval.json', stringifyFinite(g, 2) + '\n');
        const pick = (r: typeof g.base) => ({ exact_match: r.exact_match, rougeL: r.rougeL, count: r.count });
        generation = { base: pick(g.base), tuned: pick(g.tuned) };
      }
      const evals = session.history.filter((h) => h.eval_loss !== undefined && h.loss === undefined);
      const trainLogs = session.history.filter((h) => h.loss !== undefined);
      const summary = {
        status: result.status,
        model: m.name,
        out: outDir,
        files: written,
        step: result.step,
        max_steps: result.max_steps,
        epoch: result.epoch,
        train_runtime: result.train_runtime,
        train_loss: trainLogs.length ? trainLogs[trainLogs.length - 1].loss : null,
        eval_loss: evals.length ? evals[evals.length - 1].eval_loss : null,
        trainable_params: est.trainable_params,
        ...(generation ? { generation_eval: generation } : {}),
        ...(result.message ? { message: result.message } : {}),
      };
      io.out(stringifyFinite(summary) + '\n');
      if (result.status === 'diverged')
        throw new CliError(`${result.message} (adapter and metrics saved to ${outDir})`);
      if (!quiet) io.err(`saved ${written.join(', ')} to ${outDir}\n`);
    } finally {
      session.dispose();
      model.dispose();
    }
  },
};
