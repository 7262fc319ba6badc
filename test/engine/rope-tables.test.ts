/**
 * RoPE tables are sized by the positions in use, not by what config.json claims: a context of 1e9 positions must not
 * allocate 1e9-row tables; positions beyond the first tables grow them, and the logits stay right (RoPE attention
 * depends only on relative positions, so shifting every position by the same amount leaves the logits unchanged).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { CausalLM, ROPE_INITIAL_LENGTH } from '../../src/engine/model';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('RoPE tables', () => {
  it('a config claiming 1e9 positions builds tables for the first few thousand only', () => {
    const cfg = tinyConfig('llama', { max_position_embeddings: 1e9 });
    const before = tf.memory().numBytes;
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 5));
    const tableBytes = 2 * ROPE_INITIAL_LENGTH * (cfg.head_dim / 2) * 4;
    expect(tf.memory().numBytes - before).toBeLessThan(tableBytes + 64 * 1024);
    model.dispose();
  });

  it('grow on demand, and shifted positions give the same logits', () => {
    const cfg = tinyConfig('llama', { max_position_embeddings: 3 * ROPE_INITIAL_LENGTH });
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 6));
    const inputIds = Int32Array.from([3, 7, 1, 9]);
    const logits = (start: number) =>
      tf.tidy(() =>
        model
          .forward({ inputIds, batchSize: 1, seqLen: 4, positionIds: Int32Array.from([0, 1, 2, 3], (p) => p + start) })
          .dataSync(),
      );
    const at0 = logits(0);
    const tensors = tf.memory().numTensors;
    const far = logits(2 * ROPE_INITIAL_LENGTH + 100); // beyond the first tables: they grow
    expect(tf.memory().numTensors).toBe(tensors); // replaced, not added
    let maxDiff = 0;
    for (let i = 0; i < at0.length; i++) maxDiff = Math.max(maxDiff, Math.abs(at0[i] - far[i]));
    expect(maxDiff).toBeLessThan(1e-3);
    expect(() => logits(3 * ROPE_INITIAL_LENGTH)).toThrow(/beyond the model's context length/);
    model.dispose();
  });
});
