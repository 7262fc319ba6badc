/**
 * Causal self-attention on webgpu in a few WGSL programs of our own (see webgpu-program.ts for the conventions):
 *
 *   forward:  probs = softmax(scale · rope(q)·rope(k)ᵀ + bias)   one workgroup per query row
 *             out   = probs · v                                  one invocation per output element
 *   backward: dS    = probs ⊙ (dP − Σ dP ⊙ probs) · scale, dP = dout · vᵀ
 *             dq    = rope⁻¹(dS · rope(k)),  dk = rope⁻¹(dSᵀ · rope(q)),  dv = probsᵀ · dout
 *
 * q, k, v are read where the projections wrote them: rows of 2-D tensors [B·T, ·] (separate q/k/v tensors, or
 * column ranges of GPT-2's fused c_attn output), so no head transposes, no split and no concat run; RoPE is applied
 * on the fly from the tables; query heads find their KV head by h / (H / KV) (grouped-query attention without a
 * repeat). What the plain ops take 20 programs for per layer (transposes, RoPE, two batched products each way, the
 * softmax) takes 2 forward and 2 (fused qkv) or 4 (separate q, k, v) backward. The probabilities are saved for the
 * backward pass, as the plain path saves them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom-op';
import {
  ROW_INDEX,
  ROW_WG,
  elementwiseProgram,
  rowProgram,
  run,
  treeSum,
  type ProgramUniform,
  type WebGpuProgram,
} from './webgpu-program';

/** The largest head_dim the row programs hold in workgroup memory (Gemma 3's 256). */
export const FUSED_ATTENTION_MAX_HEAD_DIM = 256;

export interface FusedAttentionSpec {
  B: number;
  T: number;
  /** Query heads, KV heads (H a multiple of KV), head_dim. */
  H: number;
  KV: number;
  hd: number;
  scale: number;
  /** Additive mask [B, 1, 1, T, T] (0 or −1e9), or null. A constant: no gradient. */
  bias: tf.Tensor | null;
  /** RoPE rows at the tokens' positions, cos/sin [B, 1, T, hd/2], and the pairing of dimensions; null: none. */
  rope: { cos: tf.Tensor; sin: tf.Tensor; layout: 'half' | 'interleaved' } | null;
}

const UNIFORMS =
  'scale : f32, batch : i32, seq : i32, heads : i32, kvHeads : i32, hd : i32, ' +
  'qStride : i32, qOff : i32, kStride : i32, kOff : i32, vStride : i32, vOff : i32,';

interface Layout {
  /** Buffer names of q, k, v in the programs ('qkv' for all three when fused). */
  q: string;
  k: string;
  v: string;
  rope: 'half' | 'interleaved' | null;
  bias: boolean;
}

