/**
 * WGSL kernels of our own for the hot fused pieces of a training step (RMSNorm, silu(g)·u, RoPE, the attention
 * softmax, the cross-entropy, AdamW and the step's whole-tensor reductions), run through tfjs-backend-webgpu's
 * program interface (see webgpu-program.ts). Used only while the active backend is webgpu (webgpuKernelsActive());
 * the callers in ops.ts, loss.ts and the optimizer fall back to plain tfjs ops elsewhere. Fused attention is in
 * webgpu-attention.ts.
 *
 * Row kernels give each row one workgroup; its invocations stride along the row and reduce in workgroup memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import type { AdamWScalars } from './adamw-scalars';
import {
  CE_WG,
  ROW_INDEX,
  ROW_WG,
  elementwiseProgram,
  rowProgram,
  run,
  treeSum,
  treeSum2,
  type ProgramUniform,
  type WebGpuProgram,
} from './webgpu-program';

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm: y = x · rsqrt(mean(x²) + eps) · w'  (w' = w, or 1 + w for Gemma), over the last axis; w is frozen.

const weightOf = (onePlus: boolean) => (onePlus ? '(1.0 + w[j])' : 'w[j]');

function rmsNormForwardProgram(N: number, D: number, onePlus: boolean): WebGpuProgram {
  const code = `
    var<workgroup> part : array<f32, ${ROW_WG}>;
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      let D = uniforms.xShape.y;
      let ok = row < uniforms.xShape.x;
      var acc = 0.0;
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          let v = x[row * D + j];
          acc = acc + v * v;
        }
      }
      part[lid] = acc;
      ${treeSum('part', ROW_WG)}
      let r = inverseSqrt(part[0] / f32(D) + uniforms.eps);
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          result[row * D + j] = x[row * D + j] * r * ${weightOf(onePlus)};
        }
      }
    }`;
  return rowProgram(`webtune_rmsnorm_fwd_${onePlus ? 1 : 0}`, ['x', 'w'], [N, D], N, ROW_WG, code, 'eps : f32,');
}

/**
 * dx = r · (g − x · r² · mean(g · x)), g = dy · w', r = rsqrt(mean(x²) + eps); with `carry`, + the gradient of the
 * residual stream that x also feeds (fusedRmsNormCarry).
 */
function rmsNormBackwardProgram(N: number, D: number, onePlus: boolean, carry = false): WebGpuProgram {
  const code = `
    var<workgroup> sq : array<f32, ${ROW_WG}>;
    var<workgroup> gx : array<f32, ${ROW_WG}>;
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      let D = uniforms.xShape.y;
      let ok = row < uniforms.xShape.x;
      var a = 0.0;
      var b = 0.0;
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          let v = x[row * D + j];
          a = a + v * v;
          b = b + dy[row * D + j] * ${weightOf(onePlus)} * v;
        }
      }
      sq[lid] = a;
      gx[lid] = b;
      ${treeSum2('sq', 'gx', ROW_WG)}
      let r = inverseSqrt(sq[0] / f32(D) + uniforms.eps);
      let c = r * r * gx[0] / f32(D);
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          let g = dy[row * D + j] * ${weightOf(onePlus)};
          result[row * D + j] = r * (g - x[row * D + j] * c)${carry ? ' + dcarry[row * D + j]' : ''};
        }
      }
    }`;
  return rowProgram(
    `webtune_rmsnorm_bwd_${onePlus ? 1 : 0}${carry ? '_carry' : ''}`,
    ['x', 'w', 'dy', ...(carry ? ['dcarry'] : [])],
    [N, D],
    N,
    ROW_WG,
    code,
    'eps : f32,',
  );
}

/**
 * The pre-norm block's fork of the residual stream x [N, D]: [RMSNorm(x), x again], as one tape node whose backward
 * pass is one program, dx = RMSNorm's dx + the residual's gradient. Where the two gradients meet at x the tape would
 * otherwise add them with a program of its own. w is frozen (closed over).
 */
