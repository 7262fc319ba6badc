import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawTensor, RawTensors } from '../../src/engine/config';
import { paramShapes } from '../../src/engine/params';
import { loadHfCheckpoint, type LoadProgress } from '../../src/io/hf-model';
import { dirSource } from '../../src/io/node-source';
import { writeSafetensors } from '../../src/io/safetensors';
import { filesSource, hubSource } from '../../src/io/source';
import { startHubServer, type HubServer } from '../hub-server';
import { writeTinyHfCheckpoint, type TinyCheckpoint } from '../tiny-checkpoint';

let root: string;
let server: HubServer;
let llama: TinyCheckpoint;
let llamaSharded: TinyCheckpoint;

const tokenizerJson = { version: '1.0', model: { type: 'BPE', vocab: { a: 0 }, merges: [] } };
const tokenizerConfig = { bos_token: '<s>', eos_token: '</s>', chat_template: '{{ messages }}' };

function expectBitExact(got: RawTensors, want: RawTensors) {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, name).toEqual(w.shape);
    const a = new Uint8Array(g.data.buffer, g.data.byteOffset, g.data.byteLength);
    const b = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
    if (Buffer.compare(a, b) !== 0) throw new Error(`tensor ${name} differs`);
  }
}

function checkProgress(events: LoadProgress[], sizes: Record<string, number>) {
  const byFile = new Map<string, LoadProgress[]>();
  for (const e of events) byFile.set(e.file, [...(byFile.get(e.file) ?? []), e]);
  expect([...byFile.keys()].sort()).toEqual(Object.keys(sizes).sort());
  for (const [file, evs] of byFile) {
    for (let i = 1; i < evs.length; i++) expect(evs[i].loaded, file).toBeGreaterThanOrEqual(evs[i - 1].loaded);
    const last = evs[evs.length - 1];
    expect([last.loaded, last.total], file).toEqual([sizes[file], sizes[file]]);
  }
}

async function sizesOf(dir: string, files: string[]): Promise<Record<string, number>> {
  return Object.fromEntries(
    await Promise.all(files.map(async (f) => [f, (await stat(path.join(dir, f))).size] as const)),
  );
}

/** An in-memory copy of a checkpoint folder with some files replaced/removed. */
async function variant(dir: string, files: string[], changes: Record<string, Uint8Array | string | null>) {
  const m = new Map<string, Blob>();
  for (const f of files) m.set(f, new Blob([await readFile(path.join(dir, f))]));
  for (const [f, c] of Object.entries(changes)) {
    if (c === null) m.delete(f);
    else m.set(f, new Blob([c as BlobPart]));
  }
  return filesSource(m);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webtune-hfmodel-'));
  const extraFiles = { 'tokenizer.json': tokenizerJson, 'tokenizer_config.json': tokenizerConfig };
  llama = await writeTinyHfCheckpoint(path.join(root, 'test-org/tiny-llama'), 'llama', { extraFiles, vocab: 300 });
  llamaSharded = await writeTinyHfCheckpoint(path.join(root, 'test-org/tiny-llama-sharded'), 'llama', {
    shardBytes: 20_000,
    seed: 7,
    vocab: 300,
  });
  server = await startHubServer(root, { chunkSize: 8192 });
});

afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('loadHfCheckpoint over HTTP (Hub layout)', () => {
  it('single-file llama: bit-exact weights, config, tokenizer files, monotone progress', async () => {
    const events: LoadProgress[] = [];
    const ck = await loadHfCheckpoint(hubSource(server.baseUrl, 'test-org/tiny-llama'), (p) => events.push(p));
    expect(ck.config).toEqual(llama.config);
    expectBitExact(ck.weights, llama.weights);
    expect(ck.weights.has('lm_head.weight')).toBe(true);
    expect(ck.tokenizerJson).toEqual(tokenizerJson);
    expect(ck.tokenizerConfig).toEqual(tokenizerConfig);
    const dir = path.join(root, 'test-org/tiny-llama');
    checkProgress(events, await sizesOf(dir, llama.files));
    expect(events.filter((e) => e.file === 'model.safetensors').length).toBeGreaterThan(3);
  });

  it('sharded llama: every shard read, bit-exact weights', async () => {
    const shards = llamaSharded.files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(2);
    const events: LoadProgress[] = [];
    const ck = await loadHfCheckpoint(hubSource(server.baseUrl, 'test-org/tiny-llama-sharded'), (p) => events.push(p));
    expect(ck.config).toEqual(llamaSharded.config);
    expectBitExact(ck.weights, llamaSharded.weights);
    expect(ck.tokenizerJson).toBeNull();
    expect(ck.tokenizerConfig).toBeNull();
    checkProgress(events, await sizesOf(path.join(root, 'test-org/tiny-llama-sharded'), llamaSharded.files));
  });

  it('a missing repository/file is an error naming it', async () => {
    await expect(loadHfCheckpoint(hubSource(server.baseUrl, 'test-org/nope'))).rejects.toThrow(
      /test-org\/nope.*no config\.json/,
    );
  });
});

