import { describe, expect, it } from 'vitest';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import {
  GPT2_EOT_ID,
  GPT2_VOCAB_SIZE,
  LLAMA_CHAT_TEMPLATE,
  LLAMA_VOCAB_SIZE,
  byteLevelAlphabet,
  gpt2StyleTokenizerConfig,
  gpt2StyleTokenizerJson,
  llamaStyleTokenizerConfig,
  llamaStyleTokenizerJson,
} from '../fixtures/tokenizers';

const ROUND_TRIP = [
  'hello the world',
  'Hello, world!\n  two spaces\tand a tab',
  "don't 'quote' me . , ? !",
  'café 😀 日本',
  '\n\nlines\nand trailing newline\n',
  '  leading and trailing spaces  ',
];

describe('tokenizer.json: GPT-2 style byte-level BPE', () => {
  const tok = loadHfTokenizer(gpt2StyleTokenizerJson(), gpt2StyleTokenizerConfig());

  it('fixture has the 256 byte-level symbols', () => {
    const alphabet = byteLevelAlphabet();
    expect(new Set(alphabet).size).toBe(256);
    expect(alphabet[0x20]).toBe('Ġ');
    expect(alphabet[0x0a]).toBe('Ċ');
    expect(alphabet[0x41]).toBe('A');
  });

  it('encodes hand-chosen strings to hand-computed ids, adding nothing by default', () => {
    expect(tok.vocabSize).toBe(GPT2_VOCAB_SIZE);
    // "hello" -> he, ll, hell, hello; " the" -> he, Ġt, Ġthe; " world" -> Ġw, or, Ġwor + l + d.
    expect(tok.encode('hello the world')).toEqual([261, 259, 264, 108, 100]);
    expect(tok.encode('the')).toEqual([116, 256]); // no Ġ: "t" + "he"
    expect(tok.encode('Hi\n')).toEqual([72, 105, 10]);
    expect(tok.encode('')).toEqual([]);
    // Non-ASCII is byte-level: 😀 = F0 9F 98 80, é = C3 A9.
    expect(tok.encode(' 😀')).toEqual([32, 0xf0, 0x9f, 0x98, 0x80]);
    expect(tok.encode('é')).toEqual([0xc3, 0xa9]);
    expect(tok.idToToken(259)).toBe('Ġthe');
    expect(tok.idToToken(GPT2_EOT_ID)).toBe('<|endoftext|>');
  });

  it('recognises <|endoftext|> in text and adds BOS/EOS only when asked', () => {
    expect(tok.bosTokenId).toBe(GPT2_EOT_ID);
    expect(tok.eosTokenId).toBe(GPT2_EOT_ID);
    expect(tok.padTokenId).toBeNull();
    expect(tok.encode('hello<|endoftext|>')).toEqual([261, GPT2_EOT_ID]);
    expect(tok.encode('hello', { addBos: true })).toEqual([GPT2_EOT_ID, 261]);
    expect(tok.encode('hello', { addEos: true })).toEqual([261, GPT2_EOT_ID]);
    expect(tok.encode('hello', { addBos: false, addEos: false })).toEqual([261]);
    // Not doubled when the text already starts with it.
    expect(tok.encode('<|endoftext|>hello', { addBos: true })).toEqual([GPT2_EOT_ID, 261]);
  });

  it('round-trips exactly', () => {
    for (const text of ROUND_TRIP) expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('skips special tokens on request', () => {
    const ids = [GPT2_EOT_ID, 261, GPT2_EOT_ID];
    expect(tok.decode(ids)).toBe('<|endoftext|>hello<|endoftext|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello');
    expect(tok.decode([GPT2_EOT_ID], { skipSpecialTokens: true })).toBe('');
    expect(tok.decode([])).toBe('');
    // Ids past the vocabulary (padded embedding rows) decode to nothing, as in HF tokenizers.
    expect(tok.decode([261, GPT2_VOCAB_SIZE, 100000])).toBe('hello');
    expect(() => tok.decode([-1])).toThrow(/not a non-negative integer/);
    expect(() => tok.decode([1.5])).toThrow(/not a non-negative integer/);
  });

  it('takes special tokens and the default chat template from tokenizer_config.json', () => {
    expect(tok.specialTokens).toEqual({
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
    });
    expect(tok.chatTemplate).toBe('{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}');
  });

  it('falls back to added_tokens without a config', () => {
    const bare = loadHfTokenizer(gpt2StyleTokenizerJson(), null);
    expect(bare.eosTokenId).toBe(GPT2_EOT_ID);
    expect(bare.bosTokenId).toBe(GPT2_EOT_ID);
    expect(bare.chatTemplate).toBeNull();
    expect(bare.encode('hello the world')).toEqual([261, 259, 264, 108, 100]);
  });

  it('honours an explicit null bos_token (Qwen2 style) and a pad token', () => {
    const qwen = loadHfTokenizer(gpt2StyleTokenizerJson(), {
      bos_token: null,
      eos_token: '<|endoftext|>',
      pad_token: '<|endoftext|>',
      unk_token: null,
      chat_template: 'T',
    });
    expect(qwen.bosTokenId).toBeNull();
    expect(qwen.padTokenId).toBe(GPT2_EOT_ID);
    expect(qwen.specialTokens).toEqual({ eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' });
    expect(qwen.encode('hello', { addBos: true })).toEqual([261]); // no BOS to add
    expect(qwen.chatTemplate).toBe('T');
  });
});

describe('tokenizer.json: Llama-3 style Sequence[ByteLevel, TemplateProcessing] post-processor', () => {
  const json = {
    ...gpt2StyleTokenizerJson(),
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [],
          special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [GPT2_EOT_ID], tokens: ['<|endoftext|>'] } },
        },
      ],
    },
  };
  const tok = loadHfTokenizer(json, null);

  it('adds the template BOS by default, like the library', () => {
    expect(tok.bosTokenId).toBe(GPT2_EOT_ID);
    expect(tok.encode('hello')).toEqual([GPT2_EOT_ID, 261]);
    expect(tok.encode('hello', { addBos: false })).toEqual([261]);
    expect(tok.decode(tok.encode('hello the world'), { skipSpecialTokens: true })).toBe('hello the world');
  });
});