export function fusedRmsNormCarry(
  x: tf.Tensor2D,
  w: tf.Tensor,
  eps: number,
  onePlus: boolean,
): [tf.Tensor2D, tf.Tensor2D] {
  const [N, D] = x.shape;
  return normFork(
    x,
    eps,
    [rmsNormForwardProgram(N, D, onePlus), [w]],
    [rmsNormBackwardProgram(N, D, onePlus, true), [w]],
  );
}

/** LayerNorm's fork of the residual stream (as fusedRmsNormCarry); w and b frozen. */
export function fusedLayerNormCarry(
  x: tf.Tensor2D,
  w: tf.Tensor,
  b: tf.Tensor,
  eps: number,
): [tf.Tensor2D, tf.Tensor2D] {
  const [N, D] = x.shape;
  return normFork(x, eps, [layerNormForwardProgram(N, D), [w, b]], [layerNormBackwardProgram(N, D, true), [w]]);
}

/**
 * [norm(x), x] as one tape node: the forward program on [x, ...its inputs]; the backward one on [x, ...its inputs, dy,
 * dcarry]. The second output shares x's buffer (webgpu's Identity copies nothing).
 */
function normFork(
  x: tf.Tensor2D,
  eps: number,
  [fp, fin]: [WebGpuProgram, tf.Tensor[]],
  [bp, bin]: [WebGpuProgram, tf.Tensor[]],
): [tf.Tensor2D, tf.Tensor2D] {
  const uniforms: ProgramUniform = [{ type: 'float32', data: [eps] }];
  const outs = (tf.engine() as unknown as KernelFuncEngine).runKernelFunc({
    forwardFunc: (_backend, save) => {
      save([x]);
      return [run(fp, [x, ...fin], 'float32', uniforms), tf.clone(x)];
    },
    backwardsFunc: (dys, saved) => {
      const [dy, dcarry] = dys as tf.Tensor[];
      return { x: () => run(bp, [saved[0], ...bin, dy, dcarry], 'float32', uniforms) };
    },
    inputs: { x },
  });
  return outs as [tf.Tensor2D, tf.Tensor2D];
}

