/** The gradient kernel probe in Node: cpu (the reference) and wasm. */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  formatProbeTable,
  GRAD_CASES,
  probeKernels,
  type BackendProbe,
  type KernelProbeReport,
} from '../src/engine/kernel-probe';

/**
 * Cases tfjs-core 4.22 itself cannot differentiate, on any backend: StridedSlice, GatherNd and ScatterNd
 * have no registered gradient, and the Cumsum gradient only handles the last axis. The engine avoids them.
 */
const NO_TFJS_GRADIENT = ['stridedSlice', 'gatherND', 'cumsum (axis 0)', 'scatterND'];
/** wasm has no UnsortedSegmentSum kernel, which is the gradient of gather (embedding lookups). */
const WASM_NEEDS_UNSORTED_SEGMENT_SUM = ['gather (embedding)', 'cross-entropy (composite)'];

const errorsOf = (b: BackendProbe) => b.grads.filter((g) => g.status === 'error').map((g) => g.name);

describe('gradient kernels in Node (cpu, wasm)', () => {
  let report: KernelProbeReport;
  const backend = (name: string) => report.backends.find((b) => b.backend === name)!;

  beforeAll(async () => {
    report = await probeKernels({ backends: ['wasm', 'cpu'] });
    console.log(`Gradient kernels in Node (vs cpu, tolerance ${report.tolerance}):\n${formatProbeTable(report)}`);
  });

  it('initialises cpu and wasm (SIMD) and runs every case on both', () => {
    expect(report.backends.map((b) => [b.backend, b.available, b.reason])).toEqual([
      ['wasm', true, undefined],
      ['cpu', true, undefined],
    ]);
    expect(backend('wasm').flags.WASM_HAS_SIMD_SUPPORT).toBe(true);
    for (const b of report.backends) expect(b.grads.map((g) => g.name)).toEqual(GRAD_CASES.map((c) => c.name));
  });

  it('cpu differentiates every case but those tfjs has no gradient for', () => {
    expect(errorsOf(backend('cpu'))).toEqual(NO_TFJS_GRADIENT);
    for (const g of backend('cpu').grads.filter((x) => x.status === 'ok'))
      expect(g.kernels.length, g.name).toBeGreaterThan(0);
  });

  it('wasm fails only where tfjs has no gradient or wasm lacks UnsortedSegmentSum', () => {
    const wasm = backend('wasm');
    expect(new Set(errorsOf(wasm))).toEqual(new Set([...NO_TFJS_GRADIENT, ...WASM_NEEDS_UNSORTED_SEGMENT_SUM]));
    for (const name of WASM_NEEDS_UNSORTED_SEGMENT_SUM) {
      expect(wasm.grads.find((g) => g.name === name)?.missingKernels).toEqual(['UnsortedSegmentSum']);
    }
  });

  it('wasm gradients match cpu within tolerance wherever wasm runs them', () => {
    for (const g of backend('wasm').grads.filter((x) => x.status !== 'error')) {
      expect(g.maxAbsDiff, g.name).toBeLessThanOrEqual(report.tolerance);
    }
  });
});
