/** What the browser's WebGPU adapter is (vendor, architecture, limits), or why there is none. */
import type { WebGpuAdapterReport } from './api';

/** The few members of GPUAdapter read here (the DOM lib in use has no WebGPU types). */
interface GpuAdapterLike {
  info?: Record<'vendor' | 'architecture' | 'device' | 'description', string>;
  isFallbackAdapter?: boolean;
  features: Iterable<string>;
  limits: Record<string, number>;
}
interface GpuLike {
  requestAdapter(opts?: { powerPreference?: string }): Promise<GpuAdapterLike | null>;
}

const LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
];

export async function webgpuAdapter(): Promise<WebGpuAdapterReport> {
  const gpu = (navigator as unknown as { gpu?: GpuLike }).gpu;
  if (!gpu)
    return { available: false, reason: 'navigator.gpu is missing (this browser has no WebGPU, or it is disabled)' };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { available: false, reason: 'requestAdapter() returned null (no usable GPU adapter)' };
    const i = adapter.info;
    return {
      available: true,
      info: i && { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description },
      isFallbackAdapter: adapter.isFallbackAdapter,
      features: [...adapter.features].sort(),
      limits: Object.fromEntries(
        LIMITS.filter((k) => typeof adapter.limits[k] === 'number').map((k) => [k, adapter.limits[k]]),
      ),
    };
  } catch (e) {
    return { available: false, reason: e instanceof Error ? e.message : String(e) };
  }
}
