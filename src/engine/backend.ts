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

/**
 * A GPU adapter that is really a CPU rasteriser (SwiftShader, llvmpipe, lavapipe, WARP): correct, but some 30x
 * slower than the wasm backend on the same machine.
 */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i;

interface GpuAdapterLike {
  isFallbackAdapter?: boolean;
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
}

/** Why `name`'s adapter is a software one (null: hardware, or unknown — then setBackend decides). */
export async function softwareAdapterReason(name: BackendName): Promise<string | null> {
  try {
    if (name === 'webgpu') {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }).gpu;
      const adapter = await gpu?.requestAdapter();
      if (!adapter) return null;
      const i = adapter.info ?? {};
      const label = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ');
      if (adapter.isFallbackAdapter)
        return `the WebGPU adapter is a fallback (software) adapter${label ? ` (${label})` : ''}`;
      return SOFTWARE_RENDERER.test(label) ? `the WebGPU adapter is a software renderer (${label})` : null;
    }
    if (name === 'webgl' && typeof OffscreenCanvas !== 'undefined') {
      const gl = new OffscreenCanvas(1, 1).getContext('webgl2') as WebGL2RenderingContext | null;
      if (!gl) return null;
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      const renderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      gl.getExtension('WEBGL_lose_context')?.loseContext();
      return SOFTWARE_RENDERER.test(renderer) ? `WebGL renders in software (${renderer})` : null;
    }
  } catch {
    // a probe that fails says nothing either way
  }
  return null;
}

/**
 * Initialise a backend; with 'auto' (or when the chosen one fails) fall back along BACKEND_ORDER. 'auto' ranks a
 * software WebGPU or WebGL adapter below wasm (and says why in the fallbacks); choosing it by name still uses it.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendReport> {
  const start = choice === 'auto' ? 0 : BACKEND_ORDER.indexOf(choice);
  const order = BACKEND_ORDER.slice(start < 0 ? 0 : start);
  const fallbacks: BackendReport['fallbacks'] = [];
  const deferred = new Set<BackendName>();
  for (let k = 0; k < order.length; k++) {
    const name = order[k];
    if (isNode && (name === 'webgpu' || name === 'webgl')) {
      fallbacks.push({ backend: name, reason: 'not available in Node' });
      continue;
    }
    if (name === 'webgpu' && (typeof navigator === 'undefined' || !(navigator as Navigator & { gpu?: unknown }).gpu)) {
      fallbacks.push({ backend: name, reason: 'navigator.gpu is missing (WebGPU not supported by this browser)' });
      continue;
    }
    if (choice === 'auto' && (name === 'webgpu' || name === 'webgl') && !deferred.has(name)) {
      const software = await softwareAdapterReason(name);
      if (software) {
        fallbacks.push({
          backend: name,
          reason: `${software}: far slower than WebAssembly on this machine, so Automatic ranks it below wasm (choose ${name} to use it anyway)`,
        });
        deferred.add(name);
        order.splice(order.indexOf('cpu'), 0, name); // after wasm, before cpu
        continue;
      }
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
