/**
 * Adapters written by TRL / Axolotl (src/io/peft-layout.ts and src/io/peft.ts): the adapter is found in an output_dir
 * with checkpoint-N folders and trainer files, a pickled adapter_model.bin is refused naming the file, and an adapter
 * written in PEFT's layout by another tool — another r, other target modules, rsLoRA, a modules_to_save tensor —
 * imports (modules_to_save reported, not applied), scores and generates exactly as its merged weights do.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { adapterSource } from '../../src/cli/resolve';
import { initBackend } from '../../src/engine/backend';
import type { RawTensor, RawTensors } from '../../src/engine/config';
import { generate } from '../../src/engine/generate';
import { CausalLM } from '../../src/engine/model';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadPeftAdapter,
  parsePeftAdapter,
  readPeftAdapter,
} from '../../src/io/peft';
import { chooseAdapterFiles, type NamedFile } from '../../src/io/peft-layout';
import { writeSafetensors } from '../../src/io/safetensors';
import { Rng } from '../../src/util/rng';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';

const enc = new TextEncoder();
const f = (name: string, text = 'x'): NamedFile => ({ name, bytes: enc.encode(text) });

describe('chooseAdapterFiles: TRL / Axolotl output folders', () => {
  const trainerFiles = (dir: string) => [
    f(`${dir}/optimizer.pt`),
    f(`${dir}/scheduler.pt`),
    f(`${dir}/trainer_state.json`, '{}'),
    f(`${dir}/tokenizer_config.json`, '{}'),
    f(`${dir}/rng_state.pth`),
  ];
  const adapterIn = (dir: string) => [
    f(`${dir}${dir ? '/' : ''}adapter_config.json`, `{"dir": "${dir}"}`),
    f(`${dir}${dir ? '/' : ''}adapter_model.safetensors`),
  ];

  it('an output_dir with only checkpoint folders: the latest checkpoint-N (numerically), said so', () => {
    const files = [
      ...adapterIn('out-trl/checkpoint-500'),
      ...trainerFiles('out-trl/checkpoint-500'),
      ...adapterIn('out-trl/checkpoint-1000'),
      ...trainerFiles('out-trl/checkpoint-1000'),
      ...adapterIn('out-trl/checkpoint-900'),
      f('out-trl/README.md'),
    ];
    const c = chooseAdapterFiles(files);
    expect(c.folder).toBe('out-trl/checkpoint-1000');
    expect(c.config.name).toBe('out-trl/checkpoint-1000/adapter_config.json');
    expect(c.weights.name).toBe('out-trl/checkpoint-1000/adapter_model.safetensors');
    expect(c.notes[0]).toMatch(
      /latest checkpoint, checkpoint-1000, of 3 \(checkpoint-1000, checkpoint-900, checkpoint-500\)/,
    );
  });

  it('the final adapter (save_model at the root) wins over checkpoints; a single checkpoint folder alone works', () => {
    const c = chooseAdapterFiles([...adapterIn('out'), ...adapterIn('out/checkpoint-20'), ...trainerFiles('out')]);
    expect(c.folder).toBe('out');
    expect(c.notes[0]).toMatch(/final adapter in out\/ rather than the 1 checkpoint folder/);
    const one = chooseAdapterFiles([...adapterIn('checkpoint-7'), ...trainerFiles('checkpoint-7')]);
    expect(one.folder).toBe('checkpoint-7');
    expect(one.notes).toEqual([]);
    // two files chosen by hand, renamed
    const hand = chooseAdapterFiles([f('my.json', '{}'), f('my.safetensors')]);
    expect([hand.config.name, hand.weights.name]).toEqual(['my.json', 'my.safetensors']);
  });

  it('a pickled adapter_model.bin is refused naming the file and how to re-save; nothing usable names what was given', () => {
    expect(() => chooseAdapterFiles([f('out/adapter_config.json', '{}'), f('out/adapter_model.bin')])).toThrow(
      /out\/adapter_model\.bin is a PyTorch pickle.*safe_serialization=True/,
    );
    expect(() => chooseAdapterFiles([f('adapter_model.bin')])).toThrow(/adapter_model\.bin is a PyTorch pickle/);
    expect(() =>
      chooseAdapterFiles([f('a/config.json'), f('a/model.safetensors'), f('a/generation_config.json')]),
    ).toThrow(
      /no adapter_config\.json among 3 file\(s\) \(a\/config\.json, a\/model\.safetensors, a\/generation_config\.json\)/,
    );
    expect(() => chooseAdapterFiles([f('x/adapter_config.json', '{}')])).toThrow(
      /x\/adapter_config\.json has no adapter_model\.safetensors beside it/,
    );
  });
});

describe('an adapter written by another tool (r 2, k_proj + down_proj, rsLoRA, modules_to_save)', () => {
  const cfg = tinyConfig('llama');
  const R = 2;
  const ALPHA = 3;
  const scaling = ALPHA / Math.sqrt(R); // rsLoRA
  const targets = ['k_proj', 'down_proj'];
  let tensors: RawTensors;
  let config: Record<string, unknown>;
  let tmp: string;

  const rand = (rng: Rng, shape: number[]): RawTensor => {
    const n = shape[0] * shape[1];
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = 0.3 * (2 * rng.uniform() - 1);
    return { shape, data };
  };

  beforeAll(async () => {
    await initBackend('cpu');
    const rng = new Rng(11);
    tensors = new Map();
    const D = cfg.hidden_size;
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const k = `base_model.model.model.layers.${l}.self_attn.k_proj`;
      const d = `base_model.model.model.layers.${l}.mlp.down_proj`;
      tensors.set(`${k}.lora_A.weight`, rand(rng, [R, D]));
      tensors.set(`${k}.lora_B.weight`, rand(rng, [cfg.num_key_value_heads * cfg.head_dim, R]));
      tensors.set(`${d}.lora_A.weight`, rand(rng, [R, cfg.intermediate_size]));
      tensors.set(`${d}.lora_B.weight`, rand(rng, [D, R]));
    }
    // Axolotl's lora_modules_to_save: PEFT saves the full copy under the module's own name
    tensors.set('base_model.model.lm_head.weight', rand(rng, [cfg.vocab_size, D]));
    config = {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'org/tiny-llama',
      r: R,
      lora_alpha: ALPHA,
      lora_dropout: 0.1,
      target_modules: targets,
      use_rslora: true,
      modules_to_save: ['lm_head'],
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
    };
    tmp = await mkdtemp(path.join(os.tmpdir(), 'webtune-peft-layout-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** The base weights with W += scaling · B · A for every adapted module (PEFT's merge_and_unload). */
  function mergedWeights(): RawTensors {
    const w = randomWeights(cfg, 5);
    for (const [key, a] of tensors) {
      const m = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(key);
      if (!m) continue;
      const b = tensors.get(key.replace('lora_A', 'lora_B'))!;
      const W = w.get(`${m[1]}.weight`)!;
      const [out, inn] = W.shape;
      const data = Float32Array.from(W.data);
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inn; i++) {
          let s = 0;
          for (let k = 0; k < R; k++) s += b.data[o * R + k] * a.data[k * inn + i];
          data[o * inn + i] += scaling * s;
        }
      w.set(`${m[1]}.weight`, { shape: W.shape, data });
    }
    return w;
  }

  it('imports with modules_to_save reported, scores and generates as its merged weights', async () => {
    const imported = parsePeftAdapter(cfg, { config, weights: writeSafetensors(tensors, { format: 'pt' }) });
    expect(imported.config).toEqual({
      r: R,
      lora_alpha: ALPHA,
      lora_dropout: 0.1,
      target_modules: targets,
      use_rslora: true,
    });
    expect(imported.tensors.size).toBe(4 * cfg.num_hidden_layers);
    expect(imported.warnings).toHaveLength(1);
    expect(imported.warnings[0]).toMatch(/modules_to_save \[lm_head\] \(1 fully trained tensor\) not applied/);
    expect(imported.baseModelNameOrPath).toBe('org/tiny-llama');

    const tuned = CausalLM.fromRaw(cfg, randomWeights(cfg, 5));
    loadPeftAdapter(tuned, imported);
    const merged = CausalLM.fromRaw(cfg, mergedWeights());
    const base = CausalLM.fromRaw(cfg, randomWeights(cfg, 5));
    const ids = Int32Array.from([1, 5, 3, 7, 2, 9, 11, 4]);
    const lossOf = async (m: CausalLM) => {
      const t = tf.tidy(() => m.loss({ inputIds: ids, labels: ids, batchSize: 1, seqLen: ids.length }).loss);
      const v = (await t.data())[0];
      t.dispose();
      return v;
    };
    const [lt, lm, lb] = [await lossOf(tuned), await lossOf(merged), await lossOf(base)];
    expect(Math.abs(lt - lm)).toBeLessThan(1e-5);
    expect(Math.abs(lt - lb)).toBeGreaterThan(1e-3); // the adapter changes the model
    const g = async (m: CausalLM) => (await generate(m, [1, 5, 3], { maxNewTokens: 8 })).ids;
    expect(await g(tuned)).toEqual(await g(merged));
    console.log(`other-tool adapter: loss base ${lb.toFixed(5)}, tuned ${lt.toFixed(5)}, merged ${lm.toFixed(5)}`);
    for (const m of [tuned, merged, base]) m.dispose();
  });

  it('from a TRL output_dir on disk: the latest checkpoint-N folder is read (--adapter out-trl)', async () => {
    const out = path.join(tmp, 'out-trl');
    for (const [n, r] of [
      [5, R],
      [12, R],
    ] as const) {
      const dir = path.join(out, `checkpoint-${n}`);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...config, r, revision: `ck${n}` }));
      await writeFile(path.join(dir, ADAPTER_WEIGHTS_FILE), writeSafetensors(tensors, { format: 'pt' }));
      await writeFile(path.join(dir, 'trainer_state.json'), '{}');
    }
    const src = await adapterSource(out);
    expect(src.describe).toMatch(/checkpoint-12$/);
    const imported = await readPeftAdapter(src, cfg);
    expect(imported.raw.revision).toBe('ck12');
  });

  it('an adapter for another base is refused naming the tensor and both shapes', () => {
    const other = tinyConfig('llama', { hidden_size: 12, head_dim: 3 });
    expect(() => parsePeftAdapter(other, { config, weights: writeSafetensors(tensors) })).toThrow(
      /tensor "base_model\.model\.model\.layers\.0\.[a-z_.]+\.lora_[AB]\.weight" has shape \[\d+,\d+\], but the base model's model\.layers\.0\.[a-z_.]+ needs \[\d+,\d+\].*different base model/,
    );
  });
});
