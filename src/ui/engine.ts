/** The page's handle on the engine worker (created on first use). */
import * as Comlink from 'comlink';
import type { EngineApi } from '../worker/engine.worker';

let engine: Comlink.Remote<EngineApi> | null = null;

export function getEngine(): Comlink.Remote<EngineApi> {
  if (!engine) {
    const worker = new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module', name: 'webtune-engine' });
    engine = Comlink.wrap<EngineApi>(worker);
  }
  return engine;
}
