/**
 * Timing every kernel a step runs, by name: wraps the engine's runKernel for as long as a timing runs and adds each
 * top-level call's wall time (kernels a kernel runs count in their caller's). On wasm and cpu a kernel runs to its end
 * inside runKernel, so the times are the kernels' own; on a GPU backend they are only the time to enqueue. Matrix
 * products are keyed by their operands' shapes too. Used by the benchmark's profile (src/train/benchmark.ts).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
}

export interface KernelTiming {
  /** Restore runKernel; returns the kernels by total time, longest first. */
  stop(): KernelTime[];
}

type RunKernel = (name: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap) => unknown;

/** Starts timing kernels on the engine; call stop() when done (also on errors). */
export function startKernelTiming(): KernelTiming {
  const engine = tf.engine() as unknown as { runKernel: RunKernel };
  const own = Object.prototype.hasOwnProperty.call(engine, 'runKernel');
  const original = engine.runKernel;
  const times = new Map<string, KernelTime>();
  let depth = 0;
  engine.runKernel = function (name, inputs, attrs) {
    depth++;
    const t0 = performance.now();
    try {
      return original.call(this, name, inputs, attrs);
    } finally {
      depth--;
      if (depth === 0) {
        const dt = performance.now() - t0;
        const key = /MatMul/.test(name)
          ? `${name} ${Object.values(inputs)
              .map((t) => `[${t.shape.join(',')}]`)
              .join('·')}${attrs?.transposeA ? ' aᵀ' : ''}${attrs?.transposeB ? ' bᵀ' : ''}`
          : name;
        const t = times.get(key) ?? { kernel: key, calls: 0, ms: 0 };
        t.calls++;
        t.ms += dt;
        times.set(key, t);
      }
    }
  };
  return {
    stop() {
      if (own) engine.runKernel = original;
      else delete (engine as Partial<typeof engine>).runKernel;
      return [...times.values()].sort((a, b) => b.ms - a.ms);
    },
  };
}
