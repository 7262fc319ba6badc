/**
 * The check of our WGSL kernels (./webgpu-kernels.ts): each fused op on webgpu against the plain tfjs ops on the cpu
 * backend, forward value and gradient, on shapes of the model families that use it. Run by the engine worker
 * (checkWebgpuKernels) in a browser with WebGPU; the browser test asks for it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend';
import {
  applyRope,
  attentionSoftmax,
  dropout,
  geluNew,
  layerNorm,
  layerNormFork,
  rmsNorm,
  rmsNormFork,
  rmsNormOnePlus,
  siluMul,
} from './ops';
import { IGNORE_INDEX, sparseCrossEntropy } from './loss';
import { startGpuCounting } from './gpu-counters';
import { fusedAttention, fusedAttentionPacked, type FusedAttentionSpec } from './webgpu-attention';
import { gradsViaSink } from './grad-sink';
import { fusedLinear } from './webgpu-linear';
import { fusedProjection, fusedSiluMulPacked } from './webgpu-projection';

export interface KernelCheck {
  name: string;
  /** Largest elementwise relative error of the forward value (see relErr). */
  forward: number;
  /** Largest elementwise relative error over the gradients of every input (absent: no gradient checked). */
  grad?: number;
  /** Our programs (shader keys webtune_*) the webgpu run dispatched: proof that the fused path ran. */
  fusedPrograms: number;
  ok: boolean;
  error?: string;
}

export interface KernelCheckReport {
  backend: 'webgpu';
  tolerance: number;
  checks: KernelCheck[];
}

interface Case {
  name: string;
  /** Inputs (differentiated unless noGrad) and the function of them. */
  make(rand: (n: number, lo?: number, hi?: number) => Float32Array): {
    args: tf.Tensor[];
    f: (...xs: tf.Tensor[]) => tf.Tensor;
    noGrad?: boolean;
    /** The last `lora` args are LoRA A/B tensors (a gradient sink may take their gradients). */
    lora?: number;
  };
  /** Run the backward pass with a gradient sink over the LoRA args (grad-sink.ts), read their gradients from it. */
  sink?: boolean;
  /** The case runs no program of ours (tfjs's own programs do the fused work): no webtune_* program is expected. */
  tfjsOnly?: boolean;
}

function seeded(name: string) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return (n: number, lo = -1, hi = 1) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      h = (Math.imul(h, 1664525) + 1013904223) >>> 0;
      out[i] = lo + ((hi - lo) * h) / 4294967296;
    }
    return out;
  };
}

const tensor = (data: Float32Array, shape: number[]) => tf.tensor(data, shape);

function normCase(family: string, N: number, D: number, onePlus: boolean, eps: number): Case {
  return {
    name: `rmsNorm${onePlus ? ' (1 + w)' : ''} ${family} [${N}, ${D}]`,
    make: (r) => {
      const w = tensor(r(D, onePlus ? -0.5 : 0.5, onePlus ? 0.5 : 1.5), [D]);
      return {
        args: [tensor(r(N * D, -2, 2), [N, D])],
        f: (x) => (onePlus ? rmsNormOnePlus : rmsNorm)(x, w, eps),
      };
    },
  };
}

/**
 * The residual stream's fork (rmsNormFork): both outputs used (n + 0.5 · x after the fork), so the gradient of x is
 * RMSNorm's plus the residual's; on cpu the plain rmsNorm and x itself.
 */
function normForkCase(family: string, N: number, D: number, eps: number, kind: 'rmsNorm' | 'layerNorm'): Case {
  return {
    name: `${kind} + residual fork ${family} [${N}, ${D}]`,
    make: (r) => {
      const w = tensor(r(D, 0.5, 1.5), [D]);
      const b = tensor(r(D, -0.5, 0.5), [D]);
      return {
        args: [tensor(r(N * D, -2, 2), [N, D])],
        f: (x) => {
          const x2 = x as tf.Tensor2D;
          const [n, carry] = kind === 'rmsNorm' ? rmsNormFork(x2, w, eps) : layerNormFork(x2, w, b, eps);
          return tf.add(n, tf.mul(carry, 0.5));
        },
      };
    },
  };
}

