/**
 * Training in the worker: the estimate (with a measured step), starting a job, resuming a stored run, opening a
 * finished one (its adapter, no training), pause/resume/stop, the job's metrics export, and moving a job to the next
 * backend when the WebGPU device is lost mid-run.
 */
import { BACKEND_ORDER, resetBackend, type BackendName } from '../engine/backend';
import { targetedModules } from '../engine/lora-config';
import { CheckpointMismatchError } from '../train/checkpoint';
import { explainOutOfMemory, fitExtraOf, sessionFit } from '../train/memory-guard';
import { FinetuneSession } from '../train/session';
import type {
  BackendStatus,
  Estimate,
  ExportedFile,
  RunOptions,
  TrainEvent,
  TrainOutcome,
  FinetuneConfig,
} from './api';
import { memoryLimits, useBackend, webgpuDevice } from './backend';
import { sessionData } from './dataset';
import { exportBaseName, exportedZip } from './exported-file';
import { loadModelFrom } from './model';
import { requireStore, runStore, storeNewRun, storeSaver } from './stored-runs';
import {
  assertIdle,
  assertNoRun,
  checkpointOptions,
  exclusive,
  requireData,
  requireModel,
  type WorkerState,
} from './state';
import { TrainingJob, type TrainingJobHooks } from './training-job';

/** What a training job asks of the worker: the heartbeat, out-of-memory messages, and whether the GPU was lost. */
/** A stored run and its latest checkpoint, or an error that says which is missing. */
async function latestCheckpoint(s: WorkerState, runId: string, verb: string) {
  const store = await requireStore(s);
  const info = await store.info(runId);
  if (!info) throw new Error(`There is no stored run ${runId}.`);
  const ck = await store.loadLatest(runId);
  if (!ck) throw new Error(`The run "${info.name}" has no checkpoint to ${verb}.`);
  return { store, info, ck };
}

function jobHooks(s: WorkerState): TrainingJobHooks {
  return {
    alive: s.beat,
    explain: (e, job) =>
      explainOutOfMemory(e, {
        phase: job.step === 0 ? 'first-step' : 'step',
        backend: s.backend!.backend,
        estimate: job.session.estimate(),
        config: job.session.config,
        limits: memoryLimits(s),
        extra: fitExtraOf(job.session),
      }),
    interrupted: () => s.deviceLost !== null,
    // a failed step on WebGPU may be the first sign of a lost device: give device.lost a moment to say so
    settle: async () => {
      const dev = webgpuDevice();
      if (dev && !s.deviceLost) await Promise.race([dev.lost, new Promise((r) => setTimeout(r, 1500))]);
      await new Promise((r) => setTimeout(r, 0));
    },
  };
}

/** Train the current TrainingJob; when the GPU is lost meanwhile, carry on from the last checkpoint on the next backend. */
async function drive(s: WorkerState, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  let out = await s.job!.train(onEvent);
  for (let tries = 0; s.deviceLost && tries < BACKEND_ORDER.length; tries++)
    out = await recoverFromDeviceLoss(s, onEvent);
  const job = s.job!;
  if (out.state === 'diverged' && job.saver && s.loaded) {
    // the trainer rolled back to the last good step: store that state, so the run can go on with a lower learning rate
    await job.saver.save(await job.session.checkpoint(checkpointOptions(s.loaded)), onEvent);
    if (job.saver.lastSavedStep === out.step) {
      out = {
        ...out,
        message: `${out.message} The run is saved at step ${out.step}: resume it with a lower learning rate.`,
      };
      onEvent({ type: 'state', state: 'diverged', message: out.message });
    }
  }
  return out;
}

async function recoverFromDeviceLoss(s: WorkerState, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  const lost = s.deviceLost!;
  s.deviceLost = null;
  const prev = s.job!;
  const cur = s.loaded!;
  const from = s.backend!.backend;
  s.job = null;
  s.loaded = null;
  // everything on the lost device is gone; free what tfjs still tracks, then forget that backend instance
  try {
    prev.dispose();
  } catch {
    /* the device is gone */
  }
  try {
    cur.model.dispose();
  } catch {
    /* the device is gone */
  }
  resetBackend(from);
  const next: BackendName = BACKEND_ORDER[BACKEND_ORDER.indexOf(from) + 1] ?? 'cpu';
  const dataBefore = s.data;
  let status: BackendStatus;
  try {
    status = await useBackend(s, next);
    await loadModelFrom(s, cur.source);
  } catch (e) {
    throw new Error(
      `The WebGPU device was lost (${lost.reason}) and the run could not move to ${next}: ${(e as Error).message}. ` +
        'Reload the page and resume the run from Saved runs.',
      { cause: e },
    );
  }
  s.data = dataBefore;
  const m = s.loaded!;
  const saver = prev.saver;
  const ck = saver ? await (await runStore(s)).loadLatest(saver.runId).catch(() => null) : null;
  const at = ck ? ck.meta.progress.global_step : 0;
  const message =
    `The WebGPU device was lost (${lost.reason}${lost.message ? `: ${lost.message}` : ''}). ` +
    `Training moved to ${status.backend} and continues from ${ck ? `its checkpoint at step ${at}` : 'step 0 (no checkpoint had been saved)'}` +
    `${prev.step > at ? `; steps ${at + 1}–${prev.step} are trained again` : ''}.`;
  onEvent({ type: 'backend', status, message });
  const init = {
    model: m.model,
    tokenizer: m.tokenizer,
    data: sessionData(requireData(s).input),
    baseModelName: m.baseModel,
  };
  const session = ck
    ? await FinetuneSession.resume(init, ck)
    : new FinetuneSession({ ...init, config: prev.session.config });
  const job = new TrainingJob(session, prev.options, s.control, saver, jobHooks(s));
  s.job = job;
  job.note = `(The WebGPU device was lost at step ${prev.step + 1}; the run went on from step ${at} on ${status.backend}.)`;
  onEvent(job.history());
  onEvent({ type: 'state', state: 'running', message });
  return job.train(onEvent);
}

