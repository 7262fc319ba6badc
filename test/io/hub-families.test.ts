/**
 * Tiny checkpoints of each family written in the exact Hub layout (GPT-2 without the `transformer.` prefix,
 * Conv1D [in,out] weights, attn.bias buffers; Qwen2 q/k/v biases; Qwen3 q_norm/k_norm with head_dim ≠ hidden/heads;
 * Gemma 3 with sliding and full layers, two RoPE bases, a window shorter than the sequence and soft-capping; GPT-Neo
 * with a local layer and its attn.attention.bias/masked_bias buffers), served over HTTP in the Hub URL layout,
 * loaded and run: the logits equal an independent float64 forward fed straight from the stored tensors, so
 * every tensor must have landed in its place.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import type { RawTensors } from '../../src/engine/config';
import { hubSource } from '../../src/io/source';
import { loadHfCheckpoint } from '../../src/io/hf-model';
import { writeTinyHfCheckpoint } from '../tiny-checkpoint';
import { startHubServer, type HubServer } from '../hub-server';
import { naiveForward } from '../fixtures/naive-forward';
import { gpt2StyleTokenizerJson } from '../fixtures/tokenizers';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';

const TOKENIZER_CONFIG = {
  bos_token: '<|endoftext|>',
  eos_token: '<|endoftext|>',
  tokenizer_class: 'GPT2Tokenizer',
  chat_template:
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}",
};

/** The test's own reading of the Hub names (independent of the loader's normalisation). */
function fromStored(family: string, stored: RawTensors): RawTensors {
  const out: RawTensors = new Map();
  for (const [name, t] of stored) {
    if (/\.attn\.(attention\.)?(masked_)?bias$/.test(name)) continue; // the causal-mask buffers, not parameters
    out.set(
      family === 'gpt2' && !name.startsWith('transformer.') && name !== 'lm_head.weight' ? 'transformer.' + name : name,
      t,
    );
  }
  return out;
}

describe('checkpoints in the Hub layout, over HTTP, every tensor in its place', () => {
  let root: string;
  let server: HubServer;
  beforeAll(async () => {
    await initBackend('wasm');
    root = mkdtempSync(path.join(os.tmpdir(), 'webtune-hub-'));
    server = await startHubServer(root);
  });
  afterAll(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  for (const family of ['llama', 'qwen2', 'qwen3', 'gemma3', 'gpt2', 'gpt_neo'] as const) {
    for (const layers of family === 'gemma3' || family === 'gpt_neo' ? [2, 3] : [1, 2]) {
      it(`${family}, ${layers} layer(s): logits equal a float64 forward on the stored tensors`, async () => {
        const repo = `tiny/${family}-${layers}`;
        const ck = await writeTinyHfCheckpoint(path.join(root, repo), family, {
          layers,
          seed: 11 + layers,
          shardBytes: layers !== 1 ? 4096 : undefined,
          extraFiles: { 'tokenizer.json': gpt2StyleTokenizerJson(), 'tokenizer_config.json': TOKENIZER_CONFIG },
        });
        const loaded = await loadHfCheckpoint(hubSource(server.baseUrl, repo));
        expect(loaded.config).toEqual(ck.config);
        // the tokenizer files come along, the chat template with them
        expect(loaded.tokenizerConfig).toEqual(TOKENIZER_CONFIG);
        const tok = loadHfTokenizer(loaded.tokenizerJson, loaded.tokenizerConfig);
        expect(tok.chatTemplate).toBe(TOKENIZER_CONFIG.chat_template);
        expect(tok.decode(tok.encode('hello there'))).toBe('hello there');
        const model = CausalLM.fromRaw(loaded.config, loaded.weights);
        const ids = [1, 5, 9, 2, 7, 3, 11, 4]; // longer than the tiny sliding windows (3)
        const out = tf.tidy(() => model.forward({ inputIds: Int32Array.from(ids), batchSize: 1, seqLen: ids.length }));
        const got = await out.data();
        out.dispose();
        const want = naiveForward(ck.config, fromStored(family, ck.stored), ids).flatMap((r) => Array.from(r));
        let maxDiff = 0,
          maxAbs = 0;
        for (let i = 0; i < want.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
          maxAbs = Math.max(maxAbs, Math.abs(want[i]));
        }
        console.log(
          `${family}, ${layers} layers: max |logit| ${maxAbs.toFixed(3)}, max diff ${maxDiff.toExponential(2)}`,
        );
        expect(maxAbs).toBeGreaterThan(0.1);
        expect(maxDiff).toBeLessThan(1e-4);
        model.dispose();
      });
    }
  }
});
