/**
 * Tokenizer files: llama2.c tokenizer.bin (parseLlama2cTokenizer), Hugging Face tokenizer.json +
 * tokenizer_config.json (loadHfTokenizer) and the format-sniffing entry point (loadTokenizer).
 * Accepted tokenizers must also encode and decode a short text (ids in range, no hang).
 */
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { loadTokenizer, type TokenizerInput } from '../../src/io/tokenizer-load';
import type { Tokenizer } from '../../src/io/tokenizer';
import { Rng } from '../../src/util/rng';
import {
  gpt2StyleTokenizerConfig,
  gpt2StyleTokenizerJson,
  llamaStyleTokenizerConfig,
  llamaStyleTokenizerJson,
} from '../fixtures/tokenizers';
import type { FuzzCase, Target } from './harness';
import {
  between,
  chance,
  concatBytes,
  deepArray,
  hostileValue,
  hugeString,
  jsonText,
  misalign,
  mutateBytes,
  mutateTree,
  pick,
  randomBytes,
  toJson,
  utf8,
} from './mutate';

export const L2C_TOK_FILE = 'fuzz-tok512.bin';
export const HF_TOK_FILE = 'fuzz/tokenizer.json';
const TOK_CONFIG = 'tokenizer_config.json';
const LOAD_FILE = 'fuzz/tokenizer.any';
/** tokenizer-hf.ts wraps what @huggingface/tokenizers throws with the file name and this phrase. */
const LIB_WRAPPED = /: @huggingface\/tokenizers could not load it: /;

const TEXTS = ['hello world', 'the constructor __proto__ toString', 'é😀\u0000\ud800 <s></s><|endoftext|>', ''];