/** What normFork uses of the engine: a tape node of several outputs (as tf.customGrad's, which has one). */
interface KernelFuncEngine {
  runKernelFunc(p: {
    forwardFunc: (backend: unknown, save: (ts: tf.Tensor[]) => void) => tf.Tensor[];
    backwardsFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor[];
}

/**
 * RMSNorm over the last axis of x with a frozen weight w [D] (closed over: no gradient is formed for it), one
 * program forward and one backward. onePlus: Gemma's x · (1 + w).
 */
export function fusedRmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number, onePlus: boolean): tf.Tensor {
  return rowNormOp(
    x,
    eps,
    (N, D) => [rmsNormForwardProgram(N, D, onePlus), [w]],
    (N, D) => [rmsNormBackwardProgram(N, D, onePlus), [w]],
  );
}

/**
 * A norm over the last axis of x with frozen weights (closed over): one row program forward on [x, ...fwd inputs],
 * one backward on [x, ...bwd inputs, dy], x saved only, the `eps` uniform for both.
 */
function rowNormOp(
  x: tf.Tensor,
  eps: number,
  forward: (N: number, D: number) => [WebGpuProgram, tf.Tensor[]],
  backward: (N: number, D: number) => [WebGpuProgram, tf.Tensor[]],
): tf.Tensor {
  const D = x.shape[x.shape.length - 1];
  const N = x.size / D;
  const uniforms: ProgramUniform = [{ type: 'float32', data: [eps] }];
  const f = customOp<tf.Tensor>(([xi], save) => {
    const x2 = tf.reshape(xi, [N, D]);
    save([x2]);
    const [fp, fin] = forward(N, D);
    return {
      value: tf.reshape(run(fp, [x2, ...fin], 'float32', uniforms), xi.shape),
      gradFunc: (dy, saved) => {
        const [bp, bin] = backward(N, D);
        return tf.reshape(run(bp, [saved[0], ...bin, tf.reshape(dy, [N, D])], 'float32', uniforms), xi.shape);
      },
    };
  });
  return f(x);
}

// ---------------------------------------------------------------------------------------------------------------
// LayerNorm (torch.nn.LayerNorm, biased variance): y = (x − mean) · rsqrt(var + eps) · w + b over the last axis;
// w and b frozen. Backward (dx only): with xhat = (x − mean) · r and g = dy · w, dx = r · (g − mean(g) − xhat ·
// mean(g · xhat)). The mean is taken first and the variance around it (two passes over the row, as torch).

/** Row `row` of x [N, D]: its mean and r = rsqrt(var + eps), reduced in the workgroup array `arr`. */
const layerNormStats = (arr: string) => `
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      let D = uniforms.xShape.y;
      let ok = row < uniforms.xShape.x;
      var a = 0.0;
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) { a = a + x[row * D + j]; }
      }
      ${arr}[lid] = a;
      ${treeSum(arr, ROW_WG)}
      let mean = ${arr}[0] / f32(D);
      workgroupBarrier();
      var v = 0.0;
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) { let c = x[row * D + j] - mean; v = v + c * c; }
      }
      ${arr}[lid] = v;
      ${treeSum(arr, ROW_WG)}
      let r = inverseSqrt(${arr}[0] / f32(D) + uniforms.eps);`;

function layerNormForwardProgram(N: number, D: number): WebGpuProgram {
  const code = `
    var<workgroup> part : array<f32, ${ROW_WG}>;
    fn main(index : i32) {
      ${layerNormStats('part')}
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          result[row * D + j] = (x[row * D + j] - mean) * r * w[j] + b[j];
        }
      }
    }`;
  return rowProgram('webtune_layernorm_fwd', ['x', 'w', 'b'], [N, D], N, ROW_WG, code, 'eps : f32,');
}

function layerNormBackwardProgram(N: number, D: number, carry = false): WebGpuProgram {
  const code = `
    var<workgroup> p1 : array<f32, ${ROW_WG}>;
    var<workgroup> p2 : array<f32, ${ROW_WG}>;
    fn main(index : i32) {
      ${layerNormStats('p1')}
      workgroupBarrier();
      var sg = 0.0;
      var sgx = 0.0;
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          let g = dy[row * D + j] * w[j];
          sg = sg + g;
          sgx = sgx + g * (x[row * D + j] - mean) * r;
        }
      }
      p1[lid] = sg;
      p2[lid] = sgx;
      ${treeSum2('p1', 'p2', ROW_WG)}
      let mg = p1[0] / f32(D);
      let mgx = p2[0] / f32(D);
      if (ok) {
        for (var j = i32(lid); j < D; j = j + ${ROW_WG}) {
          let xhat = (x[row * D + j] - mean) * r;
          result[row * D + j] = r * (dy[row * D + j] * w[j] - mg - xhat * mgx)${carry ? ' + dcarry[row * D + j]' : ''};
        }
      }
    }`;
  return rowProgram(
    `webtune_layernorm_bwd${carry ? '_carry' : ''}`,
    ['x', 'w', 'dy', ...(carry ? ['dcarry'] : [])],
    [N, D],
    N,
    ROW_WG,
    code,
    'eps : f32,',
  );
}

/** LayerNorm over the last axis of x with frozen w, b [D] (closed over): one program forward and one backward. */
export function fusedLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  return rowNormOp(
    x,
    eps,
    (N, D) => [layerNormForwardProgram(N, D), [w, b]],
    (N, D) => [layerNormBackwardProgram(N, D), [w]],
  );
}

// ---------------------------------------------------------------------------------------------------------------
// gelu_new (tanh approximation) as x · σ(2u), u = √(2/π)(x + 0.044715x³), and its derivative
// s + 2x · s(1 − s) · √(2/π)(1 + 3 · 0.044715x²) with s = σ(2u) (see ops.geluNew).

const GELU_S = `let v = x[index];
     let s = 1.0 / (1.0 + exp(-2.0 * 0.7978845608028654 * (v + 0.044715 * v * v * v)));`;