/** WGSL helpers: roped q/k reads and the inverse rotation of a gradient pair (identity without RoPE). */
function helpers(l: Layout, need: { q?: boolean; k?: boolean; v?: boolean }): string {
  const raw = (buf: string, which: 'q' | 'k' | 'v', head: string) =>
    `${buf}[tok * uniforms.${which}Stride + uniforms.${which}Off + ${head} * uniforms.hd + j]`;
  const at = (which: 'q' | 'k' | 'v', head: string) => `
    fn ${which}At(tok : i32, ${head} : i32, j : i32) -> f32 { return ${raw(l[which], which, head)}; }`;
  let code = '';
  if (need.q) code += at('q', 'h');
  if (need.k) code += at('k', 'kvh');
  if (need.v) code += at('v', 'kvh');
  if (!l.rope || !(need.q || need.k)) {
    if (need.q) code += `\n    fn qr(tok : i32, h : i32, j : i32) -> f32 { return qAt(tok, h, j); }`;
    if (need.k) code += `\n    fn kr(tok : i32, kvh : i32, j : i32) -> f32 { return kAt(tok, kvh, j); }`;
    return (
      code +
      `
    fn partner(j : i32) -> i32 { return j; }
    fn unrot(g : f32, gp : f32, tok : i32, j : i32) -> f32 { return g; }`
    );
  }
  const pair =
    l.rope === 'half'
      ? `
    fn isFirst(j : i32) -> bool { return j < uniforms.hd / 2; }
    fn column(j : i32) -> i32 { return select(j - uniforms.hd / 2, j, isFirst(j)); }
    fn partner(j : i32) -> i32 { return select(j - uniforms.hd / 2, j + uniforms.hd / 2, isFirst(j)); }`
      : `
    fn isFirst(j : i32) -> bool { return j % 2 == 0; }
    fn column(j : i32) -> i32 { return j / 2; }
    fn partner(j : i32) -> i32 { return select(j - 1, j + 1, isFirst(j)); }`;
  // forward: the first of a pair x·c − x'·s, the second x·c + x'·s; backward: its transpose
  code += `${pair}
    fn rot(x : f32, xp : f32, tok : i32, j : i32) -> f32 {
      let i = tok * (uniforms.hd / 2) + column(j);
      return select(x * cosT[i] + xp * sinT[i], x * cosT[i] - xp * sinT[i], isFirst(j));
    }
    fn unrot(g : f32, gp : f32, tok : i32, j : i32) -> f32 {
      let i = tok * (uniforms.hd / 2) + column(j);
      return select(g * cosT[i] - gp * sinT[i], g * cosT[i] + gp * sinT[i], isFirst(j));
    }`;
  if (need.q)
    code += `\n    fn qr(tok : i32, h : i32, j : i32) -> f32 { return rot(qAt(tok, h, j), qAt(tok, h, partner(j)), tok, j); }`;
  if (need.k)
    code += `\n    fn kr(tok : i32, kvh : i32, j : i32) -> f32 { return rot(kAt(tok, kvh, j), kAt(tok, kvh, partner(j)), tok, j); }`;
  return code;
}

/** Input names in binding order: the q/k/v buffers (once when fused) and the tables. */
function sources(l: Layout, need: { q?: boolean; k?: boolean; v?: boolean }, tables: boolean): string[] {
  const names: string[] = [];
  for (const w of ['q', 'k', 'v'] as const) if (need[w] && !names.includes(l[w])) names.push(l[w]);
  if (tables && l.rope) names.push('cosT', 'sinT');
  return names;
}

const key = (l: Layout, what: string) =>
  `webtune_attn_${what}_${l.q === 'qkv' ? 'packed' : 'split'}_${l.rope ?? 'none'}${l.bias ? '_mask' : ''}`;

/** Row index → batch b, head h, query t, its token row tq and KV head. */
const ROW_COORDS = `
      let row = ${ROW_INDEX};
      let lid = i32(localId.x);
      let T = uniforms.seq;
      let H = uniforms.heads;
      let hd = uniforms.hd;
      let ok = row < uniforms.batch * H * T;
      let b = row / (H * T);
      let h = (row / T) % H;
      let t = row % T;
      let tq = b * T + t;
      let kvh = h / (H / uniforms.kvHeads);`;

/** probs [B·H·T, T]: scores with RoPE, scale and mask, then the row's softmax in place. */
function probsProgram(l: Layout, rows: number, T: number): WebGpuProgram {
  const need = { q: true, k: true };
  const code = `
    var<workgroup> qs : array<f32, ${FUSED_ATTENTION_MAX_HEAD_DIM}>;
    var<workgroup> mx : array<f32, ${ROW_WG}>;
    var<workgroup> se : array<f32, ${ROW_WG}>;
    ${helpers(l, need)}
    fn main(index : i32) {
      ${ROW_COORDS}
      if (ok) {
        for (var j = lid; j < hd; j = j + ${ROW_WG}) { qs[j] = qr(tq, h, j) * uniforms.scale; }
      }
      workgroupBarrier();
      var m = -3.402823e38;
      if (ok) {
        for (var s = lid; s < T; s = s + ${ROW_WG}) {
          var a = 0.0;
          for (var j = 0; j < hd; j = j + 1) { a = a + qs[j] * kr(b * T + s, kvh, j); }
          ${l.bias ? 'a = a + bias[tq * T + s];' : ''}
          result[row * T + s] = a;
          m = max(m, a);
        }
      }
      mx[lid] = m;
      workgroupBarrier();
      for (var w = ${ROW_WG / 2}; w > 0; w = w >> 1u) {
        if (lid < w) { mx[lid] = max(mx[lid], mx[lid + w]); }
        workgroupBarrier();
      }
      let rowMax = mx[0];
      var e = 0.0;
      if (ok) {
        for (var s = lid; s < T; s = s + ${ROW_WG}) {
          let z = exp(result[row * T + s] - rowMax);
          result[row * T + s] = z;
          e = e + z;
        }
      }
      se[lid] = e;
      ${treeSum('se', ROW_WG).replace(/lid/g, 'u32(lid)')}
      let inv = 1.0 / se[0];
      if (ok) {
        for (var s = lid; s < T; s = s + ${ROW_WG}) { result[row * T + s] = result[row * T + s] * inv; }
      }
    }`;
  const names = [...sources(l, need, true), ...(l.bias ? ['bias'] : [])];
  return rowProgram(key(l, 'probs'), names, [rows, T], rows, ROW_WG, code, UNIFORMS);
}

