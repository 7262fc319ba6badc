/**
 * Reverse-mode gradients of a scalar w.r.t. variables, as tf.variableGrads, but freeing as it goes.
 *
 * tfjs 4.22's backprop (engine.gradients → backpropagateGradients) keeps every tensor a forward op saved and every
 * intermediate gradient alive until the whole backward pass is over: for a 30-layer SmolLM2 step (batch 4 x seq 128)
 * that is every layer's activations plus every layer's gradients at once, past the 4 GB wasm heap. Here each tape
 * node's saved tensors and the gradients of its outputs are disposed as soon as the node has run (its outputs'
 * gradients are complete then: the tape is in execution order, so every consumer of an output ran before it in
 * reverse), which makes the peak the forward's saved tensors plus one layer's gradients.
 *
 * The tape walk is tfjs's own (tape.ts: getFilteredNodesXToY, backpropagateGradients); the tape itself is read from
 * the engine's state, which tfjs does not export as API (the same internal that checkpointed blocks already use).
 */
import * as tf from '@tensorflow/tfjs-core';

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

/** The nodes on a path from some x to y, with inputs pruned to those reached from x (tfjs's getFilteredNodesXToY). */
function nodesXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[k] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

/**
 * value = f() and the gradient of it w.r.t. each variable (null when f does not depend on it), like
 * tf.variableGrads(f, vars) but with the backward pass's memory released node by node.
 */
export function variableGrads(
  f: () => tf.Scalar,
  vars: tf.Variable[],
): { value: tf.Scalar; grads: Map<tf.Variable, tf.Tensor | null> } {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.state.gradientDepth !== 0) throw new Error('variableGrads: nested inside another gradient computation');
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  if (!(y instanceof tf.Tensor) || y.rank !== 0) throw new Error('variableGrads: f must return a scalar tensor');
  const tape = engine.state.activeTape ?? [];
  engine.state.activeTape = null;
  const xIds = new Set(vars.map((v) => v.id));
  try {
    const kept = tf.tidy(() => {
      const filtered = nodesXToY(tape, vars, y);
      const acc = new Map<number, tf.Tensor>([[y.id, tf.onesLike(y)]]);
      // a gradient function may return dy or a saved tensor unchanged as an input's gradient: that one lives on
      const inUse = (t: tf.Tensor) => {
        for (const g of acc.values()) if (g === t) return true;
        return false;
      };
      for (let i = filtered.length - 1; i >= 0; i--) {
        const node = filtered[i];
        const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
        if (!node.gradient) throw new Error(`Cannot compute gradient: no gradient function for ${node.kernelName}`);
        const inputGrads = node.gradient(dys);
        for (const [name, x] of Object.entries(node.inputs)) {
          if (!(name in inputGrads)) throw new Error(`Cannot backprop through input ${name} of ${node.kernelName}`);
          const dx = tf.tidy(() => inputGrads[name]());
          if (dx.shape.join(',') !== x.shape.join(','))
            throw new Error(`gradient of ${node.kernelName}'s ${name} has shape [${dx.shape}], expected [${x.shape}]`);
          const cur = acc.get(x.id);
          if (!cur) {
            acc.set(x.id, dx);
            continue;
          }
          acc.set(x.id, tf.add(cur, dx));
          cur.dispose();
          if (!inUse(dx) && !node.saved?.includes(dx)) dx.dispose();
        }
        // This node was the last user of its outputs' gradients and of what it saved.
        for (const o of node.outputs) {
          const dy = acc.get(o.id);
          if (!dy || xIds.has(o.id)) continue;
          acc.delete(o.id);
          if (!inUse(dy)) dy.dispose();
        }
        for (const t of node.saved ?? []) if (!inUse(t)) t.dispose();
      }
      const out: Record<number, tf.Tensor> = {};
      for (const v of vars) {
        const g = acc.get(v.id);
        if (g) out[v.id] = g;
      }
      return out;
    });
    return { value: y, grads: new Map(vars.map((v) => [v, kept[v.id] ?? null])) };
  } finally {
    for (const node of tape) for (const t of node.saved ?? []) t.dispose();
  }
}
