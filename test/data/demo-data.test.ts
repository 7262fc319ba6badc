/**
 * The page's demo dataset (public/datasets/tiny-tasks*.jsonl) is exactly what tools/make-demo-data.ts writes, and
 * its held-out file really is held out: no held-out word occurs in training, no held-out prompt is a training
 * prompt, and a held-out prompt contains no training word (so an answer can only come from copying).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { checkDemoData, generateDemoData, jsonl, wordsOf, type Row } from '../../tools/make-demo-data';
import { HAVE_STORIES, ROOT, STORIES_DIR } from '../helpers';

const read = (name: string) => readFileSync(path.join(ROOT, 'public', 'datasets', name), 'utf8');
const rows = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row);

describe('demo dataset (public/datasets/tiny-tasks*.jsonl)', () => {
  const { train, evaluation, pools } = generateDemoData();
  const trainFile = read('tiny-tasks.jsonl');
  const evalFile = read('tiny-tasks-eval.jsonl');

  it('equals the generator output (npx tsx tools/make-demo-data.ts rewrites it)', () => {
    expect(trainFile).toBe(jsonl(train));
    expect(evalFile).toBe(jsonl(evaluation));
  });

  it('has many distinct training prompts and a small held-out file covering every task', () => {
    const t = rows(trainFile);
    const e = rows(evalFile);
    expect(t.length).toBeGreaterThanOrEqual(1000);
    expect(new Set(t.map((r) => r.messages[0].content)).size).toBe(t.length);
    expect(e.length).toBeGreaterThanOrEqual(20);
    expect(e.length).toBeLessThanOrEqual(40);
    expect(new Set(e.map((r) => r.task))).toEqual(new Set(t.map((r) => r.task)));
    for (const r of [...t, ...e]) {
      expect(r.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
      expect(r.messages[1].content).not.toContain('\n'); // eos_token "\n" ends every answer
    }
  });

  it('held-out words never occur in training; held-out prompts use no training word and no training prompt', () => {
    const t = rows(trainFile);
    const e = rows(evalFile);
    const trainWords = new Set(t.flatMap((r) => r.messages.flatMap((m) => wordsOf(m.content))));
    const heldOut = new Set(pools.heldOut.map((w) => w.toLowerCase()));
    const trainPool = new Set(pools.train.map((w) => w.toLowerCase()));
    expect(heldOut.size).toBeGreaterThanOrEqual(40);
    for (const w of heldOut) expect(trainWords.has(w), w).toBe(false);
    for (const w of trainPool) expect(heldOut.has(w), w).toBe(false);
    const trainPrompts = new Set(t.map((r) => r.messages[0].content));
    for (const r of e) {
      expect(trainPrompts.has(r.messages[0].content), r.messages[0].content).toBe(false);
      const ws = wordsOf(r.messages[0].content);
      expect(
        ws.filter((w) => trainPool.has(w)),
        r.messages[0].content,
      ).toEqual([]);
      expect(
        ws.some((w) => heldOut.has(w)),
        r.messages[0].content,
      ).toBe(true);
    }
    // some held-out prompts use a phrasing that training never uses
    const phrasing = (s: string) => s.split('\n')[0].replace(/\b[A-Z]?[a-z]+\.$/, '');
    const trainPhrasings = new Set(t.map((r) => phrasing(r.messages[0].content)));
    expect(e.filter((r) => !trainPhrasings.has(phrasing(r.messages[0].content))).length).toBeGreaterThanOrEqual(5);
  });

  it('the check refuses a held-out word in training, a repeated prompt and a training word in a held-out prompt', () => {
    const leak = { ...train[0], messages: [evaluation[0].messages[0], train[0].messages[1]] };
    expect(() => checkDemoData([...train, leak], evaluation, pools.heldOut)).toThrow(/held-out/);
    const contaminated = {
      ...train[0],
      messages: [train[0].messages[0], { role: 'assistant' as const, content: pools.heldOut[0] }],
    };
    expect(() => checkDemoData([contaminated], [], pools.heldOut)).toThrow(/held-out word/);
    const usesTrainWord = { ...evaluation[0], messages: [train[0].messages[0], evaluation[0].messages[1]] };
    expect(() => checkDemoData([], [usesTrainWord], pools.heldOut, pools.train)).toThrow(/training word/);
  });

  it.skipIf(!HAVE_STORIES)(
    'with the stories260K tokenizer: every pool word is two tokens after a space and at a line start; every training example fits in 56 tokens',
    () => {
      const tok = parseLlama2cTokenizer(
        new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin'))),
        'tok512.bin',
        512,
      );
      const len = (s: string) => tok.encode(s, {}).length;
      for (const w of [...pools.train, ...pools.heldOut]) {
        expect(len(`x ${w}`) - len('x'), w).toBe(2);
        expect(len(`x\n${w}`) - len('x\n'), w).toBe(2);
      }
      const catalog = JSON.parse(readFileSync(path.join(ROOT, 'models', 'catalog.json'), 'utf8')) as {
        models: { id: string; preset: { max_length: number } }[];
      };
      const maxLength = catalog.models.find((m) => m.id === 'stories260K')!.preset.max_length;
      for (const r of rows(trainFile)) {
        const text = `### Instruction:\n${r.messages[0].content}\n\n### Response:\n${r.messages[1].content}\n`;
        // at most 56: with pad_to_multiple_of 8 no batch is padded to 64 (the README's time budget)
        expect(tok.encode(text, { addBos: true }).length, text).toBeLessThanOrEqual(Math.min(56, maxLength));
      }
    },
  );
});
