/**
 * The architecture as tests: imports only point down the layers of docs/architecture.md, no import cycles, and the
 * page's main-thread bundle carries no TensorFlow.js (all tensor work runs in the engine worker).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build, type Manifest } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';
import { importCycles, importGraph, layerViolations, type ImportEdge } from '../tools/import-graph';
import { ROOT } from './helpers';

const edge = (from: string, to: string, more: Partial<ImportEdge> = {}): ImportEdge => ({
  from,
  to,
  typeOnly: false,
  url: false,
  ...more,
});

describe('import graph', () => {
  const { files, edges } = importGraph(ROOT);

  it('reads the real sources', () => {
    expect(files.length).toBeGreaterThan(50);
    // A known downward arrow is found, so an empty violation list means something.
    expect(edges.some((e) => e.from === 'src/train/trainer.ts' && e.to === 'src/train/optimizer.ts')).toBe(true);
    expect(edges.some((e) => e.from === 'src/ui/engine.ts' && e.to === 'src/worker/engine.worker.ts' && e.url)).toBe(
      true,
    );
  });

  it('has no import that points up a layer, and the page imports only worker/api.ts', () => {
    expect(layerViolations(edges)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(importCycles(files, edges)).toEqual([]);
  });

  it('the checker itself catches an upward import, a sibling import, a page import and a cycle', () => {
    expect(layerViolations([edge('src/io/a.ts', 'src/train/b.ts')])).toEqual([
      'src/io/a.ts imports src/train/b.ts: io (layer 2) may not import train (layer 4)',
    ]);
    expect(layerViolations([edge('src/cli/a.ts', 'src/worker/b.ts')])).toHaveLength(1);
    expect(layerViolations([edge('src/ui/a.ts', 'src/data/index.ts', { typeOnly: true })])).toHaveLength(1);
    expect(layerViolations([edge('src/ui/a.ts', 'src/worker/engine.worker.ts')])).toHaveLength(1);
    expect(layerViolations([edge('src/ui/a.ts', 'src/worker/engine.worker.ts', { url: true })])).toEqual([]);
    expect(layerViolations([edge('src/train/a.ts', 'src/io/b.ts'), edge('src/ui/a.ts', 'src/worker/api.ts')])).toEqual(
      [],
    );
    const f = ['src/x/a.ts', 'src/x/b.ts', 'src/x/c.ts'];
    expect(
      importCycles(f, [edge(f[0], f[1]), edge(f[1], f[2]), edge(f[2], f[0], { typeOnly: true })]).map((c) => c.length),
    ).toEqual([3]);
    expect(importCycles(f, [edge(f[0], f[1]), edge(f[1], f[2])])).toEqual([]);
  });
});

/** Strings every build of TensorFlow.js carries: its package name and kernel names. */
const TFJS_MARKERS = ['@tensorflow/tfjs', 'tfjs-core', 'Conv2DBackpropInput', 'FusedBatchNorm'];

describe('production build', () => {
  const outDir = mkdtempSync(path.join(tmpdir(), 'webtune-build-'));
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it('the main-thread bundle (the page entry and every chunk it imports) has no TensorFlow.js', async () => {
    await build({
      root: ROOT,
      configFile: path.join(ROOT, 'vite.config.ts'),
      logLevel: 'error',
      mode: 'production',
      // vitest sets NODE_ENV=test, which would bundle React's development build
      define: { 'process.env.NODE_ENV': JSON.stringify('production') },
      build: { outDir, emptyOutDir: true, manifest: 'manifest.json' },
    });
    const manifest = JSON.parse(readFileSync(path.join(outDir, 'manifest.json'), 'utf8')) as Manifest;
    const entry = manifest['index.html'];
    expect(entry?.isEntry).toBe(true);
    // Everything the page loads on the main thread: static and dynamic imports, transitively. The worker is
    // referenced by URL (new Worker(new URL(…))) and is not among them.
    const seen = new Set<string>();
    const visit = (key: string) => {
      if (seen.has(key)) return;
      seen.add(key);
      for (const k of [...(manifest[key].imports ?? []), ...(manifest[key].dynamicImports ?? [])]) visit(k);
    };
    visit('index.html');
    const chunks = [...seen].map((k) => manifest[k].file);
    let bytes = 0;
    for (const file of chunks) {
      const text = readFileSync(path.join(outDir, file), 'utf8');
      bytes += Buffer.byteLength(text);
      for (const marker of TFJS_MARKERS) expect(text.includes(marker), `${file} contains "${marker}"`).toBe(false);
    }
    console.log(`[bundle] main thread: ${chunks.join(', ')} — ${(bytes / 1024).toFixed(1)} KiB`);
    // The markers are real: the worker bundle has them.
    // (Worker bundles are built apart and are not in the manifest.)
    const worker = readdirSync(path.join(outDir, 'assets')).find((f) => /^engine\.worker-.*\.js$/.test(f));
    expect(worker, 'the engine worker chunk').toBeDefined();
    const workerText = readFileSync(path.join(outDir, 'assets', worker!), 'utf8');
    expect(TFJS_MARKERS.filter((m) => workerText.includes(m)).length).toBeGreaterThan(0);
  });
});