/** An accepted tokenizer must round-trip a few short texts through encode/decode with ids in range. */
function checkTokenizer(r: unknown): string | null {
  const tok = r as Tokenizer;
  if (!(Number.isSafeInteger(tok.vocabSize) && tok.vocabSize >= 0)) return `vocabSize ${tok.vocabSize}`;
  for (const text of TEXTS) {
    let ids: number[];
    try {
      ids = tok.encode(text);
    } catch (e) {
      if (e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError) && e.message) continue; // a clear refusal is fine
      return `encode(${JSON.stringify(text)}) threw ${String(e)}`;
    }
    if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id) && id >= 0))
      return `encode(${JSON.stringify(text)}) gave ${JSON.stringify(ids).slice(0, 100)}`;
    try {
      if (typeof tok.decode(ids) !== 'string') return 'decode did not return a string';
    } catch (e) {
      if (!(e instanceof Error) || e instanceof TypeError) return `decode threw ${String(e)}`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// llama2.c tokenizer.bin

interface TokRecord {
  score: number;
  piece: Uint8Array;
}

function tokRecords(rng: Rng, extra: number): TokRecord[] {
  const recs: TokRecord[] = [
    { score: 0, piece: utf8('<unk>') },
    { score: 0, piece: utf8('\n<s>\n') },
    { score: 0, piece: utf8('\n</s>\n') },
  ];
  for (let b = 0; b < 256; b++)
    recs.push({ score: 0, piece: utf8(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) });
  const pool = [
    ' ',
    'e',
    't',
    'h',
    'l',
    'o',
    ' t',
    'he',
    'll',
    'hello',
    ' the',
    ' hello',
    'é',
    '😀',
    'wor',
    'ld',
    ' world',
    'constructor',
    '__proto__',
  ];
  for (let i = 0; i < extra; i++) {
    const piece = chance(rng, 0.8) ? utf8(pick(rng, pool)) : randomBytes(rng, between(rng, 0, 6));
    recs.push({
      score: chance(rng, 0.05) ? pick(rng, [NaN, Infinity, -Infinity, -1e10, 3e38]) : -rng.int(1000),
      piece,
    });
  }
  return recs;
}

function encodeTok(maxLen: number, recs: TokRecord[]): { bytes: Uint8Array; offsets: number[] } {
  const size = 4 + recs.reduce((a, r) => a + 8 + r.piece.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, maxLen, true);
  const offsets = [0, 4];
  let o = 4;
  for (const r of recs) {
    dv.setFloat32(o, r.score, true);
    dv.setInt32(o + 4, r.piece.length, true);
    out.set(r.piece, o + 8);
    o += 8 + r.piece.length;
    offsets.push(o);
  }
  return { bytes: out, offsets };
}

function l2cTokCase(
  label: string,
  bytes: Uint8Array,
  vocabSize: number | undefined,
  expect?: 'accept' | 'reject',
): FuzzCase {
  return {
    label: vocabSize === undefined ? label : `${label}, vocabSize ${vocabSize}`,
    size: bytes.length,
    names: [L2C_TOK_FILE],
    run: () => parseLlama2cTokenizer(bytes, L2C_TOK_FILE, vocabSize),
    check: checkTokenizer,
    expect,
  };
}

function l2cTokEdges(): (() => FuzzCase)[] {
  const out: (() => FuzzCase)[] = [];
  const recs = tokRecords(new Rng(5), 12);
  const { bytes: full, offsets } = encodeTok(16, recs);
  out.push(() => l2cTokCase('valid', full, undefined, 'accept'));
  out.push(() => l2cTokCase('valid, exact vocabSize', full, recs.length, 'accept'));
  out.push(() => l2cTokCase('valid, at an odd offset', misalign(new Rng(2), full), undefined, 'accept'));
  for (const v of [recs.length - 1, recs.length + 1, 0, -1, 1.5, NaN, 2 ** 31, 259, 1e15])
    out.push(() => l2cTokCase('valid file', full, v, 'reject'));
  const interesting = [0, 1, 2, 3, 4, 5, 130, 258, 259, 260, recs.length - 1, recs.length];
  for (const k of interesting) {
    for (const delta of [-8, -1, 0, 1, 4, 7]) {
      if (offsets[k + 2] === undefined) continue;
      const n = offsets[k + 2] + delta; // offsets[k + 2]: end of record k
      if (n < 0 || n >= full.length) continue;
      // Cut exactly after a record, 259+ tokens are still a valid (smaller) tokenizer.
      const expect = delta === 0 && k >= 258 ? 'accept' : 'reject';
      out.push(() => l2cTokCase(`truncated at ${n}/${full.length} (record ${k})`, full.slice(0, n), undefined, expect));
    }
  }
  for (const k of [0, 3, 258, recs.length - 1]) {
    for (const len of [-1, -(2 ** 31), 2 ** 31 - 1, 1 << 20, 100, 7]) {
      out.push(() => {
        const b = full.slice();
        new DataView(b.buffer).setInt32(offsets[k + 1] + 4, len, true);
        return l2cTokCase(`record ${k} length ${len}`, b, undefined);
      });
    }
  }
  for (const m of [0, -1, -(2 ** 31), 1, 2 ** 31 - 1]) {
    out.push(() => {
      const b = full.slice();
      new DataView(b.buffer).setInt32(0, m, true);
      return l2cTokCase(`max_token_length ${m}`, b, undefined, m <= 0 ? 'reject' : 'accept');
    });
  }
  out.push(() => {
    const r = tokRecords(new Rng(5), 0);
    r[100] = { score: 0, piece: utf8('<0x62>') };
    return l2cTokCase('byte piece of 0x61 says <0x62>', encodeTok(16, r).bytes, undefined, 'reject');
  });
  out.push(() => {
    const r = tokRecords(new Rng(5), 0);
    r.push({ score: 0, piece: new Uint8Array(4 << 20).fill(0x61) });
    return l2cTokCase('one 4 MiB piece', encodeTok(16, r).bytes, undefined, 'accept');
  });
  out.push(() => {
    const r = tokRecords(new Rng(5), 0);
    for (let i = 0; i < 100_000; i++) r.push({ score: 0, piece: new Uint8Array(0) });
    return l2cTokCase('100k empty pieces', encodeTok(16, r).bytes, undefined, 'accept');
  });
  out.push(() => {
    const r = tokRecords(new Rng(5), 0);
    for (let i = 0; i < 20_000; i++) r.push({ score: i, piece: utf8('a'.repeat(1 + (i % 64))) });
    return l2cTokCase('20k pieces "a".."aaa…" with rising scores', encodeTok(64, r).bytes, undefined, 'accept');
  });
  for (const n of [0, 1, 3, 4, 7, 8, 11, 12])
    out.push(() => l2cTokCase(`${n} zero bytes`, new Uint8Array(n), undefined, 'reject'));
  return out;
}

function l2cTokRandom(rng: Rng): FuzzCase {
  const r = rng.next();
  const vocabPick = (n: number) =>
    chance(rng, 0.6) ? undefined : pick(rng, [n, n, n - 1, n + 1, 0, -1, 1.5, 2 ** 31, 259]);
  if (r < 0.1) {
    const n = pick(rng, [between(rng, 0, 64), between(rng, 0, 8192)]);
    const b = randomBytes(rng, n);
    if (n >= 4 && chance(rng, 0.5)) new DataView(b.buffer).setInt32(0, between(rng, 1, 64), true);
    return l2cTokCase(`random ${n} bytes`, b, vocabPick(300));
  }
  const recs = tokRecords(rng, between(rng, 0, 60));
  const { bytes, offsets } = encodeTok(between(rng, 1, 64), recs);
  if (r < 0.25)
    return l2cTokCase(
      `valid, ${recs.length} tokens`,
      chance(rng, 0.3) ? misalign(rng, bytes) : bytes,
      vocabPick(recs.length),
    );
  if (r < 0.5) {
    // Rewrite one record's length or score field.
    const b = bytes.slice();
    const dv = new DataView(b.buffer);
    const k = rng.int(recs.length);
    const at = offsets[k + 1];
    if (chance(rng, 0.7)) {
      const len = pick(rng, [
        -1,
        -(2 ** 31),
        2 ** 31 - 1,
        recs[k].piece.length + 1,
        recs[k].piece.length - 1,
        b.length,
        0,
      ]);
      dv.setInt32(at + 4, len, true);
      return l2cTokCase(`record ${k} length -> ${len}`, b, vocabPick(recs.length));
    }
    const s = pick(rng, [NaN, Infinity, -Infinity, 3.4e38, -0]);
    dv.setFloat32(at, s, true);
    return l2cTokCase(`record ${k} score -> ${s}`, b, vocabPick(recs.length));
  }
  const m = mutateBytes(rng, bytes, offsets);
  return l2cTokCase(m.what, m.bytes, vocabPick(recs.length));
}

// ---------------------------------------------------------------------------------------------------------
// tokenizer.json

type Json = Record<string, unknown>;

function hfBases(): { name: string; json: Json; config: Json | null }[] {
  return [
    { name: 'gpt2', json: gpt2StyleTokenizerJson(), config: gpt2StyleTokenizerConfig() },
    { name: 'gpt2 no config', json: gpt2StyleTokenizerJson(), config: null },
    { name: 'llama', json: llamaStyleTokenizerJson(), config: llamaStyleTokenizerConfig() },
    { name: 'llama metaspace', json: llamaStyleTokenizerJson({ metaspace: true }), config: null },
  ];
}

const JSON_PATHS = [
  /^\.model\.(type|vocab|merges|unk_token|byte_fallback)$/,
  /^\.model\.vocab\./,
  /^\.model\.merges\[/,
  /^\.added_tokens/,
  /^\.post_processor/,
  /^\.normalizer/,
  /^\.pre_tokenizer/,
  /^\.decoder/,
  /^\.[a-z_]+$/,
];
const CONFIG_PATHS = [
  /^\.(bos|eos|pad|unk|sep|cls|mask)_token/,
  /^\.chat_template/,
  /^\.additional_special_tokens/,
  /^\.tokenizer_class$/,
  /^\.add_(bos|eos)_token$/,
  /^\.clean_up_tokenization_spaces$/,
];

function hfCase(label: string, json: unknown, config: unknown, size: number, expect?: 'accept' | 'reject'): FuzzCase {
  return {
    label,
    size,
    names: [HF_TOK_FILE, TOK_CONFIG],
    run: () => loadHfTokenizer(json, config as Json | null, HF_TOK_FILE),
    check: checkTokenizer,
    expect,
    wrapped: LIB_WRAPPED,
  };
}

/** A post-processor (or normalizer / pre-tokenizer / decoder) Sequence nested `depth` deep. */
function deepSequence(kind: 'post_processor' | 'normalizer' | 'pre_tokenizer' | 'decoder', depth: number): unknown {
  const listKey = {
    post_processor: 'processors',
    normalizer: 'normalizers',
    pre_tokenizer: 'pretokenizers',
    decoder: 'decoders',
  }[kind];
  let v: unknown = {
    type:
      kind === 'normalizer'
        ? 'Lowercase'
        : kind === 'post_processor'
          ? 'ByteLevel'
          : kind === 'decoder'
            ? 'Fuse'
            : 'Whitespace',
  };
  for (let i = 0; i < depth; i++) v = { type: 'Sequence', [listKey]: [v] };
  return v;
}

function hfEdges(): (() => FuzzCase)[] {
  const out: (() => FuzzCase)[] = [];
  for (const b of hfBases())
    out.push(() => hfCase(`${b.name} valid`, b.json, b.config, toJson(b.json).length, 'accept'));
  const g = () => gpt2StyleTokenizerJson();
  const l = () => llamaStyleTokenizerJson();
  const edits: [string, () => [unknown, unknown], number][] = [
    ['null', () => [null, null], 4],
    ['array', () => [[], null], 2],
    ['JSON text', () => [JSON.stringify(g()), null], 4000],
    ['100k nested arrays', () => [deepArray(100_000), null], 200_000],
    ['model 100k nested arrays', () => [{ ...g(), model: deepArray(100_000) }, null], 200_000],
    ['added_tokens[0] 100k nested arrays', () => [{ ...g(), added_tokens: [deepArray(100_000)] }, null], 200_000],
    ['added_tokens 100k nested arrays', () => [{ ...g(), added_tokens: deepArray(100_000) }, null], 200_000],
    [
      'vocab value 100k nested arrays',
      () => {
        const j = g();
        (j.model as Json).vocab = { ...((j.model as Json).vocab as Json), x: deepArray(100_000) };
        return [j, null];
      },
      200_000,
    ],
    [
      'merge 100k nested arrays',
      () => {
        const j = l();
        ((j.model as Json).merges as unknown[]).push(deepArray(100_000));
        return [j, null];
      },
      200_000,
    ],
    [
      'post_processor Sequence 100k deep',
      () => [{ ...g(), post_processor: deepSequence('post_processor', 100_000) }, null],
      3_000_000,
    ],
    [
      'normalizer Sequence 100k deep',
      () => [{ ...g(), normalizer: deepSequence('normalizer', 100_000) }, null],
      3_000_000,
    ],
    [
      'pre_tokenizer Sequence 100k deep',
      () => [{ ...g(), pre_tokenizer: deepSequence('pre_tokenizer', 100_000) }, null],
      3_000_000,
    ],
    ['decoder Sequence 100k deep', () => [{ ...g(), decoder: deepSequence('decoder', 100_000) }, null], 3_000_000],
    [
      'post_processor Sequence 1000 deep',
      () => [{ ...g(), post_processor: deepSequence('post_processor', 1000) }, null],
      30_000,
    ],
    [
      'TemplateProcessing single item 100k nested',
      () => {
        const j = l();
        (j.post_processor as Json).single = [deepArray(100_000)];
        return [j, null];
      },
      200_000,
    ],
    [
      'vocab id 1e9',
      () => {
        const j = g();
        ((j.model as Json).vocab as Json)['Ġx'] = 1e9;
        return [j, null];
      },
      4000,
    ],
    [
      'vocab id 2^31',
      () => {
        const j = g();
        ((j.model as Json).vocab as Json)['Ġx'] = 2 ** 31;
        return [j, null];
      },
      4000,
    ],
    [
      'vocab id 2^53',
      () => {
        const j = g();
        ((j.model as Json).vocab as Json)['Ġx'] = 2 ** 53;
        return [j, null];
      },
      4000,
    ],
    [
      'added token id 1e9',
      () => {
        const j = g();
        (j.added_tokens as Json[]).push({ id: 1e9, content: '<big>', special: true });
        return [j, null];
      },
      4000,
    ],
    [
      'vocab token "__proto__" and "constructor"',
      () => {
        const j = g();
        Object.assign(
          (j.model as Json).vocab as Json,
          JSON.parse('{"__proto__": 300, "constructor": 301, "toString": 302}'),
        );
        return [j, null];
      },
      4000,
    ],
    [
      'vocab of 100k tokens',
      () => {
        const j = g();
        const v = (j.model as Json).vocab as Json;
        for (let i = 0; i < 100_000; i++) v[`t${i}`] = 1000 + i;
        return [j, null];
      },
      1_500_000,
    ],
    [
      'vocab token of 2 MiB',
      () => {
        const j = g();
        ((j.model as Json).vocab as Json)['x'.repeat(2 << 20)] = 300;
        return [j, null];
      },
      2 << 20,
    ],
    [
      'merge of 2 MiB tokens',
      () => {
        const j = g();
        ((j.model as Json).merges as string[]).push('a'.repeat(1 << 20) + ' ' + 'b'.repeat(1 << 20));
        return [j, null];
      },
      2 << 20,
    ],
    [
      'merges referencing unknown tokens',
      () => {
        const j = g();
        ((j.model as Json).merges as string[]).push('zz qq', 'he he');
        return [j, null];
      },
      4000,
    ],
    [
      'model.type "Unigram" with BPE data',
      () => {
        const j = g();
        (j.model as Json).type = 'Unigram';
        return [j, null];
      },
      4000,
    ],
    [
      'model.type "WordLevel"',
      () => {
        const j = g();
        (j.model as Json).type = 'WordLevel';
        return [j, null];
      },
      4000,
    ],
    [
      'model.type "constructor"',
      () => {
        const j = g();
        (j.model as Json).type = 'constructor';
        return [j, null];
      },
      4000,
    ],
    ['Unigram with an empty vocab', () => [{ ...g(), model: { type: 'Unigram', vocab: [], unk_id: 0 } }, null], 100],
    [
      'Unigram with unk_id 1e9',
      () => [{ ...g(), model: { type: 'Unigram', vocab: [['a', -1]], unk_id: 1e9 } }, null],
      100,
    ],
    ['WordPiece with an empty vocab', () => [{ ...g(), model: { type: 'WordPiece', vocab: {} } }, null], 100],
    ['config bos_token 100k nested', () => [g(), { bos_token: deepArray(100_000) }], 200_000],
    ['config chat_template 100k nested', () => [g(), { chat_template: deepArray(100_000) }], 200_000],
    ['config bos_token "__proto__"', () => [g(), { bos_token: '__proto__' }], 4000],
    ['config eos_token 3 MiB', () => [g(), { eos_token: 'x'.repeat(3 << 20) }], 3 << 20],
    [
      'config additional_special_tokens 100k',
      () => [g(), { additional_special_tokens: new Array(100_000).fill('<|endoftext|>') }],
      1_500_000,
    ],
    [
      'config 100k distinct additional_special_tokens',
      () => [g(), { additional_special_tokens: Array.from({ length: 100_000 }, (_, i) => `<t${i}>`) }],
      1_000_000,
    ],
    [
      '40k added special tokens',
      () => {
        const j = g();
        for (let i = 0; i < 40_000; i++)
          (j.added_tokens as unknown[]).push({ id: 300 + i, content: `<a${i}>`, special: true });
        return [j, null];
      },
      2_400_000,
    ],
    [
      'added token of 1025 characters',
      () => {
        const j = g();
        (j.added_tokens as unknown[]).push({ id: 300, content: 'a'.repeat(1025) });
        return [j, null];
      },
      5000,
    ],
    [
      'Unigram piece of 1 MiB',
      () => [
        {
          ...g(),
          model: {
            type: 'Unigram',
            vocab: [
              ['<unk>', 0],
              ['a'.repeat(1 << 20), -1],
            ],
            unk_id: 0,
          },
        },
        null,
      ],
      1 << 20,
    ],
    ['config is an array', () => [g(), []], 4000],
    ['config is a string', () => [g(), '{}'], 4000],
    ['normalizer type "Bogus"', () => [{ ...g(), normalizer: { type: 'Bogus' } }, null], 4000],
    [
      'pre_tokenizer Split with a catastrophic regex',
      () => [
        { ...g(), pre_tokenizer: { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false } },
        null,
      ],
      4000,
    ],
    [
      'pre_tokenizer Split with an invalid regex',
      () => [
        { ...g(), pre_tokenizer: { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated', invert: false } },
        null,
      ],
      4000,
    ],
  ];
  for (const [what, make, size] of edits) {
    out.push(() => {
      const [j, c] = make();
      return hfCase(what, j, c, size);
    });
  }
  return out;
}

function hfRandom(rng: Rng): FuzzCase {
  const b = pick(rng, hfBases());
  let json: unknown = b.json;
  let config: unknown = b.config;
  let size = toJson(b.json).length;
  const what: string[] = [];
  for (let k = between(rng, 1, 3); k > 0; k--) {
    const r = rng.next();
    if (r < 0.65) {
      const m = mutateTree(rng, json, JSON_PATHS);
      what.push(`json ${m.what}`);
      size += m.size;
    } else if (r < 0.9 && config !== null && typeof config === 'object') {
      const m = mutateTree(rng, config, CONFIG_PATHS);
      what.push(`config ${m.what}`);
      size += m.size;
    } else if (r < 0.95) {
      const h = hostileValue(rng);
      config = h.value;
      what.push(`config = ${h.what}`);
      size += h.size;
    } else {
      const h = hostileValue(rng);
      json = h.value;
      what.push(`json = ${h.what}`);
      size += h.size;
    }
  }
  return hfCase(`${b.name}: ${what.join('; ')}`, json, config, size);
}

// ---------------------------------------------------------------------------------------------------------
// loadTokenizer (format sniffing)

function loadCase(
  label: string,
  input: Omit<TokenizerInput, 'fileName'>,
  size: number,
  expect?: 'accept' | 'reject',
): FuzzCase {
  return {
    label,
    size,
    names: [LOAD_FILE, TOK_CONFIG],
    run: () => loadTokenizer({ fileName: LOAD_FILE, ...input }),
    check: checkTokenizer,
    expect,
    wrapped: LIB_WRAPPED,
  };
}

function loadEdges(): (() => FuzzCase)[] {
  const l2c = () => encodeTok(16, tokRecords(new Rng(5), 8)).bytes;
  const g = () => JSON.stringify(gpt2StyleTokenizerJson());
  const cases: [string, () => Omit<TokenizerInput, 'fileName'>, number, ('accept' | 'reject')?][] = [
    ['llama2.c bytes', () => ({ data: l2c() }), 3000, 'accept'],
    ['llama2.c bytes as ArrayBuffer', () => ({ data: l2c().slice().buffer }), 3000, 'accept'],
    ['tokenizer.json bytes', () => ({ data: utf8(g()) }), 4000, 'accept'],
    [
      'tokenizer.json bytes with BOM and whitespace',
      () => ({ data: concatBytes(Uint8Array.of(0xef, 0xbb, 0xbf, 0x20, 0x0a), utf8(g())) }),
      4000,
      'accept',
    ],
    ['tokenizer.json text', () => ({ data: g() }), 4000, 'accept'],
    ['tokenizer.json text with BOM', () => ({ data: '\ufeff' + g() }), 4000],
    [
      'tokenizer.json object, config as bytes',
      () => ({ data: gpt2StyleTokenizerJson(), config: utf8(JSON.stringify(gpt2StyleTokenizerConfig())) }),
      5000,
      'accept',
    ],
    ['config is invalid JSON text', () => ({ data: g(), config: '{oops' }), 4000, 'reject'],
    ['config is JSON "[]"', () => ({ data: g(), config: '[]' }), 4000, 'reject'],
    ['config is JSON "null"', () => ({ data: g(), config: 'null' }), 4000],
    ['config is JSON 5', () => ({ data: g(), config: '5' }), 4000, 'reject'],
    ['config bytes invalid UTF-8', () => ({ data: g(), config: Uint8Array.of(0x7b, 0xff, 0x7d) }), 4000, 'reject'],
    ['empty bytes', () => ({ data: new Uint8Array(0) }), 0, 'reject'],
    ['only whitespace', () => ({ data: utf8('  \n\t ') }), 5, 'reject'],
    ['"{" then garbage', () => ({ data: utf8('{' + '\u0000'.repeat(100)) }), 101, 'reject'],
    ['"{" × 1 MiB', () => ({ data: new Uint8Array(1 << 20).fill(0x7b) }), 1 << 20, 'reject'],
    [
      '"[" × 1 MiB (not JSON-looking: llama2.c)',
      () => ({ data: new Uint8Array(1 << 20).fill(0x5b) }),
      1 << 20,
      'reject',
    ],
    [
      '100k nested objects text',
      () => ({ data: '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) }),
      600_000,
      'reject',
    ],
    ['number', () => ({ data: 42 }), 2, 'reject'],
    ['undefined', () => ({ data: undefined }), 0, 'reject'],
    ['llama2.c bytes with vocabSize 1', () => ({ data: l2c(), vocabSize: 1 }), 3000, 'reject'],
  ];
  return cases.map(
    ([what, make, size, expect]) =>
      () =>
        loadCase(what, make(), size, expect),
  );
}

function loadRandom(rng: Rng): FuzzCase {
  const r = rng.next();
  if (r < 0.35) {
    const recs = tokRecords(rng, between(rng, 0, 20));
    const { bytes, offsets } = encodeTok(16, recs);
    const m = chance(rng, 0.7) ? mutateBytes(rng, bytes, offsets) : { bytes, what: 'valid' };
    const vocabSize = chance(rng, 0.5) ? undefined : pick(rng, [recs.length, recs.length + 1, 0, 2 ** 31]);
    return loadCase(
      `llama2.c ${m.what}${vocabSize === undefined ? '' : `, vocabSize ${vocabSize}`}`,
      { data: m.bytes, vocabSize },
      m.bytes.length,
    );
  }
  const b = pick(rng, hfBases());
  const json = b.json;
  const what: string[] = [];
  let extra = 0;
  if (chance(rng, 0.4)) {
    const m = mutateTree(rng, json, JSON_PATHS);
    what.push(m.what);
    extra += m.size;
  }
  const t = jsonText(rng, json);
  let data: unknown;
  const form = rng.int(4);
  if (form === 0) data = json;
  else if (form === 1) data = t.text;
  else {
    const bytes = utf8(t.text);
    const m = form === 3 ? mutateBytes(rng, bytes) : { bytes, what: '' };
    data = chance(rng, 0.2) ? m.bytes.slice().buffer : m.bytes;
    if (m.what) what.push(m.what);
  }
  let config: unknown = b.config;
  if (config !== null && chance(rng, 0.5)) {
    const c = rng.int(4);
    if (c === 1) config = toJson(config);
    else if (c === 2) config = utf8(toJson(config));
    else if (c === 3) {
      const h = hostileValue(rng);
      config = chance(rng, 0.5) ? h.value : toJson(h.value);
      what.push(`config = ${h.what}`);
      extra += h.size;
    }
  }
  if (chance(rng, 0.05)) {
    const s = hugeString(rng, 1 << 20);
    data = chance(rng, 0.5) ? s : '{' + s;
    what.push('1 MiB string as data');
    extra += s.length * 3;
  }
  return loadCase(
    `${b.name} as ${['object', 'text', 'bytes', 'damaged bytes'][form]} ${t.what} ${what.join('; ')}`,
    { data, config },
    t.text.length + extra,
  );
}

export const tokenizerTargets: Target[] = [
  { name: 'parseLlama2cTokenizer', weight: 10, edges: l2cTokEdges(), random: l2cTokRandom },
  { name: 'loadHfTokenizer', weight: 10, edges: hfEdges(), random: hfRandom },
  { name: 'loadTokenizer', weight: 6, edges: loadEdges(), random: loadRandom },
];
