/**
 * The class demo as a new user runs it, five times over, each time in a fresh browser: Automatic backend, every
 * default, Model → Data → Train → Compare (see the difference, evaluate base vs tuned). Each round asserts that the
 * page guides to the next step, that the run finishes, that the evaluation table settles (the page never returns to
 * "Generating…") and that the page stays usable afterwards. Round 1 keeps a screenshot of every step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { HAVE_CHROMIUM, launchBrowser, startApp, type AppServer, type BrowserSession } from './harness';
import { shot, waitTrainEnd } from './page-helpers';
import { HAVE_STORIES } from '../helpers';

const ROUNDS = Number(process.env.DEMO_ROUNDS ?? 5);

/** Waits (the page scrolls smoothly) until section `id` is in view. */
async function waitInView(page: Page, id: string): Promise<void> {
  const where = () =>
    page.evaluate(
      (id) =>
        `top of #${id} at ${Math.round(document.getElementById(id)!.getBoundingClientRect().top)} px, scrollY ` +
        `${Math.round(window.scrollY)}, viewport ${window.innerHeight} px`,
      id,
    );
  await page
    .waitForFunction(
      (id) => {
        const r = document.getElementById(id)!.getBoundingClientRect();
        return r.top >= -2 && r.top < window.innerHeight / 2;
      },
      id,
      { timeout: 10_000 },
    )
    .catch(async (e: Error) => {
      throw new Error(`the page did not scroll to #${id}: ${await where()} (${e.message})`);
    });
}

describe.skipIf(!HAVE_CHROMIUM || !HAVE_STORIES)('the class demo with every default, five times', () => {
  let app: AppServer;
  const t0 = Date.now();
  const log = (msg: string) => console.log(`[demo ${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);
  const results: { round: number; trainSeconds: number; table: string }[] = [];

  beforeAll(async () => {
    app = await startApp('preview');
  });

  afterAll(async () => {
    log(`rounds: ${JSON.stringify(results)}`);
    await app?.close();
  });

  for (let round = 1; round <= ROUNDS; round++) {
    it(`round ${round}: model, demo data, train, see the difference, evaluate; the page stays usable`, async () => {
      let session: BrowserSession | null = null;
      try {
        session = await launchBrowser();
        const { page } = session;
        const snap = async (name: string, sel?: string) => {
          if (round === 1) await shot(page, `demo-${name}`, sel);
        };
        await page.goto(app.url);
        await page.getByTestId('backend-info').waitFor({ timeout: 60_000 });
        // Automatic: the software WebGPU adapter ranks below wasm
        expect(await page.getByTestId('backend-name').textContent()).toBe('wasm');
        await snap('0-start');

        // 1. Model: the first catalog card, loaded from the local Hub mirror; the page moves on to step 2
        await page.getByRole('radio', { name: /stories260K/ }).check();
        await page.getByRole('button', { name: 'Load stories260K' }).click();
        await page.getByTestId('model-info').waitFor({ timeout: 60_000 });
        expect(await page.getByTestId('next-model').textContent()).toMatch(/Next: choose instruction data/);
        await waitInView(page, 'data');
        await snap('1-model', '#model');

        // 2. Data: the built-in demo; the page moves on to step 4
        await page.getByRole('button', { name: 'Use the demo dataset' }).click();
        await page.getByTestId('data-report').waitFor({ timeout: 30_000 });
        expect(await page.getByTestId('next-data').textContent()).toMatch(/press Start training/);
        await waitInView(page, 'train');
        await snap('2-data', '#data');

        // 4. Train with every default
        const start = page.getByRole('button', { name: 'Start training' });
        await page.waitForFunction(
          () => [...document.querySelectorAll('button')].some((b) => b.textContent === 'Start training' && !b.disabled),
          null,
          { timeout: 30_000 },
        );
        const tTrain = Date.now();
        await start.click();
        // a second click mid-run changes nothing (the button is gone or disabled while it trains)
        await start.click({ timeout: 500 }).catch(() => undefined);
        expect(await page.getByTestId('next-train').textContent()).toMatch(/watch the loss/);
        expect(await waitTrainEnd(page, 300_000)).toBe('done');
        const trainSeconds = (Date.now() - tTrain) / 1000;
        await snap('3-train', '#train');
        await snap('4-watch', '#watch');

        // 6. Compare: the page scrolled there and holds a held-out prompt to try
        await waitInView(page, 'compare');
        expect(await page.getByTestId('next-train').textContent()).toMatch(/held-out question/);
        const cmp = page.locator('#compare');
        const tryBox = page.getByTestId('see-difference');
        await tryBox.waitFor({ timeout: 10_000 });
        const prefilled = await cmp.getByRole('textbox', { name: 'Instruction', exact: true }).inputValue();
        expect(prefilled.length).toBeGreaterThan(0);
        expect(await tryBox.textContent()).toContain(prefilled);
        await tryBox.getByRole('button', { name: 'See the difference' }).click();
        await page.waitForFunction(
          () =>
            ['out-base', 'out-tuned'].every(
              (id) => document.querySelector(`[data-testid=${id}]`)?.getAttribute('data-state') === 'done',
            ),
          null,
          { timeout: 60_000 },
        );
        const base = (await page.getByTestId('out-base').locator('.output-text').textContent())!;
        const tuned = (await page.getByTestId('out-tuned').locator('.output-text').textContent())!;
        expect(tuned.trim().length).toBeGreaterThan(0);

        await cmp.getByRole('button', { name: 'Evaluate base vs tuned' }).click();
        const table = page.getByTestId('eval-table');
        await table.waitFor({ timeout: 120_000 });
        // The result stays: no late progress callback puts the page back to "Generating…"
        await page.waitForTimeout(1500);
        expect(await table.isVisible()).toBe(true);
        expect(await cmp.getByRole('status').count()).toBe(0);
        const tableText = (await table.textContent())!;
        expect(tableText).toMatch(/exact match/);
        expect(await page.getByTestId('next-compare').textContent()).toMatch(/PEFT format/);
        await snap('5-compare', '#compare');

        // usable afterwards: generate again, and training could start again
        expect(await cmp.getByRole('button', { name: 'Generate' }).isDisabled()).toBe(false);
        expect(await cmp.getByRole('button', { name: 'Evaluate base vs tuned' }).isDisabled()).toBe(false);
        expect(await start.isDisabled()).toBe(false);
        expect(session.pageErrors).toEqual([]);
        results.push({ round, trainSeconds: Math.round(trainSeconds), table: tableText });
        log(
          `round ${round}: trained in ${trainSeconds.toFixed(1)} s; "${prefilled}" base ${JSON.stringify(base)} tuned ${JSON.stringify(tuned)}; ${tableText}`,
        );
      } finally {
        session?.saveLog(`demo-${round}`);
        await session?.close();
      }
    }, 480_000);
  }
});
