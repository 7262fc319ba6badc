/**
 * The page's view of a FinetuneSession (src/train/session.ts): pause (the session's stop, then run() again to
 * resume), stop, and its callbacks turned into TrainEvents with the run's totals.
 */
import type { FinetuneSession, SessionRunResult } from '../train/session';
import type { ControlFlag, RunOptions, TrainEvent, TrainOutcome, TrainState } from './api';

/** The worker's pause/stop flags (shared with the page when possible). */
export interface RunControl {
  get(flag: ControlFlag): boolean;
  set(flag: ControlFlag, on: boolean): void;
}

/** Lets the worker's event loop run (messages from the page), which a wasm/cpu training loop never does by itself. */
const yieldToEventLoop = () => new Promise<void>(resolve => setTimeout(resolve, 0));

export class PageRun {
  state: TrainState = 'idle';
  private tokens = 0;
  private elapsedMs = 0;

  constructor(readonly session: FinetuneSession, private readonly options: RunOptions, private readonly control: RunControl) {}

  get step(): number { return this.session.globalStep; }
  get totalSteps(): number { return this.session.maxSteps; }

  /** Pause after the step in flight (the page usually sets the shared flag itself). */
  requestPause(): void { if (this.state === 'running') this.control.set('pause', true); }

  /** Stop after the step in flight. */
  requestStop(): void { if (this.state === 'running') this.control.set('stop', true); }

  /** Run (or resume) until done, paused, stopped or diverged; never rejects (errors become state 'error'). */
  async run(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
    this.state = 'running';
    this.control.set('pause', false);
    this.control.set('stop', false);
    onEvent({ type: 'state', state: 'running' });
    let t = performance.now();
    const tick = () => { const n = performance.now(); this.elapsedMs += n - t; t = n; };
    let res: SessionRunResult;
    try {
      res = await this.session.run({
        onMetrics: async m => {
          tick();
          this.tokens += m.trained_tokens;
          onEvent({ ...m, type: 'metrics', totalSteps: this.totalSteps, tokensSoFar: this.tokens, elapsedMs: this.elapsedMs });
          await yieldToEventLoop();
        },
        shouldStop: () => this.control.get('pause') || this.control.get('stop'),
        onEval: e => { onEvent({ ...e, type: 'eval' }); },
        onSample: this.options.samplePrompts > 0 ? s => { onEvent({ type: 'samples', step: s.step, samples: s.samples }); } : undefined,
        samplePrompts: this.options.samplePrompts,
        sampleMaxNewTokens: this.options.sampleMaxNewTokens,
      });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      return this.end('error', onEvent, message);
    } finally {
      tick();
    }
    if (res.status === 'diverged') return this.end('diverged', onEvent, res.message);
    if (res.status === 'completed') return this.end('done', onEvent, `Finished ${res.step} steps (${res.epoch.toFixed(2)} epochs).`);
    if (this.control.get('pause') && !this.control.get('stop')) {
      this.state = 'paused';
      onEvent({ type: 'state', state: 'paused', message: `Paused after step ${res.step}.` });
      return { state: 'paused', step: res.step, totalSteps: this.totalSteps, message: `Paused after step ${res.step}.` };
    }
    return this.end('stopped', onEvent, `Stopped after ${res.step} of ${this.totalSteps} steps; the adapter keeps what it learnt.`);
  }

  /** End a paused run. */
  stopPaused(): TrainOutcome {
    return this.end('stopped', () => undefined, `Stopped after ${this.step} of ${this.totalSteps} steps; the adapter keeps what it learnt.`);
  }

  private end(state: TrainState, onEvent: (e: TrainEvent) => void, message?: string): TrainOutcome {
    this.state = state;
    onEvent({ type: 'state', state, message });
    return { state, step: this.step, totalSteps: this.totalSteps, message };
  }

  dispose(): void {
    this.session.dispose();
  }
}
