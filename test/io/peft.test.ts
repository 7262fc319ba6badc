/** PEFT adapter export/import (format, exact round trips, errors) and merged-model export reloaded through loadHfCheckpoint. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import type { ModelConfig, RawTensors } from '../../src/engine/config';
import { loraParamName } from '../../src/engine/lora';
import { targetedModules, type LoraConfig } from '../../src/engine/lora-config';
import { CausalLM } from '../../src/engine/model';
import { loadHfCheckpoint } from '../../src/io/hf-model';
import { unpermuteRopeRows } from '../../src/io/llama2c';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  exportMergedModel,
  exportPeftAdapter,
  loadPeftAdapter,
  peftAdapterReadme,
  parsePeftAdapter,
  parsePeftAdapterConfig,
  readPeftAdapter,
} from '../../src/io/peft';
import { parseSafetensors, writeSafetensors } from '../../src/io/safetensors';
import { filesSource } from '../../src/io/source';
import { Rng } from '../../src/util/rng';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';

const LORA: LoraConfig = { r: 4, lora_alpha: 8, lora_dropout: 0.05, target_modules: 'all-linear', use_rslora: false };
const IDS = Int32Array.from([1, 5, 3, 7, 2, 9, 11, 4]);

/** Give every A and B random values (B is zero after init, which would hide layout mistakes). */
function randomizeAdapter(model: CausalLM, seed: number): void {
  const rng = new Rng(seed);
  const values = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of model.adapter!.variables()) {
    const data = new Float32Array(v.size);
    for (let i = 0; i < data.length; i++) data[i] = rng.normal(0, 0.3);
    values.set(name, { shape: [...v.shape], data });
  }
  model.adapter!.assign(values);
}

async function logits(model: CausalLM, ids = IDS): Promise<Float32Array> {
  const t = tf.tidy(() => model.forward({ inputIds: ids, batchSize: 1, seqLen: ids.length }));
  const d = (await t.data()) as Float32Array;
  t.dispose();
  return d;
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

function expectBitIdentical(a: Float32Array, b: Float32Array, what: string) {
  expect(a.length, what).toBe(b.length);
  const x = bits(a),
    y = bits(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) throw new Error(`${what} differs at ${i}: ${a[i]} vs ${b[i]}`);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function asBlobs(files: Map<string, Uint8Array>): Map<string, Blob> {
  return new Map([...files].map(([n, b]) => [n, new Blob([b as BlobPart])]));
}

const json = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));

beforeAll(async () => {
  await initBackend('cpu');
});

const CASES: { label: string; cfg: ModelConfig; lora?: Partial<LoraConfig> }[] = [
  { label: 'llama (untied lm_head)', cfg: tinyConfig('llama') },
  {
    label: 'qwen2 (q/k/v biases, tied)',
    cfg: tinyConfig('qwen2'),
    lora: { target_modules: ['q_proj', 'v_proj'], use_rslora: true },
  },
  { label: 'gpt2 (Conv1D)', cfg: tinyConfig('gpt2') },
  { label: 'qwen3 (q/k norms, head_dim ≠ hidden/heads)', cfg: tinyConfig('qwen3') },
  { label: 'gemma3 (sliding layers, soft-capping, untied)', cfg: tinyConfig('gemma3', { tie_word_embeddings: false }) },
  { label: 'gpt_neo (nn.Linear under attn.attention)', cfg: tinyConfig('gpt_neo') },
  {
    label: 'gpt_neo with PEFT default targets',
    cfg: tinyConfig('gpt_neo'),
    lora: { target_modules: ['q_proj', 'v_proj'] },
  },
  {
    label: 'llama in the interleaved RoPE layout',
    cfg: tinyConfig('llama', { rope_layout: 'interleaved', tie_word_embeddings: true }),
  },
];