/** LayerNorm with frozen w, b (rows far from zero too: the variance is taken around the mean). */
function layerNormCase(family: string, N: number, D: number, offset: number): Case {
  return {
    name: `layerNorm ${family} [${N}, ${D}]${offset ? ` offset ${offset}` : ''}`,
    make: (r) => {
      const w = tensor(r(D, 0.5, 1.5), [D]);
      const b = tensor(r(D), [D]);
      return { args: [tensor(r(N * D, offset - 2, offset + 2), [N, D])], f: (x) => layerNorm(x, w, b, 1e-5) };
    },
  };
}

function geluCase(N: number, I: number): Case {
  return {
    name: `gelu_new gpt2 [${N}, ${I}]`,
    make: (r) => ({ args: [tensor(r(N * I, -6, 6), [N, I])], f: (x) => geluNew(x) }),
  };
}

function siluCase(family: string, N: number, I: number): Case {
  return {
    name: `silu(g) · u ${family} [${N}, ${I}]`,
    make: (r) => ({
      args: [tensor(r(N * I, -6, 6), [N, I]), tensor(r(N * I, -2, 2), [N, I])],
      f: (g, u) => siluMul(g, u),
    }),
  };
}

function ropeCase(family: string, shape: [number, number, number, number], layout: 'half' | 'interleaved'): Case {
  const [B, H, T, d] = shape;
  return {
    name: `RoPE ${layout} ${family} [${shape.join(', ')}]`,
    make: (r) => {
      const angle = r(B * T * (d / 2), -6, 6);
      const cos = tensor(angle.map(Math.cos), [B, 1, T, d / 2]) as tf.Tensor4D;
      const sin = tensor(angle.map(Math.sin), [B, 1, T, d / 2]) as tf.Tensor4D;
      return {
        args: [tensor(r(B * H * T * d, -2, 2), shape)],
        f: (x) => applyRope(x as tf.Tensor4D, cos, sin, layout),
      };
    },
  };
}

/** Attention probabilities with a causal mask on the last query rows (and a fully masked key column). */
function attnCase(family: string, B: number, KV: number, G: number, T: number, scale: number, masked: boolean): Case {
  const S = T;
  return {
    name: `attention softmax ${family} B${B} KV${KV} G${G} T${T}${masked ? ' masked' : ''}`,
    make: (r) => {
      const bias = new Float32Array(B * T * S);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          for (let s = 0; s < S; s++) if (s > t || s === (b + 1) % S) bias[(b * T + t) * S + s] = -1e9;
      return {
        args: [tensor(r(B * KV * G * T * S, -4, 4), [B * KV, G * T, S])],
        f: (x) =>
          attentionSoftmax(x as tf.Tensor3D, scale, masked ? tf.tensor(bias, [B, 1, 1, T, S]) : null, { B, KV, G, T }),
      };
    },
  };
}

/**
 * Attention from q, k, v as plain tfjs ops (heads transposed out, RoPE by ops.applyRope, KV heads gathered per query
 * head, softmax): the reference the fused programs are checked against. `packed`: q, k, v side by side in one tensor.
 */
function plainAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, s: FusedAttentionSpec): tf.Tensor {
  const { B, T, H, KV, hd } = s;
  const heads = (x: tf.Tensor, n: number) => tf.transpose(tf.reshape(x, [B, T, n, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
  const rope = (x: tf.Tensor4D) =>
    s.rope ? applyRope(x, s.rope.cos as tf.Tensor4D, s.rope.sin as tf.Tensor4D, s.rope.layout) : x;
  const group = tf.tensor1d(
    Array.from({ length: H }, (_, h) => Math.floor(h / (H / KV))),
    'int32',
  );
  const q4 = rope(heads(q, H));
  const k4 = tf.gather(rope(heads(k, KV)), group, 1);
  const v4 = tf.gather(heads(v, KV), group, 1);
  let z = tf.mul(tf.matMul(q4, k4, false, true), s.scale);
  if (s.bias) z = tf.add(z, tf.reshape(s.bias, [B, 1, T, T]));
  const out = tf.matMul(tf.softmax(z), v4);
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, H * hd]);
}

/**
 * Fused attention (webgpu-attention.ts) against plainAttention on cpu: RoPE in both layouts or none, grouped KV
 * heads, a causal mask with one hidden key per batch row, rows longer than a workgroup, head_dim up to 256.
 */
function fusedAttentionCase(
  family: string,
  dims: { B: number; T: number; H: number; KV: number; hd: number; scale: number },
  rope: 'half' | 'interleaved' | null,
  packed: boolean,
): Case {
  const { B, T, H, KV, hd } = dims;
  return {
    name: `attention ${family} B${B} T${T} H${H} KV${KV} hd${hd}${rope ? ` rope ${rope}` : ''}${packed ? ' packed' : ''}`,
    make: (r) => {
      const bias = new Float32Array(B * T * T);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          for (let u = 0; u < T; u++) if (u > t || (u === (b + 1) % T && u < t)) bias[(b * T + t) * T + u] = -1e9;
      const angle = r(B * T * (hd / 2), -6, 6);
      const spec: FusedAttentionSpec = {
        ...dims,
        bias: tensor(bias, [B, 1, 1, T, T]),
        rope: rope
          ? {
              cos: tensor(angle.map(Math.cos), [B, 1, T, hd / 2]),
              sin: tensor(angle.map(Math.sin), [B, 1, T, hd / 2]),
              layout: rope,
            }
          : null,
      };
      const onGpu = () => tf.getBackend() === 'webgpu';
      if (packed) {
        const W = (H + 2 * KV) * hd;
        return {
          args: [tensor(r(B * T * W), [B * T, W])],
          f: (x) => {
            if (onGpu()) return fusedAttentionPacked(x as tf.Tensor2D, spec);
            const [q, k, v] = tf.split(x, [H * hd, KV * hd, KV * hd], 1);
            return plainAttention(q, k, v, spec);
          },
        };
      }
      return {
        args: [
          tensor(r(B * T * H * hd), [B * T, H * hd]),
          tensor(r(B * T * KV * hd), [B * T, KV * hd]),
          tensor(r(B * T * KV * hd), [B * T, KV * hd]),
        ],
        f: (q, k, v) =>
          onGpu()
            ? fusedAttention(q as tf.Tensor2D, k as tf.Tensor2D, v as tf.Tensor2D, spec)
            : plainAttention(q, k, v, spec),
      };
    },
  };
}

/**
 * fusedLinear (webgpu-linear.ts) against x · W(ᵀ) + bias or residual + scaling · xin · Aᵀ · Bᵀ in plain ops on cpu,
 * gradients to x, the residual, A and B. `dropout`: the LoRA path sees x times a fixed mask (xin ≠ x).
 */
function fusedLinearCase(
  family: string,
  dims: { M: number; K: number; N: number; r: number },
  opts: { layout: 'out_in' | 'in_out'; bias?: boolean; residual?: boolean; lora?: boolean; dropout?: boolean },
): Case {
  const { M, K, N, r: rank } = dims;
  const parts = [
    opts.layout,
    opts.bias && 'bias',
    opts.residual && 'residual',
    opts.lora && 'LoRA',
    opts.dropout && 'dropout',
  ];
  return {
    tfjsOnly: !opts.lora,
    name: `linear ${family} [${M}, ${K}] -> ${N} ${parts.filter(Boolean).join(' ')}`,
    make: (r) => {
      const W = tensor(r(K * N), opts.layout === 'out_in' ? [N, K] : [K, N]) as tf.Tensor2D;
      const bias = opts.bias ? (tensor(r(N), [N]) as tf.Tensor1D) : null;
      const mask = tensor(
        r(M * K, 0, 1).map((u) => (u < 0.2 ? 0 : 1.25)),
        [M, K],
      );
      const args = [tensor(r(M * K), [M, K])];
      if (opts.residual) args.push(tensor(r(M * N), [M, N]));
      if (opts.lora) args.push(tensor(r(rank * K), [rank, K]), tensor(r(N * rank), [N, rank]));
      const scaling = 2;
      return {
        args,
        lora: opts.lora ? 2 : 0,
        f: (...xs) => {
          const [x, ...rest] = xs as tf.Tensor2D[];
          const res = opts.residual ? rest.shift()! : null;
          const [A, B] = opts.lora ? rest : [null, null];
          const xin = opts.dropout ? (tf.mul(x, mask) as tf.Tensor2D) : x;
          if (tf.getBackend() === 'webgpu') {
            const keep = opts.dropout ? (mask as tf.Tensor2D) : null;
            return fusedLinear(x, { W, layout: opts.layout, bias, lora: A && B ? { A, B, scaling, keep } : null }, res);
          }
          let y = tf.matMul(x, W, false, opts.layout === 'out_in');
          if (bias) y = tf.add(y, bias);
          if (res) y = tf.add(res, y);
          if (A && B) y = tf.add(y, tf.mul(tf.matMul(tf.matMul(xin, A, false, true), B, false, true), scaling));
          return y;
        },
      };
    },
  };
}

/**
 * fusedProjection (webgpu-projection.ts) against the members as separate layers in plain ops on cpu (each
 * x · W_iᵀ + b_i + scaling · (x ⊙ keep_i) · A_iᵀ · B_iᵀ, side by side); gradients to x and every A and B.
 */
function projectionCase(
  family: string,
  M: number,
  K: number,
  widths: number[],
  opts: { lora: boolean[]; r: number; dropout?: boolean; bias?: boolean },
): Case {
  const { r: rank } = opts;
  const tags = [opts.bias && 'bias', opts.dropout && 'dropout'].filter(Boolean).join(' ');
  return {
    tfjsOnly: !opts.lora.some(Boolean),
    name: `projection ${family} [${M}, ${K}] -> [${widths}] LoRA ${opts.lora.map((l) => (l ? 1 : 0)).join('')} ${tags}`,
    make: (r) => {
      const Ws = widths.map((w) => tensor(r(w * K), [w, K]) as tf.Tensor2D);
      const bs = widths.map((w) => (opts.bias ? (tensor(r(w), [w]) as tf.Tensor1D) : null));
      const keeps = widths.map((_, i) =>
        opts.dropout && opts.lora[i]
          ? (tensor(
              r(M * K, 0, 1).map((u) => (u < 0.25 ? 0 : 4 / 3)),
              [M, K],
            ) as tf.Tensor2D)
          : null,
      );
      // the concatenated weights live as long as the case (the backward pass reads W)
      const W = tf.concat(Ws, 0) as tf.Tensor2D;
      const bias = opts.bias ? (tf.concat(bs as tf.Tensor1D[]) as tf.Tensor1D) : null;
      const args = [tensor(r(M * K), [M, K])];
      widths.forEach((w, i) => {
        if (opts.lora[i]) args.push(tensor(r(rank * K), [rank, K]), tensor(r(w * rank), [w, rank]));
      });
      const scaling = 2;
      return {
        args,
        lora: args.length - 1,
        f: (...xs) => {
          const [x, ...ab] = xs as tf.Tensor2D[];
          let j = 0;
          const loras = widths.map((_, i) => (opts.lora[i] ? { A: ab[j++], B: ab[j++], keep: keeps[i] } : null));
          if (tf.getBackend() === 'webgpu') {
            const members = widths.map((width, i) => ({ width, lora: loras[i] }));
            return fusedProjection(x, { W, bias, members, scaling });
          }
          const outs = widths.map((_, i) => {
            let y = tf.matMul(x, Ws[i], false, true);
            if (bs[i]) y = tf.add(y, bs[i]!);
            const l = loras[i];
            if (l) {
              const xin = l.keep ? tf.mul(x, l.keep) : x;
              y = tf.add(y, tf.mul(tf.matMul(tf.matMul(xin, l.A, false, true), l.B, false, true), scaling));
            }
            return y;
          });
          return tf.concat(outs, 1);
        },
      };
    },
  };
}

/** silu(g) · u from gate/up side by side (fusedSiluMulPacked) against siluMul on the halves on cpu. */
function siluPackedCase(M: number, I: number): Case {
  return {
    name: `silu(g) · u packed [${M}, ${2 * I}]`,
    make: (r) => ({
      args: [tensor(r(M * 2 * I, -6, 6), [M, 2 * I])],
      f: (gu) => {
        if (tf.getBackend() === 'webgpu') return fusedSiluMulPacked(gu as tf.Tensor2D);
        const [g, u] = tf.split(gu, 2, 1);
        return siluMul(g, u);
      },
    }),
  };
}

/** LoRA dropout: the same mask as tf.dropout on cpu (no program of ours: a plain mul with a CPU-made mask). */
const dropoutCase: Case = {
  tfjsOnly: true,
  name: 'LoRA dropout 0.05 [9, 64]',
  make: (r) => ({ args: [tensor(r(9 * 64, -2, 2), [9, 64])], f: (x) => dropout(x, 0.05, 1234) }),
};

/** Targets: every third row ignored, every fourth the row's argmax (so the correct count is not trivially 0). */
function targetsFor(logits: Float32Array, N: number, V: number, r: (n: number) => Float32Array): Int32Array {
  const u = r(N);
  const t = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    if (i % 3 === 2) t[i] = IGNORE_INDEX;
    else if (i % 4 === 0) {
      let best = 0;
      for (let j = 1; j < V; j++) if (logits[i * V + j] > logits[i * V + best]) best = j;
      t[i] = best;
    } else t[i] = Math.min(V - 1, Math.floor(((u[i] + 1) / 2) * V));
  }
  return t;
}

