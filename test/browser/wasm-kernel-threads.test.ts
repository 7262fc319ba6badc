/**
 * The wasm kernels' helper threads (src/engine/wasm-kernel-threads.ts) in real Chromium, on their own (the dev server
 * serves the module; a shared WebAssembly.Memory of the test's own): products of many shapes in a row, each checked
 * against a float64 reference, with a helper that sleeps between reading a job and claiming its blocks. A helper that
 * wakes late must claim nothing of the product it read (all its blocks are taken) and never take a block of a later
 * product (it would run it with the parameters it read, and the block would be missing from that product).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WASM_KERNELS_BINARY } from '../../src/engine/wasm-kernels-binary';
import type * as ThreadsModuleNs from '../../src/engine/wasm-kernel-threads';
import {
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

type ThreadsModule = typeof ThreadsModuleNs;

interface Outcome {
  worst: number;
  products: number;
  ready: number;
  callerBlocks: number;
  totalBlocks: number;
  failure?: string;
}

describe.skipIf(!HAVE_CHROMIUM)('wasm kernel helper threads in Chromium', () => {
  let app: AppServer;
  let session: BrowserSession;

  beforeAll(async () => {
    app = await startApp('dev');
    session = await launchBrowser();
    await session.page.goto(app.url);
    // the dev server serves the module as the engine imports it (a string: vitest would rewrite an import() in code)
    await session.page.evaluate(
      "import('/src/engine/wasm-kernel-threads.ts').then((m) => { window.kernelThreadsModule = m; })",
    );
  });

  afterAll(async () => {
    session?.saveLog('wasm-kernel-threads');
    await session?.close();
    await app?.close();
  });

  /** The kernels as Chromium runs them (relaxed SIMD's fused multiply-adds), and as engines without relaxed SIMD do. */
  const BUILDS = ['relaxed', 'simd'] as const;
  type Build = (typeof BUILDS)[number];

  const run = (build: Build, lateMs: number) =>
    session.page.evaluate(
      async ({ b64, lateMs }): Promise<Outcome> => {
        const { KernelThreads, GEMM, BATCHED } = (window as unknown as { kernelThreadsModule: ThreadsModule })
          .kernelThreadsModule;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const module = new WebAssembly.Module(bytes);
        const memory = new WebAssembly.Memory({ initial: 2048, maximum: 65536, shared: true });
        const k = new WebAssembly.Instance(module, { env: { memory } }).exports as never;
        const pool = new KernelThreads(module, memory, 1, k, lateMs);
        await pool.started;
        const f = new Float32Array(memory.buffer);
        let seed = 7;
        const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
        let top = 0;
        const alloc = (floats: number) => {
          const at = top;
          top += 4 * floats + 64;
          return at;
        };
        // [N, M, K, P]: N = 1 is a 2-D product (blocked), N > 1 a batch; small ones end within a late helper's nap,
        // big ones outlast it. Each round runs its products back to back (a late helper wakes inside a later one),
        // then checks them all.
        const shapes = [
          [1, 256, 512, 1024],
          [1, 16, 40, 70],
          [3, 5, 7, 9],
          [1, 20, 33, 130],
          [48, 128, 64, 128],
          [1, 17, 64, 64],
          [1, 128, 300, 520],
          [40, 96, 32, 100],
          // a product shorter than the nap (~1 ms) then one far longer (~25 ms): a helper that read the first wakes
          // inside the second, with blocks still to claim
          [1, 128, 256, 512],
          [1, 512, 512, 2048],
          [1, 128, 256, 512],
          [64, 128, 128, 256],
        ];
        let worst = 0,
          products = 0;
        for (let round = 0; round < 3; round++) {
          top = 0;
          const S = alloc(2 * 256 * 64);
          const done = shapes.map(([N, M, K, P]) => {
            const A = alloc(N * M * K),
              B = alloc(N * K * P),
              C = alloc(N * M * P);
            for (let i = 0; i < N * M * K; i++) f[A / 4 + i] = rnd();
            for (let i = 0; i < N * K * P; i++) f[B / 4 + i] = rnd();
            // the second round's 2-D products add onto c (gemm_block's acc): c starts at 0.25 there
            const acc = round === 1 && N === 1 ? 1 : 0;
            f.fill(acc ? 0.25 : NaN, C / 4, C / 4 + N * M * P);
            // in chunks of 200 rows (the last one shorter)
            if (N === 1)
              pool.run(
                [GEMM, A, B, C, M, K, P, K, 1, P, 1, S, Math.min(K, 256) * 64 * 4, 64, acc, 200],
                Math.ceil(P / 64) * Math.ceil(M / 200),
              );
            else {
              const perBlock = Math.ceil(N / 8);
              pool.run([BATCHED, A, B, C, M, K, P, M * K, K, 1, K * P, perBlock, N, 0], Math.ceil(N / perBlock));
            }
            return { N, M, K, P, A, B, C, acc };
          });
          for (const { N, M, K, P, A, B, C, acc } of done) {
            for (let n = 0; n < N; n++)
              for (let i = 0; i < M; i += 5)
                for (let j = 0; j < P; j++) {
                  let s = acc * 0.25;
                  for (let q = 0; q < K; q++) s += f[A / 4 + n * M * K + i * K + q] * f[B / 4 + n * K * P + q * P + j];
                  const got = f[C / 4 + n * M * P + i * P + j];
                  worst = Math.max(worst, Number.isNaN(got) ? Infinity : Math.abs(s - got));
                }
            products++;
          }
        }
        const out = {
          worst,
          products,
          ready: pool.ready,
          callerBlocks: pool.callerBlocks,
          totalBlocks: pool.totalBlocks,
          failure: pool.failure,
        };
        pool.dispose();
        return out;
      },
      { b64: WASM_KERNELS_BINARY[build].shared, lateMs },
    );

  for (const build of BUILDS)
    for (const lateMs of build === 'relaxed' ? [0, 10] : [0])
      it(`${build}: every product equals the reference, and the helper takes blocks${lateMs ? `, when it wakes ${lateMs} ms late each time` : ''}`, async () => {
        const r = await run(build, lateMs);
        expect(r.failure).toBeUndefined();
        expect(r.ready).toBe(1);
        expect(r.products).toBe(36);
        expect(r.worst).toBeLessThan(1e-4);
        // the helper ran some blocks (the big products outlast its nap), the caller the rest
        expect(r.callerBlocks).toBeGreaterThan(0);
        expect(r.callerBlocks).toBeLessThan(r.totalBlocks);
      }, 120_000);

  for (const build of BUILDS)
    it(`${build}: runs causal attention's batched products (matmul's modes 1-3) across the threads like the whole products`, async () => {
      const r = await session.page.evaluate(
        async ({ b64 }) => {
          const { KernelThreads, BATCHED } = (window as unknown as { kernelThreadsModule: ThreadsModule })
            .kernelThreadsModule;
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const module = new WebAssembly.Module(bytes);
          const memory = new WebAssembly.Memory({ initial: 2048, maximum: 65536, shared: true });
          const k = new WebAssembly.Instance(module, { env: { memory } }).exports as never;
          const pool = new KernelThreads(module, memory, 1, k, 0);
          await pool.started;
          const f = new Float32Array(memory.buffer);
          let seed = 5;
          const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
          // N items of G = 2 heads x T = 16 queries, S = 20 keys (4 cached), head_dim 8
          const [N, G, T, past, hd] = [12, 2, 16, 4, 8];
          const S = T + past,
            M = G * T;
          const sees = (row: number, s: number) => s <= (row % T) + past;
          let top = 0;
          const alloc = (n: number, fill: (i: number) => number) => {
            const at = top;
            for (let i = 0; i < n; i++) f[at / 4 + i] = fill(i);
            top += 4 * n + 64;
            return at;
          };
          const p = alloc(N * M * S, (i) => (sees(Math.floor(i / S) % M, i % S) ? rnd() : 0));
          const q = alloc(N * M * hd, rnd),
            kT = alloc(N * hd * S, rnd),
            v = alloc(N * S * hd, rnd),
            d = alloc(N * M * hd, rnd);
          // [mode, a, b, M, K, P, aRow, aCol, a's floats per item, b's]
          const jobs = [
            [1, q, kT, M, hd, S, hd, 1, M * hd, hd * S],
            [2, p, v, M, S, hd, S, 1, M * S, S * hd],
            [3, p, d, S, M, hd, 1, S, M * S, M * hd],
          ];
          let worst = 0;
          for (const [mode, a, b, m, kk, pp, aRow, aCol, aItem, bItem] of jobs) {
            const c = alloc(N * m * pp, () => NaN);
            pool.run([BATCHED, a, b, c, m, kk, pp, aItem, aRow, aCol, bItem, 3, N, 0, mode, T, past], 4);
            for (let n = 0; n < N; n++)
              for (let i = 0; i < m; i++)
                for (let j = 0; j < pp; j++) {
                  if (mode === 1 && !sees(i, j)) continue;
                  let sum = 0;
                  for (let t = 0; t < kk; t++)
                    sum += f[a / 4 + n * aItem + i * aRow + t * aCol] * f[b / 4 + n * bItem + t * pp + j];
                  const got = f[c / 4 + n * m * pp + i * pp + j];
                  worst = Math.max(worst, Number.isNaN(got) ? Infinity : Math.abs(sum - got));
                }
          }
          const out = { worst, callerBlocks: pool.callerBlocks, totalBlocks: pool.totalBlocks, failure: pool.failure };
          pool.dispose();
          return out;
        },
        { b64: WASM_KERNELS_BINARY[build].shared },
      );
      expect(r.failure).toBeUndefined();
      expect(r.worst).toBeLessThan(1e-5);
      expect(r.totalBlocks).toBe(12);
    }, 120_000);

  it('runs every row kernel split in blocks of rows across the threads, bit for bit as in one call', async () => {
    const r = await session.page.evaluate(
      async ({ b64 }) => {
        const { KernelThreads, ROW_KERNELS, rowParams } = (window as unknown as { kernelThreadsModule: ThreadsModule })
          .kernelThreadsModule;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const module = new WebAssembly.Module(bytes);
        const memory = new WebAssembly.Memory({ initial: 2048, maximum: 65536, shared: true });
        const k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Record<
          string,
          (...a: number[]) => void
        >;
        const pool = new KernelThreads(module, memory, 1, k as never, 0);
        await pool.started;
        const f = new Float32Array(memory.buffer);
        const i32 = new Int32Array(memory.buffer);
        let seed = 11;
        const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
        let top = 0;
        const alloc = (floats: number) => {
          const at = top;
          top += 4 * floats + 64;
          return at;
        };
        // R rows of S (rows of 4·S bytes; 1 row of 4 bytes per element for the element-wise kernels)
        const R = 301,
          S = 77;
        const rowsOf = (rows: number, width: number) => {
          const at = alloc(rows * width);
          for (let i = 0; i < rows * width; i++) f[at / 4 + i] = rnd() * 4;
          return at;
        };
        // k arrays of n floats, element-wise kernels' operands (4 bytes per element)
        const elems = (k: number) => Array.from({ length: k }, (): [number, number] => [rowsOf(n, 1), 4]);
        const targets = alloc(R);
        for (let r = 0; r < R; r++) i32[targets / 4 + r] = (r * 13) % S;
        const positive = (at: number, n: number) => {
          for (let i = 0; i < n; i++) f[at / 4 + i] = Math.abs(f[at / 4 + i]) + 0.01;
          return at;
        };
        const n = R * S;
        // per kernel: its inputs ([pointer, bytes per row]), outputs (pointer, floats), count and extras
        // (after: pointers after the outputs, as attn_softmax's first row)
        type Case = {
          ins: [number, number][];
          outs: [number, number][];
          after?: [number, number][];
          count: number;
          extras: number[];
        };
        // attention: 2 batch items of 147 rows (T = 7) of S scores, the bias [2, 7, S] hiding each row's last 7 - t
        const Ra = 294;
        const attnBias = alloc(2 * 7 * S);
        for (let i = 0; i < 2 * 7 * S; i++) f[attnBias / 4 + i] = i % S > S - 7 + (Math.floor(i / S) % 7) ? -1e9 : 0;
        const row = 4 * S;
        const cases: Record<string, Case> = {
          attn_softmax: {
            ins: [
              [rowsOf(Ra, S), row],
              [attnBias, 0],
            ],
            outs: [[row, Ra * S]],
            after: [[0, 1]],
            count: Ra,
            extras: [S, 0.3, 7, 147],
          },
          softmax_grad: {
            ins: [
              [positive(rowsOf(R, S), n), row],
              [rowsOf(R, S), row],
            ],
            outs: [[row, n]],
            count: R,
            extras: [S, 0.7],
          },
          ce_grad: {
            ins: [
              [positive(rowsOf(R, S), n), row],
              [rowsOf(R, 1), 4],
              [targets, 4],
            ],
            outs: [[row, n]],
            count: R,
            extras: [S],
          },
          ce_softmax: {
            ins: [
              [rowsOf(R, S), row],
              [targets, 4],
            ],
            outs: [
              [row, n],
              [16, 4 * R],
            ],
            count: R,
            extras: [S],
          },
          rmsnorm_fwd: {
            ins: [
              [rowsOf(R, S), row],
              [rowsOf(1, S), 0],
            ],
            outs: [[row, n]],
            count: R,
            extras: [S, 1e-5, 1],
          },
          rmsnorm_bwd: {
            ins: [
              [rowsOf(R, S), row],
              [rowsOf(1, S), 0],
              [rowsOf(R, S), row],
            ],
            outs: [[row, n]],
            count: R,
            extras: [S, 1e-5, 0],
          },
          layernorm_fwd: {
            ins: [
              [rowsOf(R, S), row],
              [rowsOf(1, S), 0],
              [rowsOf(1, S), 0],
            ],
            outs: [[row, n]],
            count: R,
            extras: [S, 1e-5],
          },
          layernorm_bwd: {
            ins: [
              [rowsOf(R, S), row],
              [rowsOf(1, S), 0],
              [rowsOf(R, S), row],
            ],
            outs: [[row, n]],
            count: R,
            extras: [S, 1e-5],
          },
          // RoPE back to token rows (mode 4: rotate_half's inverse, 3 heads of 16) for 43 batch items of 7 tokens:
          // every address from the absolute row, as attn_softmax's first row
          rope_heads: {
            ins: [
              [rowsOf(R, 3 * 16), 0],
              [rowsOf(R, 8), 0],
              [rowsOf(R, 8), 0],
            ],
            outs: [[0, R * 3 * 16]],
            after: [[0, 1]],
            count: R,
            extras: [3, 16, 7, 4],
          },
          gelu_fwd: { ins: elems(1), outs: [[4, n]], count: n, extras: [] },
          gelu_bwd: { ins: elems(2), outs: [[4, n]], count: n, extras: [] },
          silu_mul_fwd: { ins: elems(2), outs: [[4, n]], count: n, extras: [] },
          silu_mul_bwd: {
            ins: elems(3),
            outs: [
              [4, n],
              [4, n],
            ],
            count: n,
            extras: [],
          },
        };
        const results: { name: string; differ: number; blocks: number; finite: boolean }[] = [];
        for (const name of ROW_KERNELS) {
          const c = cases[name];
          const once = c.outs.map(([, floats]) => alloc(floats));
          const split = c.outs.map(([, floats]) => alloc(floats));
          const after = c.after ?? [];
          k[name](...c.ins.map(([at]) => at), ...once, ...after.map(([at]) => at), c.count, ...c.extras);
          for (const [i, at] of split.entries()) f.fill(NaN, at / 4, at / 4 + c.outs[i][1]);
          // odd blocks: the last one is short (element-wise kernels: a multiple of 4 but the last)
          const perBlock = c.count === n ? 4 * 397 : 37;
          const before = pool.totalBlocks;
          const pointers: [number, number][] = [
            ...c.ins,
            ...split.map((at, i): [number, number] => [at, c.outs[i][0]]),
            ...after,
          ];
          pool.run(rowParams(name, pointers, c.count, perBlock, c.extras), Math.ceil(c.count / perBlock));
          let differ = 0,
            finite = true;
          for (const [i, [, floats]] of c.outs.entries())
            for (let j = 0; j < floats; j++) {
              const a = f[once[i] / 4 + j],
                b = f[split[i] / 4 + j];
              if (!Object.is(a, b)) differ++;
              if (!Number.isFinite(a)) finite = false;
            }
          results.push({ name, differ, blocks: pool.totalBlocks - before, finite });
        }
        const out = { results, callerBlocks: pool.callerBlocks, totalBlocks: pool.totalBlocks, failure: pool.failure };
        pool.dispose();
        return out;
      },
      { b64: WASM_KERNELS_BINARY.relaxed.shared },
    );
    expect(r.failure).toBeUndefined();
    expect(r.results.map((x) => x.name)).toHaveLength(13);
    for (const x of r.results) {
      expect(x, x.name).toMatchObject({ differ: 0, finite: true });
      expect(x.blocks, x.name).toBeGreaterThan(2);
    }
    expect(r.callerBlocks).toBeLessThan(r.totalBlocks);
  }, 120_000);

  it('threw no page error', () => {
    expect(session.pageErrors).toEqual([]);
  });
});

if (!HAVE_CHROMIUM) it.skip(`wasm kernel helper threads in Chromium: ${CHROMIUM_MISSING}`, () => {});