/** gelu_new elementwise: one program forward, one backward; saves x only. */
export function fusedGeluNew(x: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const f = customOp<tf.Tensor>(([xi], save) => {
    save([xi]);
    return {
      value: run(
        elementwiseProgram('webtune_gelu_new', ['x'], shape, `${GELU_S} result[index] = v * s;`),
        [xi],
        'float32',
      ),
      gradFunc: (dy, [xs]) =>
        run(
          elementwiseProgram(
            'webtune_gelu_new_grad',
            ['x', 'dy'],
            shape,
            `${GELU_S}
             result[index] = dy[index] * (s + 2.0 * v * s * (1.0 - s) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v));`,
          ),
          [xs, dy],
          'float32',
        ),
    };
  });
  return f(x);
}

// ---------------------------------------------------------------------------------------------------------------
// SwiGLU's silu(g) · u, elementwise.

const SIGMOID = 'let s = 1.0 / (1.0 + exp(-g[index]));';

/** silu(g) · u for g, u of one shape: one program forward, two backward (dg and du). */
export function fusedSiluMul(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  const shape = g.shape;
  const f = customOp<tf.Tensor>(([gi, ui], save) => {
    save([gi, ui]);
    const value = run(
      elementwiseProgram('webtune_silu_mul', ['g', 'u'], shape, `${SIGMOID} result[index] = g[index] * s * u[index];`),
      [gi, ui],
      'float32',
    );
    return {
      value,
      gradFunc: (dy, saved) => {
        const [gs, us] = saved;
        const dg = run(
          elementwiseProgram(
            'webtune_silu_mul_dg',
            ['g', 'u', 'dy'],
            shape,
            `${SIGMOID} result[index] = dy[index] * u[index] * s * (1.0 + g[index] * (1.0 - s));`,
          ),
          [gs, us, dy],
          'float32',
        );
        const du = run(
          elementwiseProgram(
            'webtune_silu_mul_du',
            ['g', 'dy'],
            shape,
            `${SIGMOID} result[index] = dy[index] * g[index] * s;`,
          ),
          [gs, dy],
          'float32',
        );
        return [dg, du];
      },
    };
  });
  return f(g, u);
}

// ---------------------------------------------------------------------------------------------------------------
// Cross-entropy over [N, V] logits against int32 targets (IGNORE_INDEX −100 = skip), never forming a one-hot.

/** Row max and Σ exp(z − max) of row `row` into mx[0] and se[0]; z is `logits`. */
const rowSoftmaxStats = `
      let V = uniforms.logitsShape.y;
      let ok = row < uniforms.logitsShape.x;
      var m = -3.402823e38;
      if (ok) {
        for (var j = i32(lid); j < V; j = j + ${CE_WG}) { m = max(m, logits[row * V + j]); }
      }
      mx[lid] = m;
      workgroupBarrier();
      for (var s = ${CE_WG / 2}u; s > 0u; s = s >> 1u) {
        if (lid < s) { mx[lid] = max(mx[lid], mx[lid + s]); }
        workgroupBarrier();
      }
      let rowMax = mx[0];
      var e = 0.0;
      if (ok) {
        for (var j = i32(lid); j < V; j = j + ${CE_WG}) { e = e + exp(logits[row * V + j] - rowMax); }
      }
      se[lid] = e;
      ${treeSum('se', CE_WG)}
      let sumExp = se[0];`;

const ceShared = `
    var<workgroup> mx : array<f32, ${CE_WG}>;
    var<workgroup> se : array<f32, ${CE_WG}>;`;

/** Per row: (logsumexp(z) − z[target]) · scale, 0 for an ignored row. */
function ceForwardProgram(N: number): WebGpuProgram {
  const code = `${ceShared}
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      ${rowSoftmaxStats}
      if (ok && lid == 0u) {
        let t = targets[row];
        var loss = 0.0;
        if (t >= 0) { loss = (rowMax + log(sumExp) - logits[row * V + t]) * uniforms.scale; }
        result[row] = loss;
      }
    }`;
  return rowProgram('webtune_ce_fwd', ['logits', 'targets'], [N], N, CE_WG, code, 'scale : f32,');
}

