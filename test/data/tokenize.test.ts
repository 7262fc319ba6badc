import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDataset, type Example } from '../../src/data/formats';
import { renderExample, templateTokensOf, type Segment, type TemplateSpec } from '../../src/data/templates';
import {
  alignDecoded,
  encodeWithOffsets,
  IGNORE_INDEX,
  incrementalDecode,
  specialTokenInfo,
  tokenizeDataset,
  tokenizeSegments,
  WINDOW_CHARS_PER_TOKEN,
  WINDOW_MARGIN_TOKENS,
} from '../../src/data/tokenize';
import type { Tokenizer } from '../../src/io/tokenizer';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import {
  gpt2StyleTokenizerConfig,
  gpt2StyleTokenizerJson,
  LLAMA_FIRST_CHAR_ID,
  llamaStyleTokenizerConfig,
  llamaStyleTokenizerJson,
} from '../fixtures/tokenizers';
import { DATASETS_DIR, HAVE_DATASETS, STORIES_DIR, sharedMissing } from '../helpers';
import { ToyTokenizer } from './toy-tokenizer';

const X = IGNORE_INDEX;
const QA: TemplateSpec = { kind: 'custom', template: 'Q:{instruction}\nA:{output}' };
const hiOk: Example = {
  messages: [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'ok' },
  ],
};

function tok1(t: Tokenizer, ex: Example, spec: TemplateSpec, maxLength = 1000, trainOnInputs = false) {
  return tokenizeSegments(t, renderExample(ex, spec, templateTokensOf(t)), { maxLength, trainOnInputs });
}

