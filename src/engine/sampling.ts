/**
 * Sampling as Hugging Face's logits warpers do it (temperature, then top-k, then top-p), and the check that refuses
 * settings that would sample garbage or nothing. Plain JavaScript: the CLI checks its options with it before loading
 * TensorFlow.js.
 */
import type { Rng } from '../util/rng';

export interface SamplingSettings {
  /** 0 or undefined: greedy. */
  temperature?: number;
  /** 0 or undefined: off. */
  topK?: number;
  /** 1 or undefined: off. */
  topP?: number;
  maxNewTokens?: number;
}

/** Pick the next token from a logits row, as HF does: temperature, then top-k, then top-p (nucleus). */
export function sampleToken(
  logits: Float32Array,
  opts: { temperature?: number; topK?: number; topP?: number },
  rng: Rng,
): number {
  const V = logits.length;
  const temp = opts.temperature ?? 0;
  if (!(temp > 0)) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let idx = Array.from({ length: V }, (_, i) => i);
  idx.sort((a, b) => logits[b] - logits[a] || a - b);
  if (opts.topK && opts.topK > 0 && opts.topK < V) idx = idx.slice(0, opts.topK);
  const max = logits[idx[0]] / temp;
  let probs = idx.map((i) => Math.exp(logits[i] / temp - max));
  let z = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / z);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    // keep the smallest prefix whose mass reaches top_p (always at least one token)
    let cum = 0,
      keep = 0;
    while (keep < probs.length) {
      cum += probs[keep];
      keep++;
      if (cum >= topP) break;
    }
    idx = idx.slice(0, keep);
    probs = probs.slice(0, keep);
    z = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / z);
  }
  let u = rng.uniform(),
    i = 0;
  for (; i < probs.length - 1; i++) {
    u -= probs[i];
    if (u < 0) break;
  }
  return idx[i];
}

/** Smallest temperature that samples: below it logits / temperature overflows float32 (use 0 for greedy). */
export const MIN_TEMPERATURE = 1e-4;

/** Sampling settings that would give garbage or nothing are refused, naming the setting and what is allowed. */
export function checkSampling(opts: SamplingSettings): void {
  const { temperature = 0, topK = 0, topP = 1, maxNewTokens } = opts;
  if (!Number.isFinite(temperature) || temperature < 0 || (temperature > 0 && temperature < MIN_TEMPERATURE)) {
    throw new Error(
      `temperature ${temperature} cannot be sampled with: use 0 for greedy decoding, or a value of at least ${MIN_TEMPERATURE}`,
    );
  }
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`top_k must be a whole number ≥ 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`top_p must be in (0, 1], got ${topP}`);
  if (maxNewTokens !== undefined && !(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    throw new Error(`max_new_tokens must be a whole number ≥ 0, got ${maxNewTokens}`);
  }
}
