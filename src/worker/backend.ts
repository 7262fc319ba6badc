/**
 * The worker's backend: choosing and initialising one, moving the loaded model to another, watching the WebGPU device
 * for loss, the memory the backend can hold, the backend check (kernel probe) and fault injection for tests.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../engine/backend';
import { probeKernels } from '../engine/kernel-probe';
import { wasmKernelThreads, wasmKernelsAvailable, wasmKernelsRelaxed } from '../engine/wasm-kernels';
import { CausalLM } from '../engine/model';
import { readRawTensors } from '../engine/readback';
import { backendMemoryLimit, type MemoryLimits } from '../train/memory-guard';
import type { BackendOptions, BackendProbeReport, BackendStatus } from './api';
import type { BenchLine, WorkloadRequest } from '../train/benchmark';
import { checkWebgpuKernels, type KernelCheckReport } from '../engine/webgpu-kernel-check';
import { checkFusedAdamW, checkFusedTrainer } from '../train/optimizer-check';
import { assertNoRun, exclusive, type WorkerState } from './state';
import { webgpuAdapter } from './webgpu';

export async function useBackend(
  s: WorkerState,
  choice: BackendChoice,
  opts: BackendOptions = {},
): Promise<BackendStatus> {
  const report = await initBackend(choice, opts);
  const webgpu = await webgpuAdapter();
  s.backend = {
    requested: choice,
    backend: report.backend,
    fallbacks: report.fallbacks,
    webgpu,
    crossOriginIsolated: self.crossOriginIsolated,
    wasmSimd: report.backend === 'wasm' ? Boolean(tf.env().getBool('WASM_HAS_SIMD_SUPPORT')) : undefined,
    wasmKernels: report.backend === 'wasm' ? wasmKernelsAvailable() : undefined,
    wasmRelaxedSimd: report.backend === 'wasm' ? wasmKernelsRelaxed() : undefined,
    wasmKernelThreads: report.backend === 'wasm' ? 1 + wasmKernelThreads().ready : undefined,
    wasmThreads: report.wasmThreads,
    wasmThreadsNote: report.wasmThreadsNote,
  };
  watchDevice(s);
  return s.backend;
}

interface GpuDeviceLike {
  lost: Promise<{ reason?: string; message?: string }>;
  destroy(): void;
}

export function webgpuDevice(): GpuDeviceLike | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device?: GpuDeviceLike }).device ?? null;
}

/** What the backend in use can hold (for out-of-memory checks and messages). */
export function memoryLimits(s: WorkerState): MemoryLimits {
  const b = s.backend!.backend;
  return backendMemoryLimit(b, {
    webgpuLimits: b === 'webgpu' ? s.backend!.webgpu.limits : undefined,
    webglMaxTextureSize: b === 'webgl' ? tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE') : undefined,
  });
}

/** Notice when the WebGPU device in use is lost (driver reset, GPU removed, device.destroy()). */
function watchDevice(s: WorkerState): void {
  const dev = webgpuDevice();
  if (!dev) return;
  void dev.lost.then((info) => {
    if (webgpuDevice() !== dev) return; // a backend we already left
    s.deviceLost = { reason: info?.reason ?? 'unknown', message: info?.message ?? '' };
    s.beat();
  });
}

export async function ensureBackend(s: WorkerState): Promise<BackendStatus> {
  return s.backend ?? useBackend(s, 'auto');
}

/** Move the loaded model (and its adapter) to another backend: read to the CPU, re-create there. */
async function moveModel(s: WorkerState, choice: BackendChoice, opts: BackendOptions = {}): Promise<BackendStatus> {
  const cur = s.loaded;
  if (!cur) return useBackend(s, choice, opts);
  const raw = await readRawTensors(cur.model.weights);
  // compact frozen weights are plain typed arrays, the same on every backend: they move as they are
  const compact = new Map(cur.model.compact);
  const ad = cur.model.adapter;
  const adapter = ad ? { config: ad.config, values: await readRawTensors(ad.variables()) } : null;
  s.job?.dispose(); // its metrics stay exportable
  cur.model.dispose();
  s.loaded = null;
  const status = await useBackend(s, choice, opts);
  const model = CausalLM.fromRaw(cur.model.config, raw, { compact });
  if (adapter) model.attachLora(adapter.config).assign(adapter.values);
  s.loaded = { ...cur, model, info: { ...cur.info, backend: status.backend } };
  return status;
}