/** out [B·T, H·hd] = probs · v, per query head. */
function outProgram(l: Layout, shape: number[]): WebGpuProgram {
  const program = elementwiseProgram(
    key(l, 'out'),
    ['probs', ...sources(l, { v: true }, false)],
    shape,
    `let T = uniforms.seq;
     let H = uniforms.heads;
     let hd = uniforms.hd;
     let tok = index / (H * hd);
     let h = (index / hd) % H;
     let j = index % hd;
     let b = tok / T;
     let kvh = h / (H / uniforms.kvHeads);
     let prow = ((b * H + h) * T + tok % T) * T;
     var a = 0.0;
     for (var s = 0; s < T; s = s + 1) { a = a + probs[prow + s] * vAt(b * T + s, kvh, j); }
     result[index] = a;`,
  );
  return withHelpers(program, helpers(l, { v: true }));
}

/** dS [B·H·T, T] = probs ⊙ (dP − Σ dP ⊙ probs) · scale with dP = dout · vᵀ (one workgroup per row). */
function scoresGradProgram(l: Layout, rows: number, T: number): WebGpuProgram {
  const code = `
    var<workgroup> gs : array<f32, ${FUSED_ATTENTION_MAX_HEAD_DIM}>;
    var<workgroup> acc : array<f32, ${ROW_WG}>;
    ${helpers(l, { v: true })}
    fn main(index : i32) {
      ${ROW_COORDS}
      if (ok) {
        for (var j = lid; j < hd; j = j + ${ROW_WG}) { gs[j] = dout[tq * H * hd + h * hd + j]; }
      }
      workgroupBarrier();
      var a = 0.0;
      if (ok) {
        for (var s = lid; s < T; s = s + ${ROW_WG}) {
          var dp = 0.0;
          for (var j = 0; j < hd; j = j + 1) { dp = dp + gs[j] * vAt(b * T + s, kvh, j); }
          result[row * T + s] = dp;
          a = a + dp * probs[row * T + s];
        }
      }
      acc[lid] = a;
      ${treeSum('acc', ROW_WG).replace(/lid/g, 'u32(lid)')}
      let dot = acc[0];
      if (ok) {
        for (var s = lid; s < T; s = s + ${ROW_WG}) {
          result[row * T + s] = probs[row * T + s] * (result[row * T + s] - dot) * uniforms.scale;
        }
      }
    }`;
  return rowProgram(
    key(l, 'dscores'),
    ['probs', 'dout', ...sources(l, { v: true }, false)],
    [rows, T],
    rows,
    ROW_WG,
    code,
    UNIFORMS,
  );
}