describe('PEFT adapter export / import', () => {
  for (const { label, cfg, lora } of CASES) {
    it(`${label}: PEFT config and key names, bit-identical round trip, same logits after reload`, async () => {
      const lc = { ...LORA, ...lora };
      const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
      model.attachLora(lc, 1);
      randomizeAdapter(model, 2);
      const files = await exportPeftAdapter(model, { baseModelNameOrPath: 'tiny/base' });
      expect([...files.keys()].sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);

      const conf = json(files.get(ADAPTER_CONFIG_FILE)!);
      expect(conf).toMatchObject({
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r: lc.r,
        lora_alpha: lc.lora_alpha,
        lora_dropout: lc.lora_dropout,
        use_rslora: lc.use_rslora,
        bias: 'none',
        fan_in_fan_out: cfg.family === 'gpt2',
        base_model_name_or_path: 'tiny/base',
        inference_mode: true,
        modules_to_save: null,
        init_lora_weights: true,
        use_dora: false,
      });
      const wantTargets =
        lc.target_modules === 'all-linear'
          ? cfg.family === 'gpt2'
            ? ['c_attn', 'c_proj', 'c_fc']
            : cfg.family === 'gpt_neo'
              ? ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'c_fc', 'c_proj']
              : ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
          : lc.target_modules;
      expect(conf.target_modules).toEqual(wantTargets);

      const { tensors, metadata } = parseSafetensors(files.get(ADAPTER_WEIGHTS_FILE)!, ADAPTER_WEIGHTS_FILE);
      expect(metadata).toEqual({ format: 'pt' });
      // the module names exactly as PEFT writes them for each architecture
      const first =
        cfg.family === 'gpt2'
          ? 'base_model.model.transformer.h.0.attn.c_attn'
          : cfg.family === 'gpt_neo'
            ? 'base_model.model.transformer.h.0.attn.attention.q_proj'
            : 'base_model.model.model.layers.0.self_attn.q_proj';
      const D = cfg.hidden_size;
      expect(tensors.get(`${first}.lora_A.weight`)!.shape).toEqual([lc.r, D]);
      expect(tensors.get(`${first}.lora_B.weight`)!.shape).toEqual([
        cfg.family === 'gpt2' ? 3 * D : cfg.num_attention_heads * cfg.head_dim,
        lc.r,
      ]);
      expect(tensors.size).toBe(2 * model.adapter!.layers.size);

      // import: tensors bit-identical to the adapter's variables (in the model's own layout)
      const imported = parsePeftAdapter(cfg, {
        config: files.get(ADAPTER_CONFIG_FILE)!,
        weights: files.get(ADAPTER_WEIGHTS_FILE)!,
      });
      expect(imported.config).toEqual({
        ...lc,
        target_modules: lc.target_modules === 'all-linear' ? wantTargets : lc.target_modules,
      });
      expect(imported.baseModelNameOrPath).toBe('tiny/base');
      for (const [name, v] of model.adapter!.variables()) {
        const t = imported.tensors.get(name)!;
        expect(t.shape, name).toEqual(v.shape);
        expectBitIdentical(t.data, (await v.data()) as Float32Array, name);
      }

      // a fresh copy of the base model with the imported adapter computes exactly the same logits
      const want = await logits(model);
      const copy = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
      const src = filesSource(asBlobs(files));
      loadPeftAdapter(copy, await readPeftAdapter(src, cfg));
      expectBitIdentical(await logits(copy), want, 'logits');
      model.dispose();
      copy.dispose();
    });
  }

  it('an adapter trained on the interleaved layout is an HF-layout adapter for the same model in the half layout', async () => {
    const half = tinyConfig('llama', { tie_word_embeddings: true });
    const raw = randomWeights(half, 5);
    // the same network with q/k rows in llama2.c's interleaved layout
    const inter: RawTensors = new Map();
    for (const [n, t] of raw) {
      const heads = n.includes('.q_proj.')
        ? half.num_attention_heads
        : n.includes('.k_proj.')
          ? half.num_key_value_heads
          : 0;
      inter.set(n, heads ? { shape: t.shape, data: unpermuteRopeRows(t.data, heads, half.head_dim, t.shape[1]) } : t);
    }
    const mi = CausalLM.fromRaw({ ...half, rope_layout: 'interleaved' }, inter);
    const mh = CausalLM.fromRaw(half, raw);
    expect(maxAbsDiff(await logits(mi), await logits(mh))).toBeLessThan(1e-5);
    mi.attachLora(LORA, 1);
    randomizeAdapter(mi, 7);
    const files = await exportPeftAdapter(mi);
    loadPeftAdapter(
      mh,
      parsePeftAdapter(half, { config: files.get(ADAPTER_CONFIG_FILE)!, weights: files.get(ADAPTER_WEIGHTS_FILE)! }),
    );
    const d = maxAbsDiff(await logits(mi), await logits(mh));
    expect(d).toBeLessThan(1e-5);
    mi.dispose();
    mh.dispose();
  });
});

