import { describe, expect, it } from 'vitest';
import { collate, makeBatches, packBestFit, shuffled, splitDataset } from '../../src/data/batching';
import { IGNORE_INDEX, type TokenizedExample } from '../../src/data/tokenize';

const X = IGNORE_INDEX;

/** An example of `n` tokens with ids base+0.. and the last `trained` tokens labelled. */
function ex(n: number, trained: number, base = 10): TokenizedExample {
  const inputIds = Int32Array.from({ length: n }, (_, k) => base + k);
  const labels = Int32Array.from(inputIds, (id, k) => (k >= n - trained && k > 0 ? id : X));
  return { inputIds, labels, fullLength: n, truncated: false, trainedTokens: labels.filter((l) => l !== X).length };
}

describe('seeded shuffle and splits', () => {
  it('is deterministic per seed and a permutation', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = shuffled(items, 42);
    expect(shuffled(items, 42)).toEqual(a);
    expect(shuffled(items, 43)).not.toEqual(a);
    expect(a.slice().sort((x, y) => x - y)).toEqual(items);
    expect(items[0]).toBe(0); // input untouched
  });

  it('splits by fraction or count, disjoint and covering, evaluation first', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const s = splitDataset(items, { validation: 0.1, evaluation: 5, seed: 1 });
    expect([s.train.length, s.validation.length, s.evaluation.length]).toEqual([85, 10, 5]);
    expect([...s.train, ...s.validation, ...s.evaluation].sort((x, y) => x - y)).toEqual(items);
    const order = shuffled(items, 1);
    expect(s.evaluation).toEqual(order.slice(0, 5));
    expect(s.validation).toEqual(order.slice(5, 15));
    expect(splitDataset(items, { validation: 0.1, evaluation: 5, seed: 1 })).toEqual(s);
    expect(splitDataset(items, { seed: 1 }).train.length).toBe(100);
    expect(splitDataset([1, 2, 3], { validation: 0.01, seed: 0 }).validation.length).toBe(1); // at least one
    expect(() => splitDataset(items, { validation: 60, evaluation: 40, seed: 1 })).toThrow(/no training examples/);
    expect(() => splitDataset(items, { validation: 2.5, seed: 1 })).toThrow(/neither a fraction/);
  });
});

