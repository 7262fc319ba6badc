/**
 * Backend selection: one option, automatic fallback, and a record of why.
 * Works in Node (wasm, cpu) and in browsers/workers (webgpu, webgl, wasm, cpu).
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; the @tensorflow/tfjs umbrella registers them all (and the cpu
// backend) in Node's CommonJS build and in the browser's ESM build alike. A deep import of
// tfjs-core/dist/register_all_gradients does not load under Node's ESM resolver.
import '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { guardWasmHeap } from './wasm-heap';

export type BackendName = 'webgpu' | 'webgl' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';
export const BACKEND_ORDER: BackendName[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

export interface BackendReport {
  backend: BackendName;
  /** One line per backend tried before the one chosen, with the reason it was skipped. */
  fallbacks: { backend: BackendName; reason: string }[];
}

const isNode =
  typeof process !== 'undefined' &&
  !!process.versions?.node &&
  typeof window === 'undefined' &&
  typeof self === 'undefined';

let wasmPathPrefix: string | null = null;
/** Where the tfjs wasm binaries are served from (browser); Node resolves them from node_modules. */
export function setWasmPrefix(prefix: string) {
  wasmPathPrefix = prefix;
}

async function registerBackend(name: BackendName): Promise<void> {
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    // The threaded build breaks inside module workers; the single-threaded SIMD build is used everywhere.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    if (isNode) {
      const { createRequire } = await import(/* @vite-ignore */ 'node:module');
      const path = await import(/* @vite-ignore */ 'node:path');
      const req = createRequire(import.meta.url);
      setWasmPaths(path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + '/dist/');
    } else if (wasmPathPrefix) {
      setWasmPaths(wasmPathPrefix);
    }
  } else if (name === 'webgl') {
    await import('@tensorflow/tfjs-backend-webgl');
  } else if (name === 'webgpu') {
    await import('@tensorflow/tfjs-backend-webgpu');
  }
}

/** Initialise a backend; with 'auto' (or when the chosen one fails) fall back along BACKEND_ORDER. */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendReport> {
  const start = choice === 'auto' ? 0 : BACKEND_ORDER.indexOf(choice);
  const order = BACKEND_ORDER.slice(start < 0 ? 0 : start);
  const fallbacks: BackendReport['fallbacks'] = [];
  for (const name of order) {
    if (isNode && (name === 'webgpu' || name === 'webgl')) {
      fallbacks.push({ backend: name, reason: 'not available in Node' });
      continue;
    }
    if (name === 'webgpu' && (typeof navigator === 'undefined' || !(navigator as Navigator & { gpu?: unknown }).gpu)) {
      fallbacks.push({ backend: name, reason: 'navigator.gpu is missing (WebGPU not supported by this browser)' });
      continue;
    }
    try {
      await registerBackend(name);
      const ok = await tf.setBackend(name);
      if (!ok) throw new Error('tf.setBackend returned false');
      await tf.ready();
      // The cpu backend greets Node users with a tfjs-node advert on first write; tfjs-node cannot be installed here.
      if (name === 'cpu') (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
      // an allocation the wasm heap cannot hold throws (WasmHeapError) instead of corrupting the module
      if (name === 'wasm') guardWasmHeap();
      return { backend: name, fallbacks };
    } catch (e) {
      fallbacks.push({ backend: name, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  throw new Error(
    'No TensorFlow.js backend could be initialised: ' + fallbacks.map((f) => `${f.backend}: ${f.reason}`).join('; '),
  );
}

/**
 * Forget a backend's instance so that the next setBackend(name) creates a fresh one (e.g. a new WebGPU device after
 * the old one was lost). Tensors still on it must be disposed first. No-op for a backend that was never registered.
 */
export function resetBackend(name: BackendName): void {
  const registry = (
    tf.engine() as unknown as {
      registryFactory: Record<
        string,
        { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number }
      >;
    }
  ).registryFactory;
  const reg = registry[name];
  if (!reg) return;
  try {
    tf.removeBackend(name);
  } catch {
    // disposing a backend whose device is gone may throw; the registration is what matters
  }
  if (!registry[name]) tf.registerBackend(name, reg.factory, reg.priority);
}

/** True when matMul with transposeB is slow (wasm's XNNPACK path): engine ops pick a transpose-free form there. */
export function prefersNoTransposeB(): boolean {
  return tf.getBackend() === 'wasm';
}