/** d loss / d z = (softmax(z) − e_target) · scale · dy, 0 on ignored rows. */
function ceBackwardProgram(N: number, V: number): WebGpuProgram {
  const code = `${ceShared}
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      ${rowSoftmaxStats}
      if (ok) {
        let t = targets[row];
        var k = 0.0;
        if (t >= 0) { k = uniforms.scale * dy[0]; }
        for (var j = i32(lid); j < V; j = j + ${CE_WG}) {
          var p = exp(logits[row * V + j] - rowMax) / sumExp;
          if (j == t) { p = p - 1.0; }
          result[row * V + j] = p * k;
        }
      }
    }`;
  return rowProgram('webtune_ce_bwd', ['logits', 'targets', 'dy'], [N, V], N, CE_WG, code, 'scale : f32,');
}

/** Per row: 1 when argmax(z) (the first maximum, as tf.argMax) is the target, else 0 (and 0 on ignored rows). */
function ceCorrectProgram(N: number): WebGpuProgram {
  const code = `
    var<workgroup> beaten : array<f32, ${CE_WG}>;
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      let V = uniforms.logitsShape.y;
      let ok = row < uniforms.logitsShape.x;
      var t = -1;
      if (ok) { t = targets[row]; }
      var b = 0.0;
      if (t >= 0) {
        let zt = logits[row * V + t];
        for (var j = i32(lid); j < V; j = j + ${CE_WG}) {
          let z = logits[row * V + j];
          if (z > zt || (z == zt && j < t)) { b = 1.0; }
        }
      }
      beaten[lid] = b;
      ${treeSum('beaten', CE_WG)}
      if (ok && lid == 0u) {
        var c = 0.0;
        if (t >= 0 && beaten[0] == 0.0) { c = 1.0; }
        result[row] = c;
      }
    }`;
  return rowProgram('webtune_ce_correct', ['logits', 'targets'], [N], N, CE_WG, code);
}

/**
 * Mean cross-entropy of logits [N, V] against targets (−100 = ignored; checked against V by the caller) over
 * `count` counted rows, and the number of rows whose argmax is the target. Two programs forward for the loss (rows,
 * sum), one backward; two for the correct count.
 */
export function fusedCrossEntropy(
  logits: tf.Tensor2D,
  targets: Int32Array,
  count: number,
): { loss: tf.Scalar; correct: tf.Scalar } {
  const [N, V] = logits.shape;
  const uniforms: ProgramUniform = [{ type: 'float32', data: [1 / Math.max(count, 1)] }];
  const f = customOp<tf.Scalar>(([lg], save) => {
    save([lg]);
    const rows = run(ceForwardProgram(N), [lg, tf.tensor1d(targets, 'int32')], 'float32', uniforms);
    return {
      value: tf.sum(rows) as tf.Scalar,
      // the forward scope's tensors are gone by now (variableGrads tidies it): the targets are uploaded again
      gradFunc: (dy, saved) =>
        run(ceBackwardProgram(N, V), [saved[0], tf.tensor1d(targets, 'int32'), dy], 'float32', uniforms),
    };
  });
  const loss = f(logits);
  const correct = tf.tidy(
    () => tf.sum(run(ceCorrectProgram(N), [logits, tf.tensor1d(targets, 'int32')], 'float32')) as tf.Scalar,
  );
  return { loss, correct };
}

// ---------------------------------------------------------------------------------------------------------------
// RoPE on x [B, heads, T, d] with cos/sin [B, 1, T, d/2] (constants: no gradient for them). The backward pass is
// the inverse rotation (sin negated).

