/**
 * Deterministic shuffling, dataset splits and batches as plain typed arrays.
 *
 * Batches are row-major [batchSize, seqLen]. Padding is on the right and is marked only by position:
 * attentionMask 0 and labels -100 there (the pad id itself is never used to find padding — it may equal
 * EOS, which is a real, trained token). Packing places several examples in one row; `segmentIds` then gives
 * each token its example (1, 2, … within the row; 0 = padding) so attention stays inside an example, and
 * `positionIds` restart at 0 for each example. Every example's first token has label -100 (set at
 * tokenization), so no position predicts across an example boundary.
 *
 * Browser-safe: no node: imports.
 */
import { IGNORE_INDEX, type TokenizedExample } from './tokenize';
import { Rng } from '../util/rng';

// ---------------------------------------------------------------------------------------------------------
// Seeded randomness

/** A seeded PRNG (SplitMix32 → 32-bit state) returning floats in [0, 1). Same seed, same sequence, everywhere. */
/** Fisher–Yates shuffle of a copy, driven by `seed`. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  const rng = new Rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Splits

/** A fraction in (0, 1) of the examples, or an absolute count (integer ≥ 1); 0/undefined = none. */
export type SplitSize = number | undefined;

export function resolveSplitSize(size: SplitSize, total: number, what: string): number {
  if (size === undefined || size === 0) return 0;
  if (!Number.isFinite(size) || size < 0)
    throw new Error(`${what} size must be a fraction in (0, 1) or a count ≥ 1, got ${size}`);
  if (size < 1) return Math.max(1, Math.round(size * total));
  if (!Number.isInteger(size)) throw new Error(`${what} size ${size} is neither a fraction below 1 nor a whole count`);
  return size;
}

export interface SplitOptions {
  /** Validation split (monitored during training): fraction or count. */
  validation?: SplitSize;
  /** Held-out evaluation split (never seen during training or model selection): fraction or count. */
  evaluation?: SplitSize;
  seed: number;
}

export interface Splits<T> {
  train: T[];
  validation: T[];
  evaluation: T[];
}

/**
 * Shuffles with `seed` and cuts the held-out evaluation split first, then validation, the rest is train.
 * Fractions are of the whole set. Deterministic for a given seed and input order.
 */
