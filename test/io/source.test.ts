import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileNotFoundError, filesSource, hubSource } from '../../src/io/source';
import { dirSource } from '../../src/io/node-source';
import { startHubServer, type HubServer } from '../hub-server';

let root: string;
let server: HubServer;
const big = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 31 + 7) & 255);

/** Byte equality without vitest's slow element-wise diffing of large typed arrays. */
function expectSameBytes(a: Uint8Array, b: Uint8Array) {
  expect(a.length).toBe(b.length);
  expect(Buffer.compare(a, b)).toBe(0);
}

function progressLog() {
  const calls: [number, number | null][] = [];
  return { calls, fn: (loaded: number, total: number | null) => calls.push([loaded, total]) };
}

function expectMonotoneTo(calls: [number, number | null][], size: number) {
  expect(calls.length).toBeGreaterThan(2);
  for (let i = 1; i < calls.length; i++) expect(calls[i][0]).toBeGreaterThanOrEqual(calls[i - 1][0]);
  expect(calls[calls.length - 1]).toEqual([size, size]);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webtune-source-'));
  await mkdir(path.join(root, 'org/repo/sub'), { recursive: true });
  await mkdir(path.join(root, 'org/repo@v2'), { recursive: true });
  await writeFile(path.join(root, 'org/repo/big.bin'), big);
  await writeFile(path.join(root, 'org/repo/sub/a b.txt'), 'spaced');
  await writeFile(path.join(root, 'org/repo/config.json'), '{"main":true}');
  await writeFile(path.join(root, 'org/repo@v2/config.json'), '{"v2":true}');
  server = await startHubServer(root, {
    chunkSize: 4096,
    omitContentLength: (f) => f.endsWith('.nolen'),
    failWith: { 'org/repo/boom.bin': 500, 'org/repo/private.bin': 401 },
  });
  await writeFile(path.join(root, 'org/repo/data.nolen'), big);
});

afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('hubSource', () => {
  it('reads a file with streaming progress (Content-Length known)', async () => {
    const src = hubSource(server.baseUrl, 'org/repo');
    const p = progressLog();
    const bytes = await src.read('big.bin', p.fn);
    expectSameBytes(bytes, big);
    expectMonotoneTo(p.calls, big.length);
    expect(p.calls.every(([, t]) => t === big.length)).toBe(true);
    expect(src.describe).toContain('org/repo');
  });

  it('reports a null total without Content-Length and the size at the end', async () => {
    const p = progressLog();
    const bytes = await hubSource(server.baseUrl, 'org/repo').read('data.nolen', p.fn);
    expectSameBytes(bytes, big);
    expect(p.calls[0]).toEqual([0, null]);
    expect(p.calls.slice(0, -1).every(([, t]) => t === null)).toBe(true);
    expectMonotoneTo(p.calls, big.length);
  });

  it('encodes paths and selects revisions', async () => {
    expect(new TextDecoder().decode(await hubSource(server.baseUrl + '/', 'org/repo').read('sub/a b.txt'))).toBe(
      'spaced',
    );
    expect(new TextDecoder().decode(await hubSource(server.baseUrl, 'org/repo', 'v2').read('config.json'))).toBe(
      '{"v2":true}',
    );
    expect(server.requests.some((r) => r.url === '/org/repo/resolve/main/sub/a%20b.txt')).toBe(true);
  });

  it('has() uses HEAD and distinguishes 404', async () => {
    const src = hubSource(server.baseUrl, 'org/repo');
    expect(await src.has('config.json')).toBe(true);
    expect(await src.has('missing.json')).toBe(false);
    expect(server.requests.find((r) => r.url.endsWith('/missing.json'))?.method).toBe('HEAD');
  });

  it('a 404 names the file and the URL', async () => {
    const err = await hubSource(server.baseUrl, 'org/repo')
      .read('nope.safetensors')
      .catch((e) => e);
    expect(err).toBeInstanceOf(FileNotFoundError);
    expect(err.message).toMatch(
      /nope\.safetensors not found in .*org\/repo.*HTTP 404 for http:\/\/127\.0\.0\.1:\d+\/org\/repo\/resolve\/main\/nope\.safetensors/,
    );
  });

  it('other statuses are errors naming status and URL', async () => {
    const src = hubSource(server.baseUrl, 'org/repo');
    await expect(src.read('boom.bin')).rejects.toThrow(
      /HTTP 500 .*boom\.bin from http:\/\/127\.0\.0\.1:\d+\/org\/repo\/resolve\/main\/boom\.bin/,
    );
    await expect(src.read('private.bin')).rejects.toThrow(/access denied to private\.bin \(HTTP 401 .*gated/);
    await expect(src.has('private.bin')).rejects.toThrow(/HTTP 401/);
  });

  it('network failures name the URL', async () => {
    const dead = await startHubServer(root);
    const url = dead.baseUrl;
    await dead.close();
    await expect(hubSource(url, 'org/repo').read('config.json')).rejects.toThrow(
      new RegExp(`network error fetching ${url.replace(/\./g, '\\.')}/org/repo/resolve/main/config\\.json`),
    );
  });

  it('detects truncated bodies', async () => {
    // Undici refuses mismatched lengths itself; a custom response exercises our own check.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(10));
        c.close();
      },
    });
    const shortFetch = (async () => ({
      ok: true,
      status: 200,
      headers: new Headers({ 'Content-Length': '20' }),
      body: stream,
    })) as unknown as typeof fetch;
    await expect(hubSource('http://h', 'a/b', 'main', shortFetch).read('x.bin')).rejects.toThrow(
      /http:\/\/h\/a\/b\/resolve\/main\/x\.bin: received 10 bytes but expected 20/,
    );
  });

  it('rejects invalid repo ids and paths', () => {
    expect(() => hubSource('http://h', '../etc')).toThrow(/invalid Hub repository id/);
    expect(() => hubSource('http://h', 'a/b/c')).toThrow(/invalid Hub repository id/);
    return expect(hubSource(server.baseUrl, 'org/repo').read('../x')).rejects.toThrow(/invalid file path/);
  });

  it('serves the shared stories260K files under karpathy/tinyllamas when mounted', async () => {
    const { STORIES_DIR, HAVE_STORIES, sharedMissing } = await import('../helpers');
    if (!HAVE_STORIES) {
      console.warn(sharedMissing('stories260K mount'));
      return;
    }
    const s = await startHubServer(root, { mounts: { 'karpathy/tinyllamas': path.dirname(STORIES_DIR) } });
    try {
      const bytes = await hubSource(s.baseUrl, 'karpathy/tinyllamas').read('stories260K/stories260K.bin');
      expect(bytes.length).toBe(1056540);
    } finally {
      await s.close();
    }
  });
});

