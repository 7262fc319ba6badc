/**
 * The page's handle on the engine worker (created on first use), plus crash and hang detection: if the worker dies
 * (uncaught error, out of memory, a failed module load) or stops beating (a hang, or a crash that says nothing), every
 * pending and later call rejects with a readable message instead of waiting forever, and crash listeners are told.
 *
 * The watchdog: the worker posts 'webtune:beat' at least every second while it is free and at every training step,
 * micro-batch, generated token and load progress while it works. Silence for longer than the watchdog's limit —
 * WATCHDOG_MS (60 s; `?watchdog=<ms>` in the page URL for tests), or four times the slowest training step seen — means
 * the worker is hung or gone: it is terminated and reported. A hidden tab is not judged (its timers are throttled).
 */
import * as Comlink from 'comlink';
import { CONTROL, CONTROL_SLOTS, type ControlFlag, type EngineApi } from '../worker/api';

/** The engine worker as the page calls it. */
export type Engine = Comlink.Remote<EngineApi>;

export const WATCHDOG_MS = 60_000;

let engine: Engine | null = null;
let worker: Worker | null = null;
let failure: { promise: Promise<never>; reject: (e: Error) => void; error: Error | null } | null = null;
/** Flags shared with the worker (when the page is cross-origin isolated): see CONTROL in worker/api.ts. */
let controlView: Int32Array | null = null;
const crashListeners = new Set<(e: Error) => void>();
let watchdog: ReturnType<typeof setInterval> | null = null;
let lastBeat = 0;
let slowestStepMs = 0;

/** The engine stopped responding or ended without a word. */
export class EngineHangError extends Error {
  constructor(readonly silentMs: number) {
    super(
      `The engine stopped responding: no sign of life for ${Math.round(silentMs / 1000)} s (it hung, or it crashed without a message). It was stopped and restarted.`,
    );
    this.name = 'EngineHangError';
  }
}

function watchdogLimit(): number {
  const q = typeof location !== 'undefined' ? Number(new URLSearchParams(location.search).get('watchdog')) : NaN;
  const base = Number.isFinite(q) && q > 0 ? q : WATCHDOG_MS;
  return Math.max(base, 4 * slowestStepMs);
}

/** Tell the watchdog how long a training step takes (it waits at least four times that). */
export function noteStepMs(ms: number): void {
  if (Number.isFinite(ms) && ms > slowestStepMs) slowestStepMs = ms;
}

function newFailure() {
  let reject!: (e: Error) => void;
  const promise = new Promise<never>((_, rej) => {
    reject = rej;
  });
  promise.catch(() => undefined);
  const f = {
    promise,
    reject: (e: Error) => {
      if (!f.error) {
        f.error = e;
        reject(e);
        for (const fn of crashListeners) fn(e);
      }
    },
    error: null as Error | null,
  };
  return f;
}

export function getEngine(): Engine {
  if (!engine) {
    failure = newFailure();
    const fail = failure;
    const w = new Worker(new URL('../worker/engine.worker.ts', import.meta.url), {
      type: 'module',
      name: 'webtune-engine',
    });
    worker = w;
    w.addEventListener('error', (ev) => {
      ev.preventDefault();
      fail.reject(new Error(`The engine worker crashed: ${ev.message || 'it could not start or ran out of memory'}.`));
    });
    w.addEventListener('messageerror', () =>
      fail.reject(new Error('The engine worker sent a message the page could not read.')),
    );
    lastBeat = performance.now();
    w.addEventListener('message', (ev) => {
      const d = ev.data as { type?: string; message?: string } | null;
      if (!d || typeof d.type !== 'string') return;
      if (d.type === 'webtune:beat') lastBeat = performance.now();
      else if (d.type === 'webtune:fatal') fail.reject(new Error(`The engine worker failed: ${d.message}`));
    });
    const onVisible = () => {
      if (document.visibilityState === 'visible') lastBeat = performance.now();
    };
    document.addEventListener('visibilitychange', onVisible);
    if (watchdog) clearInterval(watchdog);
    watchdog = setInterval(() => {
      if (fail.error) return;
      if (document.visibilityState === 'hidden') return;
      const silent = performance.now() - lastBeat;
      if (silent > watchdogLimit()) {
        w.terminate(); // a hung worker would go on burning a core
        fail.reject(new EngineHangError(silent));
      }
    }, 500);
    // a crashed or hung worker is gone for good: stop watching it
    fail.promise.catch(() => {
      document.removeEventListener('visibilitychange', onVisible);
    });
    engine = Comlink.wrap<EngineApi>(w);
    if (typeof SharedArrayBuffer !== 'undefined' && self.crossOriginIsolated) {
      const buffer = new SharedArrayBuffer(CONTROL_SLOTS * 4);
      controlView = new Int32Array(buffer);
      void engine.setControl(buffer).catch(() => {
        controlView = null;
      });
    }
  }
  return engine;
}

/**
 * Raise a control flag at once (pause, stop, abortGeneration). The worker polls the shared flags during long
 * loops; the matching API call is made too, for pages that are not cross-origin isolated.
 */
export function raise(flag: ControlFlag): void {
  getEngine();
  if (controlView) Atomics.store(controlView, CONTROL[flag], 1);
}

/** A call on the engine that rejects if the worker dies meanwhile. */
export function guard<T>(p: Promise<T>): Promise<T> {
  getEngine();
  return Promise.race([p, failure!.promise]);
}

export function onEngineCrash(fn: (e: Error) => void): () => void {
  crashListeners.add(fn);
  return () => crashListeners.delete(fn);
}

/** Terminates the worker (all its state is lost); the next getEngine() starts a fresh one. */
export function restartEngine(): void {
  worker?.terminate();
  failure?.reject(new Error('The engine was restarted.'));
  if (watchdog) clearInterval(watchdog);
  watchdog = null;
  worker = null;
  engine = null;
  failure = null;
  controlView = null;
  slowestStepMs = 0;
}

export { Comlink };