export function splitDataset<T>(items: readonly T[], opts: SplitOptions): Splits<T> {
  const n = items.length;
  const nEval = resolveSplitSize(opts.evaluation, n, 'evaluation');
  const nVal = resolveSplitSize(opts.validation, n, 'validation');
  if (nEval + nVal >= n) {
    throw new Error(`splits leave no training examples: ${nEval} evaluation + ${nVal} validation of ${n} examples`);
  }
  const order = shuffled(items, opts.seed);
  return {
    evaluation: order.slice(0, nEval),
    validation: order.slice(nEval, nEval + nVal),
    train: order.slice(nEval + nVal),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Batches

export interface Batch {
  inputIds: Int32Array;
  /** -100 = no loss (prompt, padding, first token of each example). HF convention: the loss shifts. */
  labels: Int32Array;
  /** 1 = real token, 0 = padding. */
  attentionMask: Uint8Array;
  positionIds: Int32Array;
  /** Packing only: example number within the row (1, 2, …), 0 for padding. */
  segmentIds?: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Indices (into the examples passed in) of the examples in this batch, row by row. */
  rows: number[][];
  /** Real (non-padding) tokens. */
  tokens: number;
  /** Tokens with a label. */
  trainedTokens: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle seed; combined with `epoch` so each epoch has its own order. */
  seed: number;
  epoch?: number;
  /** Default true. False keeps the given order (evaluation). */
  shuffle?: boolean;
  /**
   * Group examples of similar length into batches to save padding (HF LengthGroupedSampler): shuffle,
   * cut into mega-batches of `batchSize × groupFactor`, sort each by length, split into batches; the batch
   * holding the longest example goes first so memory limits show at once.
   */
  groupByLength?: boolean;
  groupFactor?: number;
  /** Id written at padded positions (any id; padding is identified by the attention mask). Default 0. */
  padTokenId?: number;
  /** Round each batch's seqLen up to a multiple of this (fewer distinct shapes for WebGPU/WebGL kernels). */
  padToMultipleOf?: number;
  /** Pack examples into rows of `packing.seqLen` tokens (best-fit decreasing; examples are never split). */
  packing?: { seqLen: number } | false;
  /** Drop a final batch with fewer than batchSize rows. Default false. */
  dropLast?: boolean;
}

function roundUp(n: number, m: number | undefined): number {
  return m && m > 1 ? Math.ceil(n / m) * m : n;
}

/** Builds one batch from rows, each a list of example indices laid end to end. */
export function collate(
  examples: readonly TokenizedExample[],
  rows: number[][],
  opts: { padTokenId?: number; padToMultipleOf?: number; seqLen?: number; packed?: boolean },
): Batch {
  const batchSize = rows.length;
  let longest = 0;
  for (const r of rows)
    longest = Math.max(
      longest,
      r.reduce((s, i) => s + examples[i].inputIds.length, 0),
    );
  const seqLen = Math.max(opts.seqLen ?? 0, roundUp(longest, opts.padToMultipleOf), 1);
  if (longest > seqLen) throw new Error(`row of ${longest} tokens does not fit seqLen ${seqLen}`);
  const size = batchSize * seqLen;
  const inputIds = new Int32Array(size).fill(opts.padTokenId ?? 0);
  const labels = new Int32Array(size).fill(IGNORE_INDEX);
  const attentionMask = new Uint8Array(size);
  const positionIds = new Int32Array(size);
  const segmentIds = opts.packed ? new Int32Array(size) : undefined;
  let tokens = 0;
  let trainedTokens = 0;
  rows.forEach((row, b) => {
    let t = b * seqLen;
    row.forEach((idx, seg) => {
      const ex = examples[idx];
      inputIds.set(ex.inputIds, t);
      labels.set(ex.labels, t);
      attentionMask.fill(1, t, t + ex.inputIds.length);
      for (let k = 0; k < ex.inputIds.length; k++) positionIds[t + k] = k;
      if (segmentIds) segmentIds.fill(seg + 1, t, t + ex.inputIds.length);
      tokens += ex.inputIds.length;
      trainedTokens += ex.trainedTokens;
      t += ex.inputIds.length;
    });
  });
  const batch: Batch = { inputIds, labels, attentionMask, positionIds, batchSize, seqLen, rows, tokens, trainedTokens };
  if (segmentIds) batch.segmentIds = segmentIds;
  return batch;
}

/**
 * Packs examples into bins of at most `capacity` tokens, best-fit decreasing (longest first, each into the
 * fullest bin it still fits). Ties keep the given order, so the result is deterministic.
 */
export function packBestFit(lengths: readonly number[], order: readonly number[], capacity: number): number[][] {
  const sorted = order.slice().sort((a, b) => lengths[b] - lengths[a]);
  const bins: { free: number; items: number[] }[] = [];
  for (const i of sorted) {
    const len = lengths[i];
    if (len > capacity) throw new Error(`example ${i} has ${len} tokens, more than the packing length ${capacity}`);
    let best = -1;
    for (let b = 0; b < bins.length; b++) {
      if (bins[b].free >= len && (best < 0 || bins[b].free < bins[best].free)) best = b;
    }
    if (best < 0) bins.push({ free: capacity - len, items: [i] });
    else {
      bins[best].free -= len;
      bins[best].items.push(i);
    }
  }
  return bins.map((b) => b.items);
}

/** All batches of one epoch. */
export function makeBatches(examples: readonly TokenizedExample[], opts: BatchOptions): Batch[] {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
    throw new Error(`batchSize must be a whole number ≥ 1, got ${opts.batchSize}`);
  const seed = (opts.seed + Math.imul(opts.epoch ?? 0, 0x2545f491)) >>> 0;
  const all = examples.map((_, i) => i);
  const order = opts.shuffle === false ? all : shuffled(all, seed);
  const lengths = examples.map((e) => e.inputIds.length);
  let rows: number[][];
  if (opts.packing) {
    const bins = packBestFit(lengths, order, opts.packing.seqLen);
    rows = opts.shuffle === false ? bins : shuffled(bins, seed ^ 0x5bd1e995);
    const groups: number[][][] = [];
    for (let i = 0; i < rows.length; i += opts.batchSize) groups.push(rows.slice(i, i + opts.batchSize));
    if (opts.dropLast && groups.length && groups[groups.length - 1].length < opts.batchSize) groups.pop();
    return groups.map((g) =>
      collate(examples, g, {
        padTokenId: opts.padTokenId,
        seqLen: opts.packing ? opts.packing.seqLen : undefined,
        packed: true,
      }),
    );
  }
  let groups: number[][] = [];
  if (opts.groupByLength) {
    const mega = opts.batchSize * (opts.groupFactor ?? 50);
    for (let m = 0; m < order.length; m += mega) {
      const chunk = order.slice(m, m + mega).sort((a, b) => lengths[b] - lengths[a]);
      for (let i = 0; i < chunk.length; i += opts.batchSize) groups.push(chunk.slice(i, i + opts.batchSize));
    }
    let longestGroup = 0;
    groups.forEach((g, k) => {
      if (lengths[g[0]] > lengths[groups[longestGroup][0]]) longestGroup = k;
    });
    if (longestGroup > 0)
      groups = [groups[longestGroup], ...groups.slice(0, longestGroup), ...groups.slice(longestGroup + 1)];
  } else {
    for (let i = 0; i < order.length; i += opts.batchSize) groups.push(order.slice(i, i + opts.batchSize));
  }
  if (opts.dropLast) groups = groups.filter((g) => g.length === opts.batchSize);
  return groups.map((g) =>
    collate(
      examples,
      g.map((i) => [i]),
      { padTokenId: opts.padTokenId, padToMultipleOf: opts.padToMultipleOf },
    ),
  );
}
