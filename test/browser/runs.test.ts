/**
 * Runs that survive, in real Chromium on the production build: a run checkpoints to the browser's storage as it
 * trains; after a page reload mid-run the app lists it unfinished and resumes it, and its losses equal an
 * uninterrupted run's (wasm, step by step); runs are renamed, exported as one file, deleted and imported; a storage
 * quota too small for the next checkpoint says how much is needed and keeps the last one; a WebGPU device destroyed
 * mid-run (device.destroy()) moves the run to the next backend from its last checkpoint; a hung or silently crashed
 * worker is caught by the heartbeat watchdog and the run resumes afterwards.
 * Screenshots go to test-artifacts/runs-*.png.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_STORIES, sharedMissing } from '../helpers';
import { metrics, readZipDownload, shot as shotAs, waitTrainEnd } from './page-helpers';
import {
  ARTIFACTS,
  CHROMIUM_MISSING,
  HAVE_CHROMIUM,
  launchBrowser,
  startApp,
  type AppServer,
  type BrowserSession,
} from './harness';

const STEPS = 24;
const SAVE_EVERY = 4;

const shot = (page: Page, name: string, selector?: string) => shotAs(page, `runs-${name}`, selector);

async function savedStep(page: Page): Promise<number> {
  return Number(
    await page
      .getByTestId('checkpoint-status')
      .getAttribute('data-step', { timeout: 1000 })
      .catch(() => -1),
  );
}

async function waitSaved(page: Page, atLeast: number, timeout = 90_000): Promise<number> {
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-testid=checkpoint-status]')?.getAttribute('data-step') ?? -1) >= n,
    atLeast,
    { timeout, polling: 50 },
  );
  return savedStep(page);
}

async function loadStoriesAndDemo(page: Page): Promise<void> {
  await page.getByTestId('backend-info').waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Load stories260K' }).click();
  await page.getByTestId('model-info').waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Use the demo dataset' }).click();
  await page.getByTestId('data-report').waitFor({ timeout: 30_000 });
}

async function configure(
  page: Page,
  o: { steps: number; batch: number; saveEvery: number; backend: string },
): Promise<void> {
  const cfg = page.locator('#configure');
  await cfg.getByLabel('Max steps').fill(String(o.steps));
  await cfg.getByLabel('Batch size').fill(String(o.batch));
  await cfg.getByLabel('Log every (steps)').fill('1');
  await cfg.getByLabel('Eval every (steps)').fill('0');
  await cfg.getByLabel('Samples per evaluation').fill('0');
  await cfg.getByLabel('Save every (steps)').fill(String(o.saveEvery));
  await page.getByLabel('Backend').selectOption(o.backend);
  await page.waitForFunction(
    (b) => document.querySelector('[data-testid=backend-name]')?.textContent === b,
    o.backend,
    { timeout: 60_000 },
  );
  await page.getByTestId('trainable-params').waitFor({ timeout: 30_000 });
}

async function runRows(page: Page): Promise<{ id: string; name: string; step: number; status: string }[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('[data-testid=run]')].map((el) => ({
      id: el.getAttribute('data-run-id')!,
      name: el.querySelector('.run-name')?.textContent ?? '',
      step: Number(el.getAttribute('data-step')),
      status: el.getAttribute('data-status') ?? '',
    })),
  );
}

describe.skipIf(!HAVE_CHROMIUM || !HAVE_STORIES)('runs that survive (Chromium, production build)', () => {
  let app: AppServer;
  let session: BrowserSession;
  let page: Page;
  const downloads: Download[] = [];
  const t0 = Date.now();
  const log = (msg: string) => console.log(`[runs ${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);
  let reference: { step: number[]; loss: (number | null)[] };
  let referenceTensors: { numTensors: number; numBytes: number };

  beforeAll(async () => {
    app = await startApp('preview');
    session = await launchBrowser();
    page = session.page;
    await page.setViewportSize({ width: 1280, height: 900 });
    page.on('download', (d) => downloads.push(d));
  });

  afterAll(async () => {
    session?.saveLog('runs');
    await session?.close();
    await app?.close();
  });

  it('starts with an explained empty list of saved runs', async () => {
    await page.goto(app.url);
    await page.getByTestId('runs').waitFor();
    await page.getByTestId('runs-store').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('runs-store').textContent()).toMatch(/origin private file system/);
    expect(await page.getByTestId('runs').textContent()).toMatch(/No saved runs yet/);
    expect(await page.getByTestId('unfinished-banner').count()).toBe(0);
  });

  it(`an uninterrupted ${STEPS}-step run on wasm (the reference), saved every ${SAVE_EVERY} steps`, async () => {
    await loadStoriesAndDemo(page);
    await configure(page, { steps: STEPS, batch: 4, saveEvery: SAVE_EVERY, backend: 'wasm' });
    await page.getByRole('button', { name: 'Start training' }).click();
    expect(await waitTrainEnd(page, 120_000)).toBe('done');
    reference = await metrics(page);
    referenceTensors = await page.evaluate(() => window.webtune.engine().memory());
    log(`reference: ${reference.loss.map((x) => x?.toFixed(4)).join(' ')}`);
    expect(reference.step).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(await savedStep(page)).toBe(STEPS);
    const rows = await runRows(page);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ step: STEPS, status: 'completed' });
    // a distinct default name (model · dataset · local date and time) and the backend in the row
    expect(rows[0].name).toMatch(/^stories260K · .+ · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(await page.locator(`[data-run-id="${rows[0].id}"] [data-testid=run-facts]`).textContent()).toMatch(
      / · wasm$/,
    );
  }, 180_000);

  it('after a reload mid-run, lists the run unfinished and resumes it: the losses equal the uninterrupted run within 1e-5', async () => {
    await page.getByRole('button', { name: 'Start training' }).click();
    const saved = await waitSaved(page, 2 * SAVE_EVERY);
    const before = (await metrics(page)).step.length;
    await page.reload(); // the worker dies with the page, mid-run
    log(`reloaded after checkpoint ${saved} (${before} steps logged)`);
    const banner = page.getByTestId('unfinished-banner');
    await banner.waitFor({ timeout: 60_000 });
    expect(await banner.textContent()).toMatch(new RegExp(`step \\d+ of ${STEPS}`));
    const rows = await runRows(page);
    const open = rows.find((r) => r.status === 'stopped' || r.status === 'idle')!;
    expect(open, JSON.stringify(rows)).toBeTruthy();
    expect(open.step).toBeGreaterThanOrEqual(saved);
    expect(open.step % SAVE_EVERY).toBe(0);
    expect(open.step).toBeLessThan(STEPS);
    await shot(page, '1-after-reload');
    await shot(page, '1-runs', '#runs');

    await banner.getByRole('button', { name: /^Resume/ }).click();
    expect(await waitTrainEnd(page, 180_000)).toBe('done');
    expect(await page.getByTestId('backend-name').textContent()).toBe('wasm');
    const m = await metrics(page);
    log(`resumed from step ${open.step}: ${m.loss.map((x) => x?.toFixed(4)).join(' ')}`);
    // the curve continues: the stored history, then the resumed steps
    expect(m.step).toEqual(reference.step);
    let maxDiff = 0;
    for (let i = 0; i < STEPS; i++) maxDiff = Math.max(maxDiff, Math.abs(m.loss[i]! - reference.loss[i]!));
    log(`max |loss - reference| over ${STEPS} steps: ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(1e-5);
    expect((await runRows(page)).find((r) => r.id === open.id)).toMatchObject({ step: STEPS, status: 'completed' });
    // the resumed run holds the same tensors as the uninterrupted one did at its end (model, adapter, optimizer): no leak
    const tensors = await page.evaluate(() => window.webtune.engine().memory());
    log(
      `live tensors at the end: uninterrupted ${referenceTensors.numTensors} (${referenceTensors.numBytes} bytes), resumed ${tensors.numTensors} (${tensors.numBytes} bytes)`,
    );
    expect(tensors).toMatchObject({ numTensors: referenceTensors.numTensors, numBytes: referenceTensors.numBytes });
    await shot(page, '2-resumed', '#watch');
  }, 300_000);

  it('renames, exports as one file, deletes and imports a run', async () => {
    const rows = await runRows(page);
    const target = rows[0];
    const row = page.locator(`[data-run-id="${target.id}"]`);
    await row.getByRole('button', { name: 'Rename' }).click();
    await row.getByLabel('New name').fill('My resumed run');
    await row.getByRole('button', { name: 'Save name' }).click();
    await page.waitForFunction(
      (id) => document.querySelector(`[data-run-id="${id}"] .run-name`)?.textContent === 'My resumed run',
      target.id,
      { timeout: 10_000 },
    );

    downloads.length = 0;
    await row.getByRole('button', { name: 'Export' }).click();
    await expect.poll(() => downloads.length, { timeout: 10_000 }).toBe(1);
    expect(downloads[0].suggestedFilename()).toBe('my-resumed-run.webtune.safetensors');
    const file = path.join(ARTIFACTS, 'runs-export.webtune.safetensors');
    await downloads[0].saveAs(file);
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> };
    expect(header.__metadata__['webtune.run_name']).toBe('My resumed run');
    const source = JSON.parse(header.__metadata__['webtune.file.source.json']) as {
      modelName: string;
      data: { files: { name: string }[] };
    };
    expect(source.modelName).toBe('stories260K');
    expect(source.data.files.map((f) => f.name)).toEqual(['tiny-tasks.jsonl', 'tiny-tasks-eval.jsonl']);

    await row.getByRole('button', { name: 'Delete' }).click();
    await row.getByRole('button', { name: 'Delete for good' }).click();
    await page.waitForFunction((id) => !document.querySelector(`[data-run-id="${id}"]`), target.id, {
      timeout: 10_000,
    });
    expect((await runRows(page)).length).toBe(rows.length - 1);
    await page.getByTestId('runs-status').filter({ hasText: 'Deleted "My resumed run"' }).waitFor({ timeout: 10_000 });

    await page.locator('#runs input[type=file]').setInputFiles(file);
    await page.getByTestId('runs-status').filter({ hasText: 'Imported "My resumed run"' }).waitFor({ timeout: 10_000 });
    await expect.poll(async () => (await runRows(page)).length, { timeout: 10_000 }).toBe(rows.length);
    const after = await runRows(page);
    expect(after.find((r) => r.name === 'My resumed run')).toMatchObject({ step: STEPS, status: 'completed' });

    // a file that is no run says so, naming it
    const bad = path.join(ARTIFACTS, 'runs-not-a-run.safetensors');
    (await import('node:fs')).writeFileSync(bad, 'not a checkpoint');
    await page.locator('#runs input[type=file]').setInputFiles(bad);
    await page.getByTestId('runs-error').waitFor({ timeout: 10_000 });
    expect(await page.getByTestId('runs-error').textContent()).toMatch(/runs-not-a-run\.safetensors: .*safetensors/);
    await shot(page, '3-runs-managed', '#runs');
  }, 60_000);

  it('opens a finished run after a reload: its adapter without training, compared and exported', async () => {
    await page.reload();
    await page.getByTestId('backend-info').waitFor({ timeout: 60_000 });
    const target = (await runRows(page)).find((r) => r.name === 'My resumed run')!;
    expect(target).toMatchObject({ step: STEPS, status: 'completed' });
    const row = page.locator(`[data-run-id="${target.id}"]`);
    expect(await row.getByRole('button', { name: /^Resume/ }).count()).toBe(0);
    await row.getByRole('button', { name: /^Open/ }).click();
    await page.getByTestId('runs-status').filter({ hasText: 'Opened "My resumed run"' }).waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('adapter-info').textContent()).toMatch(/r = 16, alpha = 32, 35 layers.*trained here/);
    expect(await page.getByTestId('train-status').getAttribute('data-state')).toBe('done');
    // its curve is the run's (no step trained now), and the model's tensors are those of a finished run
    const m = await metrics(page);
    expect(m.step).toEqual(reference.step);
    for (let i = 0; i < STEPS; i++) expect(Math.abs(m.loss[i]! - reference.loss[i]!)).toBeLessThan(1e-5);

    const cmp = page.locator('#compare');
    await cmp.getByRole('textbox', { name: 'Instruction', exact: true }).fill('Say the word cat.');
    await cmp.getByLabel('Max new tokens').fill('8');
    await cmp.getByRole('button', { name: 'Generate' }).click();
    await page.waitForFunction(
      () => document.querySelector('[data-testid=out-tuned]')?.getAttribute('data-state') === 'done',
      null,
      { timeout: 60_000 },
    );
    const tuned = (await page.getByTestId('out-tuned').locator('.output-text').textContent())!;
    log(`opened run, tuned: ${JSON.stringify(tuned)}`);
    expect(tuned.trim().length).toBeGreaterThan(0);

    downloads.length = 0;
    await page.getByRole('button', { name: 'Download adapter' }).click();
    await expect.poll(() => downloads.length, { timeout: 20_000 }).toBe(1);
    expect(downloads[0].suggestedFilename()).toBe('my-resumed-run-lora-adapter.zip');
    const zip = await readZipDownload(downloads[0], 'runs-opened-');
    expect([...zip.keys()].sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(zip.get('adapter_config.json'))) as Record<string, unknown>;
    expect(config).toMatchObject({ r: 16, lora_alpha: 32, base_model_name_or_path: 'karpathy/tinyllamas' });

    downloads.length = 0;
    await page.getByRole('button', { name: 'Download metrics' }).click();
    await expect.poll(() => downloads.length, { timeout: 20_000 }).toBe(1);
    const metricsZip = await readZipDownload(downloads[0], 'runs-opened-');
    const csv = new TextDecoder().decode(metricsZip.get('metrics.csv')).trim().split('\n');
    expect(csv.length).toBeGreaterThanOrEqual(STEPS + 1); // header + a row per logged step
    await shot(page, '3-opened', '#compare');
  }, 120_000);

  it('a storage quota too small for the next checkpoint: says how much is needed, trains on, keeps the last checkpoint', async () => {
    const cdp = await session.context.newCDPSession(page);
    const origin = new URL(app.url).origin;
    await page.getByRole('button', { name: 'Start training' }).click();
    const saved = await waitSaved(page, SAVE_EVERY);
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 2048 });
    try {
      const err = page.getByTestId('checkpoint-error');
      await err.waitFor({ timeout: 90_000 });
      const text = (await err.textContent())!;
      log(`quota: ${text}`);
      expect(text).toMatch(/not enough storage to save the checkpoint .*it needs [0-9.]+ (KB|MB) \(\d+ bytes\)/);
      expect(text).toMatch(/Training goes on; the checkpoint of step \d+ is kept/);
      expect(await waitTrainEnd(page, 120_000)).toBe('done'); // training went on
      const lastGood = Number(/the checkpoint of step (\d+) is kept/.exec(text)![1]);
      expect(lastGood).toBeGreaterThanOrEqual(saved);
      await shot(page, '4-quota', '#train');
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
      await page.reload();
      await page.getByTestId('unfinished-banner').waitFor({ timeout: 60_000 });
      const open = (await runRows(page)).find((r) => r.status === 'stopped')!;
      expect(open.step).toBe(lastGood);
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin }).catch(() => undefined);
    }
  }, 240_000);

  it('a diverging run (NaN) pauses at its last good step, saved, and resumes from there with a lower learning rate', async () => {
    await loadStoriesAndDemo(page);
    await configure(page, { steps: 6, batch: 2, saveEvery: 0, backend: 'wasm' });
    const cfg = page.locator('#configure');
    await cfg.getByLabel('Learning rate').fill('1e30');
    await cfg.getByLabel('LR schedule').selectOption('constant');
    await cfg.getByLabel('Gradient clipping').fill('0');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByTestId('train-error').waitFor({ timeout: 60_000 });
    const text = (await page.getByTestId('train-error').textContent())!;
    log(`diverged: ${text}`);
    // lr 1e30: the first update would overflow float32, so it is refused before it lands (weights untouched)
    expect(text).toMatch(
      /Training diverged at step (\d+): its update would make LoRA weights non-finite.*The parameters were left at their values after step \d+\. Try a lower learning rate/,
    );
    const good = Number(/after step (\d+)/.exec(text)![1]);
    await page
      .getByText(`The run is saved at step ${good}: resume it with a lower learning rate.`)
      .waitFor({ timeout: 10_000 });
    expect(await page.getByTestId('train-status').getAttribute('data-state')).toBe('diverged');
    const form = page.getByTestId('resume-lower');
    await form.waitFor({ timeout: 10_000 });
    expect(await form.getByLabel('New learning rate').inputValue()).toBe('1e+29');
    await shot(page, '5-diverged', '#train');
    await form.getByLabel('New learning rate').fill('0.001');
    await form.getByRole('button', { name: 'Resume with this learning rate' }).click();
    // the refused update never landed, so the run continues from its last good step with the new rate and finishes
    await page.waitForFunction(() => !document.querySelector('[data-testid=train-error]'), null, { timeout: 30_000 });
    expect(await waitTrainEnd(page, 90_000)).toBe('done');
    const m = await metrics(page);
    expect(m.step.at(-1)).toBe(6);
    expect(m.step[0]).toBe(good + 1);
    expect(m.loss.every((l) => l !== null && Number.isFinite(l))).toBe(true);
    expect(await page.locator('#configure').getByLabel('Learning rate').inputValue()).toBe('0.001');
  }, 120_000);

  it('a run too big for the wasm heap is refused before its first step, with the need and what to reduce', async () => {
    const story = 'Once upon a time there was a little girl who liked to play in the park with her dog. ';
    const rows = Array.from({ length: 64 }, (_, i) => ({ instruction: `Tell story ${i}`, output: story.repeat(12) }));
    await page.getByText('Paste data').click();
    await page.getByLabel('Dataset text').fill(JSON.stringify(rows));
    await page.getByLabel('File name (its extension picks the format)').fill('long.json');
    await page.getByRole('button', { name: 'Use pasted data' }).click();
    await page.getByTestId('data-report').filter({ hasText: 'long.json' }).waitFor({ timeout: 30_000 });
    const cfg = page.locator('#configure');
    await cfg.getByLabel('Learning rate').fill('0.001');
    await cfg.getByLabel('Max length (tokens)').fill('512');
    await cfg.getByLabel('Batch size').fill('64');
    const warning = page.getByTestId('memory-warning');
    await warning.waitFor({ timeout: 30_000 });
    const text = (await warning.textContent())!;
    log(`estimate: ${text}`);
    const m =
      /This run needs about ([0-9.]+) GB on wasm .*more than wasm's 4 GB heap\. Reduce per_device_train_batch_size \(now 64; (\d+) would need/.exec(
        text,
      );
    expect(m, text).not.toBeNull();
    await shot(page, '7-oom-estimate', '#configure');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByTestId('train-error').filter({ hasText: 'This run needs about' }).waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('train-error').textContent()).toMatch(/gradient_checkpointing/);
    await shot(page, '7-oom-refused', '#train');
    // the suggested batch size fits
    await cfg.getByLabel('Batch size').fill(m![2]);
    await page.waitForFunction(
      () =>
        !document.querySelector('[data-testid=memory-warning]') &&
        /about .* of 4 GB$/.test(document.querySelector('[data-testid=memory-fit]')?.textContent ?? ''),
      null,
      { timeout: 30_000 },
    );
  }, 90_000);

  it('a hung engine is caught by the watchdog, reported, and its run resumes', async () => {
    await page.goto(`${app.url}?watchdog=4000`);
    await loadStoriesAndDemo(page);
    await configure(page, { steps: 12, batch: 2, saveEvery: 3, backend: 'wasm' });
    await page.getByRole('button', { name: 'Start training' }).click();
    const saved = await waitSaved(page, 3);
    const tHang = Date.now();
    await page.evaluate(() => {
      void window.webtune.engine().injectFault('hang');
    });
    const notice = page.getByTestId('engine-crash');
    await notice.waitFor({ timeout: 30_000 });
    const text = (await notice.textContent())!;
    log(`hang detected after ${((Date.now() - tHang) / 1000).toFixed(1)} s: ${text}`);
    expect(text).toMatch(/stopped responding: no sign of life for \d+ s/);
    expect(Date.now() - tHang).toBeLessThan(20_000);
    await page.locator('.run.highlight').waitFor({ timeout: 30_000 });
    await shot(page, '5-hang');
    await page
      .getByTestId('unfinished-banner')
      .getByRole('button', { name: /^Resume/ })
      .click();
    expect(await waitTrainEnd(page, 120_000)).toBe('done');
    const m = await metrics(page);
    expect(m.step.at(-1)).toBe(12);
    expect(m.step[0]).toBe(1);
    log(`resumed after the hang from step ≥ ${saved}: ${m.loss.map((x) => x?.toFixed(3)).join(' ')}`);
    expect(await page.getByTestId('engine-crash').count()).toBe(0);
  }, 240_000);

  it('a worker that ends without a word is detected too', async () => {
    const tExit = Date.now();
    await page.evaluate(() => {
      void window.webtune.engine().injectFault('exit');
    });
    await page.getByTestId('engine-crash').waitFor({ timeout: 30_000 });
    log(`silent exit detected after ${((Date.now() - tExit) / 1000).toFixed(1)} s`);
    // the fresh engine works
    await page.getByTestId('backend-info').waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Load stories260K' }).click();
    await page.getByTestId('model-info').waitFor({ timeout: 60_000 });
  }, 90_000);

  it('a lost WebGPU device (device.destroy()) moves the run to the next backend from its last checkpoint', async () => {
    await page.goto(app.url);
    await loadStoriesAndDemo(page);
    await configure(page, { steps: 4, batch: 2, saveEvery: 2, backend: 'webgpu' });
    const tStart = Date.now();
    await page.getByRole('button', { name: 'Start training' }).click();
    const saved = await waitSaved(page, 2, 200_000);
    log(`webgpu: checkpoint ${saved} after ${((Date.now() - tStart) / 1000).toFixed(1)} s; destroying the device`);
    await page.evaluate(() => window.webtune.engine().injectFault('device-lost'));
    await page.waitForFunction(
      () => /device was lost/.test(document.querySelector('[data-testid=train-message]')?.textContent ?? ''),
      null,
      { timeout: 120_000 },
    );
    const msg = (await page.getByTestId('train-message').textContent())!;
    log(`device lost: ${msg}`);
    expect(msg).toMatch(
      /The WebGPU device was lost \(destroyed.*\)\. Training moved to webgl and continues from its checkpoint at step \d+/,
    );
    expect(await page.getByTestId('backend-name').textContent()).toBe('webgl');
    expect(await waitTrainEnd(page, 300_000)).toBe('done');
    const m = await metrics(page);
    log(`after the move: ${m.step.join(',')} / ${m.loss.map((x) => x?.toFixed(3)).join(' ')}`);
    expect(m.step).toEqual([1, 2, 3, 4]);
    expect(m.loss.every((x) => x != null && Number.isFinite(x))).toBe(true);
    await shot(page, '6-device-lost', '#train');
  }, 400_000);

  it('the saved runs fit a 390 px phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByTestId('run').first().waitFor({ timeout: 10_000 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(page, '8-runs-390', '#runs');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('threw no page error', () => {
    expect(session.pageErrors).toEqual([]);
  });
});

if (!HAVE_CHROMIUM) it.skip(`runs in Chromium: ${CHROMIUM_MISSING}`, () => {});
else if (!HAVE_STORIES) it.skip(sharedMissing('the runs test (stories260K)'), () => {});
