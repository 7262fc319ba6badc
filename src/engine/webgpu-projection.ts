/**
 * Fused projections on webgpu: q/k/v (or gate/up) as one product over their frozen weights concatenated along the
 * output axis, with the LoRA paths of the members that are targeted computed together:
 *
 *   base = x · Wᵀ (+ bias)                                   one tfjs (fused) matMul, W [Σ out, in]
 *   xa   = [s · (x ⊙ keep_t) · A_tᵀ]_t                        one program of ours, [M, n·r] (n LoRA members)
 *   y    = base + xa_t · B_tᵀ in member t's columns          one program of ours
 *
 * backward: dxa = [s · dy_t · B_t]_t (one program), dB_t = dy_tᵀ · xa_t and dA_t = dxa_tᵀ · (x ⊙ keep_t) (one
 * program each, reading their columns in place), dx = dy · W + Σ_t (dxa_t · A_t) ⊙ keep_t (a tfjs product and one
 * program). For SmolLM2's q/k/v with LoRA on q and v: 3 programs forward and 7 backward, where separate layers take
 * 7 and 13 (with the tape's adds for x). The output is the members side by side, as GPT-2's c_attn: attention reads
 * it in place (webgpu-attention.ts). LoRA tensors stay one pair per module (PEFT's names); dropout masks stay one
 * per module, as PEFT draws them. A single linear layer's LoRA path (webgpu-linear.ts) is the one-member case of the
 * same programs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import { activeGradSink } from './grad-sink';
import { elementwiseProgram, run, runInto } from './webgpu-program';

export interface ProjectionMember {
  /** Output columns of this member (its rows in W). */
  width: number;
  lora: { A: tf.Tensor2D; B: tf.Tensor2D; keep: tf.Tensor2D | null } | null;
}

export interface ProjectionSpec {
  /** Frozen weights concatenated along the output axis, [Σ width, in] (nn.Linear layout). */
  W: tf.Tensor2D;
  bias: tf.Tensor1D | null;
  members: ProjectionMember[];
  /** LoRA scaling (one for the adapter). */
  scaling: number;
}

/** The LoRA members: their index among the LoRA members, column offset and width in the output. */
export function loraLayout(members: ProjectionMember[]) {
  const out: { t: number; off: number; width: number; masked: boolean }[] = [];
  let off = 0;
  for (const m of members) {
    if (m.lora) out.push({ t: out.length, off, width: m.width, masked: m.lora.keep != null });
    off += m.width;
  }
  return out;
}

export type Lora = ReturnType<typeof loraLayout>;
const sig = (l: Lora, r: number) => `${r}_${l.map((s) => `${s.off}x${s.width}${s.masked ? 'm' : ''}`).join('_')}`;
export const scaleUniform = (s: number) => [{ type: 'float32' as const, data: [s] }];

function withScale<T extends { uniforms?: string }>(p: T): T {
  return { ...p, uniforms: 'scale : f32,' };
}

/** xa [M, n·r]: column t·r + j = s · Σ_k x[m, k] · keep_t[m, k] · A_t[j, k]. */
export function downProgram(l: Lora, M: number, r: number) {
  const names = ['x', ...l.map((s) => `a${s.t}`), ...l.filter((s) => s.masked).map((s) => `keep${s.t}`)];
  const branch = l
    .map(
      (s) => `if (t == ${s.t}) {
        for (var k = 0; k < K; k = k + 1) {
          acc = acc + x[m * K + k] * ${s.masked ? `keep${s.t}[m * K + k] * ` : ''}a${s.t}[j * K + k];
        }
      }`,
    )
    .join(' else ');
  return withScale(
    elementwiseProgram(
      `webtune_proj_down_${sig(l, r)}`,
      names,
      [M, l.length * r],
      `let K = uniforms.xShape.y;
       let m = index / ${l.length * r};
       let t = (index % ${l.length * r}) / ${r};
       let j = index % ${r};
       var acc = 0.0;
       ${branch}
       result[index] = acc * uniforms.scale;`,
    ),
  );
}

