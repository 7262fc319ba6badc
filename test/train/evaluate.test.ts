/** Generation metrics (SNI normalisation, exact match, ROUGE-L) against hand-computed values, and base vs tuned runs. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { CausalLM } from '../../src/engine/model';
import {
  compareBaseTuned,
  evaluateGeneration,
  exactMatch,
  lcsLength,
  normalizeAnswer,
  promptAndReference,
  rougeL,
} from '../../src/train/evaluate';
import { randomWeights, tinyConfig } from '../fixtures/tiny-model';
import { ToyTokenizer } from '../data/toy-tokenizer';

describe('SNI answer normalisation', () => {
  it('lowercases, strips ASCII punctuation (string.punctuation), collapses whitespace', () => {
    expect(normalizeAnswer('  The Cat,   sat!\n')).toBe('the cat sat');
    expect(normalizeAnswer("Don't stop-believing.")).toBe('dont stopbelieving');
    expect(normalizeAnswer('a (b) [c] {d} "e" #1 $2 %3 &4 *5 +6 /7 :8 ;9 <0> =? @^_`|~\\')).toBe(
      'a b c d e 1 2 3 4 5 6 7 8 9 0',
    );
    expect(normalizeAnswer('The a an')).toBe('the a an'); // no article removal (unlike SQuAD)
    expect(normalizeAnswer('café — «oui»')).toBe('café — «oui»'); // non-ASCII punctuation is kept, as in Python
    expect(normalizeAnswer(' \t ')).toBe('');
  });
});

describe('exact match', () => {
  it('compares normalised strings, best over references', () => {
    expect(exactMatch('Blue.', 'blue')).toBe(1);
    expect(exactMatch('blue sky', 'blue')).toBe(0);
    expect(exactMatch('one  two, three', 'One two three')).toBe(1);
    expect(exactMatch('small', ['little', 'Small!'])).toBe(1);
    expect(exactMatch('', '')).toBe(1);
    expect(exactMatch('', 'x')).toBe(0);
  });
});

describe('LCS and ROUGE-L F1', () => {
  it('LCS length', () => {
    expect(lcsLength(['a', 'b', 'c', 'd'], ['a', 'c', 'd', 'e'])).toBe(3);
    expect(lcsLength(['a', 'b'], ['b', 'a'])).toBe(1);
    expect(lcsLength([], ['a'])).toBe(0);
    expect(lcsLength('abcbdab'.split(''), 'bdcaba'.split(''))).toBe(4); // CLRS: "bcba"
  });
  it('hand-computed F1 values', () => {
    // LCS "the cat on the mat" = 5 of 6 and 6 tokens: P = R = 5/6
    expect(rougeL('the cat sat on the mat', 'the cat is on the mat')).toBeCloseTo(5 / 6, 12);
    // LCS 2: P = 2/3, R = 1 → F = 2·(2/3)·1 / (5/3) = 0.8
    expect(rougeL('one two three', 'one two')).toBeCloseTo(0.8, 12);
    // normalisation first: "Blue!" vs "blue" → identical
    expect(rougeL('Blue!', 'blue')).toBe(1);
    // LCS 1 ("b"): P = 1/2, R = 1/3 → F = 2·(1/6)/(5/6) = 0.4
    expect(rougeL('a b', 'b c d')).toBeCloseTo(0.4, 12);
    // order matters: "a b" vs "b a" → LCS 1, P = R = 1/2
    expect(rougeL('a b', 'b a')).toBeCloseTo(0.5, 12);
    expect(rougeL('', 'x')).toBe(0);
    expect(rougeL('x', '')).toBe(0);
    expect(rougeL('', '')).toBe(0); // as rouge_score: no tokens, no score
    expect(rougeL('cat', ['dog', 'the cat'])).toBeCloseTo(2 / 3, 12); // best reference: P = 1, R = 1/2
  });
});

describe('prompt and reference of an example', () => {
  it('last assistant turn is the reference; everything before it the prompt', () => {
    expect(promptAndReference({ prompt: 'Say hi', completion: 'hi' })).toEqual({
      messages: [{ role: 'user', content: 'Say hi' }],
      reference: 'hi',
    });
    const msgs = [
      { role: 'system' as const, content: 's' },
      { role: 'user' as const, content: 'a' },
      { role: 'assistant' as const, content: 'b' },
      { role: 'user' as const, content: 'c' },
      { role: 'assistant' as const, content: 'd' },
    ];
    expect(promptAndReference({ messages: msgs })).toEqual({ messages: msgs.slice(0, 4), reference: 'd' });
    expect(promptAndReference({ text: 'just text' })).toBeNull();
  });
});

describe('greedy evaluation, base vs tuned', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('runs the same prompts with the adapter detached then attached, restores it, and scores predictions', async () => {
    const tok = new ToyTokenizer();
    const cfg = tinyConfig('llama', {
      vocab_size: tok.vocabSize,
      max_position_embeddings: 128,
      hidden_size: 16,
      num_attention_heads: 4,
      head_dim: 4,
    });
    const model = CausalLM.fromRaw(cfg, randomWeights(cfg, 3));
    const ad = model.attachLora(
      { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false },
      1,
    );
    const examples = [
      {
        messages: [
          { role: 'user' as const, content: 'Say a' },
          { role: 'assistant' as const, content: 'a' },
        ],
      },
      { prompt: 'Say b', completion: 'b' },
      { text: 'no reference' },
    ];
    const opts = { template: { kind: 'instruction' as const }, maxNewTokens: 4 };
    const base = await evaluateGeneration(model, tok, examples, opts);
    expect(base.count).toBe(2);
    expect(base.examples[0].prompt).toBe('### Instruction:\nSay a\n\n### Response:\n');
    for (const e of base.examples) {
      expect(e.exact_match).toBe(exactMatch(e.prediction, e.reference));
      expect(e.rougeL).toBe(rougeL(e.prediction, e.reference));
    }
    // B = 0 after init: the tuned model is the base model, so both runs agree exactly
    const cmp = await compareBaseTuned(model, tok, examples, opts);
    expect(model.adapter).toBe(ad);
    expect(cmp.tuned.examples.map((e) => e.prediction)).toEqual(cmp.base.examples.map((e) => e.prediction));
    expect(cmp.base.exact_match).toBe(100 * (cmp.base.examples.filter((e) => e.exact_match === 1).length / 2));
    // a prompt that leaves no room in the context is skipped, not an error
    const long = await evaluateGeneration(model, tok, [{ prompt: 'x'.repeat(200), completion: 'y' }], opts);
    expect([long.count, long.skipped]).toEqual([0, 1]);
    model.dispose();
  });
});