/** The API's training part. */
export function trainingApi(s: WorkerState) {
  return {
    /**
     * The session's size and memory estimate for `settings`; with measure, the time of a real optimizer step on
     * this backend (a few steps on a scratch adapter; the model's own adapter is left as it was).
     */
    estimate(settings: FinetuneConfig, measure: boolean): Promise<Estimate> {
      return exclusive(s, async () => {
        assertIdle(s, 'estimate');
        const { model, tokenizer } = requireModel(s);
        const d = requireData(s);
        const previous = model.adapter;
        model.adapter = null;
        const scratch: FinetuneSession[] = [];
        try {
          const est = new FinetuneSession({ model, tokenizer, data: sessionData(d.input), config: settings });
          scratch.push(est);
          const fit = sessionFit(est, s.backend!.backend, memoryLimits(s));
          const memory = fit.estimate;
          const adaptedModules = targetedModules(model.config, est.lora).length;
          let msPerStep: number | null = null;
          if (measure) {
            const steps = 3;
            const t = new FinetuneSession({
              model,
              tokenizer,
              data: { train: sessionData(d.input).train },
              config: {
                ...settings,
                max_steps: steps,
                logging_steps: 1,
                eval_strategy: 'no',
                val_size: 0,
                test_size: 0,
              },
            });
            scratch.push(t);
            const times: number[] = [];
            await t.train({
              onMetrics: (m) => {
                times.push(m.ms_per_step);
              },
              onBatch: s.beat,
            });
            // the first step compiles kernels: time the later ones
            const later = times.slice(1);
            msPerStep = later.length ? later.reduce((a, b) => a + b, 0) / later.length : (times[0] ?? null);
          }
          return {
            memory,
            adaptedModules,
            msPerStep,
            backend: s.backend!.backend,
            warnings: est.warnings,
            fit: {
              neededBytes: fit.report.neededBytes,
              limitBytes: fit.report.limits.totalBytes,
              fits: fit.report.fits,
              advice: fit.refusal?.message ?? '',
            },
          };
        } finally {
          for (const x of scratch) {
            x.dispose();
            x.adapter.dispose();
          }
          model.adapter = previous;
        }
      });
    },

    /**
     * Train a fresh adapter with `settings`; events stream to onEvent. The run is stored in the browser (its source, then
     * checkpoints at step 0, every options.saveSteps, on pause/stop and at the end). Resolves when it ends or pauses.
     */
    train(settings: FinetuneConfig, options: RunOptions, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
      return exclusive(s, async () => {
        assertNoRun(s, 'start another run');
        let m = requireModel(s);
        const d = requireData(s);
        s.job?.dispose();
        s.job = null;
        s.adapterOrigin = '';
        // frozen weights already compact in another format cannot be raised back: load them again from the source
        const want = settings.frozen_dtype ?? 'float32';
        if (m.model.frozenDtype !== 'float32' && m.model.frozenDtype !== want) {
          onEvent({ type: 'state', state: 'running', message: `loading the model again with frozen_dtype ${want}` });
          await loadModelFrom(s, m.source, undefined, { frozen_dtype: want });
          s.data = d; // the same model again: the dataset prepared for it stays
          m = requireModel(s);
        }
        const session = new FinetuneSession({
          model: m.model,
          tokenizer: m.tokenizer,
          data: sessionData(d.input),
          config: settings,
          baseModelName: m.baseModel,
        });
        try {
          // a run that cannot fit is refused with what it needs and what to reduce, before it starts
          const { refusal } = sessionFit(session, s.backend!.backend, memoryLimits(s));
          if (refusal) throw refusal;
        } catch (e) {
          session.dispose();
          throw e;
        }
        for (const w of session.warnings) onEvent({ type: 'state', state: 'running', message: w });
        const saver = await storeNewRun(s, session, m, d, settings, options, onEvent);
        s.job = new TrainingJob(session, options, s.control, saver, jobHooks(s));
        return drive(s, onEvent);
      });
    },

    /**
     * Continue a stored run on the loaded model and dataset (which must be the ones it was trained on: checked by hash,
     * refused with what differs). Its history comes first as a 'history' event, so the page's curves continue.
     * overrides.learning_rate continues with another peak learning rate (after a divergence); nothing else may change.
     */
    resumeRun(
      runId: string,
      options: RunOptions,
      onEvent: (e: TrainEvent) => void,
      overrides: { learning_rate?: number } = {},
    ): Promise<TrainOutcome> {
      return exclusive(s, async () => {
        assertNoRun(s, 'resume a stored run');
        const m = requireModel(s);
        const d = requireData(s);
        const { store, info, ck } = await latestCheckpoint(s, runId, 'resume from');
        if (ck.meta.progress.status === 'completed')
          throw new Error(
            `The run "${info.name}" has finished (${ck.meta.progress.global_step} steps); export its adapter instead.`,
          );
        s.job?.dispose();
        s.job = null;
        s.adapterOrigin = '';
        let session: FinetuneSession;
        try {
          const lr = overrides.learning_rate;
          if (lr !== undefined && !(Number.isFinite(lr) && lr > 0))
            throw new Error(`The learning rate must be a positive number, got ${lr}.`);
          session = await FinetuneSession.resume(
            { model: m.model, tokenizer: m.tokenizer, data: sessionData(d.input), baseModelName: m.baseModel },
            ck,
            { learning_rate: lr },
          );
        } catch (e) {
          if (e instanceof CheckpointMismatchError)
            throw new Error(`Cannot resume "${info.name}": ${e.message}`, { cause: e });
          throw e;
        }
        const saver = storeSaver(s, runId, info.name, store, ck.meta.progress.global_step);
        const job = new TrainingJob(session, options, s.control, saver, jobHooks(s));
        s.job = job;
        onEvent(job.history());
        return drive(s, onEvent);
      });
    },

    /**
     * Open a finished stored run on the loaded model and dataset (the ones it was trained on, checked as resumeRun
     * checks them): the adapter of its last checkpoint becomes the model's adapter, without training, for Compare and
     * Export. Its history comes as a 'history' event (its curves and metrics export are the run's); resolves 'done'.
     */
    openRun(runId: string, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
      return exclusive(s, async () => {
        assertNoRun(s, 'open a stored run');
        const m = requireModel(s);
        const d = requireData(s);
        const { store, info, ck } = await latestCheckpoint(s, runId, 'open');
        const { global_step: step, max_steps: total, status } = ck.meta.progress;
        if (status !== 'completed')
          throw new Error(`The run "${info.name}" has not finished (step ${step} of ${total}): resume it instead.`);
        s.job?.dispose();
        s.job = null;
        s.adapterOrigin = '';
        let session: FinetuneSession;
        try {
          session = await FinetuneSession.resume(
            { model: m.model, tokenizer: m.tokenizer, data: sessionData(d.input), baseModelName: m.baseModel },
            ck,
          );
        } catch (e) {
          if (e instanceof CheckpointMismatchError)
            throw new Error(`Cannot open "${info.name}": ${e.message}`, { cause: e });
          throw e;
        }
        const saver = storeSaver(s, runId, info.name, store, step);
        const job = new TrainingJob(session, { samplePrompts: 0, sampleMaxNewTokens: 0 }, s.control, saver);
        job.state = 'done';
        s.job = job;
        onEvent(job.history());
        const message = `Opened "${info.name}": its adapter after ${step} steps is on the model, ready to compare and export.`;
        onEvent({ type: 'state', state: 'done', message });
        return { state: 'done', step, totalSteps: job.totalSteps, message, runId };
      });
    },

    /** Pause after the step in flight (train() then resolves with state 'paused'). */
    async pause(): Promise<void> {
      s.job?.requestPause();
    },

    resume(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
      return exclusive(s, async () => {
        if (!s.job || s.job.state !== 'paused') throw new Error('There is no paused run to resume.');
        return drive(s, onEvent);
      });
    },

    /** Stop the run (a running one after its step in flight); the adapter keeps what it learnt. */
    async stop(): Promise<TrainOutcome> {
      const job = s.job;
      if (!job) throw new Error('No training run to stop.');
      if (job.state === 'running') {
        job.requestStop();
        return { state: 'stopped', step: job.step, totalSteps: job.totalSteps, runId: job.runId };
      }
      return exclusive(s, async () => s.job!.stopPaused());
    },

    /** The last run's metrics (every log and evaluation), one zip: metrics.json (trainer_state.json-like) + metrics.csv. */
    async exportMetrics(): Promise<ExportedFile> {
      const job = s.job;
      if (!job) throw new Error('No training run yet: the metrics come from a run.');
      const enc = new TextEncoder();
      return exportedZip(`${exportBaseName(s)}-metrics.zip`, [
        ['metrics.json', enc.encode(job.session.metricsJson() + '\n')],
        ['metrics.csv', enc.encode(job.session.metricsCsv())],
      ]);
    },
  };
}