describe('filesSource', () => {
  function fileWithPath(content: string, rel: string): File {
    const f = new File([content], rel.split('/').pop()!);
    Object.defineProperty(f, 'webkitRelativePath', { value: rel });
    return f;
  }

  it('matches by name and relative-path suffix, with progress', async () => {
    const src = filesSource([
      fileWithPath('{"a":1}', 'MyModel/config.json'),
      fileWithPath('x'.repeat(5000), 'MyModel/onnx/model.bin'),
      new File(['tok'], 'tokenizer.json'),
    ]);
    expect(src.describe).toMatch(/3 local files/);
    expect(new TextDecoder().decode(await src.read('config.json'))).toBe('{"a":1}');
    expect(new TextDecoder().decode(await src.read('tokenizer.json'))).toBe('tok');
    const p = progressLog();
    expect((await src.read('onnx/model.bin', (l, t) => p.calls.push([l, t]))).length).toBe(5000);
    expect(p.calls[p.calls.length - 1]).toEqual([5000, 5000]);
    expect(await src.has('model.bin')).toBe(true);
    expect(await src.has('missing.json')).toBe(false);
    await expect(src.read('missing.json')).rejects.toBeInstanceOf(FileNotFoundError);
  });

  it('prefers the shallowest match and reports real ambiguity', async () => {
    const src = filesSource([fileWithPath('top', 'M/config.json'), fileWithPath('deep', 'M/onnx/config.json')]);
    expect(src.describe).toBe('local folder "M" (2 files)');
    expect(new TextDecoder().decode(await src.read('config.json'))).toBe('top');
    const two = filesSource(
      new Map<string, Blob>([
        ['a/config.json', new Blob(['1'])],
        ['b/config.json', new Blob(['2'])],
      ]),
    );
    await expect(two.read('config.json')).rejects.toThrow(
      /config\.json is ambiguous .*a\/config\.json, b\/config\.json/,
    );
    expect(new TextDecoder().decode(await two.read('b/config.json'))).toBe('2');
  });
});

describe('dirSource', () => {
  it('reads files with progress, reports missing ones, refuses to escape', async () => {
    const src = dirSource(path.join(root, 'org/repo'));
    const p = progressLog();
    expectSameBytes(await src.read('big.bin', p.fn), big);
    expect(p.calls[p.calls.length - 1]).toEqual([big.length, big.length]);
    expect(await src.has('sub/a b.txt')).toBe(true);
    // A folder by that name exists (read() then says it is a folder instead of "not found").
    expect(await src.has('sub')).toBe(true);
    await expect(src.read('sub')).rejects.toThrow(/sub is a folder, not a regular file/);
    expect(await src.has('nope')).toBe(false);
    const err = await src.read('nope.json').catch((e) => e);
    expect(err).toBeInstanceOf(FileNotFoundError);
    expect(err.message).toMatch(/nope\.json not found in .*org\/repo/);
    await expect(src.read('../repo@v2/config.json')).rejects.toThrow(/escapes/);
  });
});