describe('loadHfCheckpoint: families and name normalisation', () => {
  it('qwen2 (tied, q/k/v biases)', async () => {
    const dir = path.join(root, 'qwen');
    const q = await writeTinyHfCheckpoint(dir, 'qwen2', { seed: 3 });
    const ck = await loadHfCheckpoint(dirSource(dir));
    expect(ck.config).toEqual(q.config);
    expect(ck.config.tie_word_embeddings).toBe(true);
    expect(ck.weights.has('model.layers.0.self_attn.k_proj.bias')).toBe(true);
    expectBitExact(ck.weights, q.weights);
  });

  it('gpt2 as stored on the Hub (no transformer. prefix, attn.bias buffers)', async () => {
    const dir = path.join(root, 'gpt2');
    const g = await writeTinyHfCheckpoint(dir, 'gpt2', { seed: 4 });
    expect(g.stored.has('h.0.attn.bias')).toBe(true);
    expect(g.stored.has('wte.weight')).toBe(true);
    const ck = await loadHfCheckpoint(dirSource(dir));
    expect(ck.config).toEqual(g.config);
    expectBitExact(ck.weights, g.weights);
    expect([...ck.weights.keys()].every((n) => n.startsWith('transformer.'))).toBe(true);
  });

  it('gpt2 with the transformer. prefix, masked_bias and a tied lm_head copy', async () => {
    const dir = path.join(root, 'gpt2-prefixed');
    const g = await writeTinyHfCheckpoint(dir, 'gpt2', { seed: 5 });
    const stored: RawTensors = new Map(g.weights);
    stored.set('transformer.h.1.attn.masked_bias', { shape: [], data: new Float32Array([-1e4]) });
    stored.set('transformer.h.1.attn.bias', { shape: [1], data: new Float32Array([1]) });
    stored.set('lm_head.weight', g.weights.get('transformer.wte.weight')!);
    await writeFile(path.join(dir, 'model.safetensors'), writeSafetensors(stored));
    const ck = await loadHfCheckpoint(dirSource(dir));
    expectBitExact(ck.weights, g.weights);
  });

  it('drops lm_head when the config says tied, or when it equals the embedding', async () => {
    const dir = path.join(root, 'llama-tie');
    const t = await writeTinyHfCheckpoint(dir, 'llama', { seed: 6, tie: true });
    const stored = new Map(t.stored);
    stored.set('lm_head.weight', { shape: [64, 16], data: new Float32Array(64 * 16).fill(0.5) });
    stored.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [2], data: new Float32Array([1, 0.01]) });
    const tiedSrc = await variant(dir, t.files, { 'model.safetensors': writeSafetensors(stored) });
    const a = await loadHfCheckpoint(tiedSrc);
    expect(a.weights.has('lm_head.weight')).toBe(false);
    expectBitExact(a.weights, t.weights);

    // Config says untied, but lm_head is bit-identical to the embedding: loaded as tied.
    const same = new Map(t.stored);
    same.set('lm_head.weight', {
      ...t.weights.get('model.embed_tokens.weight')!,
      data: t.weights.get('model.embed_tokens.weight')!.data.slice(),
    });
    const untiedCfg = JSON.stringify({ ...t.hfConfig, tie_word_embeddings: false });
    const b = await loadHfCheckpoint(
      await variant(dir, t.files, { 'config.json': untiedCfg, 'model.safetensors': writeSafetensors(same) }),
    );
    expect(b.config.tie_word_embeddings).toBe(true);
    expect(b.weights.has('lm_head.weight')).toBe(false);
  });
});

