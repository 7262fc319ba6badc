/**
 * The SIMD batched-matmul kernel of the wasm backend (src/engine/wasm-kernels.wat): the committed binary is the
 * assembly of the committed text, its products equal a float64 reference on shapes that hit every tile edge (rows
 * mod 4, columns mod 8, and the cache-blocked 2-D product's panels, blocks and depth slices) in all transpose forms, and bmm's
 * gradients through it equal tfjs's own. The row and element-wise kernels (softmax's gradient, RMSNorm, LayerNorm,
 * gelu_new and its exp, SwiGLU's silu(g) · u, the cross-entropy's softmax with its statistics) against float64
 * references and against tfjs's ops, the row lookup against tf.gather, and RoPE with the head transpose against the
 * reshape, transpose and RoPE of the cpu backend.
 */
import { readFileSync } from 'node:fs';
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { attentionSoftmax, bmm, geluNew, headsOf, layerNorm, loraLinear, siluMul } from '../../src/engine/ops';
import {
  WASM_GELU_KERNEL,
  WASM_LAYERNORM_KERNEL,
  WASM_LORA_LINEAR_GRAD_KERNEL,
  WASM_LORA_LINEAR_KERNEL,
  WASM_ROPE_HEADS_KERNEL,
  WASM_SILU_MUL_GRAD_KERNEL,
  WASM_SILU_MUL_KERNEL,
  wasmBatchMatMul,
  wasmCrossEntropySoftmax,
  wasmGatherRows,
  wasmGeluNew,
  wasmKernelsAvailable,
  wasmKernelsRelaxed,
  wasmLayerNorm,
  wasmRmsNorm,
  wasmSiluMul,
  wasmSoftmaxGrad,
} from '../../src/engine/wasm-kernels';
import { WASM_KERNELS_BINARY } from '../../src/engine/wasm-kernels-binary';
import { startKernelTiming } from '../../src/engine/kernel-times';
import { BINARY_PATH, WAT_PATH, buildWasmKernels, withoutRelaxedSimd } from '../../tools/build-wasm-kernels';
import { Rng } from '../../src/util/rng';

const rng = new Rng(5);
const randData = (n: number) => Float32Array.from({ length: n }, () => 2 * rng.uniform() - 1);

/** c = op(a) · op(b) in float64, a/b row-major as stored. */
function reference(
  a: Float32Array,
  b: Float32Array,
  N: number,
  M: number,
  K: number,
  P: number,
  tA: boolean,
  tB: boolean,
) {
  const c = new Float64Array(N * M * P);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < P; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = tA ? a[n * K * M + k * M + i] : a[n * M * K + i * K + k];
          const bv = tB ? b[n * P * K + j * K + k] : b[n * K * P + k * P + j];
          s += av * bv;
        }
        c[n * M * P + i * P + j] = s;
      }
  return c;
}

