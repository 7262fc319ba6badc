/**
 * A stored run's source.json (what Resume rebuilds a run from): written by runSourceOf, read back exactly, and
 * checked field by field when it comes back from storage or an imported file — a damaged one is refused with the
 * field named, never a TypeError in the worker or the page (seeded mutations, bounded).
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeRunStore } from '../../src/store/node';
import {
  DATA_FILE,
  datasetOf,
  parseRunSource,
  readRunSource,
  RunSourceError,
  runSourceOf,
  SOURCE_FILE,
  writeRunSource,
} from '../../src/worker/run-source';
import type { ModelSource, RunSource } from '../../src/worker/api';
import { jsonText, mutateTree } from '../fuzz/mutate';

const hub: ModelSource = {
  kind: 'hub',
  baseUrl: 'https://huggingface.co',
  repo: 'karpathy/tinyllamas',
  revision: 'main',
  format: 'llama2c',
  name: 'stories260K',
  files: [
    { path: 'stories260K/stories260K.bin', size: 1056540 },
    { path: 'stories260K/tok512.bin', role: 'tokenizer' },
  ],
};
const binary = new Uint8Array([0xff, 0xfe, 0, 1, 2, 0x80, 0xc3]);
const source = (): RunSource =>
  runSourceOf({
    model: hub,
    modelName: 'stories260K',
    dataName: 'tiny.jsonl, held-out.csv',
    backend: 'wasm',
    catalogId: 'stories260K',
    data: {
      files: [
        {
          name: 'tiny.jsonl',
          role: 'train',
          data: new TextEncoder().encode('{"instruction":"Say hi","output":"hi é"}\n'),
        },
        { name: 'held-out.csv', role: 'test', data: binary },
        { name: 'val.json', role: 'validation', data: '[{"instruction":"a","output":"b"}]' },
      ],
    },
    settings: { learning_rate: 2e-4, max_steps: 10 } as RunSource['settings'],
    runOptions: { samplePrompts: 2, sampleMaxNewTokens: 16, saveSteps: 5 },
  });

describe('run source.json', () => {
  it('round trip: the model source, settings and every dataset byte come back (text as text, other bytes as base64)', () => {
    const src = source();
    expect(src.data!.files.map((f) => [f.name, f.text !== undefined ? 'text' : 'base64'])).toEqual([
      ['tiny.jsonl', 'text'],
      ['held-out.csv', 'base64'],
      ['val.json', 'text'],
    ]);
    const back = parseRunSource(JSON.stringify(src));
    expect(back).toEqual(src);
    const ds = datasetOf(back)!;
    expect(ds.files[0]).toEqual({
      name: 'tiny.jsonl',
      role: 'train',
      data: '{"instruction":"Say hi","output":"hi é"}\n',
    });
    expect(ds.files[1].data).toEqual(binary);
    expect(ds.files[2].data).toBe('[{"instruction":"a","output":"b"}]');
  });

  it('is stored as source.json (names and roles only, what listing reads) and data.json (the contents)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'webtune-source-'));
    try {
      const store = new NodeRunStore(dir);
      const src = source();
      await writeRunSource(store, 'r1', src);
      const light = (await store.getFile('r1', SOURCE_FILE))!;
      expect(light).not.toContain('Say hi');
      expect(JSON.parse(light).data.files).toEqual([
        { name: 'tiny.jsonl', role: 'train' },
        { name: 'held-out.csv', role: 'test' },
        { name: 'val.json', role: 'validation' },
      ]);
      expect(await readRunSource(store, 'r1')).toEqual(src);
      const listed = (await readRunSource(store, 'r1', { bodies: false }))!;
      expect(listed.data!.files.map((f) => f.text ?? f.base64)).toEqual([undefined, undefined, undefined]);
      expect(await readRunSource(store, 'none')).toBeNull();
      await store.putFile('r1', DATA_FILE, '[{"text": "only one"}]');
      await expect(readRunSource(store, 'r1')).rejects.toThrow(
        /run r1: data\.json: expected a list of 3 file contents/,
      );
      expect((await readRunSource(store, 'r1', { bodies: false }))!.modelName).toBe('stories260K');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('local model files keep their names only; a dataset over the size limit is not kept', () => {
    const files: ModelSource = {
      kind: 'files',
      name: 'my model',
      files: [
        { path: 'config.json', file: new Blob(['{}']) },
        { path: 'model.safetensors', file: new Blob([]) },
      ],
    };
    const big = 'x'.repeat(64 * 1024 * 1024 + 1);
    const src = runSourceOf({
      model: files,
      modelName: 'm',
      dataName: 'big.txt',
      backend: 'cpu',
      catalogId: null,
      data: { files: [{ name: 'big.txt', role: 'train', data: big }] },
      settings: {} as RunSource['settings'],
      runOptions: { samplePrompts: 0, sampleMaxNewTokens: 8 },
    });
    expect(src.model).toEqual({ kind: 'files', name: 'my model', files: ['config.json', 'model.safetensors'] });
    expect(src.data).toBeNull();
    expect(parseRunSource(JSON.stringify(src))).toEqual(src);
    expect(datasetOf(src)).toBeNull();
  });

  const cases: [string, (s: any) => void, RegExp][] = [
    ['not JSON', () => undefined, /not valid JSON/],
    [
      'version',
      (s) => {
        s.version = 2;
      },
      /version: expected 1/,
    ],
    [
      'model kind',
      (s) => {
        s.model.kind = 'ftp';
      },
      /model\.kind: expected "hub" or "files"/,
    ],
    [
      'hub files',
      (s) => {
        s.model.source.files = [];
      },
      /model\.source\.files: expected a non-empty list/,
    ],
    [
      'file path',
      (s) => {
        s.model.source.files[1].path = 7;
      },
      /model\.source\.files\[1\]\.path: expected a string/,
    ],
    [
      'role',
      (s) => {
        s.data.files[0].role = 'eval';
      },
      /data\.files\[0\]\.role: expected train, validation or test/,
    ],
    [
      'no train file',
      (s) => {
        s.data.files = [s.data.files[1]];
      },
      /data\.files: expected at least one file with role train/,
    ],
    [
      'file body',
      (s) => {
        delete s.data.files[2].text;
      },
      /data\.files\[2\]: expected a text or base64 field/,
    ],
    [
      'backend',
      (s) => {
        s.backend = 'tpu';
      },
      /backend: expected webgpu, webgl, wasm, cpu/,
    ],
    [
      'run options',
      (s) => {
        s.runOptions.samplePrompts = 'three';
      },
      /runOptions\.samplePrompts: expected a number/,
    ],
  ];
  for (const [name, damage, msg] of cases) {
    it(`refuses a damaged record (${name}), naming the field`, () => {
      const s = JSON.parse(JSON.stringify(source()));
      damage(s);
      const text = name === 'not JSON' ? '{"version": 1,' : JSON.stringify(s);
      expect(() => parseRunSource(text, 'run x: source.json')).toThrow(RunSourceError);
      expect(() => parseRunSource(text, 'run x: source.json')).toThrow(
        new RegExp(`^run x: source\\.json: ${msg.source}`),
      );
    });
  }

  it('400 seeded mutations: each is read or refused with a RunSourceError, and what is read gives its dataset back', () => {
    const rng = new Rng(20261202);
    let read = 0,
      refused = 0;
    const t0 = performance.now();
    for (let i = 0; i < 400; i++) {
      const tree = JSON.parse(JSON.stringify(source()));
      const what: string[] = [];
      for (let k = 0; k < 1 + rng.int(3); k++)
        what.push(mutateTree(rng, tree, [/^\.model/, /^\.data/, /^\.runOptions/], false).what);
      const { text } = jsonText(rng, tree);
      let src: RunSource;
      try {
        src = parseRunSource(text);
      } catch (e) {
        expect(e, `${what.join('; ')}: ${(e as Error).message}`).toBeInstanceOf(RunSourceError);
        refused++;
        continue;
      }
      read++;
      try {
        datasetOf(src);
      } catch (e) {
        expect((e as Error).message, what.join('; ')).toMatch(
          /source\.json \(.*\): the kept dataset file is not valid base64/,
        );
      }
    }
    console.log(
      `[run source] 400 mutations in ${(performance.now() - t0).toFixed(0)} ms: ${read} read, ${refused} refused with the field named`,
    );
    expect(read + refused).toBe(400);
    expect(refused).toBeGreaterThan(100);
  });
});