/** y [M, W] = base + xa_t · B_tᵀ in member t's columns (base alone elsewhere). */
function upProgram(l: Lora, shape: number[], r: number) {
  const n = l.length * r;
  const branch = l
    .map(
      (s) => `if (c >= ${s.off} && c < ${s.off + s.width}) {
        for (var j = 0; j < ${r}; j = j + 1) { acc = acc + xa[m * ${n} + ${s.t * r} + j] * b${s.t}[(c - ${s.off}) * ${r} + j]; }
      }`,
    )
    .join(' else ');
  return elementwiseProgram(
    `webtune_proj_up_${sig(l, r)}`,
    ['base', 'xa', ...l.map((s) => `b${s.t}`)],
    shape,
    `let W = uniforms.baseShape.y;
     let m = index / W;
     let c = index % W;
     var acc = base[index];
     ${branch}
     result[index] = acc;`,
  );
}

/** dxa [M, n·r]: column t·r + j = s · Σ_{c in member t} dy[m, c] · B_t[c − off_t, j]. */
export function upGradProgram(l: Lora, M: number, r: number) {
  const n = l.length * r;
  const branch = l
    .map(
      (s) => `if (t == ${s.t}) {
        for (var c = 0; c < ${s.width}; c = c + 1) { acc = acc + dy[m * W + ${s.off} + c] * b${s.t}[c * ${r} + j]; }
      }`,
    )
    .join(' else ');
  return withScale(
    elementwiseProgram(
      `webtune_proj_up_grad_${sig(l, r)}`,
      ['dy', ...l.map((s) => `b${s.t}`)],
      [M, n],
      `let W = uniforms.dyShape.y;
       let m = index / ${n};
       let t = (index % ${n}) / ${r};
       let j = index % ${r};
       var acc = 0.0;
       ${branch}
       result[index] = acc * uniforms.scale;`,
    ),
  );
}

/** dB_t [width, r] = dy[:, member t]ᵀ · xa[:, t·r ..]. */
function bGradProgram(l: Lora, s: Lora[number], r: number) {
  const n = l.length * r;
  return elementwiseProgram(
    `webtune_proj_b_grad_${sig(l, r)}_${s.t}`,
    ['dy', 'xa'],
    [s.width, r],
    `let M = uniforms.dyShape.x;
     let W = uniforms.dyShape.y;
     let o = index / ${r};
     let j = index % ${r};
     var acc = 0.0;
     for (var m = 0; m < M; m = m + 1) { acc = acc + dy[m * W + ${s.off} + o] * xa[m * ${n} + ${s.t * r} + j]; }
     result[index] = acc;`,
  );
}

/** dA_t [r, K] = dxa[:, t·r ..]ᵀ · (x ⊙ keep_t). */
export function aGradProgram(l: Lora, s: Lora[number], r: number, K: number) {
  const n = l.length * r;
  return elementwiseProgram(
    `webtune_proj_a_grad_${sig(l, r)}_${s.t}`,
    s.masked ? ['g', 'x', 'keep'] : ['g', 'x'],
    [r, K],
    `let M = uniforms.xShape.x;
     let K = uniforms.xShape.y;
     let j = index / K;
     let k = index % K;
     var acc = 0.0;
     for (var m = 0; m < M; m = m + 1) {
       acc = acc + g[m * ${n} + ${s.t * r} + j] * x[m * K + k]${s.masked ? ' * keep[m * K + k]' : ''};
     }
     result[index] = acc;`,
  );
}

/**
 * Every member's dA_t [r, K] and dB_t [width_t, r] (as aGradProgram and bGradProgram) in one program, added into a
 * flat gradient vector (the program's `result`, run with runInto) at offsets given as uniforms `oa<t>`, `ob<t>`.
 * The dispatch covers the members' A and B elements end to end.
 */
