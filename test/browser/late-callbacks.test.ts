/**
 * Callbacks that arrive after their call returned (Comlink sends each on its own port, so the order is not
 * guaranteed): the page is served with `?callbackDelay=250`, which delivers every engine callback 250 ms late.
 * Training, generation and evaluation must still end in their final state, with the final text, and leave the
 * page usable (this used to leave "Generating… 4 / 4" on screen with every button disabled, and repeat the end of
 * generated answers).
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';
import { shot, trainState, waitTrainEnd } from './page-helpers';
import {
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

const DELAY_MS = 250;
const settle = (page: Page) => page.waitForTimeout(3 * DELAY_MS);

if (!HAVE_CHROMIUM) it.skip(CHROMIUM_MISSING, () => undefined);
else if (!HAVE_STORIES) it.skip(sharedMissing(`stories260K at ${STORIES_DIR}`), () => undefined);

describe.skipIf(!HAVE_CHROMIUM || !HAVE_STORIES)('late engine callbacks (Chromium, production build)', () => {
  let app: AppServer;
  let session: BrowserSession;
  let page: Page;

  beforeAll(async () => {
    app = await startApp('preview');
    session = await launchBrowser();
    page = session.page;
    await page.goto(`${app.url}?callbackDelay=${DELAY_MS}`);
    await page.getByRole('radio', { name: /stories260K/ }).check();
    await page.getByRole('button', { name: 'Load stories260K' }).click();
    await page.getByTestId('model-info').waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Use the demo dataset' }).click();
    await page.getByTestId('data-report').waitFor({ timeout: 30_000 });
  }, 180_000);

  afterAll(async () => {
    session?.saveLog('late-callbacks');
    await session?.close();
    await app?.close();
  });

  it('a finished training run stays finished when its last events arrive late', async () => {
    const cfg = page.locator('#configure');
    await cfg.getByLabel('Max steps').fill('4');
    await cfg.getByLabel('Batch size').fill('4');
    await page.getByRole('button', { name: 'Start training' }).click();
    expect(await waitTrainEnd(page, 120_000)).toBe('done');
    await settle(page);
    expect(await trainState(page)).toBe('done');
    expect(await page.getByRole('button', { name: 'Start training' }).isEnabled()).toBe(true);
  }, 180_000);

  for (const round of [1, 2]) {
    it(`generation ends with its final text, and evaluation with its table (round ${round})`, async () => {
      const cmp = page.locator('#compare');
      await cmp.getByRole('textbox', { name: 'Instruction', exact: true }).fill('Please say hello to Lom.');
      await cmp.getByLabel('Max new tokens').fill('16');
      await cmp.getByRole('button', { name: 'Generate' }).click();
      const states = () =>
        page.evaluate(() =>
          ['out-base', 'out-tuned'].map((id) => {
            const el = document.querySelector(`[data-testid=${id}]`);
            return `${id}: ${el?.getAttribute('data-state')} "${el?.textContent ?? ''}"`;
          }),
        );
      // (on a timeout, say where each side stood)
      await page
        .waitForFunction(
          () => document.querySelector('[data-testid=out-tuned]')?.getAttribute('data-state') === 'done',
          null,
          { timeout: 60_000 },
        )
        .catch(async (e: Error) => {
          throw new Error(`${e.message}\n${(await states()).join('\n')}`);
        });
      const text = async (which: string) => page.getByTestId(which).locator('.output-text').textContent();
      const done = { base: await text('out-base'), tuned: await text('out-tuned') };
      await settle(page);
      // Late tokens are not appended to the final text.
      expect({ base: await text('out-base'), tuned: await text('out-tuned') }).toEqual(done);

      await cmp.getByLabel('Examples').fill('4');
      await cmp.getByRole('button', { name: 'Evaluate base vs tuned' }).click();
      await page.getByTestId('eval-table').waitFor({ timeout: 90_000 });
      await settle(page);
      // Late progress does not put the finished evaluation back to running.
      expect(await page.getByTestId('eval-table').isVisible()).toBe(true);
      for (const name of ['Evaluate base vs tuned', 'Generate', 'Start training']) {
        expect(await page.getByRole('button', { name }).isEnabled(), name).toBe(true);
      }
      await shot(page, `late-callbacks-${round}`, '#compare');
    }, 180_000);
  }
});