function ceCases(family: string, N: number, V: number): Case[] {
  const make = (r: (n: number, lo?: number, hi?: number) => Float32Array) => {
    const data = r(N * V, -8, 8);
    return { data, targets: targetsFor(data, N, V, r) };
  };
  return [
    {
      name: `cross-entropy ${family} [${N}, ${V}]`,
      make: (r) => {
        const { data, targets } = make(r);
        return { args: [tensor(data, [N, V])], f: (z) => sparseCrossEntropy(z, targets).loss };
      },
    },
    {
      name: `cross-entropy correct count ${family} [${N}, ${V}]`,
      make: (r) => {
        const { data, targets } = make(r);
        return { args: [tensor(data, [N, V])], f: (z) => sparseCrossEntropy(z, targets).correct, noGrad: true };
      },
    },
  ];
}

/** The case again, its LoRA gradients taken by a gradient sink on webgpu (the reference is the same). */
function withSink(c: Case): Case {
  return { ...c, name: `${c.name} (gradient sink)`, sink: true };
}

const LORA_CASES: Case[] = [
  projectionCase('smollm2 qkv', 9, 64, [48, 16, 16], { lora: [true, false, true], r: 8 }),
  projectionCase('smollm2 qkv', 7, 64, [48, 16, 16], { lora: [true, false, true], r: 4, dropout: true }),
  projectionCase('all targets', 5, 32, [32, 16, 16], { lora: [true, true, true], r: 2 }),
  projectionCase('qwen2 qkv', 6, 32, [32, 8, 8], { lora: [false, true, false], r: 4, bias: true, dropout: true }),
  projectionCase('gate/up', 4, 32, [86, 86], { lora: [true, true], r: 8, dropout: true }),
  projectionCase('gate/up', 4, 32, [86, 86], { lora: [false, false], r: 8 }),
  fusedLinearCase('llama q_proj', { M: 9, K: 64, N: 48, r: 8 }, { layout: 'out_in', lora: true }),
  fusedLinearCase('llama o_proj', { M: 9, K: 64, N: 64, r: 4 }, { layout: 'out_in', residual: true, lora: true }),
  fusedLinearCase('llama down_proj', { M: 7, K: 172, N: 64, r: 8 }, { layout: 'out_in', residual: true }),
  fusedLinearCase('gpt2 c_attn', { M: 5, K: 64, N: 192, r: 8 }, { layout: 'in_out', bias: true, lora: true }),
  fusedLinearCase('llama v_proj', { M: 6, K: 32, N: 16, r: 2 }, { layout: 'out_in', lora: true, dropout: true }),
  fusedLinearCase('wide', { M: 4, K: 32, N: 512, r: 16 }, { layout: 'out_in', lora: true }),
];