export function sinkGradProgram(l: Lora, r: number, K: number) {
  const n = l.length * r;
  let end = 0;
  const branches = l.map((s) => {
    const a0 = end;
    const b0 = a0 + r * K;
    end = b0 + s.width * r;
    return `if (index < ${b0}) {
        let e = index - ${a0};
        let j = e / K;
        let k = e % K;
        for (var m = 0; m < M; m = m + 1) {
          acc = acc + g[m * ${n} + ${s.t * r} + j] * x[m * K + k]${s.masked ? ` * keep${s.t}[m * K + k]` : ''};
        }
        dst = uniforms.oa${s.t} + e;
      } else if (index < ${end}) {
        let e = index - ${b0};
        let o = e / ${r};
        let j = e % ${r};
        for (var m = 0; m < M; m = m + 1) { acc = acc + dy[m * W + ${s.off} + o] * xa[m * ${n} + ${s.t * r} + j]; }
        dst = uniforms.ob${s.t} + e;
      }`;
  });
  return {
    ...elementwiseProgram(
      `webtune_proj_ab_grad_${sig(l, r)}_${K}`,
      ['dy', 'xa', 'g', 'x', ...l.filter((s) => s.masked).map((s) => `keep${s.t}`)],
      [end],
      `let M = uniforms.xShape.x;
       let K = uniforms.xShape.y;
       let W = uniforms.dyShape.y;
       var acc = 0.0;
       var dst = 0;
       ${branches.join(' else ')}
       result[dst] = result[dst] + acc;`,
    ),
    uniforms: l.map((s) => `oa${s.t} : i32, ob${s.t} : i32,`).join(' '),
  };
}

/**
 * With a gradient sink active that holds every LoRA member's A and B: add their gradients into it (one program) and
 * return the tape's placeholders, [A_0, B_0, A_1, B_1, ...]; else null (the caller computes them itself).
 */
export function sinkLoraGrads(
  l: Lora,
  r: number,
  vars: { A: tf.Tensor; B: tf.Tensor }[],
  t: { dy: tf.Tensor; xa: tf.Tensor; dxa: tf.Tensor; x: tf.Tensor2D; keeps: tf.Tensor[] },
): tf.Tensor[] | null {
  const sink = activeGradSink();
  const ab = vars.flatMap((v) => [v.A, v.B]);
  const offsets = sink?.offsetsOf(ab);
  if (!sink || !offsets) return null;
  runInto(
    sinkGradProgram(l, r, t.x.shape[1]),
    [t.dy, t.xa, t.dxa, t.x, ...t.keeps],
    sink.flat,
    offsets.map((o) => ({ type: 'int32' as const, data: [o] })),
  );
  return sink.took(ab);
}

/** dx [M, K] = base + Σ_t keep_t ⊙ (dxa_t · A_t). */
export function downGradProgram(l: Lora, shape: number[], r: number) {
  const n = l.length * r;
  const terms = l
    .map(
      (s) => `{
        var a = 0.0;
        for (var j = 0; j < ${r}; j = j + 1) { a = a + g[m * ${n} + ${s.t * r} + j] * a${s.t}[j * K + k]; }
        acc = acc + a${s.masked ? ` * keep${s.t}[index]` : ''};
      }`,
    )
    .join('\n');
  return elementwiseProgram(
    `webtune_proj_down_grad_${sig(l, r)}`,
    ['base', 'g', ...l.map((s) => `a${s.t}`), ...l.filter((s) => s.masked).map((s) => `keep${s.t}`)],
    shape,
    `let K = uniforms.baseShape.y;
     let m = index / K;
     let k = index % K;
     var acc = base[index];
     ${terms}
     result[index] = acc;`,
  );
}

/** Inputs a program may bind besides its output (WebGPU's default of 8 storage buffers per stage, less one). */
const MAX_INPUTS = 7;

/** Whether the members' LoRA paths fit our programs' inputs (the largest binds dx, dxa, each A and each mask). */
export function fusedProjectionFits(members: ProjectionMember[]): boolean {
  const loras = members.filter((m) => m.lora);
  const masks = loras.filter((m) => m.lora!.keep);
  return 2 + loras.length + masks.length <= MAX_INPUTS;
}

/**
 * y = x · Wᵀ (+ bias) + the members' LoRA paths, the members' outputs side by side ([M, Σ width]). x [M, in]; all
 * members share one LoRA rank (the adapter's r).
 */