describe('tokenizer.json: Llama-2 style BPE with byte fallback', () => {
  const tok = loadHfTokenizer(llamaStyleTokenizerJson(), llamaStyleTokenizerConfig());

  it('encodes hand-chosen strings to hand-computed ids with BOS from the template', () => {
    expect(tok.vocabSize).toBe(LLAMA_VOCAB_SIZE);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.padTokenId).toBeNull();
    // "▁hello▁the▁world": ▁t, he, ll, ▁the, or, ▁w, ▁wor, hell, hello, ▁hello -> ▁hello ▁the ▁wor l d
    expect(tok.encode('hello the world')).toEqual([1, 280, 274, 277, 263, 267]);
    expect(tok.encode('the')).toEqual([1, 274]);
    expect(tok.idToToken(280)).toBe('▁hello');
    expect(tok.idToToken(3 + 0x0a)).toBe('<0x0A>');
  });

  it('falls back to <0xNN> byte tokens for unseen characters', () => {
    // 'f' is not in the vocab; 😀 = F0 9F 98 80 (4 byte tokens); 日 = E6 97 A5; 本 = E6 9C AC; \n = 0A.
    const b = (x: number) => x + 3;
    expect(tok.encode('café 😀 日本\n', { addBos: false })).toEqual([
      259,
      269,
      268,
      b(0x66),
      270,
      259,
      b(0xf0),
      b(0x9f),
      b(0x98),
      b(0x80),
      259,
      b(0xe6),
      b(0x97),
      b(0xa5),
      b(0xe6),
      b(0x9c),
      b(0xac),
      b(0x0a),
    ]);
    expect(tok.encode('😀', { addBos: false })).toEqual([259, b(0xf0), b(0x9f), b(0x98), b(0x80)]);
  });

  it('BOS: follows the template by default, overridable, never doubled; EOS on request', () => {
    expect(tok.encode('hello', { addBos: false })).toEqual([280]);
    expect(tok.encode('hello', { addBos: true })).toEqual([1, 280]);
    expect(tok.encode('hello', { addEos: true })).toEqual([1, 280, 2]);
    expect(tok.encode('hello', { addBos: false, addEos: true })).toEqual([280, 2]);
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('<s>hello')).toEqual([1, 280]);
    expect(tok.encode('<s>hello', { addBos: true })).toEqual([1, 280]);
    expect(tok.encode('hello</s>')).toEqual([1, 280, 2]);
  });

  it('round-trips exactly (skipping BOS)', () => {
    for (const text of ROUND_TRIP) expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
    for (const text of ROUND_TRIP) expect(tok.decode(tok.encode(text, { addBos: false }))).toBe(text);
  });

  it('handles long texts', () => {
    const text = 'hello the world, café 😀\n'.repeat(2000);
    const ids = tok.encode(text);
    expect(ids.length).toBe(1 + 17 * 2000);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
  });

  it('decodes special tokens unless skipped', () => {
    const ids = tok.encode('hello the world', { addEos: true });
    expect(tok.decode(ids)).toBe('<s> hello the world</s>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello the world');
  });

  it('reads AddedToken objects and the chat template from tokenizer_config.json', () => {
    expect(tok.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
    expect(tok.chatTemplate).toBe(LLAMA_CHAT_TEMPLATE);
  });

  it('without a config: specials from added_tokens and the template', () => {
    const bare = loadHfTokenizer(llamaStyleTokenizerJson(), null);
    expect(bare.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
    expect(bare.encode('hello')).toEqual([1, 280]);
  });

  it('Llama-class add_bos_token / add_eos_token in the config set the defaults', () => {
    const cfg = { ...llamaStyleTokenizerConfig(), add_bos_token: false, add_eos_token: true };
    const t = loadHfTokenizer(llamaStyleTokenizerJson(), cfg);
    expect(t.encode('hello')).toEqual([280, 2]);
    expect(t.encode('hello', { addBos: true })).toEqual([1, 280, 2]);
  });

  it('the Metaspace pre-tokenizer layout encodes the same', () => {
    const meta = loadHfTokenizer(llamaStyleTokenizerJson({ metaspace: true }), llamaStyleTokenizerConfig());
    for (const text of ['hello the world', 'café 😀 日本\n', 'the world\n\nhello']) {
      expect(meta.encode(text)).toEqual(tok.encode(text));
      expect(meta.decode(meta.encode(text), { skipSpecialTokens: true })).toBe(text);
    }
  });
});

