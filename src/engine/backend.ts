/**
 * Backend selection: one option, automatic fallback, and a record of why.
 * Works in Node (wasm, cpu) and in browsers/workers (webgpu, webgl, wasm, cpu).
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; the @tensorflow/tfjs umbrella registers them all (and the cpu
// backend) in Node's CommonJS build and in the browser's ESM build alike. A deep import of
// tfjs-core/dist/register_all_gradients does not load under Node's ESM resolver.
import '@tensorflow/tfjs';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { guardWasmHeap } from './wasm-heap';
import { installWasmSlice } from './wasm-slice';
import { installWasmIdentity } from './wasm-identity';
import { setWasmKernelThreads, startWasmKernelThreads, wasmKernelThreadCount } from './wasm-kernels';

export type BackendName = 'webgpu' | 'webgl' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';
export const BACKEND_ORDER: BackendName[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

export interface BackendReport {
  backend: BackendName;
  /** One line per backend tried before the one chosen, with the reason it was skipped. */
  fallbacks: { backend: BackendName; reason: string }[];
  /**
   * wasm only: the threads the engine's products run on (our kernels: the calling thread and its helpers). tfjs's own
   * XNNPACK pool is kept at one thread (see configureWasmThreads).
   */
  wasmThreads?: number;
  /** wasm only: why it runs on fewer threads than asked (single-threaded build in Node, blocked workers, ...). */
  wasmThreadsNote?: string;
}

export interface InitOptions {
  /**
   * wasm: threads to run on (default navigator.hardwareConcurrency, at most WASM_MAX_THREADS). More than one needs
   * the threaded SIMD build: a cross-origin isolated page whose CSP allows blob: workers and scripts. Omitted: the
   * count last asked for. A wasm backend already running on another count is re-created (nothing may live on it).
   */
  threads?: number;
}

const isNode =
  typeof process !== 'undefined' &&
  !!process.versions?.node &&
  typeof window === 'undefined' &&
  typeof self === 'undefined';

/** At most this many wasm threads (the threaded build's Emscripten pool holds 8 pthread workers). */
export const WASM_MAX_THREADS = 8;
/** How long the threaded build may take to start (fetch, compile, 8 workers) before the single-threaded one is used. */
const THREADED_INIT_TIMEOUT_MS = 30_000;
/** tfjs#3830; verified with 4.22: forced on, the threaded build's pthread workers fail with ERR_WORKER_PATH. */
export const NODE_SINGLE_THREAD_REASON =
  "tfjs-backend-wasm's Node build is single-threaded: its threaded build starts pthread workers from blob: URLs, " +
  "which Node's worker_threads cannot load (ERR_WORKER_PATH; tfjs#3830)";

let wasmThreadsWanted: number | undefined;
/** Threads the current wasm backend instance was created for, and why it runs on fewer. */
let wasmCreated: { wanted: number; note?: string } | null = null;

let wasmPathPrefix: string | null = null;
/** Where the tfjs wasm binaries are served from (browser); Node resolves them from node_modules. */
export function setWasmPrefix(prefix: string) {
  wasmPathPrefix = prefix;
}

function defaultThreads(): number {
  if (isNode) return 1;
  const n = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency : 1;
  return Math.max(1, Math.min(WASM_MAX_THREADS, Math.floor(n || 1)));
}

/**
 * Whether this (worker) context may start a blob: worker that importScripts() a blob: script, as the threaded wasm
 * build's pthread workers do; null if so, else why not (a CSP without blob: in worker-src / script-src).
 */
function blobWorkerProblem(timeoutMs = 10_000): Promise<string | null> {
  const src = `const u=URL.createObjectURL(new Blob(['self.ok=1'],{type:'text/javascript'}));importScripts(u);postMessage(self.ok===1)`;
  return new Promise((resolve) => {
    let w: Worker;
    const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
    const done = (problem: string | null) => {
      clearTimeout(timer);
      w?.terminate();
      URL.revokeObjectURL(url);
      resolve(problem);
    };
    const timer = setTimeout(() => done(`a blob: worker did not answer within ${timeoutMs / 1000} s`), timeoutMs);
    try {
      w = new Worker(url);
    } catch (e) {
      done(`blob: workers cannot start (${e instanceof Error ? e.message : String(e)})`);
      return;
    }
    w.onmessage = (ev) => done(ev.data === true ? null : 'a blob: worker could not run a blob: script');
    w.onerror = (ev) => {
      ev.preventDefault();
      done(
        `a blob: worker, or its importScripts() of a blob: script, was refused (${ev.message || 'no message'}): ` +
          'the Content-Security-Policy needs blob: in worker-src and script-src',
      );
    };
  });
}

