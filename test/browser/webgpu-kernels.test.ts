/**
 * Our WGSL kernels (src/engine/webgpu-kernels.ts) in real Chromium on its SwiftShader WebGPU adapter, through the
 * engine worker of the production build: each fused op against the plain ops on cpu within 1e-4 relative, forward
 * and gradient (the fused AdamW step: its parameters, moments and refusals after five steps), and the whole-model
 * LoRA gradients on webgpu (which now run them) still match cpu.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

describe.skipIf(!HAVE_CHROMIUM)('WGSL kernels in Chromium (SwiftShader WebGPU)', () => {
  let app: AppServer;
  let session: BrowserSession;

  beforeAll(async () => {
    app = await startApp('preview');
    session = await launchBrowser();
    await session.page.goto(`${app.url}?watchdog=600000`);
    await session.page.getByTestId('backend-info').waitFor({ timeout: 120_000 });
  }, 300_000);

  afterAll(async () => {
    session?.saveLog('webgpu-kernels');
    await session?.close();
    await app?.close();
  });

  it('matches the plain ops on cpu within 1e-4 relative, forward and gradient, on llama/gemma3/gpt2 shapes', async () => {
    const tensors = () => session.page.evaluate(async () => (await window.webtune.engine().memory()).numTensors);
    const before = await tensors();
    const report = await session.page.evaluate(() => window.webtune.engine().checkWebgpuKernels());
    const fmt = (x: number | undefined) => (x === undefined ? '-' : x.toExponential(2));
    console.log(
      `WGSL kernels vs cpu (max elementwise relative error, tolerance ${report.tolerance}):\n` +
        report.checks
          .map(
            (c) =>
              `${c.name.padEnd(44)} forward ${fmt(c.forward)}  grad ${fmt(c.grad)}  fused programs ${c.fusedPrograms}` +
              (c.error ? `  ERROR ${c.error}` : ''),
          )
          .join('\n'),
    );
    expect(report.checks.length).toBeGreaterThan(0);
    for (const c of report.checks) expect(c.ok, `${c.name}: ${c.error ?? JSON.stringify(c)}`).toBe(true);
    expect(await tensors(), 'tensors leaked').toBe(before);
  }, 600_000);

  it('computes the whole-model LoRA gradients on webgpu like cpu (the kernels in place)', async () => {
    const report = await session.page.evaluate(() =>
      window.webtune.engine().probeBackends({ backends: ['webgpu', 'cpu'] }),
    );
    const webgpu = report.backends.find((b) => b.backend === 'webgpu')!;
    expect(webgpu.available, webgpu.reason).toBe(true);
    const lora = webgpu.grads.filter((g) => g.name.startsWith('LoRA'));
    expect(lora.length).toBeGreaterThan(0);
    for (const g of lora) expect(g.status, `${g.name}: ${g.error ?? g.maxAbsDiff}`).toBe('ok');
    console.log(lora.map((g) => `${g.name}: max |diff| ${g.maxAbsDiff}`).join('\n'));
  }, 600_000);
});

if (!HAVE_CHROMIUM) it.skip(`WGSL kernels in Chromium: ${CHROMIUM_MISSING}`, () => {});