/** WGSL of dq, dk, dv at (token row, head, dimension): the sums of the backward pass, rotated back. */
const GRAD_FNS = {
  q: `
    fn dqAt(tok : i32, h : i32, d : i32) -> f32 {
      let T = uniforms.seq;
      let b = tok / T;
      let kvh = h / (uniforms.heads / uniforms.kvHeads);
      let srow = ((b * uniforms.heads + h) * T + tok % T) * T;
      let p = partner(d);
      var a = 0.0;
      var ap = 0.0;
      for (var s = 0; s < T; s = s + 1) {
        let w = dscores[srow + s];
        a = a + w * kr(b * T + s, kvh, d);
        ap = ap + w * kr(b * T + s, kvh, p);
      }
      return unrot(a, ap, tok, d);
    }`,
  k: `
    fn dkAt(tok : i32, kvh : i32, d : i32) -> f32 {
      let T = uniforms.seq;
      let b = tok / T;
      let G = uniforms.heads / uniforms.kvHeads;
      let p = partner(d);
      var a = 0.0;
      var ap = 0.0;
      for (var g = 0; g < G; g = g + 1) {
        let h = kvh * G + g;
        let base = (b * uniforms.heads + h) * T * T + tok % T;
        for (var t = 0; t < T; t = t + 1) {
          let w = dscores[base + t * T];
          a = a + w * qr(b * T + t, h, d);
          ap = ap + w * qr(b * T + t, h, p);
        }
      }
      return unrot(a, ap, tok, d);
    }`,
  v: `
    fn dvAt(tok : i32, kvh : i32, d : i32) -> f32 {
      let T = uniforms.seq;
      let b = tok / T;
      let H = uniforms.heads;
      let G = H / uniforms.kvHeads;
      var a = 0.0;
      for (var g = 0; g < G; g = g + 1) {
        let h = kvh * G + g;
        let base = (b * H + h) * T * T + tok % T;
        for (var t = 0; t < T; t = t + 1) {
          a = a + probs[base + t * T] * dout[(b * T + t) * H * uniforms.hd + h * uniforms.hd + d];
        }
      }
      return a;
    }`,
};

/** The gradient of one of q, k, v (separate tensors), or of the fused qkv tensor in one program. */
function qkvGradProgram(l: Layout, part: 'q' | 'k' | 'v' | 'qkv', shape: number[]): WebGpuProgram {
  const parts = part === 'qkv' ? (['q', 'k', 'v'] as const) : ([part] as const);
  const need = { q: parts.includes('k'), k: parts.includes('q') };
  const names: string[] = [];
  if (need.q || need.k) names.push('dscores');
  if (parts.includes('v')) names.push('probs', 'dout');
  names.push(...sources(l, need, need.q || need.k));
  const body =
    part === 'qkv'
      ? `let HD = uniforms.heads * uniforms.hd;
         let KD = uniforms.kvHeads * uniforms.hd;
         let W = HD + 2 * KD;
         let tok = index / W;
         let c = index % W;
         if (c < HD) {
           result[index] = dqAt(tok, c / uniforms.hd, c % uniforms.hd);
         } else if (c < HD + KD) {
           result[index] = dkAt(tok, (c - HD) / uniforms.hd, c % uniforms.hd);
         } else {
           result[index] = dvAt(tok, (c - HD - KD) / uniforms.hd, c % uniforms.hd);
         }`
      : `let W = ${part === 'q' ? 'uniforms.heads' : 'uniforms.kvHeads'} * uniforms.hd;
         result[index] = d${part}At(index / W, (index % W) / uniforms.hd, index % uniforms.hd);`;
  const program = elementwiseProgram(key(l, `d${part}`), names, shape, body);
  return withHelpers(program, helpers(l, need) + parts.map((p) => GRAD_FNS[p]).join(''));
}

/** An elementwise program with module-scope WGSL functions before its main, and the attention uniforms. */
function withHelpers(program: WebGpuProgram, fns: string): WebGpuProgram {
  const main = program.getUserCode();
  return { ...program, uniforms: UNIFORMS, getUserCode: () => `${fns}\n${main}` };
}

function uniformsOf(s: FusedAttentionSpec, strides: [number, number, number], offs: [number, number, number]) {
  const i = (x: number) => ({ type: 'int32' as const, data: [x] });
  const u: ProgramUniform = [
    { type: 'float32', data: [s.scale] },
    i(s.B),
    i(s.T),
    i(s.H),
    i(s.KV),
    i(s.hd),
    i(strides[0]),
    i(offs[0]),
    i(strides[1]),
    i(offs[1]),
    i(strides[2]),
    i(offs[2]),
  ];
  return u;
}

