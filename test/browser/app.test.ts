/** The app under `npm run dev` in real Chromium: the page, isolation, the hub mirror and the engine worker. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_STORIES } from '../helpers';
import {
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  foreignRequests,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

describe.skipIf(!HAVE_CHROMIUM)('app in Chromium (dev server)', () => {
  let app: AppServer;
  let session: BrowserSession;

  beforeAll(async () => {
    app = await startApp('dev');
    session = await launchBrowser();
  });

  afterAll(async () => {
    session?.saveLog('app-dev');
    await session?.close();
    await app?.close();
  });

  it('shows the placeholder page, cross-origin isolated', async () => {
    const { page } = session;
    await page.goto(app.url);
    await expect(page.title()).resolves.toBe('webtune');
    await page.getByRole('heading', { name: 'webtune' }).waitFor();
    expect(await page.getByRole('button', { name: 'Backend check' }).isEnabled()).toBe(true);
    expect(await page.evaluate(() => self.crossOriginIsolated)).toBe(true);
    await session.screenshot('app-dev');
  });

  it.skipIf(!HAVE_STORIES)('fetches model files from the hub mirror', async () => {
    const sizes = await session.page.evaluate(async () => {
      const res = await fetch('/hub/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin');
      return { status: res.status, bytes: (await res.arrayBuffer()).byteLength };
    });
    expect(sizes).toEqual({ status: 200, bytes: 1056540 });
  });

  it('runs the engine worker on wasm with the binaries the dev server serves', async () => {
    const report = await session.page.evaluate(() => window.webtune.engine().probeBackends({ backends: ['wasm'] }));
    expect(report.crossOriginIsolated).toBe(true);
    const wasm = report.backends.find((b) => b.backend === 'wasm');
    expect(wasm?.available, wasm?.reason).toBe(true);
    expect(wasm?.grads.find((g) => g.name === 'matMul')?.status).toBe('ok');
    // The worker's request is reported by the browser asynchronously: give the event a moment to arrive.
    const served = () =>
      session.requests.some(
        (r) => /\/tfjs-wasm\/tfjs-backend-wasm[-a-z]*\.wasm$/.test(r.url) && (r.status === 200 || r.status === 304),
      );
    for (let i = 0; i < 50 && !served(); i++) await new Promise((res) => setTimeout(res, 100));
    expect(served(), JSON.stringify(session.requests.filter((r) => r.url.includes('wasm')))).toBe(true);
  }, 120_000);

  it('loads nothing from outside the app and throws no page error', () => {
    expect(foreignRequests(session.requests, app.url)).toEqual([]);
    expect(session.pageErrors).toEqual([]);
  });
});

if (!HAVE_CHROMIUM) it.skip(`app in Chromium: ${CHROMIUM_MISSING}`, () => {});