function ropeProgram(shape: number[], layout: 'half' | 'interleaved', inverse: boolean): WebGpuProgram {
  const sign = inverse ? '-1.0' : '1.0';
  const pair =
    layout === 'half'
      ? `var i = j; var p = index + half; var sg = -1.0;
         if (j >= half) { i = j - half; p = index - half; sg = 1.0; }`
      : `let i = j / 2; var p = index + 1; var sg = -1.0;
         if (j % 2 == 1) { p = index - 1; sg = 1.0; }`;
  return elementwiseProgram(
    `webtune_rope_${layout}_${inverse ? 'bwd' : 'fwd'}`,
    ['x', 'c', 's'],
    shape,
    `let d = uniforms.xShape.w;
     let T = uniforms.xShape.z;
     let half = d / 2;
     let j = index % d;
     let t = (index / d) % T;
     let b = index / (d * T * uniforms.xShape.y);
     ${pair}
     let ci = (b * T + t) * half + i;
     result[index] = x[index] * c[ci] + ${sign} * sg * x[p] * s[ci];`,
  );
}

/** RoPE as ops.applyRope, one program forward and one backward. */
export function fusedRope(
  x: tf.Tensor4D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
  layout: 'half' | 'interleaved',
): tf.Tensor4D {
  const shape = x.shape;
  const f = customOp<tf.Tensor4D>(([xi]) => ({
    value: run(ropeProgram(shape, layout, false), [xi, cos, sin], 'float32') as tf.Tensor4D,
    gradFunc: (dy) => run(ropeProgram(shape, layout, true), [dy, cos, sin], 'float32'),
  }));
  return f(x);
}

// ---------------------------------------------------------------------------------------------------------------
// Attention probabilities: softmax(scores · scale + bias) over the last axis of scores [B·KV, G·T, S], with the
// additive mask bias [B, 1, 1, T, S] broadcast over the KV and G heads (or none).

const ATTN_UNIFORMS = 'scale : f32, kv : i32, g : i32, t : i32,';

function attnSoftmaxForwardProgram(shape: number[], withBias: boolean): WebGpuProgram {
  const [n, m] = shape;
  const z = (j: string) =>
    withBias
      ? `(scores[row * S + ${j}] * uniforms.scale + bias[brow * S + ${j}])`
      : `(scores[row * S + ${j}] * uniforms.scale)`;
  const code = `
    var<workgroup> mx : array<f32, ${ROW_WG}>;
    var<workgroup> se : array<f32, ${ROW_WG}>;
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      let S = uniforms.scoresShape.z;
      let ok = row < uniforms.scoresShape.x * uniforms.scoresShape.y;
      // scores row (b·KV + kv, g·T + t): its mask row is b·T + t
      let brow = (row / (uniforms.g * uniforms.t * uniforms.kv)) * uniforms.t + row % uniforms.t;
      var m = -3.402823e38;
      if (ok) {
        for (var j = i32(lid); j < S; j = j + ${ROW_WG}) { m = max(m, ${z('j')}); }
      }
      mx[lid] = m;
      workgroupBarrier();
      for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
        if (lid < s) { mx[lid] = max(mx[lid], mx[lid + s]); }
        workgroupBarrier();
      }
      let rowMax = mx[0];
      var e = 0.0;
      if (ok) {
        for (var j = i32(lid); j < S; j = j + ${ROW_WG}) { e = e + exp(${z('j')} - rowMax); }
      }
      se[lid] = e;
      ${treeSum('se', ROW_WG)}
      let inv = 1.0 / se[0];
      if (ok) {
        for (var j = i32(lid); j < S; j = j + ${ROW_WG}) { result[row * S + j] = exp(${z('j')} - rowMax) * inv; }
      }
    }`;
  return rowProgram(
    `webtune_attn_softmax_fwd_${withBias ? 1 : 0}`,
    withBias ? ['scores', 'bias'] : ['scores'],
    shape,
    n * m,
    ROW_WG,
    code,
    ATTN_UNIFORMS,
  );
}

