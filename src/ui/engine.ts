/**
 * The page's handle on the engine worker (created on first use), plus crash detection: if the worker dies
 * (uncaught error, out of memory, a failed module load), every pending and later call rejects with a
 * readable message instead of waiting forever.
 */
import * as Comlink from 'comlink';
import { CONTROL, CONTROL_SLOTS, type ControlFlag } from '../worker/api';
import type { EngineApi } from '../worker/engine.worker';

let engine: Comlink.Remote<EngineApi> | null = null;
let worker: Worker | null = null;
let failure: { promise: Promise<never>; reject: (e: Error) => void; error: Error | null } | null = null;
/** Flags shared with the worker (when the page is cross-origin isolated): see CONTROL in worker/api.ts. */
let controlView: Int32Array | null = null;
const crashListeners = new Set<(e: Error) => void>();

function newFailure() {
  let reject!: (e: Error) => void;
  const promise = new Promise<never>((_, rej) => { reject = rej; });
  promise.catch(() => undefined);
  const f = { promise, reject: (e: Error) => { if (!f.error) { f.error = e; reject(e); for (const fn of crashListeners) fn(e); } }, error: null as Error | null };
  return f;
}

export function getEngine(): Comlink.Remote<EngineApi> {
  if (!engine) {
    failure = newFailure();
    const fail = failure;
    worker = new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module', name: 'webtune-engine' });
    worker.addEventListener('error', ev => {
      ev.preventDefault();
      fail.reject(new Error(`The engine worker crashed: ${ev.message || 'it could not start or ran out of memory'}. Reload the page or restart the engine.`));
    });
    worker.addEventListener('messageerror', () => fail.reject(new Error('The engine worker sent a message the page could not read.')));
    worker.addEventListener('message', ev => {
      const d = ev.data as { type?: string; message?: string } | null;
      if (d && d.type === 'webtune:fatal') fail.reject(new Error(`The engine worker failed: ${d.message}`));
    });
    engine = Comlink.wrap<EngineApi>(worker);
    if (typeof SharedArrayBuffer !== 'undefined' && self.crossOriginIsolated) {
      const buffer = new SharedArrayBuffer(CONTROL_SLOTS * 4);
      controlView = new Int32Array(buffer);
      void engine.setControl(buffer).catch(() => { controlView = null; });
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
  worker = null;
  engine = null;
  failure = null;
  controlView = null;
}

export { Comlink };
