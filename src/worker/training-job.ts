/**
 * TrainingJob: the training the page started, as the worker drives it — a FinetuneSession (src/train/session.ts) with
 * pause (the session's stop, then train() again to resume), stop, checkpoints to the browser's storage, and its
 * callbacks turned into TrainEvents with the run's totals.
 */
import type { SessionCheckpoint } from '../train/checkpoint';
import type { FinetuneSession, TrainResult } from '../train/session';
import type { LogEntry } from '../train/metrics';
import type {
  ControlFlag,
  RunOptions,
  TrainEvalEvent,
  TrainEvent,
  TrainHistoryEvent,
  TrainMetricsEvent,
  TrainOutcome,
  TrainState,
} from './api';

/** The worker's pause/stop flags (shared with the page when possible). */
export interface ControlFlags {
  get(flag: ControlFlag): boolean;
  set(flag: ControlFlag, on: boolean): void;
}

/** Where a run's checkpoints go (the worker's RunStore); save() reports its own events and never throws. */
export interface CheckpointSaver {
  readonly runId: string;
  /** The stored run's name (named exports use it). */
  readonly name: string;
  /** Step of the last checkpoint stored, -1 before the first. */
  readonly lastSavedStep: number;
  save(ck: SessionCheckpoint, onEvent: (e: TrainEvent) => void): Promise<void>;
  /** The run was renamed meanwhile: later saves keep the new name. */
  rename(name: string): void;
}

export interface TrainingJobHooks {
  /** Called before each step and micro-batch (the worker's heartbeat). */
  alive?: () => void;
  /** True ends the run after the step in flight, as an interruption (e.g. the GPU was lost), not a pause or stop. */
  interrupted?: () => boolean;
  /** A failed step's error in words for people (e.g. out of memory: what it needed, what to reduce), or null. */
  explain?: (e: unknown, job: TrainingJob) => Error | null;
  /** Awaited when a step fails, before interrupted() is asked (a lost GPU fails work before it reports its loss). */
  settle?: () => Promise<void>;
}

/** Lets the worker's event loop run (messages from the page), which a wasm/cpu training loop never does by itself. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** The page's metrics and validation events for a session's history (cumulative tokens and time as the run had them). */
export function historyEvents(
  history: readonly LogEntry[],
  totalSteps: number,
  runId: string,
  step: number,
): TrainHistoryEvent {
  const metrics: TrainMetricsEvent[] = [];
  const evals: TrainEvalEvent[] = [];
  let tokens = 0,
    elapsed = 0;
  for (const h of history) {
    if (h.loss !== undefined && h.trained_tokens !== undefined) {
      tokens += h.trained_tokens;
      elapsed += (h.ms_per_step ?? 0) * (h.steps ?? 1);
      metrics.push({
        ...(h as TrainMetricsEvent),
        type: 'metrics',
        totalSteps,
        tokensSoFar: tokens,
        elapsedMs: elapsed,
      });
    } else if (h.eval_loss !== undefined) {
      evals.push({ ...(h as unknown as TrainEvalEvent), type: 'eval' });
    }
  }
  return { type: 'history', runId, step, metrics, evals };
}

export class TrainingJob {
  state: TrainState = 'idle';
  private tokens = 0;
  private elapsedMs = 0;
  /** Set when train() ended because hooks.interrupted() said so. */
  interruptedAt: number | null = null;
  /** Said again with the run's final state (e.g. that it moved to another backend on the way). */
  note: string | null = null;

  constructor(
    readonly session: FinetuneSession,
    readonly options: RunOptions,
    private readonly control: ControlFlags,
    readonly saver: CheckpointSaver | null = null,
    private readonly hooks: TrainingJobHooks = {},
  ) {
    // a resumed session: totals continue from its history
    const h = historyEvents(session.history, session.maxSteps, saver?.runId ?? '', session.globalStep).metrics.at(-1);
    if (h) {
      this.tokens = h.tokensSoFar;
      this.elapsedMs = h.elapsedMs;
    }
  }

  get step(): number {
    return this.session.globalStep;
  }
  get totalSteps(): number {
    return this.session.maxSteps;
  }
  get runId(): string | null {
    return this.saver?.runId ?? null;
  }

  /** The history event of this run as it stands (for the page's curves). */
  history(): TrainHistoryEvent {
    return historyEvents(this.session.history, this.totalSteps, this.runId ?? '', this.step);
  }