/** d scores = y · (dy − Σ dy · y) · scale. */
function attnSoftmaxBackwardProgram(shape: number[]): WebGpuProgram {
  const [n, m, S] = shape;
  const code = `
    var<workgroup> acc : array<f32, ${ROW_WG}>;
    fn main(index : i32) {
      let row = ${ROW_INDEX};
      let lid = u32(localId.x);
      let S = uniforms.yShape.z;
      let ok = row < uniforms.yShape.x * uniforms.yShape.y;
      var a = 0.0;
      if (ok) {
        for (var j = i32(lid); j < S; j = j + ${ROW_WG}) { a = a + dy[row * S + j] * y[row * S + j]; }
      }
      acc[lid] = a;
      ${treeSum('acc', ROW_WG)}
      let dot = acc[0];
      if (ok) {
        for (var j = i32(lid); j < S; j = j + ${ROW_WG}) {
          result[row * S + j] = y[row * S + j] * (dy[row * S + j] - dot) * uniforms.scale;
        }
      }
    }`;
  return rowProgram('webtune_attn_softmax_bwd', ['y', 'dy'], [n, m, S], n * m, ROW_WG, code, ATTN_UNIFORMS);
}

/**
 * softmax(scores · scale + bias) for scores [B·KV, G·T, S] and a constant mask bias [B, 1, 1, T, S] (or null): one
 * program forward, one backward (the gradient flows to scores only).
 */
export function fusedAttentionSoftmax(
  scores: tf.Tensor3D,
  scale: number,
  bias: tf.Tensor | null,
  dims: { B: number; KV: number; G: number; T: number },
): tf.Tensor3D {
  const [n, m, S] = scores.shape;
  const { B, KV, G, T } = dims;
  const uniforms: ProgramUniform = [
    { type: 'float32', data: [scale] },
    { type: 'int32', data: [KV] },
    { type: 'int32', data: [G] },
    { type: 'int32', data: [T] },
  ];
  // the mask as [B, T, S] (a free reshape): rank-5 inputs need the backend's vec5 uniforms
  const bias3 = bias ? tf.reshape(bias, [B, T, S]) : null;
  const f = customOp<tf.Tensor3D>(([si], save) => {
    const program = attnSoftmaxForwardProgram([n, m, S], bias3 != null);
    const y = run(program, bias3 ? [si, bias3] : [si], 'float32', uniforms) as tf.Tensor3D;
    save([y]);
    return {
      value: y,
      gradFunc: (dy, saved) => run(attnSoftmaxBackwardProgram([n, m, S]), [saved[0], dy], 'float32', uniforms),
    };
  });
  return f(scores);
}

// ---------------------------------------------------------------------------------------------------------------
// AdamW (torch's formulas, as src/train/optimizer.ts writes them with tfjs ops) for one parameter, gated on the GPU:
// a closed gate (bool scalar) leaves everything as it was, and non-finite gradients never reach the moments.

const ADAMW_UNIFORMS = 'lerpW : f32, b2 : f32, c2 : f32, eps : f32, decay : f32, negStep : f32, bc2sqrt : f32,';

const adamwUniforms = (s: AdamWScalars): ProgramUniform =>
  [s.lerpW, s.b2, s.c2, s.eps, s.decay, s.negStep, s.bc2sqrt].map((x) => ({ type: 'float32', data: [x] }));

function adamwProgram(shape: number[], what: 'p' | 'm' | 'v' | 'select', lerpSmall: boolean): WebGpuProgram {
  // the gradient as the trainer hands it over: (sum / count) · clip coefficient
  const gv = '((g[index] / gdiv[0]) * gmul[0])';
  const mNew = lerpSmall
    ? `m[index] + uniforms.lerpW * (${gv} - m[index])`
    : `${gv} - (${gv} - m[index]) * uniforms.lerpW`;
  const vNew = `v[index] * uniforms.b2 + uniforms.c2 * ${gv} * ${gv}`;
  const open = 'gate[0] != 0';
  const body = {
    p: `let mn = ${mNew};
        let vn = ${vNew};
        let denom = sqrt(vn) / uniforms.bc2sqrt + uniforms.eps;
        result[index] = select(p[index], p[index] * uniforms.decay + uniforms.negStep * (mn / denom), ${open});`,
    m: `result[index] = select(m[index], ${mNew}, ${open} && applied[0] != 0);`,
    v: `result[index] = select(v[index], ${vNew}, ${open} && applied[0] != 0);`,
    select: `result[index] = select(p[index], newP[index], applied[0] != 0);`,
  }[what];
  const names = {
    p: ['p', 'm', 'v', 'g', 'gdiv', 'gmul', 'gate'],
    m: ['m', 'g', 'gdiv', 'gmul', 'gate', 'applied'],
    v: ['v', 'g', 'gdiv', 'gmul', 'gate', 'applied'],
    select: ['p', 'newP', 'applied'],
  }[what];
  const prog = elementwiseProgram(`webtune_adamw_${what}_${lerpSmall ? 1 : 0}`, names, shape, body);
  prog.uniforms = ADAMW_UNIFORMS;
  return prog;
}

