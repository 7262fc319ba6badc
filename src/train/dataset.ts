/**
 * The data of a fine-tuning run: dataset files (or parsed examples) for the train, validation (HF eval_dataset) and
 * held-out test splits, parsed with src/data's format detection, split by val_size / test_size (LLaMA-Factory) and
 * tokenized with the run's template, max_length, train_on_inputs and eos_token (TRL SFTTrainer's preprocessing).
 *
 * Browser-safe: no node: imports.
 */
import type { Tokenizer } from '../io/tokenizer';
import {
  buildReport,
  DatasetError,
  defaultTemplate,
  parseDataset,
  splitDataset,
  templateTokensOf,
  tokenizeDataset,
  type DatasetReport,
  type DroppedExample,
  type Example,
  type ParseOptions,
  type ParseResult,
  type TemplateSpec,
  type TemplateTokens,
  type TokenizedExample,
} from '../data';
import type { FinetuneConfig } from './config';

/** A dataset file as bytes/text (parsed with src/data's format detection) or examples already parsed. */
export type DatasetSource =
  | { name: string; bytes: Uint8Array | ArrayBuffer | string; options?: ParseOptions }
  | { name: string; examples: Example[] };

export interface SessionData {
  /** Training files; the validation and test splits are cut from them by val_size / test_size. */
  train: DatasetSource[];
  /** Validation files (HF eval_dataset); when given, val_size is not used. */
  validation?: DatasetSource[];
  /** Held-out files for generation evaluation; when given, test_size is not used. */
  test?: DatasetSource[];
}

export interface SessionSplit {
  examples: TokenizedExample[];
  /** The parsed example each tokenized one came from. */
  source: Example[];
}

export interface SessionDataset {
  train: SessionSplit;
  validation: SessionSplit;
  test: SessionSplit;
  parsed: ParseResult[];
  dropped: (DroppedExample & { split: 'train' | 'validation' | 'test' })[];
  /** src/data's report; its `evaluation` split is the test split here. */
  report: DatasetReport;
  template: TemplateSpec;
  /** The template tokens used (eos_token applied). */
  tokens: TemplateTokens;
}

function parseSources(sources: DatasetSource[]): { examples: Example[]; parsed: ParseResult[] } {
  const examples: Example[] = [];
  const parsed: ParseResult[] = [];
  for (const s of sources) {
    if ('examples' in s) {
      examples.push(...s.examples);
      continue;
    }
    const data = s.bytes instanceof ArrayBuffer ? new Uint8Array(s.bytes) : s.bytes;
    const p = parseDataset(data, s.name, s.options ?? {});
    parsed.push(p);
    examples.push(...p.examples);
  }
  return { examples, parsed };
}

/** Parse, split and tokenize the session's data (exported for the CLI's --dry-run and tests). */
export function prepareSessionData(
  tok: Tokenizer,
  data: SessionData,
  c: FinetuneConfig,
  onProgress?: (split: 'train' | 'validation' | 'test', done: number, total: number) => void,
): SessionDataset {
  if (data.train.length === 0) throw new DatasetError('no training files given', '');
  const template = c.template ?? defaultTemplate(tok);
  const base = templateTokensOf(tok);
  const tokens: TemplateTokens = c.eos_token !== null ? { ...base, eosToken: c.eos_token } : base;
  const train = parseSources(data.train);
  const val = data.validation?.length ? parseSources(data.validation) : null;
  const test = data.test?.length ? parseSources(data.test) : null;
  const splits = splitDataset(train.examples, {
    validation: val ? 0 : c.val_size,
    evaluation: test ? 0 : c.test_size,
    seed: c.seed,
  });
  const dropped: SessionDataset['dropped'] = [];
  const run = (split: 'train' | 'validation' | 'test', src: Example[]): SessionSplit => {
    const r = tokenizeDataset(tok, src, template, {
      maxLength: c.max_length,
      trainOnInputs: c.train_on_inputs,
      tokens,
      ...(onProgress ? { onProgress: (done: number, total: number) => onProgress(split, done, total) } : {}),
    });
    dropped.push(...r.dropped.map((d) => ({ ...d, split })));
    return { examples: r.examples, source: r.sourceIndex.map((i) => src[i]) };
  };
  const trainSplit = run('train', splits.train);
  const validation = run('validation', val ? val.examples : splits.validation);
  const testSplit = run('test', test ? test.examples : splits.evaluation);
  const parsed = [...train.parsed, ...(val?.parsed ?? []), ...(test?.parsed ?? [])];
  if (trainSplit.examples.length === 0) {
    throw new DatasetError(
      `no training example is left after tokenization (${dropped.length} dropped; first: ${dropped[0]?.message ?? 'none'})`,
      parsed[0]?.file ?? '',
    );
  }
  const report = buildReport({
    files: parsed.map((p) => ({
      file: p.file,
      format: p.format,
      rows: p.rows,
      examples: p.examples.length,
      errors: p.errors.length,
    })),
    errors: parsed.flatMap((p) => p.errors),
    template: template.kind,
    maxLength: c.max_length,
    trainOnInputs: c.train_on_inputs,
    train: trainSplit.examples,
    validation: validation.examples,
    evaluation: testSplit.examples,
    dropped: dropped.map(({ split: _s, ...d }) => d),
    tokenizer: tok,
  });
  return { train: trainSplit, validation, test: testSplit, parsed, dropped, report, template, tokens };
}