describe('batches', () => {
  it('pads on the right; padding is marked by the attention mask, not by the pad id', () => {
    const exs = [ex(3, 1), ex(5, 2)];
    // pad id 2 (= EOS in Llama): a trained EOS and padding share the id but not the mask
    exs[0].inputIds[2] = 2;
    exs[0].labels[2] = 2;
    const b = collate(exs, [[0], [1]], { padTokenId: 2 });
    expect([b.batchSize, b.seqLen, b.tokens, b.trainedTokens]).toEqual([2, 5, 8, 3]);
    expect(Array.from(b.inputIds)).toEqual([10, 11, 2, 2, 2, 10, 11, 12, 13, 14]);
    expect(Array.from(b.labels)).toEqual([X, X, 2, X, X, X, X, X, 13, 14]);
    expect(Array.from(b.attentionMask)).toEqual([1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
    expect(Array.from(b.positionIds)).toEqual([0, 1, 2, 0, 0, 0, 1, 2, 3, 4]);
    expect(b.segmentIds).toBeUndefined();
    expect(b.attentionMask).toBeInstanceOf(Uint8Array);
    expect(b.inputIds).toBeInstanceOf(Int32Array);
  });

  it('padToMultipleOf rounds the sequence length up', () => {
    expect(collate([ex(5, 1)], [[0]], { padToMultipleOf: 4 }).seqLen).toBe(8);
  });

  it('every example appears once per epoch; epochs differ; same seed same batches', () => {
    const exs = Array.from({ length: 23 }, (_, i) => ex(2 + (i % 7), 1, 100 * i));
    const e0 = makeBatches(exs, { batchSize: 4, seed: 3, epoch: 0 });
    expect(e0.length).toBe(6);
    expect(e0.flatMap((b) => b.rows.flat()).sort((a, b) => a - b)).toEqual(exs.map((_, i) => i));
    expect(makeBatches(exs, { batchSize: 4, seed: 3, epoch: 0 })).toEqual(e0);
    const e1 = makeBatches(exs, { batchSize: 4, seed: 3, epoch: 1 });
    expect(e1.map((b) => b.rows)).not.toEqual(e0.map((b) => b.rows));
    expect(makeBatches(exs, { batchSize: 4, seed: 3, dropLast: true }).length).toBe(5);
    const ordered = makeBatches(exs, { batchSize: 4, seed: 3, shuffle: false });
    expect(ordered[0].rows).toEqual([[0], [1], [2], [3]]);
  });

  it('group by length puts similar lengths together, longest batch first, and saves padding', () => {
    const lens = Array.from({ length: 64 }, (_, i) => 4 + ((i * 37) % 60));
    const exs = lens.map((n) => ex(n, 1));
    const grouped = makeBatches(exs, { batchSize: 8, seed: 5, groupByLength: true });
    const plain = makeBatches(exs, { batchSize: 8, seed: 5 });
    const padding = (bs: typeof grouped) => bs.reduce((s, b) => s + b.batchSize * b.seqLen - b.tokens, 0);
    expect(padding(grouped)).toBeLessThan(padding(plain) / 3);
    expect(grouped[0].seqLen).toBe(Math.max(...lens));
    expect(grouped.flatMap((b) => b.rows.flat()).sort((a, b) => a - b)).toEqual(exs.map((_, i) => i));
    for (const b of grouped) {
      const ls = b.rows.map((r) => lens[r[0]]);
      expect(ls).toEqual(ls.slice().sort((x, y) => y - x));
    }
  });

  it('best-fit decreasing packing', () => {
    expect(packBestFit([5, 3, 4, 2, 6], [0, 1, 2, 3, 4], 8)).toEqual([[4, 3], [0, 1], [2]]);
    expect(() => packBestFit([9], [0], 8)).toThrow(/more than the packing length 8/);
  });

  it('packed rows: segment ids per example, positions restart, labels kept, padding masked', () => {
    const exs = [ex(3, 2, 10), ex(2, 1, 20), ex(4, 2, 30)];
    const [b] = makeBatches(exs, { batchSize: 2, seed: 0, shuffle: false, packing: { seqLen: 6 }, padTokenId: 0 });
    // BFD: 4 tokens → row A; 3 tokens → row B; 2 tokens → row A (fits best: 2 free)
    expect(b.rows).toEqual([[2, 1], [0]]);
    expect([b.batchSize, b.seqLen]).toEqual([2, 6]);
    expect(Array.from(b.inputIds)).toEqual([30, 31, 32, 33, 20, 21, 10, 11, 12, 0, 0, 0]);
    expect(Array.from(b.labels)).toEqual([X, X, 32, 33, X, 21, X, 11, 12, X, X, X]);
    expect(Array.from(b.segmentIds!)).toEqual([1, 1, 1, 1, 2, 2, 1, 1, 1, 0, 0, 0]);
    expect(Array.from(b.positionIds)).toEqual([0, 1, 2, 3, 0, 1, 0, 1, 2, 0, 0, 0]);
    expect(Array.from(b.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    // the first token of every packed example is never a target
    for (let t = 0; t < 12; t++) if (b.positionIds[t] === 0) expect(b.labels[t]).toBe(X);
  });

  it('packing uses fewer rows than examples and keeps every example', () => {
    const exs = Array.from({ length: 40 }, (_, i) => ex(3 + (i % 9), 1, i * 20));
    const batches = makeBatches(exs, { batchSize: 4, seed: 9, packing: { seqLen: 32 } });
    const rows = batches.flatMap((b) => b.rows);
    expect(rows.length).toBeLessThan(12);
    expect(rows.flat().sort((a, b) => a - b)).toEqual(exs.map((_, i) => i));
    for (const b of batches) expect(b.seqLen).toBe(32);
  });
});