/** llama: stories260K (64), SmolLM2 (576) hidden, head_dim norms; gemma3: (1 + w) on 640 and head_dim 256. */
export const KERNEL_CASES: Case[] = [
  normCase('llama', 7, 64, false, 1e-5),
  normCase('llama', 5, 576, false, 1e-5),
  normForkCase('llama', 7, 64, 1e-5, 'rmsNorm'),
  normForkCase('smollm2', 5, 576, 1e-5, 'rmsNorm'),
  normForkCase('gpt2', 5, 768, 1e-5, 'layerNorm'),
  normCase('qwen3 head', 9, 128, false, 1e-6),
  normCase('gemma3', 5, 640, true, 1e-6),
  normCase('gemma3 head', 6, 256, true, 1e-6),
  siluCase('llama', 7, 172),
  layerNormCase('gpt2', 5, 768, 0),
  layerNormCase('gpt2', 3, 100, 30),
  layerNormCase('tiny', 6, 7, 0),
  geluCase(7, 300),
  ropeCase('llama2.c', [2, 8, 5, 8], 'interleaved'),
  ropeCase('smollm2', [2, 3, 4, 64], 'half'),
  ropeCase('gemma3', [1, 2, 3, 256], 'half'),
  siluCase('smollm2', 3, 1536),
  attnCase('llama2.c', 2, 4, 2, 6, 1 / Math.sqrt(8), true),
  attnCase('smollm2', 1, 3, 3, 5, 1 / Math.sqrt(64), true),
  attnCase('gpt2', 2, 12, 1, 4, 1 / Math.sqrt(64), false),
  attnCase('gpt-neo', 1, 2, 1, 70, 1, true),
  fusedAttentionCase('llama2.c', { B: 2, T: 6, H: 4, KV: 2, hd: 8, scale: 1 / Math.sqrt(8) }, 'interleaved', false),
  fusedAttentionCase('smollm2', { B: 1, T: 5, H: 3, KV: 1, hd: 64, scale: 1 / 8 }, 'half', false),
  fusedAttentionCase('gpt2', { B: 2, T: 4, H: 3, KV: 3, hd: 64, scale: 1 / 8 }, null, true),
  fusedAttentionCase('gpt-neo', { B: 1, T: 70, H: 2, KV: 2, hd: 16, scale: 1 }, null, false),
  fusedAttentionCase('gemma3', { B: 1, T: 3, H: 2, KV: 1, hd: 256, scale: 1 / 16 }, 'half', false),
  fusedAttentionCase('qwen packed', { B: 1, T: 7, H: 4, KV: 2, hd: 8, scale: 1 / Math.sqrt(8) }, 'half', true),
  ...LORA_CASES,
  ...LORA_CASES.filter((c) => !c.tfjsOnly).map(withSink),
  siluPackedCase(5, 86),
  dropoutCase,
  ...ceCases('llama', 10, 512),
  ...ceCases('gpt2', 4, 50257),
  ...ceCases('tiny', 6, 13),
];

