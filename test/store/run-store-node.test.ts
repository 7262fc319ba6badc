/**
 * The Node run store under real crashes and the CLI helpers:
 * - a child process saving a checkpoint is SIGKILLed half-way through writing tensors.safetensors, half-way through
 *   checkpoint.json, and after writing LATEST's temp file but before its rename: every time the previous checkpoint
 *   loads, and the next save removes the leftovers;
 * - saveCheckpointToDir / saveCheckpointBundle / loadCheckpointFromPath on run folders, checkpoint folders and bundle
 *   files; resumeSessionFromDir continues a run to bit-for-bit the weights of an uninterrupted one, and refuses
 *   another configuration or other data with readable messages.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import type { ModelConfig, RawTensors } from '../../src/engine/config';
import { loadCheckpointFromPath, NodeRunStore, saveCheckpointBundle, saveCheckpointToDir } from '../../src/store/node';
import { resumeSessionFromDir } from '../../src/store/resume';
import { encodeCheckpointBundle, type SessionCheckpoint } from '../../src/train/checkpoint';
import { FinetuneSession } from '../../src/train/session';
import type { FinetuneConfig } from '../../src/train/config';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';
import { ToyTokenizer } from '../data/toy-tokenizer';
import { ROOT } from '../helpers';

const tok = new ToyTokenizer();
const cfg: ModelConfig = tinyConfig('llama', {
  vocab_size: tok.vocabSize,
  max_position_embeddings: 64,
  hidden_size: 16,
  num_attention_heads: 4,
  head_dim: 4,
});
const raw: RawTensors = randomWeights(cfg, 3, 0.2);
const examples = Array.from({ length: 9 }, (_, i) => ({ prompt: `q${i} ${'y'.repeat(i % 3)}`, completion: `a${i}` }));
const data = [{ name: 'mem', examples }];
const config: Partial<FinetuneConfig> = {
  template: { kind: 'instruction' },
  r: 2,
  lora_alpha: 4,
  learning_rate: 1e-2,
  per_device_train_batch_size: 2,
  gradient_accumulation_steps: 2,
  lora_dropout: 0.1,
  max_steps: 6,
  logging_steps: 1,
  max_length: 64,
  seed: 5,
};

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'webtune-node-runs-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  tf.disposeVariables();
});

async function values(model: CausalLM): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of model.adapter!.variables()) out.set(n, Float32Array.from((await v.data()) as Float32Array));
  return out;
}
function expectSameBits(a: Map<string, Float32Array>, b: Map<string, Float32Array>) {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [n, x] of a) expect(Buffer.from(b.get(n)!.buffer).equals(Buffer.from(x.buffer)), n).toBe(true);
}

let cks: SessionCheckpoint[];
let finalWeights: Map<string, Float32Array>;
beforeAll(async () => {
  await initBackend('cpu');
  const model = CausalLM.fromRaw(cfg, raw);
  const s = new FinetuneSession({ model, tokenizer: tok, data, config, baseModelName: 'tiny' });
  cks = [];
  for (const k of [2, 3, 4]) {
    await s.train({ shouldStop: () => s.globalStep >= k });
    cks.push(await s.checkpoint());
  }
  expect((await s.train()).status).toBe('completed');
  finalWeights = await values(model);
  s.dispose();
  model.dispose();
});

/** In a child process: save `ck` to root/id and SIGKILL the process at `point`. */
function crashingSave(
  root: string,
  id: string,
  ck: SessionCheckpoint,
  point: 'tensors' | 'checkpoint' | 'latest',
): { signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const dir = tmp();
  const bundle = path.join(dir, 'ck.webtune.safetensors');
  writeFileSync(bundle, encodeCheckpointBundle(ck));
  const script = path.join(dir, 'child.mjs');
  const src = (p: string) => pathToFileURL(path.join(ROOT, p)).href;
  writeFileSync(
    script,
    `
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
const { NodeRunStore } = await import(${JSON.stringify(src('src/store/node.ts'))});
const { decodeCheckpointBundle } = await import(${JSON.stringify(src('src/train/checkpoint.ts'))});
const [root, id, bundle, point] = process.argv.slice(2);
const ck = decodeCheckpointBundle(new Uint8Array(readFileSync(bundle)));
const die = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => {}); };
const store = new NodeRunStore(root, { fileOps: {
  async writeFile(file, data) {
    if (point !== 'latest' && path.basename(file).startsWith(point)) { writeFileSync(file, data.subarray(0, data.length >> 1)); await die(); }
    writeFileSync(file, data);
  },
  async rename(a, b) {
    if (point === 'latest' && path.basename(b) === 'LATEST') await die();
    renameSync(a, b);
  },
} });
await store.save(id, ck);
console.log('save completed');
`,
  );
  return spawnSync(process.execPath, ['--import', 'tsx', script, root, id, bundle, point], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('NodeRunStore under real crashes (SIGKILL in a child process)', () => {
  for (const point of ['tensors', 'checkpoint', 'latest'] as const) {
    it(`killed while writing ${point === 'latest' ? 'LATEST (before its rename)' : `${point} file`}: the previous checkpoint loads; the next save cleans up`, async () => {
      const root = tmp();
      const store = new NodeRunStore(root);
      await store.save('run', cks[0], { name: 'crash test' });
      const r = crashingSave(root, 'run', cks[1], point);
      expect(r.signal, r.stderr).toBe('SIGKILL');
      expect(r.stdout).not.toMatch(/save completed/);
      const runDir = path.join(root, 'run');
      const leftovers = readdirSync(runDir, { recursive: true })
        .map(String)
        .filter((n) => /\.tmp-|ckpt-000002/.test(n));
      expect(leftovers.length).toBeGreaterThan(0); // the crash really left something behind
      const back = await store.loadLatest('run');
      expect(back!.meta.progress.global_step).toBe(2);
      expect(await store.info('run')).toMatchObject({ name: 'crash test', checkpoints: 1, latest: { step: 2 } });
      await store.save('run', cks[2]);
      expect((await store.loadLatest('run'))!.meta.progress.global_step).toBe(4);
      expect(
        readdirSync(runDir, { recursive: true })
          .map(String)
          .filter((n) => /\.tmp-/.test(n)),
      ).toEqual([]);
      expect(
        readdirSync(runDir)
          .filter((n) => n.startsWith('ckpt-'))
          .sort(),
      ).toEqual(['ckpt-000001', 'ckpt-000002']);
    });
  }
});

describe('CLI helpers: save to a folder or file, resumeSessionFromDir', () => {
  it('saveCheckpointToDir / saveCheckpointBundle / loadCheckpointFromPath on every kind of path', async () => {
    const dir = tmp();
    const runDir = path.join(dir, 'out', 'checkpoints');
    const a = await saveCheckpointToDir(runDir, cks[0]);
    expect(a.path).toBe(path.join(runDir, 'ckpt-000001'));
    await saveCheckpointToDir(runDir, cks[1]);
    const b = await saveCheckpointToDir(runDir, cks[2], { keep: 1 });
    expect(readdirSync(runDir).sort()).toEqual(['LATEST', 'ckpt-000003']);
    expect(b.bytes).toBeGreaterThan(0);
    expect((await loadCheckpointFromPath(runDir)).checkpoint.meta.progress.global_step).toBe(4);
    const gen = await loadCheckpointFromPath(b.path);
    expect(gen.source).toBe(b.path);
    expect(gen.checkpoint.meta.progress.global_step).toBe(4);
    const file = path.join(dir, 'run.webtune.safetensors');
    await saveCheckpointBundle(file, cks[1]);
    expect((await loadCheckpointFromPath(file)).checkpoint.meta.progress.global_step).toBe(3);
    await expect(loadCheckpointFromPath(path.join(dir, 'missing'))).rejects.toThrow(/missing: no such file or folder/);
    await expect(loadCheckpointFromPath(dir)).rejects.toThrow(/no checkpoint here \(expected a run folder with LATEST/);
  });

  it('resumeSessionFromDir continues to the weights of the uninterrupted run; refuses other data or configuration', async () => {
    const root = tmp();
    const store = new NodeRunStore(root);
    await store.save('r', cks[1]); // step 3
    const model = CausalLM.fromRaw(cfg, raw);
    const { session, checkpoint, source } = await resumeSessionFromDir(path.join(root, 'r'), {
      model,
      tokenizer: tok,
      data,
    });
    expect(source).toBe(path.join(root, 'r', 'ckpt-000001'));
    expect(checkpoint.meta.progress.global_step).toBe(3);
    expect(session.globalStep).toBe(3);
    expect(session.baseModelName).toBe('tiny');
    expect((await session.train()).status).toBe('completed');
    expectSameBits(await values(model), finalWeights);
    session.dispose();

    // the same config given explicitly is fine; a different one is listed
    const again = await resumeSessionFromDir(path.join(root, 'r'), { model, tokenizer: tok, data, config });
    again.session.dispose();
    await expect(
      resumeSessionFromDir(path.join(root, 'r'), { model, tokenizer: tok, data, config: { ...config, max_steps: 8 } }),
    ).rejects.toThrow(/configuration differs from the checkpoint's — max_steps: 6 in the checkpoint, 8 now/);
    await expect(
      resumeSessionFromDir(path.join(root, 'r'), {
        model,
        tokenizer: tok,
        data: [{ name: 'mem', examples: examples.slice(1) }],
      }),
    ).rejects.toThrow(
      /training data differ from the checkpoint's .*examples train\/validation\/test: 9\/0\/0 in the checkpoint, 8\/0\/0 now/,
    );
    model.dispose();
    expect(existsSync(path.join(root, 'r', 'LATEST'))).toBe(true);
  });
});
