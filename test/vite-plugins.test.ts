/** The Vite setup without a browser: hub mirror, tfjs wasm serving, isolation headers, production CSP. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY, resolveHubFile } from '../tools/vite-plugins';
import { startApp, type AppServer } from './browser/harness';
import { HAVE_STORIES, SHARED, STORIES_DIR, sharedMissing } from './helpers';

const MODELS = '/models';

describe('resolveHubFile', () => {
  it('maps karpathy/tinyllamas onto the models folder, any revision', () => {
    expect(resolveHubFile(MODELS, '/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin')).toBe(
      '/models/stories260K/stories260K.bin',
    );
    expect(resolveHubFile(MODELS, '/karpathy/tinyllamas/resolve/0123abc/stories260K/tok512.bin?download=true')).toBe(
      '/models/stories260K/tok512.bin',
    );
  });

  it('maps local/<name> onto the folder <name>', () => {
    expect(resolveHubFile(MODELS, '/local/stories260K/resolve/main/tok512.bin')).toBe('/models/stories260K/tok512.bin');
    expect(resolveHubFile(MODELS, '/local/some%20model/resolve/main/sub/config.json')).toBe(
      '/models/some model/sub/config.json',
    );
  });

  it('refuses unknown repos, other URL forms and paths that leave the repo folder', () => {
    for (const url of [
      '/someone/else/resolve/main/model.bin',
      '/karpathy/tinyllamas/blob/main/stories260K/tok512.bin',
      '/karpathy/tinyllamas/resolve/main/',
      '/local/stories260K/resolve/main/../../../etc/passwd',
      '/local/stories260K/resolve/main/%2e%2e/%2e%2e/etc/passwd',
      '/local/..%2F..%2Fetc/resolve/main/passwd',
      '/local/stories260K/resolve/main/a//b',
      '/local/stories260K/resolve/main/%zz',
      '/local/./resolve/main/stories260K/tok512.bin',
      '/local/a%5C..%5C..%5Cetc/resolve/main/passwd',
    ]) {
      expect(resolveHubFile(MODELS, url), url).toBeNull();
    }
  });
});

describe('dev server', () => {
  let app: AppServer;
  beforeAll(async () => {
    app = await startApp('dev');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('serves the page with cross-origin isolation headers', async () => {
    const res = await fetch(app.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(await res.text()).toContain('<title>webtune</title>');
  });

  it('serves the tfjs wasm binaries under /tfjs-wasm/', async () => {
    const res = await fetch(new URL('tfjs-wasm/tfjs-backend-wasm-simd.wasm', app.url));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/wasm');
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect([...bytes.subarray(0, 4)]).toEqual([0x00, 0x61, 0x73, 0x6d]);
    expect((await fetch(new URL('tfjs-wasm/nope.wasm', app.url))).headers.get('content-type')).not.toBe(
      'application/wasm',
    );
  });

  it.skipIf(!HAVE_STORIES)(
    HAVE_STORIES ? 'serves ../shared/models under the Hub URL layout' : sharedMissing('the hub mirror test'),
    async () => {
      const want = readFileSync(path.join(STORIES_DIR, 'tok512.bin'));
      for (const repoPath of [
        'karpathy/tinyllamas/resolve/main/stories260K/tok512.bin',
        'local/stories260K/resolve/main/tok512.bin',
      ]) {
        const res = await fetch(new URL(`hub/${repoPath}`, app.url));
        expect(res.status, repoPath).toBe(200);
        expect(res.headers.get('content-length')).toBe(String(want.length));
        expect(Buffer.from(await res.arrayBuffer()).equals(want)).toBe(true);
      }
      const model = new URL('hub/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin', app.url);
      const head = await fetch(model, { method: 'HEAD' });
      expect(head.headers.get('content-length')).toBe(
        String(readFileSync(path.join(STORIES_DIR, 'stories260K.bin')).length),
      );
      const range = await fetch(model, { headers: { Range: 'bytes=4-11' } });
      expect(range.status).toBe(206);
      expect(
        Buffer.from(await range.arrayBuffer()).equals(
          readFileSync(path.join(STORIES_DIR, 'stories260K.bin')).subarray(4, 12),
        ),
      ).toBe(true);
      expect((await fetch(new URL('hub/karpathy/tinyllamas/resolve/main/stories15M.bin', app.url))).status).toBe(404);
      expect((await fetch(new URL('hub/someone/else/resolve/main/x.bin', app.url))).status).toBe(404);
    },
  );
});

describe('production build and preview', () => {
  let app: AppServer;
  beforeAll(async () => {
    app = await startApp('preview');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('copies the tfjs wasm binaries into the build', () => {
    const wasm = readdirSync(path.join(app.outDir!, 'tfjs-wasm'));
    expect(wasm).toEqual(expect.arrayContaining(['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']));
  });

  it('sends a CSP without unsafe-eval (header and meta tag) and the isolation headers', async () => {
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/'unsafe-eval'/);
    expect(CONTENT_SECURITY_POLICY).toMatch(/script-src [^;]*'wasm-unsafe-eval'/);
    const res = await fetch(app.url);
    expect(res.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    const html = await res.text();
    expect(html).toContain('http-equiv="Content-Security-Policy"');
    expect(html).not.toMatch(/[^-]unsafe-eval/);
  });

  it.skipIf(!existsSync(path.join(SHARED, 'models')))('serves the hub mirror in preview too', async () => {
    const res = await fetch(new URL('hub/local/stories260K/resolve/main/tok512.bin', app.url), { method: 'HEAD' });
    expect(res.status).toBe(200);
  });
});