  /** Pause after the step in flight (the page usually sets the shared flag itself). */
  requestPause(): void {
    if (this.state === 'running') this.control.set('pause', true);
  }

  /** Stop after the step in flight. */
  requestStop(): void {
    if (this.state === 'running') this.control.set('stop', true);
  }

  /** Run (or resume) until done, paused, stopped or diverged; never rejects (errors become state 'error'). */
  async train(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
    this.state = 'running';
    this.interruptedAt = null;
    this.control.set('pause', false);
    this.control.set('stop', false);
    onEvent({ type: 'state', state: 'running' });
    let t = performance.now();
    const tick = () => {
      const n = performance.now();
      this.elapsedMs += n - t;
      t = n;
    };
    const { alive, interrupted } = this.hooks;
    let res: TrainResult;
    try {
      res = await this.session.train({
        onMetrics: async (m) => {
          tick();
          this.tokens += m.trained_tokens;
          onEvent({
            ...m,
            type: 'metrics',
            totalSteps: this.totalSteps,
            tokensSoFar: this.tokens,
            elapsedMs: this.elapsedMs,
          });
          await yieldToEventLoop();
        },
        shouldStop: () => {
          alive?.();
          if (interrupted?.()) {
            this.interruptedAt ??= this.step;
            return true;
          }
          return this.control.get('pause') || this.control.get('stop');
        },
        onBatch: alive,
        onEval: (e) => {
          onEvent({ ...e, type: 'eval' });
        },
        onSample:
          this.options.samplePrompts > 0
            ? (s) => {
                onEvent({ type: 'samples', step: s.step, samples: s.samples });
              }
            : undefined,
        samplePrompts: this.options.samplePrompts,
        sampleMaxNewTokens: this.options.sampleMaxNewTokens,
        saveSteps: this.saver && this.options.saveSteps ? this.options.saveSteps : undefined,
        // an interrupted run (lost GPU) is not saved: its weights may not be trustworthy
        onSave: this.saver
          ? async (ck) => {
              if (!interrupted?.()) await this.saver!.save(ck, onEvent);
            }
          : undefined,
      });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      await this.hooks.settle?.();
      if (interrupted?.()) {
        // the worker recovers (another backend, the last checkpoint) and says so: no error for the page
        this.interruptedAt ??= this.step;
        this.state = 'error';
        return { state: 'error', step: this.step, totalSteps: this.totalSteps, message, runId: this.runId };
      }
      let explained: Error | null = null;
      try {
        explained = this.hooks.explain?.(e, this) ?? null;
      } catch {
        /* keep the original message */
      }
      return this.end('error', onEvent, explained?.message ?? message);
    } finally {
      tick();
    }
    if (res.status === 'diverged') return this.end('diverged', onEvent, res.message);
    if (res.status === 'completed')
      return this.end('done', onEvent, `Finished ${res.step} steps (${res.epoch.toFixed(2)} epochs).`);
    if (this.interruptedAt !== null) {
      this.state = 'error';
      return {
        state: 'error',
        step: res.step,
        totalSteps: this.totalSteps,
        message: `Interrupted after step ${res.step}.`,
        runId: this.runId,
      };
    }
    if (this.control.get('pause') && !this.control.get('stop')) {
      this.state = 'paused';
      const message = `Paused after step ${res.step}${this.saver ? ' (saved)' : ''}.`;
      onEvent({ type: 'state', state: 'paused', message });
      return { state: 'paused', step: res.step, totalSteps: this.totalSteps, message, runId: this.runId };
    }
    return this.end(
      'stopped',
      onEvent,
      `Stopped after ${res.step} of ${this.totalSteps} steps; the adapter keeps what it learnt.`,
    );
  }

  /** End a paused run. */
  stopPaused(): TrainOutcome {
    return this.end(
      'stopped',
      () => undefined,
      `Stopped after ${this.step} of ${this.totalSteps} steps; the adapter keeps what it learnt.`,
    );
  }

  private end(state: TrainState, onEvent: (e: TrainEvent) => void, message?: string): TrainOutcome {
    if (this.note) message = message ? `${message} ${this.note}` : this.note;
    this.state = state;
    onEvent({ type: 'state', state, message });
    return { state, step: this.step, totalSteps: this.totalSteps, message, runId: this.runId };
  }

  dispose(): void {
    this.session.dispose();
  }
}
