/**
 * Training metrics on the page: columns for the charts (appended as events arrive) and a coalesced
 * notification; listeners throttle their own work, so a fast training loop never floods the main thread.
 */
import { useEffect, useState } from 'react';
import type { TrainEvalEvent, TrainHistoryEvent, TrainMetricsEvent, TrainSamplesEvent } from '../worker/api';

export interface MetricColumns {
  step: number[];
  loss: (number | null)[];
  valLoss: (number | null)[];
  lr: (number | null)[];
  gradNorm: (number | null)[];
  tokensPerSec: (number | null)[];
}

export class MetricsStore {
  cols: MetricColumns = emptyColumns();
  last: TrainMetricsEvent | null = null;
  /** Validation losses by step. */
  evals = new Map<number, TrainEvalEvent>();
  /** Sample generations at each evaluation, in order. */
  samples: TrainSamplesEvent[] = [];
  /**
   * Milliseconds per step of the logged windows after the first of each run or resume (whose step compiles the
   * kernels and would make throughput and ETA lie), with the backend they ran on.
   */
  stepMs: { ms: number; backend: string }[] = [];
  /** The next logged window is the first of a run or resume. */
  private compiling = true;
  /** Bumped on every change (lets React compare snapshots cheaply). */
  version = 0;
  private listeners = new Set<() => void>();
  private scheduled = false;

  reset(): void {
    this.cols = emptyColumns();
    this.stepMs = [];
    this.compiling = true;
    this.last = null;
    this.evals = new Map();
    this.samples = [];
    this.changed();
  }

  /** Replace everything with a run's history (a resumed run, or one that went back to its last checkpoint). */
  loadHistory(h: TrainHistoryEvent): void {
    const samples = this.samples.filter((s) => s.step <= h.step);
    this.cols = emptyColumns();
    this.last = null;
    this.evals = new Map();
    for (const e of h.evals) this.evals.set(e.step, e);
    for (const m of h.metrics) this.addMetrics(m);
    this.stepMs = [];
    this.compiling = true;
    this.samples = samples;
    this.changed();
  }

  addMetrics(m: TrainMetricsEvent, backend = ''): void {
    const c = this.cols;
    const n = c.step.length;
    // The first window's throughput counts kernel compilation, not training: left out of the chart and the ETA.
    const compiled = !this.compiling;
    this.compiling = false;
    if (compiled) this.stepMs = [...this.stepMs.slice(-19), { ms: m.ms_per_step, backend }];
    const tokensPerSec = compiled ? m.tokens_per_sec : null;
    if (n > 0 && c.step[n - 1] === m.step) {
      c.loss[n - 1] = m.loss;
      c.lr[n - 1] = m.learning_rate;
      c.gradNorm[n - 1] = m.grad_norm;
      c.tokensPerSec[n - 1] = tokensPerSec;
      if (m.eval_loss !== undefined) c.valLoss[n - 1] = m.eval_loss;
    } else {
      c.step.push(m.step);
      c.loss.push(m.loss);
      c.valLoss.push(m.eval_loss ?? this.evals.get(m.step)?.eval_loss ?? null);
      c.lr.push(m.learning_rate);
      c.gradNorm.push(m.grad_norm);
      c.tokensPerSec.push(tokensPerSec);
    }
    this.last = m;
    this.changed();
  }

  /** Median milliseconds per step over the last (up to 20) logged windows after compilation; null before one. */
  medianStepMs(): { ms: number; backend: string } | null {
    if (this.stepMs.length === 0) return null;
    const sorted = [...this.stepMs].sort((a, b) => a.ms - b.ms);
    return sorted[Math.floor((sorted.length - 1) / 2)];
  }

  addEval(e: TrainEvalEvent): void {
    this.evals.set(e.step, e);
    const c = this.cols;
    const i = c.step.lastIndexOf(e.step);
    // a validation before its step is logged is picked up when the step arrives (addMetrics)
    if (i >= 0) c.valLoss[i] = e.eval_loss;
    this.changed();
  }

  addSamples(s: TrainSamplesEvent): void {
    this.samples = [...this.samples, s];
    this.changed();
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getVersion = (): number => this.version;

  private changed(): void {
    this.version++;
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    };
    // Listeners only schedule their own (throttled) work; a timer also runs in hidden tabs, unlike frames.
    setTimeout(flush, 0);
  }
}

function emptyColumns(): MetricColumns {
  return { step: [], loss: [], valLoss: [], lr: [], gradNorm: [], tokensPerSec: [] };
}

/** Re-renders on store changes, at most every `ms`. */
export function useThrottledVersion(store: MetricsStore, ms: number): number {
  const [v, setV] = useState(store.version);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const unsub = store.subscribe(() => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        setV(store.version);
      }, ms);
    });
    return () => {
      unsub();
      if (timer) clearTimeout(timer);
    };
  }, [store, ms]);
  return v;
}