describe('tokenizer_config.json chat_template forms', () => {
  const json = llamaStyleTokenizerJson();
  it('picks "default" from a list of {name, template}', () => {
    const t = loadHfTokenizer(json, {
      chat_template: [
        { name: 'rag', template: 'R' },
        { name: 'default', template: 'D' },
      ],
    });
    expect(t.chatTemplate).toBe('D');
  });
  it('no template -> null', () => {
    expect(loadHfTokenizer(json, {}).chatTemplate).toBeNull();
  });
  it('rejects a malformed template', () => {
    expect(() => loadHfTokenizer(json, { chat_template: 42 })).toThrow(
      /tokenizer_config\.json: expected "chat_template" to be a string or a list of \{name, template\}/,
    );
    expect(() => loadHfTokenizer(json, { chat_template: [{ name: 'default' }] })).toThrow(/tokenizer_config\.json/);
  });
});

describe('tokenizer.json structure errors name the file and what was expected', () => {
  const withModel = (patch: Record<string, unknown>) => {
    const j = llamaStyleTokenizerJson();
    return { ...j, model: { ...(j.model as Record<string, unknown>), ...patch } };
  };

  it('top level', () => {
    expect(() => loadHfTokenizer([], null, 'models/x/tokenizer.json')).toThrow(
      /models\/x\/tokenizer\.json: expected a JSON object at the top level, got an array/,
    );
    expect(() => loadHfTokenizer('{}', null)).toThrow(/tokenizer\.json: expected a JSON object/);
    expect(() => loadHfTokenizer({ version: '1.0' }, null)).toThrow(
      /tokenizer\.json: expected "model" to be an object, got undefined/,
    );
  });

  it('model vocab / merges', () => {
    expect(() => loadHfTokenizer(withModel({ vocab: [] }), null)).toThrow(
      /tokenizer\.json: expected "model\.vocab" to be an object/,
    );
    expect(() => loadHfTokenizer(withModel({ vocab: { a: 'x' } }), null)).toThrow(
      /"model\.vocab" ids to be non-negative integers/,
    );
    expect(() => loadHfTokenizer(withModel({ merges: 'a b' }), null)).toThrow(
      /tokenizer\.json: expected "model\.merges" to be an array/,
    );
    expect(() => loadHfTokenizer(withModel({ merges: [['a']] }), null)).toThrow(
      /"model\.merges\[0\]" to be "a b" or \["a", "b"\]/,
    );
    expect(() => loadHfTokenizer(withModel({ type: 'Nope' }), null)).toThrow(
      /tokenizer\.json: expected "model\.type" to be one of BPE, WordPiece, Unigram.*got string "Nope"/,
    );
  });

  it('added_tokens and components', () => {
    const j = llamaStyleTokenizerJson();
    expect(() => loadHfTokenizer({ ...j, added_tokens: {} }, null)).toThrow(
      /tokenizer\.json: expected "added_tokens" to be an array/,
    );
    expect(() => loadHfTokenizer({ ...j, added_tokens: [{ id: 'x', content: '<s>' }] }, null)).toThrow(
      /"added_tokens\[0\]" to be \{id: integer, content: string/,
    );
    expect(() => loadHfTokenizer({ ...j, decoder: 'ByteLevel' }, null)).toThrow(
      /tokenizer\.json: expected "decoder" to be null or an object/,
    );
  });

  it('component errors from @huggingface/tokenizers are prefixed with the file', () => {
    const j = llamaStyleTokenizerJson();
    expect(() => loadHfTokenizer({ ...j, normalizer: { type: 'Bogus' } }, null, 'a/tokenizer.json')).toThrow(
      /a\/tokenizer\.json: @huggingface\/tokenizers could not load it: .*Bogus/,
    );
  });

  it('config special tokens', () => {
    const j = llamaStyleTokenizerJson();
    expect(() => loadHfTokenizer(j, { bos_token: 5 })).toThrow(
      /tokenizer_config\.json: expected "bos_token" to be a string, null, or an AddedToken object/,
    );
    expect(() => loadHfTokenizer(j, { eos_token: '<|im_end|>' })).toThrow(
      /tokenizer_config\.json "eos_token": special token "<\|im_end\|>" is not in the vocabulary of tokenizer\.json/,
    );
  });
});

describe('tokenizer.json regular expressions and chains are bounded', () => {
  const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });

  it('a Split pattern with catastrophic backtracking is refused at load, naming its path', () => {
    const j = gpt2StyleTokenizerJson();
    const hostile = {
      ...j,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [split('(a+)+$'), j.pre_tokenizer] },
    };
    const t0 = performance.now();
    expect(() => loadHfTokenizer(hostile, null, 'evil/tokenizer.json')).toThrow(
      /^evil\/tokenizer\.json: "pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex": the regular expression "\(a\+\)\+\$" takes exponential time/,
    );
    expect(performance.now() - t0).toBeLessThan(3000);
    // The same tokenizer with GPT-2's own pattern as a Split loads and encodes.
    const gpt2Split = split("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
    const fine = { ...j, pre_tokenizer: { type: 'Sequence', pretokenizers: [gpt2Split, j.pre_tokenizer] } };
    expect(loadHfTokenizer(fine, null).decode(loadHfTokenizer(fine, null).encode('hello world'))).toBe('hello world');
  });

  it('a Replace normalizer pattern is checked too, and a chain of thousands of components is refused', () => {
    const j = gpt2StyleTokenizerJson();
    const replace = { type: 'Replace', pattern: { Regex: '(x*)*y' }, content: '' };
    expect(() => loadHfTokenizer({ ...j, normalizer: replace }, null)).toThrow(
      /tokenizer\.json: "normalizer\.pattern\.Regex": the regular expression "\(x\*\)\*y" takes exponential time/,
    );
    const many = { type: 'Sequence', normalizers: Array.from({ length: 5000 }, () => ({ type: 'NFC' })) };
    expect(() => loadHfTokenizer({ ...j, normalizer: many }, null)).toThrow(
      'tokenizer.json: "normalizer" has 5001 components (at most 256 supported)',
    );
  });

  it('Replace steps that together could grow a text more than 64× are refused (200 × "a" → "aa" hung encode)', () => {
    const j = gpt2StyleTokenizerJson();
    const doubling = (n: number) => ({
      type: 'Sequence',
      normalizers: Array.from({ length: n }, () => ({ type: 'Replace', pattern: { String: 'a' }, content: 'aa' })),
    });
    expect(() => loadHfTokenizer({ ...j, normalizer: doubling(200) }, null)).toThrow(
      /tokenizer\.json: "normalizer" has Replace steps that together can make a text astronomically longer \(at most 64× is supported\)/,
    );
    expect(() => loadHfTokenizer({ ...j, normalizer: doubling(7) }, null)).toThrow(/128× longer/);
    // 6 doublings (64×) and same-length replacements (Llama's " " → "▁") are fine.
    const ok = loadHfTokenizer({ ...j, normalizer: doubling(6) }, null);
    expect(ok.encode('a').length).toBeGreaterThan(0);
    const llama = { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { String: ' ' }, content: '▁' }] };
    expect(loadHfTokenizer({ ...j, normalizer: llama }, null).vocabSize).toBe(loadHfTokenizer(j, null).vocabSize);
  });
});