describe('loadHfCheckpoint: errors name what is wrong', () => {
  let dir: string;
  let t: TinyCheckpoint;
  beforeAll(async () => {
    dir = path.join(root, 'llama-err');
    t = await writeTinyHfCheckpoint(dir, 'llama', { seed: 8 });
  });
  const withStored = (edit: (m: Map<string, RawTensor>) => void) => {
    const m = new Map(t.stored);
    edit(m);
    return variant(dir, t.files, { 'model.safetensors': writeSafetensors(m) });
  };

  it('missing tensor', async () => {
    const src = await withStored((m) => m.delete('model.layers.1.mlp.up_proj.weight'));
    await expect(loadHfCheckpoint(src)).rejects.toThrow(
      /model\.safetensors: checkpoint does not match LlamaForCausalLM config: missing tensor "model\.layers\.1\.mlp\.up_proj\.weight" \(expected shape \[40,16\]\)/,
    );
  });

  it('wrong shape', async () => {
    const src = await withStored((m) => m.set('model.norm.weight', { shape: [2, 8], data: new Float32Array(16) }));
    await expect(loadHfCheckpoint(src)).rejects.toThrow(
      /tensor "model\.norm\.weight" has shape \[2,8\], expected \[16\]/,
    );
  });

  it('unexpected tensors', async () => {
    const src = await withStored((m) => {
      m.set('model.layers.0.self_attn.q_proj.bias', { shape: [16], data: new Float32Array(16) });
      m.set('model.layers.2.input_layernorm.weight', { shape: [16], data: new Float32Array(16) });
    });
    await expect(loadHfCheckpoint(src)).rejects.toThrow(
      /unexpected tensors "model\.layers\.0\.self_attn\.q_proj\.bias", "model\.layers\.2\.input_layernorm\.weight"/,
    );
  });

  it('untied config without lm_head', async () => {
    const src = await withStored((m) => m.delete('lm_head.weight'));
    await expect(loadHfCheckpoint(src)).rejects.toThrow(/missing tensor "lm_head\.weight"/);
  });

  it('no config / no weights / only pytorch_model.bin', async () => {
    await expect(loadHfCheckpoint(await variant(dir, t.files, { 'config.json': null }))).rejects.toThrow(
      /no config\.json/,
    );
    await expect(loadHfCheckpoint(await variant(dir, t.files, { 'model.safetensors': null }))).rejects.toThrow(
      /no model\.safetensors or model\.safetensors\.index\.json$/,
    );
    await expect(
      loadHfCheckpoint(await variant(dir, t.files, { 'model.safetensors': null, 'pytorch_model.bin': 'x' })),
    ).rejects.toThrow(/PyTorch pickles are not supported/);
  });

  it('bad config.json and corrupt safetensors', async () => {
    await expect(loadHfCheckpoint(await variant(dir, t.files, { 'config.json': '{oops' }))).rejects.toThrow(
      /config\.json: not valid JSON/,
    );
    await expect(
      loadHfCheckpoint(
        await variant(dir, t.files, { 'config.json': JSON.stringify({ ...t.hfConfig, architectures: ['BertModel'] }) }),
      ),
    ).rejects.toThrow(/config\.json: unsupported architecture "BertModel"/);
    await expect(
      loadHfCheckpoint(await variant(dir, t.files, { 'model.safetensors': new Uint8Array(4) })),
    ).rejects.toThrow(/model\.safetensors: not a safetensors file/);
  });

  it('sharded: missing shard, tensor not in its shard', async () => {
    const sdir = path.join(root, 'test-org/tiny-llama-sharded');
    const files = llamaSharded.files;
    const index = JSON.parse(await readFile(path.join(sdir, 'model.safetensors.index.json'), 'utf8'));
    const firstShard = files.find((f) => f.startsWith('model-00001'))!;
    await expect(loadHfCheckpoint(await variant(sdir, files, { [firstShard]: null }))).rejects.toThrow(
      new RegExp(`${firstShard}: shard listed in model\\.safetensors\\.index\\.json is missing`),
    );
    const wrong = { ...index, weight_map: { ...index.weight_map, 'model.norm.weight': firstShard } };
    const normShard = index.weight_map['model.norm.weight'];
    expect(normShard).not.toBe(firstShard);
    await expect(
      loadHfCheckpoint(await variant(sdir, files, { 'model.safetensors.index.json': JSON.stringify(wrong) })),
    ).rejects.toThrow(/tensor "model\.norm\.weight" listed in model\.safetensors\.index\.json is not in this shard/);
  });

  it('the tiny checkpoint covers exactly paramShapes', () => {
    expect([...t.weights.keys()]).toEqual([...paramShapes(t.config).keys()]);
  });
});

describe('non-finite weights in a Hub folder', () => {
  it('are refused at load, naming the file, the tensor and the element', async () => {
    const dir = path.join(root, 'test-org/nan-llama');
    const ck = await writeTinyHfCheckpoint(dir, 'llama', { vocab: 300 });
    const [name, t] = [...ck.stored].find(([n]) => n.endsWith('mlp.up_proj.weight'))!;
    const data = Float32Array.from(t.data);
    data[7] = -Infinity;
    await writeFile(
      path.join(dir, 'model.safetensors'),
      writeSafetensors(new Map([...ck.stored, [name, { ...t, data }]])),
    );
    await expect(loadHfCheckpoint(dirSource(dir))).rejects.toThrow(
      new RegExp(`model\\.safetensors: tensor "${name.replace(/\./g, '\\.')}" holds -Infinity at element \\[0, 7\\]`),
    );
  });
});
