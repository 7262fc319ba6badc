/**
 * The threaded wasm build in real Chromium: production build under its CSP, the engine worker starts tfjs-wasm's
 * threaded SIMD build on navigator.hardwareConcurrency threads, our kernels' helper threads start beside it, its LoRA
 * gradients and the threaded products match cpu, and a 1024³ matMul on 1 thread vs all of them shares its blocks
 * across the threads (the speed ratio is logged: the machine is shared, timings are noisy).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendStatus } from '../../src/worker/api';
import {
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  cspViolations,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

describe.skipIf(!HAVE_CHROMIUM)('threaded wasm in Chromium (production build)', () => {
  let app: AppServer;
  let session: BrowserSession;
  let cores = 1;

  beforeAll(async () => {
    app = await startApp('preview');
    session = await launchBrowser();
    await session.page.goto(app.url);
    await session.page.getByTestId('backend-info').waitFor({ timeout: 120_000 });
    cores = await session.page.evaluate(() => navigator.hardwareConcurrency);
  });

  afterAll(async () => {
    session?.saveLog('wasm-threads');
    await session?.close();
    await app?.close();
  });

  const status = () => session.page.evaluate(() => window.webtune.engine().backendStatus());

  it('starts the threaded SIMD build with navigator.hardwareConcurrency threads, shown beside the backend', async () => {
    const s = (await status())!;
    expect(s.backend).toBe('wasm');
    expect(s.wasmSimd).toBe(true);
    // our SIMD kernels run against the threaded build's shared memory
    expect(s.wasmKernels).toBe(true);
    // with relaxed SIMD's fused multiply-add in their products (Chromium has had it since 114)
    expect(s.wasmRelaxedSimd).toBe(true);
    expect(s.wasmThreadsNote).toBeUndefined();
    // and their large products on as many threads: the engine worker and its helpers, all started
    expect(s.wasmKernelThreads).toBe(Math.min(cores, 8));
    expect(s.wasmThreads).toBe(Math.min(cores, 8));
    if (cores > 1) expect(s.wasmThreads).toBeGreaterThan(1);
    expect(session.requests.some((r) => /tfjs-backend-wasm-threaded-simd\.wasm$/.test(r.url) && r.status === 200)).toBe(
      cores > 1,
    );
    await expect(session.page.getByTestId('wasm-threads').textContent()).resolves.toBe(` · ${s.wasmThreads} threads`);
  });

  it('computes every LoRA gradient like cpu on the threaded build', async () => {
    const report = await session.page.evaluate(() =>
      window.webtune.engine().probeBackends({ backends: ['wasm', 'cpu'] }),
    );
    const wasm = report.backends.find((b) => b.backend === 'wasm')!;
    expect(wasm.available, wasm.reason).toBe(true);
    const lora = wasm.grads.filter((g) => g.name.startsWith('LoRA'));
    expect(lora.length).toBeGreaterThan(0);
    for (const g of lora) expect(g.status, `${g.name}: ${g.error ?? g.maxAbsDiff}`).toBe('ok');
    expect(wasm.grads.filter((g) => g.status === 'mismatch')).toEqual([]);
    // the probe re-initialised wasm: still threaded
    expect((await status())!.wasmThreads).toBe(Math.min(cores, 8));
  }, 300_000);

  it('runs a 1024³ matMul on 1 thread and on all threads; the thread count follows the setting', async () => {
    const run = (threads: number) =>
      session.page.evaluate(async (threads) => {
        const engine = window.webtune.engine();
        const s: BackendStatus = await engine.setBackend('wasm', { threads });
        const [m] = await engine.bench({});
        const shared = m.kernel_threads as { threads: number; totalBlocks: number; callerBlocks: number };
        return { threads: s.wasmThreads, gflops: m.gflops as number, ms: m.ms as number, shared };
      }, threads);
    const one = await run(1);
    const all = await run(cores);
    expect(one.threads).toBe(1);
    expect(all.threads).toBe(Math.min(cores, 8));
    // the engine's product is ours, blocked: on one thread the caller runs every block, on all the helpers take some
    expect(one.shared.threads).toBe(1);
    if (cores > 1) {
      expect(all.shared.threads).toBe(all.threads);
      expect(all.shared.totalBlocks).toBeGreaterThan(0);
      expect(all.shared.callerBlocks).toBeLessThan(all.shared.totalBlocks);
    }
    const ratio = all.gflops / one.gflops;
    console.log(
      `1024³ matMul on wasm: 1 thread ${one.gflops} GFLOP/s (${one.ms} ms), ${all.threads} threads ${all.gflops} GFLOP/s (${all.ms} ms): x${ratio.toFixed(2)}`,
    );
    expect(ratio).toBeGreaterThan(0);
  }, 300_000);

  it('falls back to the single-threaded SIMD build, and says why, under a CSP without blob:', async () => {
    const page = await session.context.newPage();
    try {
      // the engine worker's own policy (its response header) governs the pthread workers it starts
      await page.route('**/assets/engine.worker-*.js', async (route) => {
        const res = await route.fetch();
        const csp = res.headers()['content-security-policy'];
        const strict = csp.replace(/(script-src|worker-src)([^;]*?) blob:/g, '$1$2');
        await route.fulfill({ response: res, headers: { ...res.headers(), 'content-security-policy': strict } });
      });
      await page.goto(app.url);
      await page.getByTestId('backend-info').waitFor({ timeout: 120_000 });
      const s = (await page.evaluate(() => window.webtune.engine().backendStatus()))!;
      expect(s.backend).toBe('wasm');
      expect(s.wasmThreads).toBe(1);
      if (cores > 1) expect(s.wasmThreadsNote).toMatch(/blob:/);
    } finally {
      await page.close();
    }
  }, 180_000);

  it('broke no CSP rule and threw no page error', () => {
    expect(cspViolations(session.console)).toEqual([]);
    expect(session.pageErrors).toEqual([]);
  });
});

if (!HAVE_CHROMIUM) it.skip(`threaded wasm in Chromium: ${CHROMIUM_MISSING}`, () => {});
