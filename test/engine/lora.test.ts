import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { loraScaling, targetedModules, type LoraConfig } from '../../src/engine/lora-config';
import { tinyConfig, randomWeights, tinyTrainBatch as batch } from '../fixtures/tiny-model';
import { Rng } from '../../src/util/rng';

const base: LoraConfig = { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false };

/** Give lora_B non-zero values so that gradients reach lora_A too. */
function perturbB(model: CausalLM, seed: number) {
  const rng = new Rng(seed);
  for (const l of model.adapter!.layers.values()) {
    const d = new Float32Array(l.B.size).map(() => 0.3 * (2 * rng.uniform() - 1));
    l.B.assign(tf.tensor(d, l.B.shape));
  }
}

describe('LoRA config, as PEFT', () => {
  it('scaling is alpha/r, or alpha/sqrt(r) with use_rslora', () => {
    expect(loraScaling({ ...base, r: 8, lora_alpha: 16 })).toBe(2);
    expect(loraScaling({ ...base, r: 16, lora_alpha: 16, use_rslora: true })).toBe(4);
  });
  it('targets by suffix, all-linear excludes lm_head, unknown names are errors', () => {
    const llama = tinyConfig('llama');
    expect(targetedModules(llama, { ...base, target_modules: ['q_proj', 'v_proj'] }).map((m) => m.name)).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    expect(targetedModules(llama, base)).toHaveLength(7 * 2);
    expect(targetedModules(tinyConfig('gpt2'), base).map((m) => m.short)).toEqual([
      'c_attn',
      'c_proj',
      'c_fc',
      'c_proj',
      'c_attn',
      'c_proj',
      'c_fc',
      'c_proj',
    ]);
    expect(() => targetedModules(llama, { ...base, target_modules: ['c_attn'] })).toThrow(/c_attn.*q_proj, k_proj/);
  });
});

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`LoRA on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    it('init: A ~ U(-1/sqrt(in), 1/sqrt(in)) [r,in], B zeros [out,r], PEFT names; the fresh adapter changes nothing', async () => {
      const cfg = tinyConfig('llama', { hidden_size: 64, num_attention_heads: 4, head_dim: 16, intermediate_size: 96 });
      const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 2));
      const before = tf.tidy(() => model.forward({ inputIds: Int32Array.from([1, 2, 3]), batchSize: 1, seqLen: 3 }));
      const ad = model.attachLora({ ...base, r: 8 }, 42);
      const vars = ad.variables();
      const A = vars.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!;
      const B = vars.get('base_model.model.model.layers.0.mlp.down_proj.lora_B.weight')!;
      expect(A.shape).toEqual([8, 96]);
      expect(B.shape).toEqual([64, 8]);
      const a = (await A.data()) as Float32Array;
      const bound = 1 / Math.sqrt(96);
      expect(Math.max(...a)).toBeLessThanOrEqual(bound);
      expect(Math.min(...a)).toBeGreaterThanOrEqual(-bound);
      expect(Math.max(...a)).toBeGreaterThan(0.9 * bound); // spread over the whole range
      const variance = a.reduce((s, x) => s + x * x, 0) / a.length;
      expect(variance).toBeCloseTo((bound * bound) / 3, 3);
      expect(Math.max(...(await B.data()).map(Math.abs))).toBe(0);
      // q, k, v (2 kv heads of 16), o, gate, up, down; two layers
      expect(ad.numTrainable()).toBe(2 * 8 * (64 + 64 + (64 + 32) * 2 + (64 + 64) + (64 + 96) * 2 + (96 + 64)));
      const after = tf.tidy(() => model.forward({ inputIds: Int32Array.from([1, 2, 3]), batchSize: 1, seqLen: 3 }));
      expect(Array.from(await after.data())).toEqual(Array.from(await before.data()));
      tf.dispose([before, after]);
      model.dispose();
    });

    for (const fam of ['llama', 'qwen2', 'gpt2'] as const) {
      it(`${fam}: merge equals the unmerged adapter's output; unmerge restores the base weights`, async () => {
        const cfg = tinyConfig(fam);
        const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 5));
        const w0 = await model.weights
          .get(fam === 'gpt2' ? 'transformer.h.1.mlp.c_fc.weight' : 'model.layers.1.mlp.up_proj.weight')!
          .data();
        model.attachLora({ ...base, r: 3, lora_alpha: 6 }, 1);
        perturbB(model, 3);
        const ids = { inputIds: Int32Array.from([1, 4, 6, 8, 3]), batchSize: 1, seqLen: 5 };
        const unmerged = tf.tidy(() => model.forward(ids));
        model.mergeAdapter();
        const merged = tf.tidy(() => model.forward(ids));
        const u = await unmerged.data(),
          m = await merged.data();
        let maxDiff = 0,
          maxEffect = 0;
        for (let i = 0; i < u.length; i++) maxDiff = Math.max(maxDiff, Math.abs(u[i] - m[i]));
        expect(maxDiff).toBeLessThan(1e-4);
        model.unmergeAdapter();
        const base2 = tf.tidy(() => {
          const ad = model.adapter!;
          model.adapter = null;
          const r = model.forward(ids);
          model.adapter = ad;
          return r;
        });
        const b = await base2.data();
        for (let i = 0; i < u.length; i++) maxEffect = Math.max(maxEffect, Math.abs(u[i] - b[i]));
        expect(maxEffect).toBeGreaterThan(1e-2); // the adapter really changed the output
        const w1 = await model.weights
          .get(fam === 'gpt2' ? 'transformer.h.1.mlp.c_fc.weight' : 'model.layers.1.mlp.up_proj.weight')!
          .data();
        for (let i = 0; i < w0.length; i++) expect(w1[i]).toBeCloseTo(w0[i], 5);
        tf.dispose([unmerged, merged, base2]);
        model.dispose();
      });
    }

    for (const fam of ['llama', 'qwen2', 'gpt2', 'qwen3', 'gemma3', 'gpt_neo'] as const) {
      it(`${fam}: finite-difference gradient check of every LoRA parameter (rel. error < 1e-3)`, async () => {
        const cfg = tinyConfig(fam);
        const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 11));
        model.attachLora({ ...base, r: 2, lora_alpha: 4 }, 2);
        perturbB(model, 5);
        const b = batch();
        const vars = [...model.adapter!.variables().values()];
        const { grads } = tf.variableGrads(() => model.loss(b).loss, vars);
        const lossAt = () => tf.tidy(() => model.loss(b).loss.dataSync()[0]);
        // Gemma's soft-caps and (1 + w) norms curve the loss more: at eps 1e-2 the central difference's O(eps²) error
        // alone is ~1.2e-3 (it falls 4x at eps 5e-3, as truncation error does, on cpu and wasm alike).
        const eps = fam === 'gemma3' ? 5e-3 : 1e-2;
        let num = 0,
          den = 0,
          n = 0;
        for (const v of vars) {
          const g = await grads[v.name].data();
          const vals = (await v.data()).slice();
          for (let i = 0; i < vals.length; i++) {
            const orig = vals[i];
            vals[i] = orig + eps;
            v.assign(tf.tensor(vals, v.shape));
            const lp = lossAt();
            vals[i] = orig - eps;
            v.assign(tf.tensor(vals, v.shape));
            const lm = lossAt();
            vals[i] = orig;
            v.assign(tf.tensor(vals, v.shape));
            const fd = (lp - lm) / (2 * eps);
            num += (fd - g[i]) ** 2;
            den += fd ** 2;
            n++;
          }
        }
        tf.dispose(Object.values(grads));
        const rel = Math.sqrt(num / den);
        console.log(`gradcheck ${fam} on ${backend}: ${n} LoRA parameters, relative error ${rel.toExponential(2)}`);
        expect(n).toBeGreaterThan(100);
        expect(den).toBeGreaterThan(1e-6);
        expect(rel).toBeLessThan(1e-3);
        model.dispose();
      });
    }

    for (const fam of ['llama', 'qwen2', 'gpt2', 'qwen3', 'gemma3', 'gpt_neo'] as const) {
      it(`${fam}: gradient checkpointing gives the same loss and LoRA gradients, and leaks nothing`, async () => {
        const cfg = tinyConfig(fam);
        const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 13));
        model.attachLora({ ...base, r: 2, lora_alpha: 4, lora_dropout: 0.1 }, 3);
        perturbB(model, 6);
        const b = batch();
        const vars = [...model.adapter!.variables().values()];
        const run = (gradientCheckpointing: boolean) =>
          tf.variableGrads(() => model.loss(b, { dropoutSeed: 5, gradientCheckpointing }).loss, vars);
        const plain = run(false);
        const before = tf.memory().numTensors;
        const ckpt = run(true);
        tf.dispose([ckpt.value, ...Object.values(ckpt.grads)]);
        expect(tf.memory().numTensors).toBe(before); // the nested backward keeps no tensors
        const again = run(true);
        expect((await again.value.data())[0]).toBeCloseTo((await plain.value.data())[0], 6);
        let maxDiff = 0,
          maxAbs = 0;
        for (const v of vars) {
          const g1 = await plain.grads[v.name].data(),
            g2 = await again.grads[v.name].data();
          for (let i = 0; i < g1.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(g1[i] - g2[i]));
            maxAbs = Math.max(maxAbs, Math.abs(g1[i]));
          }
        }
        expect(maxAbs).toBeGreaterThan(1e-3);
        expect(maxDiff).toBeLessThan(1e-6 + 1e-5 * maxAbs);
        tf.dispose([plain.value, again.value, ...Object.values(plain.grads), ...Object.values(again.grads)]);
        model.dispose();
      });
    }
  });
}

describe('LoRA adapter lifetime', () => {
  it('attaching and disposing an adapter leaves exactly the tensors that were there before', async () => {
    await initBackend('cpu');
    const cfg = tinyConfig('llama');
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 2));
    const before = tf.memory().numTensors;
    const ad = model.attachLora({ ...base, r: 2 }, 1);
    expect(tf.memory().numTensors).toBe(before + ad.variables().size); // only the variables themselves
    ad.dispose();
    model.adapter = null;
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
