import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepareDataset } from '../../src/data/index';
import { DatasetError } from '../../src/data/formats';
import { lengthHistogram, lengthStats, tokenView } from '../../src/data/report';
import { IGNORE_INDEX } from '../../src/data/tokenize';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { DATASETS_DIR, HAVE_DATASETS, STORIES_DIR, sharedMissing } from '../helpers';
import { ToyTokenizer } from './toy-tokenizer';

describe('report pieces', () => {
  it('length histogram and stats', () => {
    expect(lengthHistogram([1, 2, 2, 9, 15], 4, 16)).toEqual([
      { from: 0, to: 4, count: 3 },
      { from: 4, to: 8, count: 0 },
      { from: 8, to: 12, count: 1 },
      { from: 12, to: 16, count: 1 },
    ]);
    expect(lengthHistogram([3, 100], 2, 10)).toEqual([
      { from: 0, to: 5, count: 1 },
      { from: 5, to: 10, count: 1 },
    ]);
    expect(lengthStats([5, 1, 3, 2, 4])).toEqual({ count: 5, min: 1, max: 5, mean: 3, median: 3, p95: 5 });
    expect(lengthStats([])).toEqual({ count: 0, min: 0, max: 0, mean: 0, median: 0, p95: 0 });
  });

  it('per-token view', () => {
    const toy = new ToyTokenizer();
    const view = tokenView(toy, {
      inputIds: Int32Array.from([1, 83, 79, 2]),
      labels: Int32Array.from([IGNORE_INDEX, IGNORE_INDEX, 79, 2]),
    });
    expect(view).toEqual([
      { id: 1, piece: '<s>', trained: false },
      { id: 83, piece: 'o', trained: false },
      { id: 79, piece: 'k', trained: true },
      { id: 2, piece: '</s>', trained: true },
    ]);
  });
});

describe('prepareDataset (toy tokenizer)', () => {
  const rows = Array.from({ length: 20 }, (_, i) => ({
    instruction: `q${i}`,
    input: '',
    output: i === 7 ? '' : `answer ${i}`,
  }));
  const file = { name: 'toy.json', data: JSON.stringify(rows) };

  it('parses, splits, tokenizes and reports', () => {
    const toy = new ToyTokenizer();
    const p = prepareDataset([file], toy, {
      template: { kind: 'custom', template: 'Q:{instruction}\nA:{output}' },
      maxLength: 64,
      validation: 2,
      evaluation: 0.1,
      seed: 1,
    });
    expect([p.train.examples.length, p.validation.examples.length, p.evaluation.examples.length]).toEqual([15, 2, 2]);
    const r = p.report;
    expect(r.files).toEqual([{ file: 'toy.json', format: 'alpaca', rows: 20, examples: 19, errors: 1 }]);
    expect(r.errors.map((e) => [e.index, e.field, e.message])).toEqual([[7, 'output', 'empty response']]);
    expect([r.splits.train.examples, r.splits.validation.examples, r.splits.evaluation.examples]).toEqual([15, 2, 2]);
    // "Q:qN\nA:answer N</s>" with BOS: trained = "answer N" + EOS
    const expectTrained = p.train.source.reduce(
      (s, e) => s + ('messages' in e ? e.messages[1].content.length + 1 : 0),
      0,
    );
    expect(r.trainedTokensPerEpoch).toBe(expectTrained);
    expect(r.tokensPerEpoch).toBe(p.train.examples.reduce((s, e) => s + e.inputIds.length, 0));
    expect([r.truncated, r.truncatedShare, r.dropped.count]).toEqual([0, 0, 0]);
    expect(r.lengthHistogram.reduce((s, b) => s + b.count, 0)).toBe(19);
    expect(
      r
        .sample!.filter((t) => t.trained)
        .map((t) => t.piece)
        .join(''),
    ).toBe(`${(p.train.source[0] as { messages: { content: string }[] }).messages[1].content}</s>`);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('reports truncation and drops examples with nothing left to train', () => {
    const long = [
      { instruction: 'x'.repeat(30), output: 'y' },
      { instruction: 'short', output: 'a long answer here' },
      { instruction: 'q', output: 'a' },
    ];
    const p = prepareDataset([{ name: 'l.json', data: JSON.stringify(long) }], new ToyTokenizer(), {
      template: { kind: 'custom', template: 'Q:{instruction}\nA:{output}' },
      maxLength: 16,
      seed: 0,
    });
    expect(p.report.dropped).toMatchObject({ count: 1, byReason: { 'no-trained-tokens': 1 } });
    expect(p.report.truncated).toBe(1);
    expect(p.report.truncatedShare).toBe(0.5);
    expect(p.train.examples.every((e) => e.inputIds.length <= 16)).toBe(true);
  });

  it('fails clearly when nothing is left to train', () => {
    expect(() =>
      prepareDataset(
        [{ name: 'l.json', data: JSON.stringify([{ instruction: 'x'.repeat(40), output: 'y' }]) }],
        new ToyTokenizer(),
        { maxLength: 8, seed: 0 },
      ),
    ).toThrow(DatasetError);
  });
});

const HAVE_TOK = (() => {
  try {
    readFileSync(path.join(STORIES_DIR, 'tok512.bin'));
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!HAVE_DATASETS || !HAVE_TOK)(
  'dataset report on the shared files with the stories260K tokenizer',
  () => {
    it('alpaca_en_demo + identity at 512 tokens', () => {
      const tok = parseLlama2cTokenizer(readFileSync(path.join(STORIES_DIR, 'tok512.bin')), 'tok512.bin');
      const files = ['alpaca_en_demo.json', 'identity.json'].map((name) => ({
        name,
        data: readFileSync(path.join(DATASETS_DIR, name)),
      }));
      const p = prepareDataset(files, tok, { maxLength: 512, validation: 0.05, evaluation: 50, seed: 1234 });
      const r = p.report;
      expect(r.template).toBe('alpaca');
      const total =
        r.splits.train.examples + r.splits.validation.examples + r.splits.evaluation.examples + r.dropped.count;
      expect(total).toBe(999 + 91);
      expect(
        r.splits.validation.examples +
          r.splits.evaluation.examples +
          p.dropped.filter((d) => d.split !== 'train').length,
      ).toBe(55 + 50);
      expect(r.truncated).toBeGreaterThan(0);
      expect(r.truncatedShare).toBeCloseTo(r.truncated / (total - r.dropped.count), 10);
      expect(r.splits.train.lengths.max).toBeLessThanOrEqual(512);
      expect(r.lengthHistogram.reduce((s, b) => s + b.count, 0)).toBe(total - r.dropped.count);
      expect(r.sample![0]).toEqual({ id: 1, piece: '<s>', trained: false });
      expect(r.sample![r.sample!.length - 1].trained).toBe(true);
    });
  },
);

if (!HAVE_DATASETS || !HAVE_TOK) {
  describe('dataset report on the shared files', () => {
    it.skip(sharedMissing('the shared-file report'), () => {});
  });
}
