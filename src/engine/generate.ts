/**
 * Autoregressive generation with a KV cache: greedy or sampled (temperature → top-k → top-p, as HF's
 * logits warpers), stopping on EOS, stop strings, max_new_tokens or the model's context length.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type CausalLM, createCache, disposeCache } from './model';
import { Rng } from '../util/rng';
import { checkSampling, sampleToken } from './sampling';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 or undefined: greedy. */
  temperature?: number;
  /** 0 or undefined: off. */
  topK?: number;
  /** 1 or undefined: off. */
  topP?: number;
  seed?: number;
  /** Token ids that end generation (not included in the text). */
  eosTokenIds?: number[];
  /** Generation ends when the decoded continuation contains one of these (the text is cut before it). */
  stopStrings?: string[];
  /** Needed for stop strings and streamed text. */
  decode?: (ids: number[]) => string;
  /** Called for each new token; return false to stop. textDelta is '' while a multi-byte character is incomplete. */
  onToken?: (id: number, textDelta: string) => void | boolean;
  /** Checked between tokens. */
  signal?: { aborted: boolean };
}

export type FinishReason = 'eos' | 'stop_string' | 'length' | 'context' | 'aborted';

export interface GenerateResult {
  /** New token ids (EOS excluded). */
  ids: number[];
  /** Decoded continuation (when decode was given), cut before any stop string. */
  text: string;
  finishReason: FinishReason;
}

export async function generate(model: CausalLM, promptIds: number[], opts: GenerateOptions): Promise<GenerateResult> {
  checkSampling(opts);
  const ctx = model.config.max_position_embeddings;
  if (promptIds.length === 0) throw new Error('generate needs at least one prompt token (e.g. BOS)');
  if (promptIds.length >= ctx)
    throw new Error(`prompt of ${promptIds.length} tokens leaves no room in the context length ${ctx}`);
  const rng = new Rng(opts.seed ?? 0);
  const eos = new Set(opts.eosTokenIds ?? []);
  const cache = createCache();
  const ids: number[] = [];
  let text = '';
  let finishReason: FinishReason = 'length';
  try {
    let input = Int32Array.from(promptIds);
    for (let step = 0; step < opts.maxNewTokens; step++) {
      if (opts.signal?.aborted) {
        finishReason = 'aborted';
        break;
      }
      const last = tf.tidy(() => {
        const logits = model.forward({ inputIds: input, batchSize: 1, seqLen: input.length }, { cache });
        return tf.reshape(tf.slice(logits, [0, input.length - 1, 0], [1, 1, model.config.vocab_size]), [-1]);
      });
      const row = (await last.data()) as Float32Array;
      last.dispose();
      const next = sampleToken(row, opts, rng);
      if (eos.has(next)) {
        finishReason = 'eos';
        break;
      }
      ids.push(next);
      let delta = '';
      if (opts.decode) {
        const full = opts.decode(ids);
        if (!full.endsWith('\uFFFD')) {
          delta = full.slice(text.length);
          text = full;
        }
        const hit = firstStop(text, opts.stopStrings);
        if (hit >= 0) {
          text = text.slice(0, hit);
          opts.onToken?.(next, '');
          finishReason = 'stop_string';
          break;
        }
      }
      if (opts.onToken?.(next, delta) === false) {
        finishReason = 'aborted';
        break;
      }
      // the whole sequence (prompt + generated) stays within the context length
      if (promptIds.length + ids.length >= ctx) {
        finishReason = 'context';
        break;
      }
      input = Int32Array.of(next);
    }
    if (opts.decode && finishReason !== 'stop_string') text = opts.decode(ids);
    return { ids, text, finishReason };
  } finally {
    disposeCache(cache);
  }
}

function firstStop(text: string, stops?: string[]): number {
  let best = -1;
  for (const s of stops ?? []) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}