describe('hand-checked ids and labels (toy char tokenizer)', () => {
  // ids: <unk>=0 <s>=1 </s>=2 <pad>=3, then ASCII 32..126 → 4..98 (char code − 28), "\n"=99, "\t"=100, bytes from 101.
  it('completion only: prompt and BOS -100, response and EOS trained', () => {
    const t = tok1(new ToyTokenizer(), hiOk, QA);
    expect(t.text).toBe('Q:hi\nA:ok</s>');
    expect(Array.from(t.inputIds)).toEqual([1, 53, 30, 76, 77, 99, 37, 30, 83, 79, 2]);
    expect(Array.from(t.labels)).toEqual([X, X, X, X, X, X, X, X, 83, 79, 2]);
    expect([t.trainedTokens, t.fullLength, t.truncated, t.method]).toEqual([3, 11, false, 'decode']);
  });

  it('trainOnInputs: every token but the first is a target', () => {
    const t = tok1(new ToyTokenizer(), hiOk, QA, 1000, true);
    expect(Array.from(t.labels)).toEqual([X, 53, 30, 76, 77, 99, 37, 30, 83, 79, 2]);
  });

  it('a token straddling the prompt/response boundary is trained (as HF char_to_token masks)', () => {
    // piece ":o" (id 4) merges the prompt's last char with the response's first; ASCII now starts at 5.
    const toy = new ToyTokenizer({ pieces: [':o'] });
    const t = tok1(toy, hiOk, QA);
    expect(Array.from(t.inputIds)).toEqual([1, 54, 31, 77, 78, 100, 38, 4, 80, 2]);
    expect(Array.from(t.labels)).toEqual([X, X, X, X, X, X, X, 4, 80, 2]);
  });

  it('SentencePiece-style dummy prefix: the leading space token is not trained', () => {
    const toy = new ToyTokenizer({ dummyPrefix: true });
    const t = tok1(toy, hiOk, QA);
    expect(Array.from(t.inputIds)).toEqual([1, 4, 53, 30, 76, 77, 99, 37, 30, 83, 79, 2]);
    expect(Array.from(t.labels)).toEqual([X, X, X, X, X, X, X, X, X, 83, 79, 2]);
    expect(Array.from(t.starts.slice(0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(t.ends.slice(0, 3))).toEqual([0, 1, 1]);
  });

  it('multi-byte characters in byte-fallback pieces are trained together', () => {
    const toy = new ToyTokenizer();
    const ex: Example = {
      messages: [
        { role: 'user', content: 'é' },
        { role: 'assistant', content: 'ü' },
      ],
    };
    const t = tok1(toy, ex, QA);
    // é = C3 A9, ü = C3 BC → byte ids 101 + byte
    expect(Array.from(t.inputIds)).toEqual([1, 53, 30, 296, 270, 99, 37, 30, 296, 289, 2]);
    expect(Array.from(t.labels)).toEqual([X, X, X, X, X, X, X, X, 296, 289, 2]);
    expect(Array.from(t.starts)).toEqual([0, 0, 1, 2, 2, 3, 4, 5, 6, 6, 7]);
  });

  it('a tokenizer that recognises special strings gets the whole text in one encode; same ids', () => {
    const hfLike = new ToyTokenizer({ recognizeSpecials: true });
    expect(specialTokenInfo(hfLike).handlesSpecials).toBe(true);
    expect(specialTokenInfo(new ToyTokenizer()).handlesSpecials).toBe(false);
    const t = tok1(hfLike, hiOk, QA);
    expect(Array.from(t.inputIds)).toEqual([1, 53, 30, 76, 77, 99, 37, 30, 83, 79, 2]);
    expect(Array.from(t.labels)).toEqual([X, X, X, X, X, X, X, X, 83, 79, 2]);
  });

  it('a template that writes bos_token gets no second BOS', () => {
    const jinja =
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[{{ m.content }}]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}";
    for (const recognizeSpecials of [false, true]) {
      const toy = new ToyTokenizer({ recognizeSpecials, chatTemplate: jinja });
      const t = tok1(toy, hiOk, { kind: 'chat_template' });
      expect(t.text).toBe('<s>[hi]ok</s>');
      // [ = 91−28 = 63, ] = 93−28 = 65
      expect(Array.from(t.inputIds)).toEqual([1, 63, 76, 77, 65, 83, 79, 2]);
      expect(Array.from(t.labels)).toEqual([X, X, X, X, X, 83, 79, 2]);
    }
  });

  it('truncation keeps the start; an example with no trained token left is dropped and counted', () => {
    const toy = new ToyTokenizer();
    const t = tok1(toy, hiOk, QA, 9);
    expect(Array.from(t.inputIds)).toEqual([1, 53, 30, 76, 77, 99, 37, 30, 83]);
    expect(Array.from(t.labels)).toEqual([X, X, X, X, X, X, X, X, 83]);
    expect([t.truncated, t.trainedTokens, t.fullLength]).toEqual([true, 1, 11]);
    const long: Example = {
      messages: [
        { role: 'user', content: 'a long question' },
        { role: 'assistant', content: 'ok' },
      ],
    };
    const r = tokenizeDataset(toy, [hiOk, long, hiOk], QA, { maxLength: 10 });
    expect(r.examples.length).toBe(2);
    expect(r.sourceIndex).toEqual([0, 2]);
    expect(r.truncated).toBe(2); // both kept ones lose their EOS at 10 tokens
    expect(r.dropped).toEqual([
      {
        index: 1,
        reason: 'no-trained-tokens',
        message: 'no trained token within the first 10 tokens (prompt is 24 tokens long with its response)',
      },
    ]);
  });

  it('template errors drop the example with the reason', () => {
    const r = tokenizeDataset(new ToyTokenizer(), [hiOk, { text: 'plain' }], { kind: 'raw' }, { maxLength: 50 });
    expect(r.examples.length).toBe(1);
    expect(r.sourceIndex).toEqual([1]);
    expect(r.dropped[0]).toMatchObject({ index: 0, reason: 'template-error' });
  });
});

describe('offsets', () => {
  it('incremental decoding holds back incomplete UTF-8', () => {
    const toy = new ToyTokenizer();
    const ids = toy.encode('aé', { addBos: false });
    expect(ids).toEqual([69, 296, 270]);
    const d = incrementalDecode(toy, ids);
    expect(d.text).toBe('aé');
    expect(Array.from(d.starts)).toEqual([0, 1, 1]);
    expect(Array.from(d.ends)).toEqual([1, 2, 2]);
  });

  it('aligns decoded text to the source across local differences', () => {
    expect(Array.from(alignDecoded(' abc', 'abc')!)).toEqual([0, 0, 1, 2, 3]);
    expect(Array.from(alignDecoded('x<unk>yzzzzzz', 'xéyzzzzzz')!)).toEqual([0, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(alignDecoded('ABC', 'abc')!)).toEqual([0, 1, 2, 3]);
    expect(alignDecoded('Q'.repeat(10) + 'x'.repeat(80), 'Q'.repeat(10) + 'y'.repeat(80))).toBeNull();
  });

  it('falls back to prefix tokenization when decoded text cannot be aligned', () => {
    // A tokenizer with an upper-casing "normaliser": decode(encode(t)) !== t over long stretches.
    const base = new ToyTokenizer();
    const shout: Tokenizer = {
      vocabSize: base.vocabSize,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: 3,
      specialTokens: base.specialTokens,
      chatTemplate: null,
      encode: (text, o) => base.encode(text.toUpperCase(), o),
      decode: (ids, o) => base.decode(ids, o),
      idToToken: (id) => base.idToToken(id),
    };
    const question = 'please answer this rather long question about nothing at all';
    const ex: Example = {
      messages: [
        { role: 'user', content: question },
        { role: 'assistant', content: 'fine then' },
      ],
    };
    const t = tok1(shout, ex, QA);
    expect(t.method).toBe('prefix');
    const ids = Array.from(t.inputIds);
    const trained = ids.filter((_, k) => t.labels[k] !== X);
    expect(base.decode(trained)).toBe('FINE THEN</s>');
    expect(ids).toEqual([1, ...base.encode(`Q:${question}\nA:fine then`.toUpperCase(), { addBos: false }), 2]);
  });

  it('token spans cover the text in order', () => {
    const toy = new ToyTokenizer({ pieces: ['### ', 'Response', 'Instruction'], dummyPrefix: true });
    const text = '### Instruction:\nDo it.\n\n### Response:Done.</s>';
    const enc = encodeWithOffsets(toy, text);
    expect(enc.bosAdded).toBe(true);
    // the dummy-prefix space decodes to nothing and shares the span of the token it precedes
    expect(enc.ids.slice(0, 5).map((id, k) => [toy.idToToken(id), enc.starts[k], enc.ends[k]])).toEqual([
      ['<s>', 0, 0],
      [' ', 0, 4],
      ['### ', 0, 4],
      ['Instruction', 4, 15],
      [':', 15, 16],
    ]);
    for (let k = 1; k < enc.ids.length; k++) {
      expect(enc.starts[k]).toBeGreaterThanOrEqual(enc.starts[k - 1]);
      expect(enc.ends[k]).toBeGreaterThanOrEqual(Math.max(enc.starts[k], enc.ends[k - 1]));
    }
    expect(enc.ends[enc.ids.length - 1]).toBe(text.length);
  });
});

/**
 * The properties every tokenizer must give, checked on real tokenizer implementations:
 *  - input ids are exactly [BOS] + encode(whole text) (the boundary is tokenized as at generation);
 *  - the trained ids decode to the responses + EOS.
 */
function checkRealTokenizer(
  t: Tokenizer,
  spec: TemplateSpec,
  examples: Example[],
  expectResponse: (ex: Example) => string,
  sentinel?: number,
  normalize: (s: string) => string = (s) => s,
) {
  const tokens = templateTokensOf(t);
  for (const ex of examples) {
    const segs: Segment[] = renderExample(ex, spec, tokens);
    const r = tokenizeSegments(t, segs, { maxLength: 100_000 });
    expect(r.method).toBe('decode');
    const whole = segs.map((s) => s.text).join('');
    const info = specialTokenInfo(t);
    // exactly the tokenizer's own encoding of the whole text (its default BOS, never doubled)
    if (info.handlesSpecials) expect(Array.from(r.inputIds)).toEqual(t.encode(whole));
    const trained = Array.from(r.inputIds).filter((_, k) => r.labels[k] !== X);
    // SentencePiece decoding drops the first piece's leading space ("▁théwor" → "théwor"), so a
    // sentinel piece is decoded in front and cut off again.
    const lead = sentinel === undefined ? '' : t.decode([sentinel]);
    const decoded = t.decode(sentinel === undefined ? trained : [sentinel, ...trained], { skipSpecialTokens: false });
    expect(normalize(decoded.slice(lead.length))).toBe(normalize(expectResponse(ex)));
  }
}

const samples: Example[] = [
  {
    messages: [
      { role: 'user', content: 'hello the world' },
      { role: 'assistant', content: 'hello world' },
    ],
  },
  {
    messages: [
      { role: 'user', content: 'the' },
      { role: 'assistant', content: ' théwor' },
    ],
  },
  {
    messages: [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c' },
      { role: 'assistant', content: 'd é f' },
    ],
  },
];
const responses =
  (eos: string, sep = '') =>
  (ex: Example) =>
    'messages' in ex
      ? ex.messages
          .filter((m) => m.role === 'assistant')
          .map((m) => m.content + sep + eos)
          .join('')
      : '';

describe('real tokenizer implementations (HF tokenizer.json fixtures)', () => {
  it('Llama-2 style (legacy normaliser and Metaspace), Alpaca and the model chat template', () => {
    for (const metaspace of [false, true]) {
      const t = loadHfTokenizer(llamaStyleTokenizerJson({ metaspace }), llamaStyleTokenizerConfig());
      expect(specialTokenInfo(t)).toMatchObject({ handlesSpecials: true, addsBosByDefault: true });
      // hand-checked: "▁hello"=280 "▁the"=274 "▁wor"=277 "l"=263 "d"=267 </s>=2
      const pc = tok1(t, { prompt: 'hello', completion: ' the world' }, { kind: 'raw' });
      expect(Array.from(pc.inputIds)).toEqual([1, 280, 274, 277, 263, 267, 2]);
      expect(Array.from(pc.labels)).toEqual([X, X, 274, 277, 263, 267, 2]);
      const a = LLAMA_FIRST_CHAR_ID + 9; // the piece "a"
      checkRealTokenizer(t, { kind: 'alpaca' }, samples, responses('</s>'), a);
      checkRealTokenizer(t, { kind: 'instruction' }, samples, responses('</s>'), a);
      // "[INST] q [/INST] {content}</s>": whether the template's space before the answer is trained
      // depends on the merges ("▁hello" holds it and the answer's first letter, so it is trained;
      // "▁" + "b" leaves it in the prompt), so spaces are not compared here.
      checkRealTokenizer(
        t,
        { kind: 'chat_template' },
        samples,
        (ex) =>
          'messages' in ex
            ? ex.messages
                .filter((m) => m.role === 'assistant')
                .map((m) => `${m.content}</s>`)
                .join('')
            : '',
        a,
        (x) => x.replace(/ /g, ''),
      );
    }
  });

  it('GPT-2 style byte-level BPE (EOS = <|endoftext|>, no BOS added)', () => {
    const t = loadHfTokenizer(gpt2StyleTokenizerJson(), gpt2StyleTokenizerConfig());
    expect(specialTokenInfo(t)).toMatchObject({ handlesSpecials: true, addsBosByDefault: false });
    const r = tok1(t, { prompt: 'hello', completion: ' the world' }, { kind: 'raw' });
    // "hello" = 261, " the" = 259, " wor" = 264, "l" = 108, "d" = 100, <|endoftext|> = 265
    expect(Array.from(r.inputIds)).toEqual([261, 259, 264, 108, 100, 265]);
    expect(Array.from(r.labels)).toEqual([X, 259, 264, 108, 100, 265]);
    checkRealTokenizer(t, { kind: 'alpaca' }, samples, responses('<|endoftext|>'));
    checkRealTokenizer(t, { kind: 'chatml' }, samples, responses('<|endoftext|>', '<|im_end|>'));
  });
});

const HAVE_TOK512 = (() => {
  try {
    readFileSync(path.join(STORIES_DIR, 'tok512.bin'));
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!HAVE_TOK512 || !HAVE_DATASETS)('stories260K llama2.c tokenizer on the shared datasets', () => {
  const t = HAVE_TOK512
    ? parseLlama2cTokenizer(readFileSync(path.join(STORIES_DIR, 'tok512.bin')), 'tok512.bin')
    : (null as unknown as Tokenizer);

  it('hand-checked Stanford Alpaca example: the response tokens are exactly encode(prompt + response)[len(prompt):]', () => {
    // llama2.c's encoder does not know special strings: "</s>" in template text becomes the EOS id here
    expect(specialTokenInfo(t)).toMatchObject({ handlesSpecials: false, addsBosByDefault: true });
    const ex: Example = {
      messages: [
        { role: 'user', content: 'Say hi.', instruction: 'Say hi.', input: '' },
        { role: 'assistant', content: 'Hi there!' },
      ],
    };
    const r = tok1(t, ex, { kind: 'alpaca' });
    const prompt =
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:';
    const full = t.encode(prompt + 'Hi there!', { addBos: true });
    expect(Array.from(r.inputIds)).toEqual([...full, 2]);
    const nPrompt = t.encode(prompt, { addBos: true }).length;
    // Stanford masks the first len(tokenize(prompt)) tokens; here the boundary is clean, so both agree.
    expect(full.slice(0, nPrompt)).toEqual(t.encode(prompt, { addBos: true }));
    expect(Array.from(r.labels)).toEqual([...full.map((id, k) => (k < nPrompt ? X : id)), 2]);
  });

  it('every alpaca_en_demo / sharegpt example: trained tokens decode to the responses + EOS', () => {
    for (const [name, spec] of [
      ['alpaca_en_demo.json', { kind: 'alpaca' }],
      ['sharegpt_dummy_conversation.json', { kind: 'chatml' }],
    ] as [string, TemplateSpec][]) {
      const ds = parseDataset(readFileSync(path.join(DATASETS_DIR, name)), name);
      const sep = spec.kind === 'chatml' ? '<|im_end|>' : '';
      for (const ex of ds.examples.slice(0, 150)) {
        const r = tok1(t, ex, spec, 100_000);
        expect(r.method).toBe('decode');
        const ids = Array.from(r.inputIds);
        const trained: number[][] = [];
        ids.forEach((id, k) => {
          if (r.labels[k] === X) return;
          if (k > 0 && r.labels[k - 1] !== X) trained[trained.length - 1].push(id);
          else trained.push([id]);
        });
        const want = (ex as { messages: { role: string; content: string }[] }).messages
          .filter((m) => m.role === 'assistant')
          .map((m) => m.content + sep);
        expect(trained.length).toBe(want.length);
        trained.forEach((run, k) => {
          expect(run[run.length - 1]).toBe(2); // EOS ends every trained response
          // decode() drops SentencePiece's leading space of a run; compare without it
          expect(t.decode(run.slice(0, -1)).trim()).toBe(want[k].trim());
        });
      }
    }
  });
});

describe.skipIf(!HAVE_TOK512 || !HAVE_DATASETS)('truncation with the stories260K tokenizer', () => {
  it('labels of a truncated example equal the first maxLength labels of the untruncated one (lima.json)', () => {
    const t = parseLlama2cTokenizer(readFileSync(path.join(STORIES_DIR, 'tok512.bin')), 'tok512.bin');
    const ds = parseDataset(readFileSync(path.join(DATASETS_DIR, 'lima.json')), 'lima.json');
    let truncated = 0;
    let windowed = 0;
    for (const ex of ds.examples.slice(0, 60)) {
      const full = tok1(t, ex, { kind: 'alpaca' }, 1_000_000);
      const cut = tok1(t, ex, { kind: 'alpaca' }, 300);
      // Long rows are tokenized in a bounded window: fullLength is then a lower bound above max_length.
      if (cut.text.length === full.text.length) expect(cut.fullLength).toBe(full.inputIds.length);
      else {
        expect(cut.fullLength).toBeGreaterThanOrEqual(300 + WINDOW_MARGIN_TOKENS);
        expect(cut.fullLength).toBeLessThanOrEqual(full.inputIds.length);
        windowed++;
      }
      expect(Array.from(cut.inputIds)).toEqual(Array.from(full.inputIds.slice(0, 300)));
      expect(Array.from(cut.labels)).toEqual(Array.from(full.labels.slice(0, 300)));
      if (cut.truncated) truncated++;
    }
    expect(truncated).toBeGreaterThan(30);
    expect(windowed).toBeGreaterThan(10);
  });
});

if (!HAVE_TOK512 || !HAVE_DATASETS) {
  describe('stories260K llama2.c tokenizer on the shared datasets', () => {
    it.skip(sharedMissing('the llama2.c tokenizer checks'), () => {});
  });
}

/** Counts the characters a tokenizer is asked to encode (work done, not wall time). */
function countingTokenizer(t: Tokenizer): { tok: Tokenizer; chars: () => number } {
  let chars = 0;
  const tok = Object.create(t) as Tokenizer;
  tok.encode = (text, opts) => {
    chars += text.length;
    return t.encode(text, opts);
  };
  return { tok, chars: () => chars };
}

const qa = (q: string, a: string): Example => ({
  messages: [
    { role: 'user', content: q },
    { role: 'assistant', content: a },
  ],
});

describe('bounded tokenization of huge rows', () => {
  it('a 50 MB row with max_length 256 tokenizes a bounded window, with the same ids and labels', () => {
    const words = 'the quick brown fox jumps over a lazy dog and ';
    const response = words.repeat(Math.ceil(50_000_000 / words.length));
    const ex = qa('Repeat the sentence.', response);
    const { tok, chars } = countingTokenizer(new ToyTokenizer({ pieces: ['the ', 'quick ', 'fox ', 'dog '] }));
    const cut = tok1(tok, ex, QA, 256);
    // (256 + margin) × chars-per-token characters, once or twice (window doubling), never the 50 MB.
    expect(chars()).toBeLessThanOrEqual(4 * (256 + WINDOW_MARGIN_TOKENS) * WINDOW_CHARS_PER_TOKEN);
    expect(cut.inputIds.length).toBe(256);
    expect(cut.truncated).toBe(true);
    expect(cut.fullLength).toBeGreaterThanOrEqual(256 + WINDOW_MARGIN_TOKENS);
    // The same first 256 tokens and labels as tokenizing a 20 000-character prefix whole.
    const small = tok1(
      new ToyTokenizer({ pieces: ['the ', 'quick ', 'fox ', 'dog '] }),
      qa('Repeat the sentence.', response.slice(0, 20_000)),
      QA,
      100_000,
    );
    expect(Array.from(cut.inputIds)).toEqual(Array.from(small.inputIds.slice(0, 256)));
    expect(Array.from(cut.labels)).toEqual(Array.from(small.labels.slice(0, 256)));
  });

  it('a window that gives too few tokens grows (one token covers many characters)', () => {
    const long = ' '.repeat(64);
    const { tok, chars } = countingTokenizer(new ToyTokenizer({ pieces: [long] }));
    const ex = qa('x', long.repeat(10_000));
    const cut = tok1(tok, ex, QA, 100);
    expect(cut.inputIds.length).toBe(100);
    expect(cut.truncated).toBe(true);
    expect(cut.fullLength).toBeGreaterThanOrEqual(100 + WINDOW_MARGIN_TOKENS);
    // Far more than 8 characters per token: the first window gave too few tokens and was doubled (at least
    // twice), and the work stayed bounded.
    const first = (100 + WINDOW_MARGIN_TOKENS) * WINDOW_CHARS_PER_TOKEN;
    expect(chars()).toBeGreaterThan(first + 2 * first);
    expect(chars()).toBeLessThan((long.length * 10_000) / 4);
  });
});