describe('PEFT adapter import errors name the file and the key', () => {
  const cfg = tinyConfig('llama');
  let files: Map<string, Uint8Array>;
  let conf: Record<string, unknown>;
  let tensors: RawTensors;
  beforeAll(async () => {
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
    model.attachLora({ ...LORA, target_modules: ['q_proj', 'v_proj'] }, 1);
    files = await exportPeftAdapter(model);
    conf = json(files.get(ADAPTER_CONFIG_FILE)!);
    tensors = parseSafetensors(files.get(ADAPTER_WEIGHTS_FILE)!, 'x').tensors;
    model.dispose();
  });
  const parse = (c: Record<string, unknown>, t: RawTensors) =>
    parsePeftAdapter(cfg, { config: c, weights: writeSafetensors(t) });
  const withTensor = (key: string, v: { shape: number[]; data: Float32Array } | null) => {
    const m = new Map(tensors);
    if (v) m.set(key, v);
    else m.delete(key);
    return m;
  };
  const qA = loraParamName('model.layers.0.self_attn.q_proj', 'A');
  const qB = loraParamName('model.layers.0.self_attn.q_proj', 'B');

  it('accepts the unmodified files', () => {
    expect(parse(conf, tensors).tensors.size).toBe(2 * 2 * cfg.num_hidden_layers);
  });
  it('unknown key', () => {
    expect(() =>
      parse(
        conf,
        withTensor('base_model.model.model.layers.0.self_attn.q_proj.lora_embedding_A', {
          shape: [1],
          data: new Float32Array(1),
        }),
      ),
    ).toThrow(
      /adapter_model\.safetensors: unexpected tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_embedding_A".*embedding/,
    );
    expect(() =>
      parse(
        conf,
        withTensor('base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight', {
          shape: [4, 8],
          data: new Float32Array(32),
        }),
      ),
    ).toThrow(
      /adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.9\.self_attn\.q_proj\.lora_A\.weight" is for module .* not a linear layer of this LlamaForCausalLM/,
    );
    expect(() =>
      parse(
        conf,
        withTensor('base_model.model.model.layers.0.mlp.up_proj.lora_A.weight', {
          shape: [4, 8],
          data: new Float32Array(32),
        }),
      ),
    ).toThrow(/adapter_config\.json target_modules \["q_proj","v_proj"\] does not target/);
  });
  it('wrong shape vs the base model', () => {
    expect(() => parse(conf, withTensor(qA, { shape: [4, 6], data: new Float32Array(24) }))).toThrow(
      /tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[4,6\], but the base model's model\.layers\.0\.self_attn\.q_proj needs \[4,8\]/,
    );
    expect(() => parse(conf, withTensor(qB, { shape: [5, 4], data: new Float32Array(20) }))).toThrow(
      /needs \[8,4\] \(out_features \(8\) × r\)/,
    );
  });
  it('r mismatch', () => {
    expect(() => parse({ ...conf, r: 8 }, tensors)).toThrow(
      /r mismatch: tensor ".*lora_A\.weight" has shape \[4,8\] \(rank 4\) but adapter_config\.json says r = 8/,
    );
  });
  it('missing tensor', () => {
    expect(() => parse(conf, withTensor(qB, null))).toThrow(
      /missing tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight"/,
    );
  });
  it('unsupported configurations', () => {
    expect(() => parse({ ...conf, peft_type: 'IA3' }, tensors)).toThrow(/adapter_config\.json: "peft_type" is "IA3"/);
    expect(() => parse({ ...conf, task_type: 'SEQ_CLS' }, tensors)).toThrow(/"task_type"/);
    expect(() => parse({ ...conf, use_dora: true }, tensors)).toThrow(/DoRA/);
    expect(() => parse({ ...conf, bias: 'all' }, tensors)).toThrow(/"bias"/);
    expect(parse({ ...conf, modules_to_save: ['lm_head'] }, tensors).warnings[0]).toMatch(
      /modules_to_save \[lm_head\].*not applied/,
    );
    expect(() => parse({ ...conf, rank_pattern: { q_proj: 2 } }, tensors)).toThrow(/rank_pattern/);
    expect(() => parse({ ...conf, target_modules: ['w_pack'] }, tensors)).toThrow(/target_modules.*w_pack/);
    expect(() => parsePeftAdapter(cfg, { config: '{oops', weights: writeSafetensors(tensors) })).toThrow(
      /adapter_config\.json: not valid JSON/,
    );
  });
  it('PEFT default targets (target_modules null) of each new family: q_proj and v_proj, under PEFT module names', () => {
    for (const fam of ['qwen3', 'gemma3', 'gpt_neo'] as const) {
      const c = tinyConfig(fam);
      const got = parsePeftAdapterConfig({ peft_type: 'LORA', r: 2, target_modules: null }, c);
      expect(got.target_modules).toEqual(['q_proj', 'v_proj']);
      const att = fam === 'gpt_neo' ? 'transformer.h.1.attn.attention' : 'model.layers.1.self_attn';
      expect(targetedModules(c, got).map((m) => m.name)).toContain(`${att}.v_proj`);
      expect(targetedModules(c, got)).toHaveLength(4);
    }
  });
  it('target_modules as a regular expression (PEFT full-name match) and null (PEFT defaults)', () => {
    const r = parse({ ...conf, target_modules: '.*\\.(q_proj|v_proj)' }, tensors);
    expect(r.config.target_modules).toEqual(
      [0, 1].flatMap((l) => [`model.layers.${l}.self_attn.q_proj`, `model.layers.${l}.self_attn.v_proj`]),
    );
    expect(parse({ ...conf, target_modules: null }, tensors).config.target_modules).toEqual(['q_proj', 'v_proj']);
  });
  it('a folder without safetensors weights', async () => {
    const src = filesSource(
      new Map([
        [ADAPTER_CONFIG_FILE, new Blob(['{}'])],
        ['adapter_model.bin', new Blob(['x'])],
      ]),
    );
    await expect(readPeftAdapter(src, cfg)).rejects.toThrow(/no adapter_model\.safetensors \(only adapter_model\.bin/);
  });
});

describe('merged model export', () => {
  for (const { label, cfg } of CASES) {
    it(`${label}: reloads with loadHfCheckpoint and gives the unmerged adapter model's logits; base weights untouched`, async () => {
      const raw = randomWeights(cfg, 3);
      const model = CausalLM.fromRaw(cfg, raw);
      model.attachLora(LORA, 1);
      randomizeAdapter(model, 4);
      const want = await logits(model);
      const files = await exportMergedModel(model, { 'tokenizer_config.json': '{"eos_token": "</s>"}' });
      expect([...files.keys()].sort()).toEqual([
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'tokenizer_config.json',
      ]);
      const hf = json(files.get('config.json')!);
      expect(hf.tie_word_embeddings).toBe(cfg.tie_word_embeddings);
      const names = [...parseSafetensors(files.get('model.safetensors')!, 'm').tensors.keys()];
      expect(names.includes('lm_head.weight')).toBe(!cfg.tie_word_embeddings);

      const ck = await loadHfCheckpoint(filesSource(asBlobs(files)));
      // (the GPT-2 parser marks its always-present attention biases; the fixture leaves the flag false)
      expect(ck.config).toEqual({
        ...cfg,
        rope_layout: 'half',
        attention_bias: cfg.family === 'gpt2' ? true : cfg.attention_bias,
      });
      expect(ck.tokenizerConfig).toEqual({ eos_token: '</s>' });
      const merged = CausalLM.fromRaw(ck.config, ck.weights);
      const got = await logits(merged);
      const d = maxAbsDiff(got, want);
      console.log(`[merged ${label}] max |Δlogit| merged vs adapter = ${d.toExponential(2)}`);
      expect(d).toBeLessThan(1e-4);

      // the model itself is unchanged: base weights bit-identical, adapter still attached and unmerged
      expect(model.adapter!.merged).toBe(false);
      for (const [n, t] of raw) expectBitIdentical((await model.weights.get(n)!.data()) as Float32Array, t.data, n);
      await expect(exportMergedModel(model, { 'config.json': '{}' })).rejects.toThrow(/would overwrite/);
      model.dispose();
      merged.dispose();
    });
  }
});

describe('peftAdapterReadme', () => {
  it('says how PEFT loads the adapter on its base, with the note on a base that is no transformers folder', () => {
    const text = peftAdapterReadme({
      baseModelNameOrPath: 'karpathy/tinyllamas',
      baseModelNote: 'Note: the base model is the llama2.c checkpoint `stories260K/stories260K.bin`.',
      modelName: 'stories260K',
      lora: { r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false },
    });
    expect(text).toMatch(/^# LoRA adapter for stories260K\n/);
    expect(text).toContain('AutoModelForCausalLM.from_pretrained("karpathy/tinyllamas")');
    expect(text).toContain('PeftModel.from_pretrained(base, "path/to/this/folder")');
    expect(text).toContain('r = 16, lora_alpha = 32');
    expect(text).toContain('stories260K/stories260K.bin');
  });
});