/**
 * One parameter's AdamW step in two phases: newP before the global finiteness check, commit() after it with that
 * check's bool scalar (`applied`): new moments and parameter values, or the old ones. 4 programs in all. The gradient
 * used is (g / gradScale.div) · gradScale.mul (float32 scalars), so the trainer's averaging and clipping cost nothing.
 */
export function fusedAdamW(
  p: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  g: tf.Tensor,
  gate: tf.Tensor,
  s: AdamWScalars,
  gradScale: { div: tf.Tensor; mul: tf.Tensor },
) {
  const u = adamwUniforms(s);
  const boolAsInt = (b: tf.Tensor) => (b.dtype === 'bool' ? b : tf.cast(b, 'bool'));
  const gateB = boolAsInt(gate);
  const { div, mul } = gradScale;
  const newP = run(adamwProgram(p.shape, 'p', s.lerpSmall), [p, m, v, g, div, mul, gateB], 'float32', u);
  return {
    newP,
    commit(applied: tf.Tensor): { p: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
      const a = boolAsInt(applied);
      return {
        m: run(adamwProgram(p.shape, 'm', s.lerpSmall), [m, g, div, mul, gateB, a], 'float32', u),
        v: run(adamwProgram(p.shape, 'v', s.lerpSmall), [v, g, div, mul, gateB, a], 'float32', u),
        p: run(adamwProgram(p.shape, 'select', s.lerpSmall), [p, newP, a], 'float32', u),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Whole-tensor reductions of a step's small tensors (LoRA gradients and weights) in one workgroup.

const SUM_WG = 256;

function wholeSumProgram(key: string, names: string[], term: string, finish: string): WebGpuProgram {
  const code = `
    var<workgroup> part : array<f32, ${SUM_WG}>;
    fn main(index : i32) {
      let lid = u32(localId.x);
      let n = uniforms.n;
      var a = 0.0;
      for (var i = i32(lid); i < n; i = i + ${SUM_WG}) { ${term} }
      part[lid] = a;
      ${treeSum('part', SUM_WG)}
      if (lid == 0u) { ${finish} }
    }`;
  return rowProgram(key, names, [], 1, SUM_WG, code, 'n : i32,');
}

/** sqrt(Σ (g / n)²) for a gradient sum g and the token count n (a float32 scalar): the clipping norm of g / n. */
export function fusedGradNorm(g: tf.Tensor, n: tf.Tensor): tf.Scalar {
  const program = wholeSumProgram(
    'webtune_grad_norm',
    ['g', 'count'],
    'let x = g[i] / count[0]; a = a + x * x;',
    'result[0] = sqrt(part[0]);',
  );
  return run(program, [g, n], 'float32', [{ type: 'int32', data: [g.size] }]) as tf.Scalar;
}

/** prev ∧ (Σ p² is finite): AdamW's check that a new weight is finite and below ~1.8e19 in magnitude. */
export function fusedAllFinite(p: tf.Tensor, prev: tf.Tensor): tf.Scalar {
  const program = wholeSumProgram(
    'webtune_all_finite',
    ['p', 'prev'],
    'a = a + p[i] * p[i];',
    `let finite = (bitcast<u32>(part[0]) & 0x7f800000u) != 0x7f800000u;
     result[0] = select(0, 1, finite && prev[0] != 0);`,
  );
  return run(program, [p, prev], 'bool', [{ type: 'int32', data: [p.size] }]) as tf.Scalar;
}
