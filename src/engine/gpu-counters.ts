/**
 * Counting what a GPU backend does: programs dispatched and values read back to the CPU. Wraps the active backend's
 * entry points for as long as a count runs (webgpu: runWebGPUProgram; webgl: runWebGLProgram, through which
 * compileAndRun and the backend's own pack/unpack/decode programs all go; both: read, readSync and readToGPU).
 * Used by the benchmark (src/train/benchmark.ts). No DOM; nothing is imported from the GPU backends.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface GpuCounts {
  /** Shader programs dispatched (webgpu) or drawn (webgl). */
  programs: number;
  /** Programs by webgpu shader key (before the backend appends shapes) or program class name (minified in builds). */
  byProgram: Record<string, number>;
  /** Reads of a tensor whose values were on the GPU only (a cached CPU copy does not count). */
  reads: number;
  /** Bytes those reads brought back (readToGPU: bytes copied into the new GPU buffer). */
  bytesRead: number;
}

export interface GpuCounting {
  readonly backend: 'webgpu' | 'webgl';
  /** Counts so far (live object). */
  readonly counts: GpuCounts;
  /** Zero the counts (the wrappers stay). */
  reset(): void;
  /** Restore the backend's own methods; the counts stay readable. */
  stop(): void;
}

type AnyFn = (...args: unknown[]) => unknown;
interface BackendInternals {
  tensorMap?: { get(dataId: object): { values?: unknown; shape?: number[]; dtype?: string } | undefined };
  texData?: { get(dataId: object): { values?: unknown; shape?: number[]; dtype?: string } | undefined };
  [method: string]: unknown;
}

const emptyCounts = (): GpuCounts => ({ programs: 0, byProgram: {}, reads: 0, bytesRead: 0 });

function byteLength(v: unknown): number {
  if (ArrayBuffer.isView(v)) return v.byteLength;
  return 0;
}

/**
 * Start counting on the active backend; null when it is neither webgpu nor webgl. Call stop() when done (also on
 * errors): the wrappers are own properties of the backend instance, shadowing its prototype's methods.
 */
export function startGpuCounting(): GpuCounting | null {
  const name = tf.getBackend();
  if (name !== 'webgpu' && name !== 'webgl') return null;
  const be = tf.backend() as unknown as BackendInternals;
  const counts = emptyCounts();
  const store = name === 'webgpu' ? be.tensorMap : be.texData;
  const installed: string[] = [];
  const wrap = (method: string, make: (orig: AnyFn) => AnyFn) => {
    const orig = be[method];
    if (typeof orig !== 'function' || Object.prototype.hasOwnProperty.call(be, method)) return;
    be[method] = make((orig as AnyFn).bind(be));
    installed.push(method);
  };
  const programMethod = name === 'webgpu' ? 'runWebGPUProgram' : 'runWebGLProgram';
  wrap(programMethod, (orig) => (...args) => {
    const program = args[0] as { constructor?: { name?: string }; outputShape?: number[]; shaderKey?: unknown };
    // a program with an empty output is never dispatched
    if (!program.outputShape || program.outputShape.every((d) => d > 0)) {
      counts.programs++;
      const key = typeof program.shaderKey === 'string' ? program.shaderKey : (program.constructor?.name ?? '?');
      counts.byProgram[key] = (counts.byProgram[key] ?? 0) + 1;
    }
    return orig(...args);
  });
  // Reads nest (webgl's read of a packed texture decodes it with a program and reads the result; complex64 reads
  // its parts): only the outermost read counts, and only when the values were not on the CPU already.
  let depth = 0;
  const onGpu = (dataId: unknown) => store?.get(dataId as object)?.values == null;
  const record = (v: unknown) => {
    counts.reads++;
    counts.bytesRead += byteLength(v);
  };
  wrap('readSync', (orig) => (dataId) => {
    const fresh = depth === 0 && onGpu(dataId);
    depth++;
    try {
      const v = orig(dataId);
      if (fresh) record(v);
      return v;
    } finally {
      depth--;
    }
  });
  wrap('read', (orig) => (dataId) => {
    const fresh = depth === 0 && onGpu(dataId);
    // nested reads (webgl's shallow slices, complex64 parts) are started synchronously, before the first await
    depth++;
    let p: Promise<unknown>;
    try {
      p = orig(dataId) as Promise<unknown>;
    } finally {
      depth--;
    }
    return p.then((v) => {
      if (fresh) record(v);
      return v;
    });
  });
  wrap('readToGPU', (orig) => (...args) => {
    const info = store?.get(args[0] as object);
    const v = orig(...args);
    counts.reads++;
    const n = info?.shape ? info.shape.reduce((a, b) => a * b, 1) : 0;
    counts.bytesRead += n * 4;
    return v;
  });
  return {
    backend: name,
    counts,
    reset() {
      Object.assign(counts, emptyCounts());
    },
    stop() {
      for (const m of installed.splice(0)) delete be[m];
    },
  };
}

/** Counts divided by `n` (per step), rounded to 0.1. */
export function perStep(c: GpuCounts, n: number): { programs: number; reads: number; bytes_read: number } {
  const r = (x: number) => Math.round((10 * x) / Math.max(n, 1)) / 10;
  return { programs: r(c.programs), reads: r(c.reads), bytes_read: r(c.bytesRead) };
}