describe('wasm SIMD batched matmul', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('the committed binary is the assembly of wasm-kernels.wat', async () => {
    expect(readFileSync(BINARY_PATH, 'utf8')).toBe(await buildWasmKernels(readFileSync(WAT_PATH, 'utf8')));
  });

  it('runs on this engine', () => {
    expect(wasmKernelsAvailable()).toBe(true);
  });

  it("runs the relaxed-SIMD build where the engine validates it, else the one without (this engine's: %s)", () => {
    const relaxed = Uint8Array.from(atob(WASM_KERNELS_BINARY.relaxed.plain), (ch) => ch.charCodeAt(0));
    expect(wasmKernelsRelaxed()).toBe(WebAssembly.validate(relaxed));
    const simd = Uint8Array.from(atob(WASM_KERNELS_BINARY.simd.plain), (ch) => ch.charCodeAt(0));
    expect(WebAssembly.validate(simd)).toBe(true);
  });

  it('spells each f32x4.relaxed_madd a · b + c as an add of a multiply for engines without relaxed SIMD', () => {
    const wat = readFileSync(WAT_PATH, 'utf8');
    expect(wat).toContain('(f32x4.relaxed_madd');
    expect(withoutRelaxedSimd(wat)).not.toContain('(f32x4.relaxed_madd');
    expect(
      withoutRelaxedSimd(
        '(local.set $c (f32x4.relaxed_madd (local.get $s) (v128.load offset=16 (local.get $pb)) (local.get $c)))',
      ),
    ).toBe(
      '(local.set $c (f32x4.add (local.get $c) (f32x4.mul (local.get $s) (v128.load offset=16 (local.get $pb)))))',
    );
    expect(() => withoutRelaxedSimd('(f32x4.relaxed_madd (local.get $a) (local.get $b))')).toThrow(/3 operands/);
    expect(() => withoutRelaxedSimd('(f32x4.relaxed_madd $a $b $c $d)')).toThrow(/3 operands/);
  });

  // rows M: below, at and past a 4-row tile; columns P: below, at and past an 8-column tile; K down to 1
  const shapes = [
    [1, 1, 1, 1],
    [2, 3, 5, 7],
    [3, 4, 8, 8],
    [2, 5, 17, 9],
    [1, 13, 3, 24],
    [4, 16, 8, 35],
    [16, 64, 8, 32],
    // 2-D products of 16+ rows and depth 32+ run cache-blocked (gemm_block): blocks of 64 columns packed in panels
    // of 8, so columns below, at and past a panel and a block, rows past the 4-row tiles
    [1, 16, 32, 8],
    [1, 17, 33, 9],
    [1, 23, 40, 64],
    [1, 19, 35, 65],
    [1, 30, 64, 137],
    [1, 64, 96, 200],
    // depths past one slice of 256 (the later slices add into c)
    [1, 21, 600, 70],
    [1, 16, 256, 8],
    [1, 18, 513, 13],
    // rows past one chunk of 256 (a chunk's slice of a stays in L2 while its column blocks pass): 256 + 45 rows,
    // and two whole chunks and 5 rows
    [1, 301, 40, 70],
    [1, 517, 33, 9],
  ];
  for (const [tA, tB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ])
    it(`op(a)·op(b) equals a float64 reference (transposeA ${tA}, transposeB ${tB})`, async () => {
      for (const [N, M, K, P] of shapes) {
        const a = randData(N * M * K),
          b = randData(N * K * P);
        const at = tf.tensor3d(a, tA ? [N, K, M] : [N, M, K]);
        const bt = tf.tensor3d(b, tB ? [N, P, K] : [N, K, P]);
        const before = tf.memory().numTensors;
        const c = wasmBatchMatMul(at, bt, tA, tB);
        expect(tf.memory().numTensors).toBe(before + 1);
        expect(c.shape).toEqual([N, M, P]);
        const got = await c.data();
        const want = reference(a, b, N, M, K, P, tA, tB);
        let err = 0;
        for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
        expect(err, `[${N},${M},${K},${P}]`).toBeLessThan(1e-5 * Math.max(1, K));
        tf.dispose([at, bt, c]);
      }
    });

  // causal attention's [G·T, S] matrices (0 past each query's last key): the products that skip the zeros equal the
  // whole products (the scores only where a query sees the key), with S = T or T + 4 cached keys, G = 1 or 3 heads;
  // T = 6 is not a multiple of 4, so the products run whole (the hint ignored)
  for (const [G, T, past, hd] of [
    [1, 8, 0, 8],
    [3, 12, 4, 16],
    [2, 16, 0, 64],
    [2, 6, 2, 8],
  ])
    it(`skips causal attention's zeros (G ${G}, T ${T}, past ${past}, head_dim ${hd}) with the whole products' values`, async () => {
      // its own draws, so the tests after it keep theirs
      const own = new Rng(11);
      const randData = (n: number) => Float32Array.from({ length: n }, () => 2 * own.uniform() - 1);
      const N = 3,
        S = T + past,
        M = G * T;
      const sees = (row: number, s: number) => s <= (row % T) + past;
      const causalMatrix = () => randData(N * M * S).map((v, i) => (sees(Math.floor(i / S) % M, i % S) ? v : 0));
      const hint = (at: 'out' | 'a' | 'aT') => ({ at, T, past });
      const q = randData(N * M * hd),
        kv = randData(N * S * hd),
        p = causalMatrix(),
        d = randData(N * M * hd);
      const close = (got: Float32Array | Int32Array | Uint8Array, want: Float64Array, keep = (_: number) => true) => {
        let err = 0;
        for (let i = 0; i < want.length; i++) if (keep(i)) err = Math.max(err, Math.abs(got[i] - want[i]));
        return err;
      };
      // scores = q · kᵀ [M, S]: where a query sees the key
      const scores = await wasmBatchMatMul(
        tf.tensor3d(q, [N, M, hd]),
        tf.tensor3d(kv, [N, S, hd]),
        false,
        true,
        hint('out'),
      ).data();
      expect(
        close(scores, reference(q, kv, N, M, hd, S, false, true), (i) => sees(Math.floor(i / S) % M, i % S)),
      ).toBeLessThan(1e-5);
      // P · v [M, hd] and Pᵀ · dout [S, hd]
      const pv = await wasmBatchMatMul(
        tf.tensor3d(p, [N, M, S]),
        tf.tensor3d(kv, [N, S, hd]),
        false,
        false,
        hint('a'),
      ).data();
      expect(close(pv, reference(p, kv, N, M, S, hd, false, false))).toBeLessThan(1e-5);
      const ptd = await wasmBatchMatMul(
        tf.tensor3d(p, [N, M, S]),
        tf.tensor3d(d, [N, M, hd]),
        true,
        false,
        hint('aT'),
      ).data();
      expect(close(ptd, reference(p, d, N, S, M, hd, true, false))).toBeLessThan(1e-5);
    });

  it('multiplies by zero-length inner dimensions and returns empty products', async () => {
    const z = wasmBatchMatMul(tf.zeros([2, 3, 0]) as tf.Tensor3D, tf.zeros([2, 0, 4]) as tf.Tensor3D);
    expect(Array.from(await z.data())).toEqual(new Array(24).fill(0));
    expect(wasmBatchMatMul(tf.zeros([2, 0, 3]) as tf.Tensor3D, tf.zeros([2, 3, 4]) as tf.Tensor3D).shape).toEqual([
      2, 0, 4,
    ]);
  });

  it('refuses operands that do not chain, naming both shapes', () => {
    expect(() => wasmBatchMatMul(tf.zeros([2, 3, 4]) as tf.Tensor3D, tf.zeros([2, 5, 4]) as tf.Tensor3D)).toThrow(
      /cannot multiply \[2,3,4\] \(float32\) by \[2,5,4\]/,
    );
  });

  for (const transposeB of [false, true])
    it(`bmm's gradients equal those of tfjs's matMul (transposeB ${transposeB})`, async () => {
      const [N, M, K, P] = [6, 37, 8, 21];
      const a = tf.tensor3d(randData(N * M * K), [N, M, K]);
      const b = tf.tensor3d(randData(N * K * P), transposeB ? [N, P, K] : [N, K, P]);
      const w = tf.tensor3d(randData(N * M * P), [N, M, P]);
      const ours = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(bmm(x as tf.Tensor3D, y as tf.Tensor3D, transposeB), w)),
      )([a, b]);
      const theirs = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D, false, transposeB), w)),
      )([a, b]);
      for (let i = 0; i < 2; i++) {
        const x = await ours[i].data(),
          y = await theirs[i].data();
        let err = 0;
        for (let j = 0; j < x.length; j++) err = Math.max(err, Math.abs(x[j] - y[j]));
        expect(err).toBeLessThan(1e-4);
        expect(ours[i].shape).toEqual(theirs[i].shape);
      }
    });

  it('softmax_grad equals scale · p · (dp − Σ p·dp) row by row, for rows of every length mod 4', async () => {
    for (const S of [1, 3, 4, 13, 128]) {
      const R = 7;
      const p = randData(R * S).map(Math.abs),
        dp = randData(R * S);
      const got = await wasmSoftmaxGrad(tf.tensor2d(p, [R, S]), tf.tensor2d(dp, [R, S]), 0.37).data();
      for (let r = 0; r < R; r++) {
        let dot = 0;
        for (let j = 0; j < S; j++) dot += p[r * S + j] * dp[r * S + j];
        for (let j = 0; j < S; j++) expect(got[r * S + j]).toBeCloseTo(0.37 * p[r * S + j] * (dp[r * S + j] - dot), 5);
      }
    }
  });

  it('ce_softmax: p and [max z, max p, z at the target, argMax hit] equal a float64 reference, rows of every length mod 4', async () => {
    for (const S of [1, 3, 4, 13, 128, 1001]) {
      const R = 6;
      // logits up to ±40 (e^80 would overflow a float32 sum without the max), one row with a tie for the largest
      const z = randData(R * S).map((v) => 40 * v);
      if (S > 3) z[2 * S + 3] = z[2 * S + 1] = 50;
      const t = Int32Array.from({ length: R }, (_, r) => (r === 2 && S > 3 ? 3 : (r * 7) % S));
      const [p, stats] = wasmCrossEntropySoftmax(tf.tensor2d(z, [R, S]), tf.tensor1d(t, 'int32'));
      const [pv, sv] = [await p.data(), await stats.data()];
      for (let r = 0; r < R; r++) {
        const row = Array.from(z.subarray(r * S, (r + 1) * S));
        const m = Math.max(...row);
        const e = row.map((v) => Math.exp(v - m));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < S; j++)
          expect(Math.abs(pv[r * S + j] - e[j] / sum)).toBeLessThan(2e-6 * (e[j] / sum) + 1e-12);
        const first = row.indexOf(m);
        expect(sv[4 * r]).toBe(Math.fround(m));
        expect(Math.abs(sv[4 * r + 1] - 1 / sum)).toBeLessThan(2e-6 / sum);
        // the loss's log-sum-exp from the statistics
        expect(Math.abs(sv[4 * r] - Math.log(sv[4 * r + 1]) - (m + Math.log(sum)))).toBeLessThan(
          1e-5 * (1 + Math.abs(m)),
        );
        expect(sv[4 * r + 2]).toBe(Math.fround(row[t[r]]));
        expect(sv[4 * r + 3]).toBe(first === t[r] ? 1 : 0);
      }
      // the tie: the first of the two largest is column 1, the target 3
      if (S > 3) expect(sv[4 * 2 + 3]).toBe(0);
    }
  });

  it('gather_rows copies the rows tf.gather picks, for row lengths of every length mod 4, and refuses an id out of range', async () => {
    for (const D of [1, 3, 4, 13, 768]) {
      const rows = 37;
      const table = tf.tensor2d(randData(rows * D), [rows, D]);
      const ids = Int32Array.from([0, 36, 5, 5, 17, 36, 1]);
      const got = await wasmGatherRows(table, tf.tensor1d(ids, 'int32')).data();
      const want = await tf.gather(table, tf.tensor1d(ids, 'int32')).data();
      expect(Array.from(got)).toEqual(Array.from(want));
    }
    const table = tf.tensor2d(randData(20), [5, 4]);
    expect(() => wasmGatherRows(table, tf.tensor1d([0, 5], 'int32'))).toThrow(
      /id 5 at 1 is outside the table's 5 rows/,
    );
    expect(() => wasmGatherRows(table, tf.tensor1d([-1], 'int32'))).toThrow(/id -1 at 0/);
  });

  // masks: none; causal; causal over S = T + 2 cached keys with a sliding window of 4 (a masked start) and, in batch
  // item 1, its first query row masked everywhere (computed whole, as tfjs does)
  for (const mask of ['none', 'causal', 'window'] as const)
    for (const T of [5, 13, 36])
      it(`attentionSoftmax through the kernels equals tfjs's ops, value and gradient (mask: ${mask}, T ${T})`, async () => {
        const [B, KV, G] = [2, 2, 3];
        const past = mask === 'window' ? 2 : 0;
        const S = T + past;
        const visible = (b: number, t: number, s: number) =>
          mask === 'none' || (s <= t + past && (mask === 'causal' || (s > t + past - 4 && !(b === 1 && t === 0))));
        const scores = tf.tensor3d(
          randData(B * KV * G * T * S).map((v) => 6 * v),
          [B * KV, G * T, S],
        );
        const bias =
          mask === 'none'
            ? null
            : tf.tensor(
                Float32Array.from({ length: B * T * S }, (_, i) =>
                  visible(Math.floor(i / (T * S)), Math.floor(i / S) % T, i % S) ? 0 : -1e9,
                ),
                [B, 1, 1, T, S],
              );
        const w = tf.tensor3d(randData(B * KV * G * T * S), [B * KV, G * T, S]);
        const plain = (x: tf.Tensor) => {
          let z = tf.mul(x, 0.5);
          if (bias) z = tf.add(tf.reshape(z, [B, KV, G, T, S]), bias);
          return tf.reshape(tf.softmax(z), [B * KV, G * T, S]);
        };
        const maxDiff = async (x: tf.Tensor, y: tf.Tensor) => {
          const [a, b] = [await x.data(), await y.data()];
          let err = 0;
          for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
          return err;
        };
        const ours = attentionSoftmax(scores, 0.5, bias, { B, KV, G, T });
        expect(await maxDiff(ours, plain(scores))).toBeLessThan(2e-6);
        // masked columns are exactly 0, as tfjs's are
        if (bias) {
          const p = await ours.data();
          for (let r = 0; r < B * KV * G * T; r++)
            for (let s2 = 0; s2 < S; s2++) {
              const b = Math.floor(r / (KV * G * T)),
                t = r % T;
              if (!visible(b, t, s2) && !(mask === 'window' && b === 1 && t === 0)) expect(p[r * S + s2]).toBe(0);
            }
        }
        const gOurs = tf.grad((x: tf.Tensor) =>
          tf.sum(tf.mul(attentionSoftmax(x as tf.Tensor3D, 0.5, bias, { B, KV, G, T }), w)),
        )(scores);
        const gTheirs = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(plain(x), w)))(scores);
        expect(await maxDiff(gOurs, gTheirs)).toBeLessThan(2e-6);
      });

  for (const plusOne of [0, 1] as const)
    it(`RMSNorm ${plusOne ? 'x·(1 + w) (Gemma)' : 'x·w'}: value and input gradient equal tfjs's ops, rows of every length mod 4`, async () => {
      for (const D of [1, 3, 8, 13, 64]) {
        const R = 9;
        const x = tf.tensor2d(randData(R * D), [R, D]);
        const w = tf.tensor1d(randData(D));
        const dy = tf.tensor2d(randData(R * D), [R, D]);
        const plain = (v: tf.Tensor) =>
          tf.mul(tf.mul(v, tf.rsqrt(tf.add(tf.mean(tf.square(v), -1, true), 1e-5))), plusOne ? tf.add(w, 1) : w);
        const close = async (a: tf.Tensor, b: tf.Tensor) => {
          const [u, v] = [await a.data(), await b.data()];
          let err = 0;
          for (let i = 0; i < u.length; i++) err = Math.max(err, Math.abs(u[i] - v[i]));
          return err;
        };
        expect(await close(wasmRmsNorm(x, w, 1e-5, plusOne), plain(x)), `D ${D}`).toBeLessThan(2e-6);
        const ours = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(wasmRmsNorm(v, w, 1e-5, plusOne), dy)))(x);
        const theirs = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(plain(v), dy)))(x);
        expect(await close(ours, theirs), `D ${D}`).toBeLessThan(2e-5);
      }
    });

  // LayerNorm and gelu_new: rows of D = 1, 3, 7 (under, at and past one f32x4 with a tail), 64, 683 (gelu: past its
  // chunks of 1024 with a tail of every length) and 768 (GPT-2's), one to five rows each
  const ELTWISE_D = [1, 3, 7, 64, 683, 768];
  const ELTWISE_R = [1, 2, 3, 4, 5];

  /** Rows of every kind of scale: unit, ±30, tiny (0.01), and far from zero (1000 ± 1, where the mean must be exact). */
  const layerNormRows = (R: number, D: number) => {
    const x = new Float32Array(R * D);
    for (let r = 0; r < R; r++) {
      const [scale, offset] = [
        [1, 0],
        [30, 0],
        [0.01, 0.5],
        [1, 1000],
        [3, -7],
      ][r % 5];
      for (let j = 0; j < D; j++) x[r * D + j] = offset + scale * (2 * rng.uniform() - 1);
    }
    return x;
  };

  /** LayerNorm and its input gradient in float64 from the float32 inputs: y, and dx for the incoming gradient dy. */
  function layerNormReference(x: Float32Array, w: Float32Array, b: Float32Array, dy: Float32Array, D: number) {
    const R = x.length / D,
      eps = 1e-5;
    const y = new Float64Array(R * D),
      dx = new Float64Array(R * D);
    for (let r = 0; r < R; r++) {
      const row = (a: ArrayLike<number>, j: number) => a[r * D + j];
      let mean = 0,
        v = 0;
      for (let j = 0; j < D; j++) mean += row(x, j) / D;
      for (let j = 0; j < D; j++) v += (row(x, j) - mean) ** 2 / D;
      const rs = 1 / Math.sqrt(v + eps);
      let mg = 0,
        mgx = 0;
      for (let j = 0; j < D; j++) {
        const g = row(dy, j) * w[j],
          xh = (row(x, j) - mean) * rs;
        y[r * D + j] = xh * w[j] + b[j];
        mg += g / D;
        mgx += (g * xh) / D;
      }
      for (let j = 0; j < D; j++) dx[r * D + j] = rs * (row(dy, j) * w[j] - mg - (row(x, j) - mean) * rs * mgx);
    }
    return { y, dx };
  }

  /** The largest error of each row relative to that row's largest reference value (0 where a row is all zeros). */
  function rowRelativeError(got: ArrayLike<number>, want: ArrayLike<number>, D: number): number {
    let worst = 0;
    for (let r = 0; r < want.length / D; r++) {
      let err = 0,
        big = 0;
      for (let j = r * D; j < (r + 1) * D; j++) {
        err = Math.max(err, Math.abs(got[j] - want[j]));
        big = Math.max(big, Math.abs(want[j]));
      }
      worst = Math.max(worst, big > 0 ? err / big : err);
    }
    return worst;
  }

  it('LayerNorm: value and input gradient equal a float64 reference, rows of every length mod 4 and of every scale', async () => {
    // each row's largest error over its largest reference value: y below 2e-6, dx below 5e-6
    let worstY = 0,
      worstDx = 0;
    for (const D of ELTWISE_D)
      for (const R of ELTWISE_R) {
        const x = layerNormRows(R, D),
          dy = randData(R * D);
        const w = randData(D).map((v) => 2 * v),
          b = randData(D);
        const [xt, wt, bt, dyt] = [tf.tensor2d(x, [R, D]), tf.tensor1d(w), tf.tensor1d(b), tf.tensor2d(dy, [R, D])];
        const before = tf.memory().numTensors;
        const y = wasmLayerNorm(xt, wt, bt, 1e-5);
        expect(tf.memory().numTensors).toBe(before + 1);
        const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(wasmLayerNorm(v, wt, bt, 1e-5), dyt)))(xt);
        expect(tf.memory().numTensors).toBe(before + 2);
        expect(dx.shape).toEqual([R, D]);
        const want = layerNormReference(x, w, b, dy, D);
        const ey = rowRelativeError(await y.data(), want.y, D),
          edx = rowRelativeError(await dx.data(), want.dx, D);
        worstY = Math.max(worstY, ey);
        worstDx = Math.max(worstDx, edx);
        expect(ey, `y, ${R} x ${D}`).toBeLessThan(2e-6);
        expect(edx, `dx, ${R} x ${D}`).toBeLessThan(5e-6);
        tf.dispose([xt, wt, bt, dyt, y, dx]);
        expect(tf.memory().numTensors).toBe(before - 4);
      }
    expect(worstY).toBeGreaterThan(0); // (the measure itself)
  });

  /** gelu_new and its input gradient in float64: x · σ(2u), and dy · (s + 2x · s(1 − s) · √(2/π)(1 + 3 · 0.044715 x²)). */
  function geluReference(x: Float32Array, dy: Float32Array) {
    const c = Math.sqrt(2 / Math.PI);
    const y = new Float64Array(x.length),
      dx = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const s = 1 / (1 + Math.exp(-2 * c * (v + 0.044715 * v ** 3)));
      y[i] = v * s;
      dx[i] = dy[i] * (s + 2 * v * s * (1 - s) * c * (1 + 3 * 0.044715 * v * v));
    }
    return { y, dx };
  }

  /** Inputs over [-30, 30] (σ saturates from |x| ~ 10: the kernel's clamp) and over [-4, 4], with exact edges. */
  const geluInputs = (n: number) => {
    const edges = [0, -0, 30, -30, 12, -12, 10, -10, 9.9, -9.9, 9.85, -9.85, -0.7518, 1e-20, -1e-20, 3e4, -3e4];
    return Float32Array.from({ length: n }, (_, i) =>
      i < edges.length && n > 20 ? edges[i] : (i % 2 ? 30 : 4) * (2 * rng.uniform() - 1),
    );
  };

  it('gelu_new: value and input gradient equal a float64 reference, every element count mod 4, |x| up to 30', async () => {
    // |got − want| <= 1e-6 · max(|want|, 0.1): relative above 0.1, 1e-7 absolute below (dx crosses zero at x ≈ −0.75,
    // where its two terms cancel); and in σ's tail, −9.85 < x < −3 (σ(2u) from 1e-3 down to 1e-36; the kernel makes
    // it exactly 0 from −9.9 on), relative 2e-5: there the float32 rounding of 2u itself (|2u| · 2^-23 or so) is the
    // error
    let worst = 0,
      worstTail = 0;
    for (const D of ELTWISE_D)
      for (const R of ELTWISE_R) {
        const x = geluInputs(R * D),
          dy = randData(R * D);
        const [xt, dyt] = [tf.tensor2d(x, [R, D]), tf.tensor2d(dy, [R, D])];
        const before = tf.memory().numTensors;
        const y = wasmGeluNew(xt);
        expect(tf.memory().numTensors).toBe(before + 1);
        const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(wasmGeluNew(v), dyt)))(xt);
        expect(tf.memory().numTensors).toBe(before + 2);
        const want = geluReference(x, dy);
        const [gy, gdx] = [await y.data(), await dx.data()];
        for (let i = 0; i < x.length; i++) {
          const pairs: [number, number][] = [
            [gy[i], want.y[i]],
            [gdx[i], want.dx[i]],
          ];
          for (const [g, w] of pairs) {
            const e = Math.abs(g - w) / Math.max(Math.abs(w), 0.1);
            const tail = x[i] > -9.85 && x[i] < -3 && w !== 0 ? Math.abs(g - w) / Math.abs(w) : 0;
            worst = Math.max(worst, e);
            worstTail = Math.max(worstTail, tail);
            if (!(e <= 1e-6 && tail <= 2e-5))
              expect.fail(
                `${R} x ${D}, x = ${x[i]}: y ${gy[i]} (want ${want.y[i]}), dx ${gdx[i]} (want ${want.dx[i]})`,
              );
          }
        }
        tf.dispose([xt, dyt, y, dx]);
        expect(tf.memory().numTensors).toBe(before - 2);
      }
    expect(worstTail).toBeGreaterThan(0); // (the tail was reached)
  });

  it('gelu_new saturates to exactly x and 0 (gradient exactly dy and 0) for large |x|, with no NaN or Inf', () => {
    const x = [9.9, 10, 12, 30, 1e4, 1e20, 3e38, -9.9, -10, -12, -30, -1e4, -1e20, -3e38];
    const before = tf.memory().numTensors;
    const [y, dx, nan] = tf.tidy(() => {
      const xt = tf.tensor1d(x);
      const dy = tf.fill([x.length], 0.75);
      return [
        wasmGeluNew(xt),
        tf.grad((v: tf.Tensor) => tf.sum(tf.mul(wasmGeluNew(v), dy)))(xt),
        wasmGeluNew(tf.tensor1d([NaN, 1, NaN])),
      ].map((t) => t.dataSync() as Float32Array);
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(y)).toEqual(x.map((v) => (v > 0 ? Math.fround(v) : -0)));
    expect(Array.from(dx)).toEqual(x.map((v) => (v > 0 ? 0.75 : 0)));
    expect([Number.isNaN(nan[0]), nan[1] > 0.84, Number.isNaN(nan[2])]).toEqual([true, true, true]);
  });

  it("the kernels' exp is within 1.5 ulp of e^x over [-87.3, 88.3] (its clamp), every count mod 4", () => {
    const memory = new WebAssembly.Memory({ initial: 160 });
    const bytes = Uint8Array.from(atob(WASM_KERNELS_BINARY.simd.plain), (ch) => ch.charCodeAt(0));
    const k = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as unknown as {
      exp(p: number, n: number): void;
    };
    const f = new Float32Array(1),
      bits = new Uint32Array(f.buffer);
    /** the spacing of float32 values at |v| */
    const ulp = (v: number) => {
      f[0] = Math.abs(v);
      const a = f[0];
      bits[0]++;
      return f[0] - a;
    };
    for (const n of [1_000_000, 1_000_001, 1_000_002, 1_000_003]) {
      const x = new Float32Array(memory.buffer, 0, n);
      for (let i = 0; i < n; i++) x[i] = -87.3 + (175.6 * i) / (n - 1);
      const want = Float64Array.from(x, Math.exp);
      new Float32Array(memory.buffer, 4 * n, 4).fill(-1); // (past the end: must stay)
      k.exp(x.byteOffset, n); // in place
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(x[i] - want[i]) / ulp(want[i]));
      expect(worst, `n = ${n}`).toBeLessThan(1.5);
      expect(worst).toBeGreaterThan(0.5); // (the measure itself: rounding alone is half an ulp)
      expect(Array.from(new Float32Array(memory.buffer, 4 * n, 4))).toEqual([-1, -1, -1, -1]);
    }
    // exact at 0, clamped (finite) past its top, 0 below its range (-1e9: a masked attention score), NaN kept
    const x = new Float32Array(memory.buffer, 0, 8);
    x.set([0, 200, -200, NaN, -87.3, -87.31, -1e9, -Infinity]);
    k.exp(0, 8);
    expect([x[0], x[1] > 1e38 && x[1] < Infinity, x[2], x[3]]).toEqual([1, true, 0, NaN]);
    expect([x[4] > 1e-38 && x[4] < 1.3e-38, x[5], x[6], x[7]]).toEqual([true, 0, 0, 0]);
  });

  it('layerNorm and geluNew take the kernels on wasm and agree with their tfjs ops on cpu, values and gradients', async () => {
    const [R, D] = [5, 67];
    const x = layerNormRows(R, D).map((v, i) => (i >= 3 * D && i < 4 * D ? v - 1000 : v)),
      xg = geluInputs(R * D),
      w = randData(D),
      b = randData(D),
      dy = randData(R * D);
    const run = () => {
      const [xt, xgt, wt, bt, dyt] = [
        tf.tensor2d(x, [R, D]),
        tf.tensor2d(xg, [R, D]),
        tf.tensor1d(w),
        tf.tensor1d(b),
        tf.tensor2d(dy, [R, D]),
      ];
      const ln = (v: tf.Tensor) => layerNorm(v, wt, bt, 1e-5);
      const out = tf.tidy(() =>
        [
          ln(xt),
          tf.grad((v: tf.Tensor) => tf.sum(tf.mul(ln(v), dyt)))(xt),
          geluNew(xgt),
          tf.grad((v: tf.Tensor) => tf.sum(tf.mul(geluNew(v), dyt)))(xgt),
        ].map((t) => t.dataSync() as Float32Array),
      );
      tf.dispose([xt, xgt, wt, bt, dyt]);
      return out;
    };
    const before = tf.memory().numTensors;
    const ours = run();
    expect(tf.memory().numTensors).toBe(before);
    await initBackend('cpu');
    let theirs: Float32Array[];
    try {
      expect(wasmKernelsAvailable()).toBe(false);
      theirs = run();
    } finally {
      await initBackend('wasm');
    }
    expect(wasmKernelsAvailable()).toBe(true);
    const names = ['layerNorm', "layerNorm's dx", 'geluNew', "geluNew's dx"];
    for (let i = 0; i < 4; i++) {
      expect(rowRelativeError(ours[i], theirs[i], D), names[i]).toBeLessThan(1e-5);
    }
    // on wasm the ops run the kernels for frozen weights; a trainable (variable) weight keeps tfjs's ops and their
    // gradients for w and b
    const [xt, wt, bt] = [tf.tensor2d(x, [R, D]), tf.tensor1d(w), tf.tensor1d(b)];
    const kernels = async (f: () => tf.Tensor) => (await tf.profile(() => tf.keep(f()))).kernelNames;
    expect(await kernels(() => layerNorm(xt, wt, bt, 1e-5))).toContain(WASM_LAYERNORM_KERNEL);
    expect(await kernels(() => geluNew(xt))).toContain(WASM_GELU_KERNEL);
    const wv = tf.variable(wt);
    expect(await kernels(() => layerNorm(xt, wv, bt, 1e-5))).not.toContain(WASM_LAYERNORM_KERNEL);
    const { grads } = tf.variableGrads(() => tf.sum(layerNorm(xt, wv, bt, 1e-5)), [wv]);
    expect(grads[wv.name].shape).toEqual([D]);
    tf.dispose([xt, wt, bt, wv, grads[wv.name]]);
  });

  /** silu(g) · u and its gradients in float64, with σ(g) (for the bound on dg). */
  function siluMulReference(g: Float32Array, u: Float32Array, dy: Float32Array) {
    const n = g.length;
    const [y, dg, du, s] = [0, 1, 2, 3].map(() => new Float64Array(n));
    for (let i = 0; i < n; i++) {
      s[i] = 1 / (1 + Math.exp(-g[i]));
      y[i] = g[i] * s[i] * u[i];
      dg[i] = dy[i] * u[i] * s[i] * (1 + g[i] * (1 - s[i]));
      du[i] = dy[i] * g[i] * s[i];
    }
    return { y, dg, du, s };
  }

  /** g over [-8, 8], every fifth over [-100, 100], with exact edges (dg's zero near −1.2785); u over [-1, 1]. */
  const siluInputs = (n: number) => {
    const edges = [0, -0, 100, -100, 8, -8, 88.3, -88.3, 87.3, -87.3, -1.2785, 1e-20, -1e-20, 30, -30];
    return Float32Array.from({ length: n }, (_, i) =>
      i < edges.length && n > 20 ? edges[i] : (i % 5 === 4 ? 100 : 8) * (2 * rng.uniform() - 1),
    );
  };
  const SILU_D = [1, 3, 7, 172, 1536];

  it('silu(g)·u: value and both gradients equal a float64 reference, every element count mod 4, |g| up to 100', async () => {
    // y and du: |got − want| <= 1e-6 · |want| + 1e-30; dg: <= 1e-6 · max(|want|, |dy · u · σ(g)|) + 1e-30 (its factor
    // 1 + g · (1 − σ) crosses zero at g ≈ −1.28, where the absolute error of g · (1 − σ) is the measure). The 1e-30
    // is the kernel's σ = 0 from g = −88.3 down (true g · σ(g) there is below 1e-36).
    let worst = 0;
    for (const D of SILU_D)
      for (const R of ELTWISE_R) {
        const g = siluInputs(R * D),
          u = randData(R * D),
          dy = randData(R * D);
        const [gt, ut, dyt] = [g, u, dy].map((v) => tf.tensor2d(v, [R, D]));
        const before = tf.memory().numTensors;
        const y = wasmSiluMul(gt, ut);
        expect(tf.memory().numTensors).toBe(before + 1);
        const [dg, du] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(wasmSiluMul(a, b), dyt)))([gt, ut]);
        expect(tf.memory().numTensors).toBe(before + 3);
        const want = siluMulReference(g, u, dy);
        const [gy, gdg, gdu] = [await y.data(), await dg.data(), await du.data()];
        for (let i = 0; i < g.length; i++) {
          const scale = [
            Math.abs(want.y[i]),
            Math.max(Math.abs(want.dg[i]), Math.abs(dy[i] * u[i] * want.s[i])),
            Math.abs(want.du[i]),
          ];
          const got = [gy[i], gdg[i], gdu[i]],
            ref = [want.y[i], want.dg[i], want.du[i]];
          for (let k = 0; k < 3; k++) {
            const e = Math.abs(got[k] - ref[k]) / (scale[k] + 1e-24);
            if (scale[k] > 1e-20) worst = Math.max(worst, e);
            if (!(Math.abs(got[k] - ref[k]) <= 1e-6 * scale[k] + 1e-30))
              expect.fail(`${R} x ${D}, g = ${g[i]}, u = ${u[i]}: ${['y', 'dg', 'du'][k]} ${got[k]} (want ${ref[k]})`);
          }
        }
        tf.dispose([gt, ut, dyt, y, dg, du]);
        expect(tf.memory().numTensors).toBe(before - 3);
      }
    expect(worst).toBeGreaterThan(0); // (the measure itself)
  });

  it('silu(g)·u saturates to g·u and 0 (gradients to dy·u, dy·g and 0) for large |g|, with no NaN or Inf', () => {
    const g = [87.3, 88.3, 100, 1e4, 1e30, 3e38, -88.3, -100, -1e4, -1e30, -3e38];
    const before = tf.memory().numTensors;
    const [y, dg, du, nan] = tf.tidy(() => {
      const [gt, ut, dyt] = [tf.tensor1d(g), tf.fill([g.length], 0.5), tf.fill([g.length], 0.75)];
      return [
        wasmSiluMul(gt, ut),
        ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(wasmSiluMul(a, b), dyt)))([gt, ut]),
        wasmSiluMul(tf.tensor1d([NaN, 1, NaN]), tf.tensor1d([1, 1, 1])),
      ].map((t) => t.dataSync() as Float32Array);
    });
    expect(tf.memory().numTensors).toBe(before);
    const pos = (v: number) => v > 0;
    expect(Array.from(y)).toEqual(g.map((v) => (pos(v) ? Math.fround(Math.fround(v) * 0.5) : -0)));
    expect(Array.from(dg)).toEqual(g.map((v) => (pos(v) ? 0.375 : 0)));
    expect(Array.from(du)).toEqual(g.map((v) => (pos(v) ? Math.fround(Math.fround(v) * 0.75) : -0)));
    expect([Number.isNaN(nan[0]), Math.abs(nan[1] - 0.7310586) < 1e-6, Number.isNaN(nan[2])]).toEqual([
      true,
      true,
      true,
    ]);
  });

  for (const [layout, hd] of [
    ['half', 16],
    ['half', 6],
    ['interleaved', 8],
    ['none', 5],
  ] as const) {
    it(`headsOf: RoPE (${layout}, head_dim ${hd}) with the head transpose is one kernel each way and equals the cpu's ops, value and gradient`, async () => {
      const [B, T, n] = [2, 5, 3];
      const x = randData(B * T * n * hd),
        dy = randData(B * T * n * hd);
      // angles of positions up to 40 (some rows far from 0), per batch item its own
      const ang = Float32Array.from({ length: B * T * hd }, (_, i) => (i % 7) * 5.3 + 0.1 * i);
      const run = () => {
        const [xt, dyt] = [tf.tensor2d(x, [B * T, n * hd]), tf.tensor4d(dy, [B, n, T, hd])];
        const half = Math.floor(hd / 2);
        const cos = tf.tensor4d(ang.slice(0, B * T * half).map(Math.cos), [B, 1, T, half]),
          sin = tf.tensor4d(ang.slice(0, B * T * half).map(Math.sin), [B, 1, T, half]);
        const heads = headsOf(layout === 'none' ? null : { cos, sin, layout }, B, T, hd);
        const f = (v: tf.Tensor) => heads(v as tf.Tensor2D, n, layout !== 'none');
        const out = tf.tidy(() =>
          [f(xt), tf.grad((v: tf.Tensor) => tf.sum(tf.mul(f(v), dyt)))(xt)].map((t) => ({
            shape: t.shape,
            data: t.dataSync() as Float32Array,
          })),
        );
        tf.dispose([xt, dyt, cos, sin]);
        return out;
      };
      const before = tf.memory().numTensors;
      const ours = run();
      expect(tf.memory().numTensors).toBe(before);
      await initBackend('cpu');
      let theirs: typeof ours;
      try {
        theirs = run();
      } finally {
        await initBackend('wasm');
      }
      for (let i = 0; i < 2; i++) {
        expect(ours[i].shape).toEqual(theirs[i].shape);
        expect(rowRelativeError(ours[i].data, theirs[i].data, hd), i ? 'gradient' : 'value').toBeLessThan(1e-6);
      }
      expect(ours[0].shape).toEqual([B, n, T, hd]);
      // the value is x's head h of token t at [b, h, t] (the transpose), turned: its norm per pair is kept
      const norm = (v: ArrayLike<number>, at: number) => Math.hypot(...Array.from({ length: hd }, (_, j) => v[at + j]));
      const [b, t, h] = [1, 3, 2];
      expect(norm(ours[0].data, ((b * n + h) * T + t) * hd)).toBeCloseTo(norm(x, ((b * T + t) * n + h) * hd), 5);
      // one kernel each way: no reshape, transpose or RoPE ops
      const xt = tf.tensor2d(x, [B * T, n * hd]);
      const heads = headsOf(null, B, T, hd);
      const kernels = (f: () => tf.Tensor) => {
        const timing = startKernelTiming();
        tf.dispose(f());
        return timing.stop().map((k) => `${k.kernel} ${k.calls}`);
      };
      expect(kernels(() => heads(xt, n, false))).toEqual([`${WASM_ROPE_HEADS_KERNEL} 1`]);
      const dx = kernels(() => tf.grad((v: tf.Tensor) => heads(v as tf.Tensor2D, n, false))(xt));
      expect(dx.filter((k) => k !== 'OnesLike 1')).toEqual([`${WASM_ROPE_HEADS_KERNEL} 2`]);
      xt.dispose();
    });
  }

  for (const { M, outIn, extra, dropout } of [
    { M: 5, outIn: true, extra: 'none', dropout: false },
    { M: 37, outIn: true, extra: 'none', dropout: false },
    { M: 37, outIn: true, extra: 'residual', dropout: false },
    { M: 37, outIn: false, extra: 'bias', dropout: true },
    { M: 20, outIn: false, extra: 'none', dropout: true },
  ] as const) {
    it(`loraLinear (M ${M}, ${outIn ? 'nn.Linear' : 'Conv1D'}, ${extra}${dropout ? ', dropout' : ''}) is one kernel each way and equals the plain ops on cpu, value and every gradient`, async () => {
      // in and out ≥ 32 (the cache-blocked product from 16 rows), r below (the tiled one)
      const [n, out, r, s] = [40, 48, 3, 1.75];
      const data = {
        x: randData(M * n),
        W: randData(out * n),
        A: randData(r * n),
        B: randData(out * r),
        bias: randData(out),
        res: randData(M * out),
        keep: Float32Array.from({ length: M * n }, (_, i) => (i % 3 === 0 ? 0 : 1.5)),
        dy: randData(M * out),
      };
      const run = (fused: boolean) => {
        const t = {
          x: tf.tensor2d(data.x, [M, n]),
          W: tf.tensor2d(data.W, outIn ? [out, n] : [n, out]),
          A: tf.tensor2d(data.A, [r, n]),
          B: tf.tensor2d(data.B, [out, r]),
          bias: tf.tensor1d(data.bias),
          res: tf.tensor2d(data.res, [M, out]),
          keep: tf.tensor2d(data.keep, [M, n]),
          dy: tf.tensor2d(data.dy, [M, out]),
        };
        const bias = extra === 'bias' ? t.bias : null;
        const f = (x: tf.Tensor, A: tf.Tensor, B: tf.Tensor, res: tf.Tensor) => {
          const xin = dropout ? (tf.mul(x, t.keep) as tf.Tensor2D) : null;
          const residual = extra === 'residual' ? (res as tf.Tensor2D) : null;
          if (fused)
            return loraLinear(
              x as tf.Tensor2D,
              t.W,
              outIn,
              { A: A as tf.Tensor2D, B: B as tf.Tensor2D, scaling: s, xin },
              bias,
              residual,
            );
          let y = tf.matMul(x, t.W, false, outIn);
          if (bias) y = tf.add(y, bias);
          if (residual) y = tf.add(y, residual);
          return tf.add(y, tf.mul(tf.matMul(tf.matMul(xin ?? x, A, false, true), B, false, true), s));
        };
        const out2 = tf.tidy(() =>
          [
            f(t.x, t.A, t.B, t.res),
            // (the residual's gradient only where it is added)
            ...tf.grads((x: tf.Tensor, A: tf.Tensor, B: tf.Tensor, res?: tf.Tensor) =>
              tf.sum(tf.mul(f(x, A, B, res ?? t.res), t.dy)),
            )(extra === 'residual' ? [t.x, t.A, t.B, t.res] : [t.x, t.A, t.B]),
          ].map((v) => v.dataSync() as Float32Array),
        );
        tf.dispose(Object.values(t));
        return out2;
      };
      const before = tf.memory().numTensors;
      const ours = run(true);
      expect(tf.memory().numTensors).toBe(before);
      await initBackend('cpu');
      let theirs: Float32Array[];
      try {
        theirs = run(false);
      } finally {
        await initBackend('wasm');
      }
      const names = ['y', 'dx', 'dA', 'dB', 'dresidual'];
      const width = [out, n, n, r, out];
      for (let i = 0; i < (extra === 'residual' ? 5 : 4); i++)
        expect(rowRelativeError(ours[i], theirs[i], width[i]), names[i]).toBeLessThan(1e-5);
      // one kernel each way (and the gradient of the residual passed on)
      const x = tf.tensor2d(data.x, [M, n]),
        W = tf.tensor2d(data.W, outIn ? [out, n] : [n, out]),
        A = tf.tensor2d(data.A, [r, n]),
        B = tf.tensor2d(data.B, [out, r]);
      const timing = startKernelTiming();
      tf.dispose(
        tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          loraLinear(x, W, outIn, { A: a as tf.Tensor2D, B: b as tf.Tensor2D, scaling: s, xin: null }, null, null),
        )([A, B]),
      );
      const kernels = timing.stop().filter((k) => k.kernel.startsWith('Webtune'));
      expect(kernels.map((k) => `${k.kernel} ${k.calls}`).sort()).toEqual([
        `${WASM_LORA_LINEAR_KERNEL} 1`,
        `${WASM_LORA_LINEAR_GRAD_KERNEL} 1`,
      ]);
      tf.dispose([x, W, A, B]);
    });
  }

  it("clones share their input's buffer on wasm (Identity counts a reference): saved tensors cost no copy", () => {
    const x = tf.tensor2d(randData(64 * 64), [64, 64]);
    const bytes = tf.memory().numBytes;
    const be = tf.backend() as unknown as { getMemoryOffset(id: object): number };
    const c = tf.clone(x);
    expect(be.getMemoryOffset(c.dataId)).toBe(be.getMemoryOffset(x.dataId));
    // the buffer lives as long as either tensor: disposing x leaves the clone's values intact
    const want = x.dataSync().slice();
    x.dispose();
    expect(c.dataSync()).toEqual(want);
    c.dispose();
    expect(tf.memory().numBytes).toBe(bytes - 4 * 64 * 64);
  });

  it('siluMul takes the kernels on wasm and agrees with its tfjs ops on cpu, value and gradients', async () => {
    const [R, D] = [5, 173];
    const g = siluInputs(R * D),
      u = randData(R * D),
      dy = randData(R * D);
    const run = () => {
      const [gt, ut, dyt] = [g, u, dy].map((v) => tf.tensor2d(v, [R, D]));
      const out = tf.tidy(() =>
        [
          siluMul(gt, ut),
          ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(siluMul(a, b), dyt)))([gt, ut]),
        ].map((t) => t.dataSync() as Float32Array),
      );
      tf.dispose([gt, ut, dyt]);
      return out;
    };
    const before = tf.memory().numTensors;
    const ours = run();
    expect(tf.memory().numTensors).toBe(before);
    await initBackend('cpu');
    let theirs: Float32Array[];
    try {
      expect(wasmKernelsAvailable()).toBe(false);
      theirs = run();
    } finally {
      await initBackend('wasm');
    }
    const names = ['siluMul', "siluMul's dg", "siluMul's du"];
    for (let i = 0; i < 3; i++) {
      expect(rowRelativeError(ours[i], theirs[i], D), names[i]).toBeLessThan(1e-6);
    }
    const [gt, ut] = [tf.tensor2d(g, [R, D]), tf.tensor2d(u, [R, D])];
    const kernels = async (f: () => tf.Tensor) => (await tf.profile(() => tf.keep(f()))).kernelNames;
    const names1 = await kernels(() => siluMul(gt, ut));
    expect(names1).toContain(WASM_SILU_MUL_KERNEL);
    expect(names1).not.toContain('Sigmoid');
    const names2 = await kernels(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(siluMul(a, b)))([gt, ut])[0]);
    expect(names2).toContain(WASM_SILU_MUL_GRAD_KERNEL);
    expect(names2).not.toContain('Sigmoid');
    tf.dispose([gt, ut]);
  });
});
