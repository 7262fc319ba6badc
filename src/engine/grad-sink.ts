/**
 * A flat gradient vector that LoRA layers write their A/B gradients into directly, in the optimizer's layout (all
 * trainable tensors end to end), instead of returning one gradient tensor per variable for the trainer to
 * concatenate. On webgpu this lets one program compute every dA and dB of a layer (or of a fused q/k/v group) and
 * add them into place: one program where there were two per LoRA member, and no concat of the gradients afterwards.
 *
 * While a sink is active (withGradSink, around the trainer's forward and backward pass), a layer that takes it
 * (webgpu-linear.ts, webgpu-projection.ts) adds its gradients into `flat` at the variables' offsets, records the
 * variables as written, and returns a placeholder to the tape for each of them: a clone of the variable (no copy,
 * no program), which the trainer drops. A variable not written keeps its ordinary gradient (the trainer adds those
 * to `flat`). Gradients add up, so micro-batches and a layer's recomputation under checkpointing accumulate.
 */
import * as tf from '@tensorflow/tfjs-core';

export class GradSink {
  /** Zeros at first; [total] in the optimizer's order. */
  readonly flat: tf.Tensor1D;
  /** Ids of the variables whose gradient has been added into `flat`. */
  readonly written = new Set<number>();
  private readonly offsets: Map<number, number>;

  /** `offsets`: each variable's first index in the flat vector (a variable id → offset). */
  constructor(total: number, offsets: Map<tf.Tensor, number>) {
    this.flat = tf.zeros([total]);
    this.offsets = new Map([...offsets].map(([v, o]) => [v.id, o]));
  }

  /** The flat offsets of these variables, or null if any is not in the sink. */
  offsetsOf(vars: tf.Tensor[]): number[] | null {
    const out: number[] = [];
    for (const v of vars) {
      const o = this.offsets.get(v.id);
      if (o === undefined) return null;
      out.push(o);
    }
    return out;
  }

  /** Record `vars` as written and return their placeholders for the tape (clones: they share the variables' data). */
  took(vars: tf.Tensor[]): tf.Tensor[] {
    for (const v of vars) this.written.add(v.id);
    return vars.map((v) => tf.clone(v));
  }

  dispose(): void {
    this.flat.dispose();
  }
}

let active: GradSink | null = null;

/** Run f with `sink` active (null: none), restoring the previous one after. */
export function withGradSink<T>(sink: GradSink | null, f: () => T): T {
  const prev = active;
  active = sink;
  try {
    return f();
  } finally {
    active = prev;
  }
}

/** The sink of the pass running now, if any. */
export function activeGradSink(): GradSink | null {
  return active;
}

/**
 * backward() (gradients of `args`, in order) with a sink over the last n args: each of those must have been written,
 * and its gradient is read from the sink's vector (the tape's placeholders are dropped). Inside a tidy. For checks
 * of the sink against the ordinary gradients.
 */
export function gradsViaSink(args: tf.Tensor[], n: number, backward: () => tf.Tensor[]): tf.Tensor[] {
  const taken = args.slice(args.length - n);
  const offsets = new Map<tf.Tensor, number>();
  let total = 0;
  for (const t of taken) {
    offsets.set(t, total);
    total += t.size;
  }
  const sink = new GradSink(total, offsets);
  const g = withGradSink(sink, backward);
  const missing = taken.filter((t) => !sink.written.has(t.id)).length;
  if (missing) throw new Error(`the gradient sink took ${n - missing} of ${n} LoRA gradients`);
  return [
    ...g.slice(0, args.length - n),
    ...taken.map((t) => tf.reshape(tf.slice(sink.flat, offsets.get(t)!, t.size), t.shape)),
  ];
}