export function fusedProjection(x: tf.Tensor2D, spec: ProjectionSpec): tf.Tensor2D {
  const { W, bias, members, scaling } = spec;
  const l = loraLayout(members);
  const loras = members.flatMap((m) => (m.lora ? [m.lora] : []));
  const r = loras[0]?.A.shape[0] ?? 0;
  if (loras.some((m) => m.A.shape[0] !== r)) throw new Error('fusedProjection: LoRA members of different ranks');
  const keeps = loras.flatMap((m) => (m.keep ? [m.keep] : []));
  if (!fusedProjectionFits(members)) throw new Error('fusedProjection: too many LoRA members for one program');
  const base = (xi: tf.Tensor2D) =>
    (bias ? tf.fused.matMul({ a: xi, b: W, transposeB: true, bias }) : tf.matMul(xi, W, false, true)) as tf.Tensor2D;
  const inputs: tf.Tensor[] = [x, ...loras.flatMap((m) => [m.A, m.B])];
  const f = customOp<tf.Tensor2D>((args, save) => {
    const [xi, ...ab] = args as tf.Tensor2D[];
    if (!loras.length) return { value: base(xi), gradFunc: (dy) => tf.matMul(dy, W) };
    const As = ab.filter((_, i) => i % 2 === 0);
    const Bs = ab.filter((_, i) => i % 2 === 1);
    const M = xi.shape[0];
    const xa = run(downProgram(l, M, r), [xi, ...As, ...keeps], 'float32', scaleUniform(scaling));
    // the masks are saved too: they are made in the caller's scope, gone when the backward pass runs
    save([xi, xa, ...As, ...Bs, ...keeps]);
    const value = tf.tidy(() => run(upProgram(l, [M, W.shape[0]], r), [base(xi), xa, ...Bs], 'float32'));
    return {
      value: value as tf.Tensor2D,
      gradFunc: (dy, saved) => {
        const [xs, xas, ...rest] = saved as tf.Tensor2D[];
        const n = loras.length;
        const [Ass, Bss, ks] = [rest.slice(0, n), rest.slice(n, 2 * n), rest.slice(2 * n)];
        const dxa = run(upGradProgram(l, M, r), [dy, ...Bss], 'float32', scaleUniform(scaling));
        const dx = run(downGradProgram(l, xs.shape, r), [tf.matMul(dy, W), dxa, ...Ass, ...ks], 'float32');
        const grads: tf.Tensor[] = [dx];
        const sunk = sinkLoraGrads(l, r, loras, { dy, xa: xas, dxa, x: xs, keeps: ks });
        if (sunk) return [...grads, ...sunk];
        let k = 0;
        for (const s of l) {
          const keep = s.masked ? [ks[k++]] : [];
          grads.push(run(aGradProgram(l, s, r, xs.shape[1]), [dxa, xs, ...keep], 'float32'));
          grads.push(run(bGradProgram(l, s, r), [dy, xas], 'float32'));
        }
        return grads;
      },
    };
  });
  return f(...inputs);
}

/** silu(g) · u for gu = [g | u] side by side ([M, 2I], a fused gate/up output): one program each way. */
export function fusedSiluMulPacked(gu: tf.Tensor2D): tf.Tensor2D {
  const [M, I2] = gu.shape;
  const I = I2 / 2;
  const f = customOp<tf.Tensor2D>(([x], save) => {
    save([x]);
    const value = run(
      elementwiseProgram(
        'webtune_silu_mul_packed',
        ['gu'],
        [M, I],
        `let I = uniforms.guShape.y / 2;
         let row = (index / I) * 2 * I;
         let g = gu[row + index % I];
         let s = 1.0 / (1.0 + exp(-g));
         result[index] = g * s * gu[row + I + index % I];`,
      ),
      [x],
      'float32',
    );
    return {
      value: value as tf.Tensor2D,
      gradFunc: (dy, [xs]) =>
        run(
          elementwiseProgram(
            'webtune_silu_mul_packed_grad',
            ['gu', 'dy'],
            [M, I2],
            `let I = uniforms.guShape.y / 2;
             let m = index / (2 * I);
             let c = index % (2 * I);
             let i = c % I;
             let g = gu[m * 2 * I + i];
             let u = gu[m * 2 * I + I + i];
             let s = 1.0 / (1.0 + exp(-g));
             let d = dy[m * I + i];
             result[index] = select(d * g * s, d * u * s * (1.0 + g * (1.0 - s)), c < I);`,
          ),
          [xs, dy],
          'float32',
        ),
    };
  });
  return f(gu);
}
