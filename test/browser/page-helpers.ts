/** Helpers the product-page tests share: screenshots of a section, the training state, the metrics the page holds. */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import type { Download, Page } from 'playwright-core';
import { ARTIFACTS } from './harness';

/** A screenshot of one section (or the page) as test-artifacts/<name>.png. */
export async function shot(page: Page, name: string, selector?: string): Promise<string> {
  const file = path.join(ARTIFACTS, `${name}.png`);
  if (selector) await page.locator(selector).screenshot({ path: file });
  else await page.screenshot({ path: file, fullPage: true });
  return file;
}

export async function trainState(page: Page): Promise<string | null> {
  return page
    .getByTestId('train-status')
    .getAttribute('data-state', { timeout: 1000 })
    .catch(() => null);
}

/** Waits until training is done, stopped or paused (its state), or throws the page's training error. */
export async function waitTrainEnd(page: Page, timeout: number): Promise<string> {
  await page.waitForFunction(
    () => {
      const st = document.querySelector('[data-testid=train-status]')?.getAttribute('data-state');
      return (
        st === 'done' || st === 'stopped' || st === 'paused' || !!document.querySelector('[data-testid=train-error]')
      );
    },
    null,
    { timeout, polling: 250 },
  );
  const err = await page
    .getByTestId('train-error')
    .textContent({ timeout: 100 })
    .catch(() => null);
  if (err) throw new Error(`training failed: ${err}`);
  return (await trainState(page))!;
}

/** The logged steps and losses the page's charts hold. */
export async function metrics(
  page: Page,
): Promise<{ step: number[]; loss: (number | null)[]; valLoss: (number | null)[] }> {
  return page.evaluate(() => {
    const c = window.webtune.metrics!();
    return { step: [...c.step], loss: [...c.loss], valLoss: [...c.valLoss] };
  });
}

/** A downloaded zip, saved under test-artifacts/<prefix><its name>, and its entries (name → bytes) in order. */
export async function readZipDownload(d: Download, prefix: string): Promise<Map<string, Uint8Array>> {
  const file = path.join(ARTIFACTS, `${prefix}${d.suggestedFilename()}`);
  await d.saveAs(file);
  return new Map(Object.entries(unzipSync(new Uint8Array(readFileSync(file)))));
}
