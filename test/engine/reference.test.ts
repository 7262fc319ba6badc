/**
 * stories260K against figures from an independent implementation (../shared/models/stories260K/reference.json):
 * token ids and greedy text exactly, mean NLL to 1e-4, in both RoPE layouts, on cpu and wasm.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import { generate } from '../../src/engine/generate';
import { shiftLabels, sparseCrossEntropy } from '../../src/engine/loss';
import { parseLlama2cCheckpoint } from '../../src/io/llama2c';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';

if (!HAVE_STORIES) {
  it.skip(sharedMissing('stories260K reference parity'), () => {});
} else {
  const ref = JSON.parse(readFileSync(path.join(STORIES_DIR, 'reference.json'), 'utf8'));
  const ckpt = new Uint8Array(readFileSync(path.join(STORIES_DIR, 'stories260K.bin')));
  const tok = parseLlama2cTokenizer(
    new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin'))),
    'tok512.bin',
    512,
  );

  it('the tokenizer reproduces the reference token ids', () => {
    expect(tok.encode(ref.teacher_forced.text)).toEqual(ref.teacher_forced.tokens);
  });

  for (const backend of ['cpu', 'wasm'] as BackendName[]) {
    for (const ropeLayout of ['half', 'interleaved'] as const) {
      describe(`stories260K on ${backend}, q/k in ${ropeLayout} RoPE layout`, () => {
        let model: CausalLM;
        beforeAll(async () => {
          await initBackend(backend);
          const { config, weights } = parseLlama2cCheckpoint(ckpt, 'stories260K.bin', { ropeLayout });
          expect(config.rope_layout).toBe(ropeLayout);
          model = CausalLM.fromRaw(config, weights);
        });

        it('mean NLL of the reference text to 1e-4 and its logits to 1e-4', async () => {
          const ids = Int32Array.from(ref.teacher_forced.tokens as number[]);
          const T = ids.length;
          const [loss, first, last] = tf.tidy(() => {
            const logits = model.forward({ inputIds: ids, batchSize: 1, seqLen: T });
            return [
              sparseCrossEntropy(logits, shiftLabels(ids, 1, T)).loss,
              tf.slice(logits, [0, 0, 0], [1, 1, 8]),
              tf.slice(logits, [0, T - 1, 0], [1, 1, 8]),
            ];
          });
          const nll = (await loss.data())[0];
          console.log(
            `stories260K ${backend}/${ropeLayout}: mean NLL ${nll} (reference ${ref.teacher_forced.mean_nll})`,
          );
          expect(Math.abs(nll - ref.teacher_forced.mean_nll)).toBeLessThan(1e-4);
          Array.from(await first.data()).forEach((v, i) =>
            expect(Math.abs(v - ref.teacher_forced.logits_pos0_first8[i])).toBeLessThan(1e-4),
          );
          Array.from(await last.data()).forEach((v, i) =>
            expect(Math.abs(v - ref.teacher_forced.logits_last_first8[i])).toBeLessThan(1e-4),
          );
          tf.dispose([loss, first, last]);
        });

        it('greedy generation from BOS gives the reference tokens and text exactly', async () => {
          const n = ref.greedy_from_bos.tokens.length - 1;
          const res = await generate(model, [1], { maxNewTokens: n });
          expect([1, ...res.ids]).toEqual(ref.greedy_from_bos.tokens);
          expect(tok.decode([1, ...res.ids])).toBe(ref.greedy_from_bos.text);
        });
      });
    }
  }
}