/** Whether fusedAttention handles these shapes (head_dim within the workgroup array; whole heads). */
export function fusedAttentionFits(s: Pick<FusedAttentionSpec, 'H' | 'KV' | 'hd'>): boolean {
  return s.hd <= FUSED_ATTENTION_MAX_HEAD_DIM && s.H % s.KV === 0;
}

function constants(s: FusedAttentionSpec) {
  const { B, T, hd } = s;
  const tables = s.rope ? [tf.reshape(s.rope.cos, [B * T, hd / 2]), tf.reshape(s.rope.sin, [B * T, hd / 2])] : [];
  const bias = s.bias ? [tf.reshape(s.bias, [B * T, T])] : [];
  return { tables, bias };
}

/**
 * Attention of q [B·T, H·hd], k and v [B·T, KV·hd] (the projections' outputs), returning [B·T, H·hd] with heads
 * side by side (ready for o_proj). Gradients flow to q, k and v.
 */
export function fusedAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, s: FusedAttentionSpec): tf.Tensor2D {
  const { B, T, H, KV, hd } = s;
  const l: Layout = { q: 'q', k: 'k', v: 'v', rope: s.rope?.layout ?? null, bias: s.bias != null };
  const u = uniformsOf(s, [H * hd, KV * hd, KV * hd], [0, 0, 0]);
  const { tables, bias } = constants(s);
  const rows = B * H * T;
  const f = customOp<tf.Tensor2D>(([qi, ki, vi], save) => {
    const probs = run(probsProgram(l, rows, T), [qi, ki, ...tables, ...bias], 'float32', u);
    // the tables are saved too: they are views made in the caller's scope, gone when the backward pass runs
    save([qi, ki, vi, probs, ...tables]);
    return {
      value: run(outProgram(l, [B * T, H * hd]), [probs, vi], 'float32', u) as tf.Tensor2D,
      gradFunc: (dout, [qs, ks, vs, ps, ...tb]) => {
        const dscores = run(scoresGradProgram(l, rows, T), [ps, dout, vs], 'float32', u);
        return [
          run(qkvGradProgram(l, 'q', [B * T, H * hd]), [dscores, ks, ...tb], 'float32', u),
          run(qkvGradProgram(l, 'k', [B * T, KV * hd]), [dscores, qs, ...tb], 'float32', u),
          run(qkvGradProgram(l, 'v', [B * T, KV * hd]), [ps, dout], 'float32', u),
        ];
      },
    };
  });
  return f(q, k, v);
}

/**
 * fusedAttention for q, k, v side by side in one tensor qkv [B·T, (H + 2·KV)·hd] (GPT-2's c_attn output): no split
 * forward, and the gradient of qkv in one program.
 */
export function fusedAttentionPacked(qkv: tf.Tensor2D, s: FusedAttentionSpec): tf.Tensor2D {
  const { B, T, H, KV, hd } = s;
  const W = (H + 2 * KV) * hd;
  const l: Layout = { q: 'qkv', k: 'qkv', v: 'qkv', rope: s.rope?.layout ?? null, bias: s.bias != null };
  const u = uniformsOf(s, [W, W, W], [0, H * hd, (H + KV) * hd]);
  const { tables, bias } = constants(s);
  const rows = B * H * T;
  const f = customOp<tf.Tensor2D>(([x], save) => {
    const probs = run(probsProgram(l, rows, T), [x, ...tables, ...bias], 'float32', u);
    save([x, probs, ...tables]);
    return {
      value: run(outProgram(l, [B * T, H * hd]), [probs, x], 'float32', u) as tf.Tensor2D,
      gradFunc: (dout, [xs, ps, ...tb]) => {
        const dscores = run(scoresGradProgram(l, rows, T), [ps, dout, xs], 'float32', u);
        return run(qkvGradProgram(l, 'qkv', [B * T, W]), [dscores, ps, dout, xs, ...tb], 'float32', u);
      },
    };
  });
  return f(qkv);
}
