/**
 * Dataset report (plain JSON): what was read, what will be trained, and how one example is tokenized.
 *
 * Browser-safe: no node: imports.
 */
import type { Tokenizer } from '../io/tokenizer';
import type { DatasetFormat, RowError } from './formats';
import { IGNORE_INDEX, type DroppedExample, type TokenizedExample } from './tokenize';

export interface HistogramBin {
  /** Inclusive lower bound in tokens. */
  from: number;
  /** Exclusive upper bound in tokens. */
  to: number;
  count: number;
}

/**
 * Histogram of token lengths in `bins` equal-width bins covering [0, max]; `max` defaults to the longest
 * length. Lengths at or above max land in the last bin.
 */
export function lengthHistogram(lengths: readonly number[], bins = 16, max?: number): HistogramBin[] {
  const top = Math.max(1, max ?? lengths.reduce((m, x) => Math.max(m, x), 0) + 1);
  const width = Math.max(1, Math.ceil(top / bins));
  const n = Math.ceil(top / width);
  const out: HistogramBin[] = [];
  for (let b = 0; b < n; b++) out.push({ from: b * width, to: Math.min(top, (b + 1) * width), count: 0 });
  for (const len of lengths) out[Math.min(n - 1, Math.floor(len / width))].count++;
  return out;
}

export interface LengthStats {
  count: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p95: number;
}

export function lengthStats(lengths: readonly number[]): LengthStats {
  if (lengths.length === 0) return { count: 0, min: 0, max: 0, mean: 0, median: 0, p95: 0 };
  const s = lengths.slice().sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
  return {
    count: s.length,
    min: s[0],
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    median: q(0.5),
    p95: q(0.95),
  };
}

export interface TokenViewEntry {
  id: number;
  piece: string;
  trained: boolean;
}

/** One row per token: id, vocabulary piece, and whether it has a label. */
export function tokenView(tok: Tokenizer, ex: Pick<TokenizedExample, 'inputIds' | 'labels'>): TokenViewEntry[] {
  return Array.from(ex.inputIds, (id, k) => ({
    id,
    piece: tok.idToToken(id) ?? `<${id}>`,
    trained: ex.labels[k] !== IGNORE_INDEX,
  }));
}

export interface SplitReport {
  examples: number;
  tokens: number;
  trainedTokens: number;
  truncated: number;
  lengths: LengthStats;
}

export interface DatasetReport {
  files: { file: string; format: DatasetFormat; rows: number; examples: number; errors: number }[];
  /** The first row errors (all are in the parse results). */
  errors: RowError[];
  template: string;
  maxLength: number;
  trainOnInputs: boolean;
  splits: { train: SplitReport; validation: SplitReport; evaluation: SplitReport };
  /** Examples dropped after tokenization (nothing left to train on, template errors). */
  dropped: { count: number; byReason: Record<string, number>; first: DroppedExample[] };
  /** Over all kept examples. */
  truncated: number;
  truncatedShare: number;
  /** Histogram of untruncated token lengths (so the share above maxLength is visible). */
  lengthHistogram: HistogramBin[];
  /** Training split: labelled tokens and all real tokens seen per epoch. */
  trainedTokensPerEpoch: number;
  tokensPerEpoch: number;
  /** Per-token view of the first training example. */
  sample?: TokenViewEntry[];
}

export function splitReport(examples: readonly TokenizedExample[]): SplitReport {
  let tokens = 0;
  let trained = 0;
  let truncated = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    trained += e.trainedTokens;
    if (e.truncated) truncated++;
  }
  return {
    examples: examples.length,
    tokens,
    trainedTokens: trained,
    truncated,
    lengths: lengthStats(examples.map((e) => e.inputIds.length)),
  };
}

export interface ReportInput {
  files: DatasetReport['files'];
  errors: RowError[];
  template: string;
  maxLength: number;
  trainOnInputs: boolean;
  train: readonly TokenizedExample[];
  validation: readonly TokenizedExample[];
  evaluation: readonly TokenizedExample[];
  dropped: DroppedExample[];
  tokenizer?: Tokenizer;
  histogramBins?: number;
}

export function buildReport(r: ReportInput): DatasetReport {
  const all = [...r.train, ...r.validation, ...r.evaluation];
  const truncated = all.filter((e) => e.truncated).length;
  const byReason: Record<string, number> = {};
  for (const d of r.dropped) byReason[d.reason] = (byReason[d.reason] ?? 0) + 1;
  const train = splitReport(r.train);
  const fullLengths = all.map((e) => e.fullLength);
  const report: DatasetReport = {
    files: r.files,
    errors: r.errors.slice(0, 50),
    template: r.template,
    maxLength: r.maxLength,
    trainOnInputs: r.trainOnInputs,
    splits: { train, validation: splitReport(r.validation), evaluation: splitReport(r.evaluation) },
    dropped: { count: r.dropped.length, byReason, first: r.dropped.slice(0, 20) },
    truncated,
    truncatedShare: all.length ? truncated / all.length : 0,
    lengthHistogram: lengthHistogram(
      fullLengths,
      r.histogramBins ?? 16,
      fullLengths.reduce((m, x) => Math.max(m, x), r.maxLength) + 1,
    ),
    trainedTokensPerEpoch: train.trainedTokens,
    tokensPerEpoch: train.tokens,
  };
  if (r.tokenizer && r.train.length > 0) report.sample = tokenView(r.tokenizer, r.train[0]);
  return report;
}