/** Choose the wasm build (threaded SIMD or single-threaded SIMD) for `wanted` threads; returns why not threaded. */
async function configureWasmThreads(wanted: number): Promise<string | undefined> {
  let note: string | undefined;
  if (isNode) note = wanted > 1 ? NODE_SINGLE_THREAD_REASON : undefined;
  else if (wanted > 1) {
    // tfjs-backend-wasm's own feature test (SharedArrayBuffer transfer, wasm threads), not the flag's value: that is
    // whatever was set here last time
    const flags = (tf.env() as unknown as { flagRegistry: Record<string, { evaluationFn: () => unknown }> })
      .flagRegistry;
    if (!(await flags.WASM_HAS_MULTITHREAD_SUPPORT?.evaluationFn()))
      note = self.crossOriginIsolated
        ? 'this browser has no WebAssembly threads'
        : 'the page is not cross-origin isolated (COOP/COEP headers), so SharedArrayBuffer is unavailable';
    else note = (await blobWorkerProblem()) ?? undefined;
  }
  const threaded = wanted > 1 && !note;
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', threaded);
  // The threaded build is for its shared memory: every product of a step runs on our kernels, whose helper threads
  // work in that memory (wasm-kernels.ts). tfjs's own XNNPACK pool stays at one thread: its workers spin after each
  // op they run, and beside our helpers that made the products of a GPT-2-small step ~20% slower.
  setThreadsCount(1);
  setWasmKernelThreads(threaded ? wanted : 1);
  return note;
}

async function registerBackend(name: BackendName, opts: InitOptions): Promise<void> {
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (opts.threads !== undefined)
      wasmThreadsWanted = Math.max(1, Math.min(WASM_MAX_THREADS, Math.floor(opts.threads)));
    const wanted = wasmThreadsWanted ?? defaultThreads();
    const registry = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
    if (registry.wasm && wasmCreated?.wanted !== wanted) {
      if (tf.getBackend() === 'wasm') await tf.setBackend('cpu');
      resetBackend('wasm');
    }
    if (!registry.wasm) wasmCreated = { wanted, note: await configureWasmThreads(wanted) };
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
export async function initBackend(choice: BackendChoice = 'auto', opts: InitOptions = {}): Promise<BackendReport> {
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
      await registerBackend(name, opts);
      const ok = name === 'wasm' ? await setWasmBackend() : await tf.setBackend(name);
      if (!ok) throw new Error('tf.setBackend returned false');
      await tf.ready();
      // The cpu backend greets Node users with a tfjs-node advert on first write; tfjs-node cannot be installed here.
      if (name === 'cpu') (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
      // an allocation the wasm heap cannot hold throws (WasmHeapError) instead of corrupting the module
      if (name === 'wasm') {
        guardWasmHeap();
        installWasmSlice();
        installWasmIdentity();
        // our kernel's helper threads start now, while this event loop runs (see KernelThreads.started)
        const helpers = await startWasmKernelThreads();
        const note = wasmCreated?.note ?? (helpers && `large products run on one thread: ${helpers}`);
        return { backend: name, fallbacks, wasmThreads: wasmKernelThreadCount(), wasmThreadsNote: note || undefined };
      }
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
 * tf.setBackend('wasm'), and when the threaded build fails to start (an error, or no answer: its pthread workers
 * never report in), the single-threaded SIMD build instead, with the reason in wasmCreated.note.
 */
async function setWasmBackend(): Promise<boolean> {
  if (!tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')) return tf.setBackend('wasm');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`the threaded build did not start within ${THREADED_INIT_TIMEOUT_MS / 1000} s`),
      THREADED_INIT_TIMEOUT_MS,
    );
  });
  const result = await Promise.race([
    tf.setBackend('wasm').then(
      (ok) => (ok ? null : 'the threaded build failed to initialise'),
      (e: unknown) =>
        `the threaded build failed: ${e instanceof Error ? e.message : String((e as { message?: string })?.message ?? e)}`,
    ),
    timeout,
  ]);
  clearTimeout(timer);
  if (result === null) return true;
  // a later setBackend('wasm') starts a fresh initialisation (tfjs ignores the stale one if it ever ends)
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmKernelThreads(1);
  if (wasmCreated) wasmCreated.note = result;
  return tf.setBackend('wasm');
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
