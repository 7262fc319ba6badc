/**
 * The backend check in real Chromium: production build under its CSP, the engine worker, all four
 * backends, and every gradient case compared with cpu.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProbeTable } from '../../src/engine/kernel-probe';
import type { BackendProbeReport } from '../../src/worker/engine.worker';
import {
  ARTIFACTS,
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  cspViolations,
  foreignRequests,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

describe.skipIf(!HAVE_CHROMIUM)('backend check in Chromium (production build)', () => {
  let app: AppServer;
  let session: BrowserSession;
  let report: BackendProbeReport;

  beforeAll(async () => {
    app = await startApp('preview');
    session = await launchBrowser();
  });

  afterAll(async () => {
    session?.saveLog('backends');
    await session?.close();
    await app?.close();
  });

  it('runs the backend check from the page through the engine worker', async () => {
    const { page } = session;
    await page.goto(app.url);
    await expect(page.title()).resolves.toBe('webtune');
    await page.getByRole('button', { name: 'Backend check' }).click();
    await page.locator('[data-testid=probe-result], [data-testid=probe-error]').first().waitFor({ timeout: 240_000 });
    await session.screenshot('backends');
    const error = await page
      .locator('[data-testid=probe-error]')
      .textContent({ timeout: 1 })
      .catch(() => null);
    expect(error).toBeNull();
    report = (await page.evaluate(() => window.webtune.lastProbe))!;
    expect(report).toBeTruthy();
    writeFileSync(path.join(ARTIFACTS, 'backends-report.json'), JSON.stringify(report, null, 2));
    console.log(
      `Backend check in ${report.userAgent} (${(report.ms / 1000).toFixed(1)} s)\n` +
        `WebGPU adapter: ${JSON.stringify(report.webgpuAdapter)}\n` +
        `Gradients vs cpu (tolerance ${report.tolerance}):\n${formatProbeTable(report)}`,
    );
  }, 300_000);

  it('is cross-origin isolated and loads nothing from outside the app, with no CSP violation', () => {
    expect(report.crossOriginIsolated).toBe(true);
    expect(foreignRequests(session.requests, app.url)).toEqual([]);
    // The worker fetched a wasm binary from the app's own /tfjs-wasm/.
    expect(
      session.requests.some(
        (r) => /\/tfjs-wasm\/tfjs-backend-wasm(-simd|-threaded-simd)?\.wasm$/.test(r.url) && r.status === 200,
      ),
    ).toBe(true);
    expect(cspViolations(session.console)).toEqual([]);
    expect(session.pageErrors).toEqual([]);
  });

  it('finds a SwiftShader WebGPU adapter and initialises all four backends', () => {
    expect(report.webgpuAdapter.available, report.webgpuAdapter.reason).toBe(true);
    expect(report.webgpuAdapter.info?.architecture).toBe('swiftshader');
    const backend = (name: string) => report.backends.find((b) => b.backend === name);
    for (const name of ['webgpu', 'webgl', 'wasm', 'cpu']) {
      expect(backend(name)?.available, `${name}: ${backend(name)?.reason}`).toBe(true);
    }
    expect(backend('wasm')?.flags.WASM_HAS_SIMD_SUPPORT).toBe(true);
  });

  it('every gradient a backend computes matches cpu within tolerance', () => {
    const mismatches = report.backends.flatMap((b) =>
      b.grads.filter((g) => g.status === 'mismatch').map((g) => `${b.backend} / ${g.name}: ${g.maxAbsDiff}`),
    );
    expect(mismatches).toEqual([]);
  });

  it('webgpu and webgl compute every gradient cpu computes', () => {
    const errors = (name: string) =>
      report.backends
        .find((b) => b.backend === name)!
        .grads.filter((g) => g.status === 'error')
        .map((g) => g.name);
    expect(errors('webgpu')).toEqual(errors('cpu'));
    expect(errors('webgl')).toEqual(errors('cpu'));
  });

  it('explains every other gradient failure by a kernel the backend lacks', () => {
    const cpu = report.backends.find((b) => b.backend === 'cpu')!;
    const cpuErrors = new Set(cpu.grads.filter((g) => g.status === 'error').map((g) => g.name));
    for (const b of report.backends.filter((x) => x.available && x.backend !== 'cpu')) {
      const unexplained = b.grads
        .filter((g) => g.status === 'error' && !cpuErrors.has(g.name) && g.missingKernels.length === 0)
        .map((g) => `${g.name}: ${g.error}`);
      expect(unexplained, b.backend).toEqual([]);
    }
  });
});

if (!HAVE_CHROMIUM) it.skip(`backend check in Chromium: ${CHROMIUM_MISSING}`, () => {});
