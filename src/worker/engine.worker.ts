/**
 * The engine's Web Worker: TensorFlow.js runs here, off the UI thread; the page talks to it through Comlink.
 * For now it exposes the backend probe only.
 */
import * as Comlink from 'comlink';
import { setWasmPrefix, type BackendName } from '../engine/backend';
import { probeKernels, type KernelProbeReport } from '../engine/kernel-probe';

// The build copies the tfjs wasm binaries here and the dev server serves them (tools/vite-plugins.ts).
setWasmPrefix(`${import.meta.env.BASE_URL}tfjs-wasm/`);

export interface WebGpuAdapterReport {
  available: boolean;
  reason?: string;
  /** GPUAdapterInfo: e.g. vendor 'google', architecture 'swiftshader' for the software adapter. */
  info?: { vendor: string; architecture: string; device: string; description: string };
  isFallbackAdapter?: boolean;
  features?: string[];
  limits?: Record<string, number>;
}

export interface BackendProbeReport extends KernelProbeReport {
  userAgent: string;
  /** Whether the worker is cross-origin isolated (COOP/COEP served correctly). */
  crossOriginIsolated: boolean;
  webgpuAdapter: WebGpuAdapterReport;
  ms: number;
}

/** The few members of GPUAdapter read here (the DOM lib in use has no WebGPU types). */
interface GpuAdapterLike {
  info?: Record<'vendor' | 'architecture' | 'device' | 'description', string>;
  isFallbackAdapter?: boolean;
  features: Iterable<string>;
  limits: Record<string, number>;
}
interface GpuLike { requestAdapter(opts?: { powerPreference?: string }): Promise<GpuAdapterLike | null> }

const LIMITS = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension',
];

async function webgpuAdapter(): Promise<WebGpuAdapterReport> {
  const gpu = (navigator as unknown as { gpu?: GpuLike }).gpu;
  if (!gpu) return { available: false, reason: 'navigator.gpu is missing' };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { available: false, reason: 'requestAdapter() returned null' };
    const i = adapter.info;
    return {
      available: true,
      info: i && { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description },
      isFallbackAdapter: adapter.isFallbackAdapter,
      features: [...adapter.features].sort(),
      limits: Object.fromEntries(LIMITS.filter(k => typeof adapter.limits[k] === 'number').map(k => [k, adapter.limits[k]])),
    };
  } catch (e) {
    return { available: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

const api = {
  /** Initialise each backend (default: all) in turn and check the gradients the engine needs against cpu. */
  async probeBackends(opts: { backends?: BackendName[] } = {}): Promise<BackendProbeReport> {
    const t0 = performance.now();
    const webgpu = await webgpuAdapter();
    const kernels = await probeKernels({ backends: opts.backends });
    return {
      ...kernels,
      userAgent: navigator.userAgent,
      crossOriginIsolated: self.crossOriginIsolated,
      webgpuAdapter: webgpu,
      ms: performance.now() - t0,
    };
  },
};

export type EngineApi = typeof api;

Comlink.expose(api);
