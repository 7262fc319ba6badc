/**
 * Data pipeline: files → examples → splits → tokenized examples + report. Batches come from makeBatches.
 *
 * Browser-safe: no node: imports.
 */
import type { Tokenizer } from '../io/tokenizer';
import { splitDataset, type SplitSize } from './batching';
import {
  DatasetError,
  parseDataset,
  type Example,
  type ParseOptions,
  type ParseResult,
  type RowError,
} from './formats';
import { buildReport, type DatasetReport } from './report';
import { defaultTemplate, templateTokensOf, type TemplateSpec } from './templates';
import { tokenizeDataset, type DroppedExample, type TokenizedExample } from './tokenize';

export * from './formats';
export * from './templates';
export * from './tokenize';
export * from './batching';
export * from './report';

export interface DatasetFile {
  name: string;
  data: string | Uint8Array | ArrayBuffer;
  options?: ParseOptions;
}

export interface PrepareOptions {
  /** Default: the tokenizer's chat template if it has one, else Stanford Alpaca. */
  template?: TemplateSpec;
  maxLength: number;
  trainOnInputs?: boolean;
  validation?: SplitSize;
  evaluation?: SplitSize;
  seed: number;
  /** Parse options applied to every file (a file's own options win). */
  parse?: ParseOptions;
  /** Tokenization progress (every 1000 examples of a split and at its end). */
  onProgress?: (split: 'train' | 'validation' | 'evaluation', done: number, total: number) => void;
}

export interface PreparedSplit {
  examples: TokenizedExample[];
  /** The parsed example each tokenized one came from. */
  source: Example[];
}

export interface PreparedDataset {
  train: PreparedSplit;
  validation: PreparedSplit;
  evaluation: PreparedSplit;
  parsed: ParseResult[];
  dropped: (DroppedExample & { split: 'train' | 'validation' | 'evaluation' })[];
  report: DatasetReport;
}

export function prepareDataset(files: DatasetFile[], tok: Tokenizer, opts: PrepareOptions): PreparedDataset {
  if (files.length === 0) throw new DatasetError('no dataset files given', '');
  const parsed = files.map((f) => parseDataset(f.data, f.name, { ...(opts.parse ?? {}), ...(f.options ?? {}) }));
  const all = parsed.flatMap((p) => p.examples);
  const splits = splitDataset(all, { validation: opts.validation, evaluation: opts.evaluation, seed: opts.seed });
  const template = opts.template ?? defaultTemplate(tok);
  const tokens = templateTokensOf(tok);
  const dropped: PreparedDataset['dropped'] = [];
  const run = (split: 'train' | 'validation' | 'evaluation'): PreparedSplit => {
    const src = splits[split];
    const r = tokenizeDataset(tok, src, template, {
      maxLength: opts.maxLength,
      trainOnInputs: opts.trainOnInputs,
      tokens,
      ...(opts.onProgress ? { onProgress: (done: number, total: number) => opts.onProgress!(split, done, total) } : {}),
    });
    dropped.push(...r.dropped.map((d) => ({ ...d, split })));
    return { examples: r.examples, source: r.sourceIndex.map((i) => src[i]) };
  };
  const train = run('train');
  const validation = run('validation');
  const evaluation = run('evaluation');
  if (train.examples.length === 0) {
    throw new DatasetError(
      `no training example is left after tokenization (${dropped.length} dropped; first: ${dropped[0]?.message ?? 'none'})`,
      files[0].name,
    );
  }
  const errors: RowError[] = parsed.flatMap((p) => p.errors);
  const report = buildReport({
    files: parsed.map((p) => ({
      file: p.file,
      format: p.format,
      rows: p.rows,
      examples: p.examples.length,
      errors: p.errors.length,
    })),
    errors,
    template: template.kind,
    maxLength: opts.maxLength,
    trainOnInputs: opts.trainOnInputs ?? false,
    train: train.examples,
    validation: validation.examples,
    evaluation: evaluation.examples,
    dropped,
    tokenizer: tok,
  });
  return { train, validation, evaluation, parsed, dropped, report };
}