/** The API's backend part. */
export function backendApi(s: WorkerState) {
  return {
    /** Initialise a backend (once at start-up: 'auto'); returns what was chosen and why others were skipped. */
    init(choice: BackendChoice = 'auto', opts: BackendOptions = {}): Promise<BackendStatus> {
      return exclusive(s, async () => s.backend ?? useBackend(s, choice, opts));
    },

    /**
     * `npm run bench:browser` and the wasm-threads test: src/train/benchmark.ts (a 1024³ matMul, then LoRA steps on
     * the models asked for) on the current backend. Needs no loaded model and leaves it alone.
     */
    bench(req: WorkloadRequest = {}): Promise<BenchLine[]> {
      return exclusive(s, async () => {
        assertNoRun(s, 'benchmark');
        const { runWorkloads } = await import('../train/benchmark');
        return runWorkloads(req, s.beat);
      });
    },

    /** Switch backend; a loaded model and its adapter move along (a paused run is discarded). */
    setBackend(choice: BackendChoice, opts: BackendOptions = {}): Promise<BackendStatus> {
      return exclusive(s, async () => {
        assertNoRun(s, 'switch backend');
        return moveModel(s, choice, opts);
      });
    },

    async backendStatus(): Promise<BackendStatus | null> {
      return s.backend;
    },

    /** Our WGSL kernels on webgpu against the plain ops on cpu, forward and gradient. */
    checkWebgpuKernels(): Promise<KernelCheckReport> {
      return exclusive(s, async () => {
        assertNoRun(s, 'check kernels');
        try {
          const report = await checkWebgpuKernels(1e-4, s.beat);
          report.checks.push(...(await checkFusedAdamW(report.tolerance)));
          report.checks.push(await checkFusedTrainer(report.tolerance));
          return report;
        } finally {
          // the check leaves webgpu active: return to the one the model lives on
          if (s.backend) await initBackend(s.backend.backend);
        }
      });
    },

    /** Initialise each backend (default: all) in turn and check the gradients the engine needs against cpu. */
    probeBackends(opts: { backends?: BackendStatus['backend'][] } = {}): Promise<BackendProbeReport> {
      return exclusive(s, async () => {
        assertNoRun(s, 'check backends');
        const t0 = performance.now();
        const webgpu = await webgpuAdapter();
        const kernels = await probeKernels({ backends: opts.backends, onCase: s.beat });
        // the probe leaves its last backend active: return to the one the model lives on
        if (s.backend) await initBackend(s.backend.backend);
        return {
          ...kernels,
          userAgent: navigator.userAgent,
          crossOriginIsolated: self.crossOriginIsolated,
          webgpuAdapter: webgpu,
          ms: performance.now() - t0,
        };
      });
    },

    /**
     * Fault injection for tests and demonstrations: 'device-lost' destroys the WebGPU device in use (device.destroy()),
     * 'hang' blocks the worker (for ms, or for good), 'exit' ends the worker as a crash would (self.close()).
     */
    async injectFault(kind: 'device-lost' | 'hang' | 'exit', ms?: number): Promise<void> {
      if (kind === 'device-lost') {
        const dev = webgpuDevice();
        if (!dev) throw new Error(`There is no WebGPU device to lose: the backend is ${tf.getBackend()}.`);
        dev.destroy();
      } else if (kind === 'hang') {
        const end = ms !== undefined ? performance.now() + ms : Infinity;
        while (performance.now() < end) {
          /* hung */
        }
      } else if (kind === 'exit') {
        setTimeout(() => self.close(), 0);
      }
    },

    /** Live tensors and their bytes on the backend (for leak checks and the console). */
    async memory(): Promise<{ backend: string; numTensors: number; numBytes: number }> {
      const m = tf.memory();
      return { backend: tf.getBackend(), numTensors: m.numTensors, numBytes: m.numBytes };
    },
  };
}