/** [value, ...gradients] of case `c` as arrays: the gradient of sum(f · r) for a fixed random r. */
async function evaluate(c: Case): Promise<Float32Array[]> {
  const rand = seeded(c.name.replace(' (gradient sink)', ''));
  const outs = tf.tidy(() => {
    const { args, f, noGrad, lora } = c.make(rand);
    const value = f(...args);
    if (noGrad) return [value];
    const weights = tensor(rand(value.size), value.shape);
    const backward = () => tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weights)))(args);
    const sunk = c.sink && lora && tf.getBackend() === 'webgpu';
    return [value, ...(sunk ? gradsViaSink(args, lora, backward) : backward())];
  });
  try {
    return await Promise.all(outs.map(async (o) => Float32Array.from((await o.data()) as Float32Array)));
  } finally {
    tf.dispose(outs);
  }
}

/** max_i |a_i − b_i| / max(|b_i|, 1e-3 · max_j |b_j|): relative per element, near-zero elements against the scale. */
export function relErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  const floor = 1e-3 * scale || 1e-30;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    if (!(e <= m)) m = Number.isNaN(e) ? Infinity : e;
  }
  return m;
}

/** Every case on cpu (plain ops) and then on webgpu (our kernels); leaves webgpu active. */
export async function checkWebgpuKernels(tolerance = 1e-4, onCase: () => void = () => {}): Promise<KernelCheckReport> {
  await initBackend('cpu');
  const reference = new Map<string, Float32Array[]>();
  for (const c of KERNEL_CASES) {
    onCase();
    reference.set(c.name, await evaluate(c));
  }
  const report = await initBackend('webgpu');
  if (report.backend !== 'webgpu')
    throw new Error(`webgpu is unavailable: ${report.fallbacks.map((f) => `${f.backend}: ${f.reason}`).join('; ')}`);
  const checks: KernelCheck[] = [];
  for (const c of KERNEL_CASES) {
    onCase();
    const counting = startGpuCounting();
    try {
      const got = await evaluate(c);
      const ref = reference.get(c.name)!;
      const forward = relErr(got[0], ref[0]);
      const grad = got.length > 1 ? Math.max(...got.slice(1).map((g, i) => relErr(g, ref[i + 1]))) : undefined;
      const fusedPrograms = Object.entries(counting?.counts.byProgram ?? {})
        .filter(([k]) => k.startsWith('webtune_'))
        .reduce((n, [, v]) => n + v, 0);
      const ok = forward <= tolerance && (grad ?? 0) <= tolerance && (fusedPrograms > 0 || c.tfjsOnly === true);
      checks.push({ name: c.name, forward, grad, fusedPrograms, ok });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      checks.push({ name: c.name, forward: Infinity, fusedPrograms: 0, ok: false, error });
    } finally {
      counting?.stop();
    }
  }
  return { backend: 'webgpu', tolerance, checks };
}
