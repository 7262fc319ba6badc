import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';

/** Serialize pieces the way llama2.c's tokenizer export does. */
function buildTokenizerBin(pieces: { piece: string | Uint8Array; score: number }[], maxLen?: number): Uint8Array {
  const enc = new TextEncoder();
  const raw = pieces.map((p) => (typeof p.piece === 'string' ? enc.encode(p.piece) : p.piece));
  const total = 4 + raw.reduce((s, b) => s + 8 + b.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setInt32(0, maxLen ?? Math.max(...raw.map((b) => b.length)), true);
  let off = 4;
  raw.forEach((b, i) => {
    view.setFloat32(off, pieces[i]!.score, true);
    view.setInt32(off + 4, b.length, true);
    out.set(b, off + 8);
    off += 8 + b.length;
  });
  return out;
}

function basePieces(): { piece: string; score: number }[] {
  const p = [
    { piece: '<unk>', score: 0 },
    { piece: '\n<s>\n', score: 0 },
    { piece: '\n</s>\n', score: 0 },
  ];
  for (let b = 0; b < 256; b++) p.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0 });
  return p;
}

/** A small synthetic vocabulary: ids 259.. as listed. */
function synthetic(extra: [string, number][]): Uint8Array {
  return buildTokenizerBin([...basePieces(), ...extra.map(([piece, score]) => ({ piece, score }))]);
}

/**
 * Straightforward transcription of llama2.c run.c's encode (quadratic rescan), over byte strings,
 * as an oracle for the heap-based implementation.
 */
function naiveEncode(pieces: Uint8Array[], scores: number[], text: string, bos: boolean, eos: boolean): number[] {
  const key = (b: Uint8Array) => Array.from(b, (x) => String.fromCharCode(x)).join('');
  const strs = pieces.map(key);
  const lookup = (s: string) => strs.indexOf(s);
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  const body: number[] = [];
  if (text.length > 0) {
    body.push(lookup(' '));
    const bytes = new TextEncoder().encode(text);
    let buf: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      buf.push(bytes[i]!);
      const next = bytes[i + 1] ?? 0;
      if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
      const id = lookup(String.fromCharCode(...buf));
      if (id !== -1) body.push(id);
      else for (const b of buf) body.push(b + 3);
      buf = [];
    }
    for (;;) {
      let best = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < body.length - 1; i++) {
        const id = lookup(strs[body[i]!]! + strs[body[i + 1]!]!);
        if (id !== -1 && scores[id]! > best) {
          best = scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      body.splice(bestIdx, 2, bestId);
    }
  }
  tokens.push(...body);
  if (eos) tokens.push(2);
  return tokens;
}

function readPieces(bytes: Uint8Array): { pieces: Uint8Array[]; scores: number[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < bytes.length) {
    scores.push(view.getFloat32(off, true));
    const len = view.getInt32(off + 4, true);
    pieces.push(bytes.slice(off + 8, off + 8 + len));
    off += 8 + len;
  }
  return { pieces, scores };
}

describe('llama2.c tokenizer (synthetic vocab)', () => {
  const extra: [string, number][] = [
    [' ', -5], // 259
    ['a', -5], // 260
    ['b', -5], // 261
    ['ab', -1], // 262
    ['ba', -1], // 263
    [' a', -3], // 264
    ['c', -5], // 265
    ['cc', -2], // 266
  ];
  const tok = parseLlama2cTokenizer(synthetic(extra), 'syn.bin');

  it('reads the vocabulary and specials', () => {
    expect(tok.vocabSize).toBe(267);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenId).toBe(2);
    expect(tok.padTokenId).toBeNull();
    expect(tok.chatTemplate).toBeNull();
    expect(tok.specialTokens).toEqual({ unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>' });
    expect(tok.idToToken(1)).toBe('<s>');
    expect(tok.idToToken(3 + 0x0a)).toBe('<0x0A>');
    expect(tok.idToToken(262)).toBe('ab');
    expect(tok.idToToken(9999)).toBeUndefined();
  });

  it('adds BOS by default, a dummy space prefix, and EOS on request', () => {
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { addBos: false })).toEqual([]);
    expect(tok.encode('', { addEos: true })).toEqual([1, 2]);
    // " " + "c": " c" is not a piece; no merge.
    expect(tok.encode('c')).toEqual([1, 259, 265]);
    expect(tok.encode('c', { addBos: false, addEos: true })).toEqual([259, 265, 2]);
  });

  it('merges the highest-scoring pair first, the leftmost on ties', () => {
    // " aba": pairs " a"(-3), "ab"(-1), "ba"(-1): tie -> leftmost "ab"; then " " "ab" "a": nothing.
    expect(tok.encode('aba', { addBos: false })).toEqual([259, 262, 260]);
    // "ccc": "cc"(-2) at positions 1 and 2 -> leftmost first.
    expect(tok.encode('ccc', { addBos: false })).toEqual([259, 266, 265]);
    // " ab": "ab"(-1) beats " a"(-3).
    expect(tok.encode('ab', { addBos: false })).toEqual([259, 262]);
    // " a" alone: merges.
    expect(tok.encode('a', { addBos: false })).toEqual([264]);
  });

  it('falls back to byte ids (byte + 3) for code points that are not pieces', () => {
    const emoji = tok.encode('😀', { addBos: false }); // F0 9F 98 80
    expect(emoji).toEqual([259, 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
    expect(tok.encode('é', { addBos: false })).toEqual([259, 0xc3 + 3, 0xa9 + 3]);
  });

  it('decodes byte tokens as UTF-8 across token boundaries and strips the space after BOS', () => {
    const text = 'café 😀 日本\nab\n';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    // Without BOS the dummy space stays, as in run.c.
    expect(tok.decode(tok.encode(text, { addBos: false }))).toBe(' ' + text);
    // A lone partial character decodes to U+FFFD, not garbage or an exception.
    expect(tok.decode([0xf0 + 3, 0x9f + 3])).toBe('\uFFFD');
    // A byte-order mark in the text is kept.
    expect(tok.decode(tok.encode('\uFEFFx'))).toBe('\uFEFFx');
  });

  it('skips BOS/EOS by default (SentencePiece decode) and can render them', () => {
    const ids = tok.encode('ab', { addEos: true });
    expect(tok.decode(ids)).toBe('ab');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('ab');
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe('<s>ab</s>');
    expect(() => tok.decode([267])).toThrow(/out of range/);
  });

  it('handles long texts (no call-stack limits)', () => {
    const text = 'ab cc é\n'.repeat(20000);
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(100000);
    expect(tok.decode(ids)).toBe(text);
  });

  it('matches a literal transcription of run.c encode on random text', () => {
    const bin = synthetic(extra);
    const { pieces, scores } = readPieces(bin);
    const alphabet = ['a', 'b', 'c', ' ', 'é', '😀', '\n', 'x'];
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let t = 0; t < 300; t++) {
      const len = Math.floor(rand() * 20);
      let s = '';
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
      expect(tok.encode(s)).toEqual(naiveEncode(pieces, scores, s, true, false));
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });
});

describe('llama2.c tokenizer validation', () => {
  const good = synthetic([[' ', -1]]);

  it('rejects a file shorter than the header', () => {
    expect(() => parseLlama2cTokenizer(new Uint8Array(2), 'tiny.bin')).toThrow(
      /tiny\.bin.*expected at least 4 bytes.*got 2/,
    );
  });

  it('names the token when the file is cut inside a token header', () => {
    // Token 259's header starts at good.length - 9; cut 4 bytes into it.
    const cut = good.slice(0, good.length - 9 + 4);
    expect(() => parseLlama2cTokenizer(cut, 'cut.bin')).toThrow(
      /cut\.bin: truncated at token 259: expected 8 header bytes.*only 4 remain/,
    );
  });

  it('names the token whose length runs past the end', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setInt32(bad.length - 5, 50, true); // token 259 claims 50 bytes
    expect(() => parseLlama2cTokenizer(bad, 'long.bin')).toThrow(
      /long\.bin: token 259 length 50 runs past the end.*expected 50 bytes.*only 1 remain/,
    );
    new DataView(bad.buffer).setInt32(bad.length - 5, -3, true);
    expect(() => parseLlama2cTokenizer(bad, 'neg.bin')).toThrow(/neg\.bin: token 259 has negative length -3/);
  });

  it('checks the vocab count against the model', () => {
    expect(parseLlama2cTokenizer(good, 'ok.bin', 260).vocabSize).toBe(260);
    expect(() => parseLlama2cTokenizer(good, 'few.bin', 300)).toThrow(
      /few\.bin: wrong vocab count: expected 300 tokens, the file holds 260/,
    );
    expect(() => parseLlama2cTokenizer(good, 'many.bin', 259)).toThrow(
      /many\.bin: wrong vocab count: expected 259 tokens, but 9 bytes remain after token 258/,
    );
  });

  it('requires <unk>, <s>, </s> and the 256 byte pieces at ids 3..258', () => {
    const short = buildTokenizerBin(basePieces().slice(0, 100));
    expect(() => parseLlama2cTokenizer(short, 'short.bin')).toThrow(
      /short\.bin: wrong vocab count: expected at least 259 tokens.*got 100/,
    );
    const p = basePieces();
    p[3 + 0x41] = { piece: 'A', score: 0 };
    expect(() => parseLlama2cTokenizer(buildTokenizerBin(p), 'bytes.bin')).toThrow(
      /bytes\.bin: token 68: expected byte piece <0x41>, got "A"/,
    );
  });

  it('rejects a non-positive max_token_length', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setInt32(0, 0, true);
    expect(() => parseLlama2cTokenizer(bad, 'zero.bin')).toThrow(/zero\.bin.*max_token_length is 0/);
  });
});

describe.skipIf(!HAVE_STORIES)('llama2.c tokenizer: stories260K tok512.bin', () => {
  const bytes = HAVE_STORIES ? new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin'))) : new Uint8Array();
  const ref = HAVE_STORIES
    ? (JSON.parse(readFileSync(path.join(STORIES_DIR, 'reference.json'), 'utf8')) as {
        teacher_forced: { text: string; tokens: number[] };
        greedy_from_bos: { text: string; tokens: number[] };
      })
    : null;

  it('loads 512 pieces', () => {
    const tok = parseLlama2cTokenizer(bytes, 'tok512.bin', 512);
    expect(tok.vocabSize).toBe(512);
    expect(tok.idToToken(259)).toBe(' t');
    expect(() => parseLlama2cTokenizer(bytes, 'tok512.bin', 32000)).toThrow(
      /tok512\.bin: wrong vocab count: expected 32000 tokens, the file holds 512/,
    );
  });

  it('encodes reference.json teacher_forced.text to exactly its tokens (BOS included)', () => {
    const tok = parseLlama2cTokenizer(bytes, 'tok512.bin', 512);
    expect(tok.encode(ref!.teacher_forced.text)).toEqual(ref!.teacher_forced.tokens);
    expect(tok.decode(ref!.teacher_forced.tokens)).toBe(ref!.teacher_forced.text);
  });

  it('decodes reference.json greedy_from_bos.tokens to its text', () => {
    const tok = parseLlama2cTokenizer(bytes, 'tok512.bin', 512);
    expect(tok.decode(ref!.greedy_from_bos.tokens)).toBe(ref!.greedy_from_bos.text);
  });

  it('round-trips non-ASCII text and newlines exactly', () => {
    const tok = parseLlama2cTokenizer(bytes, 'tok512.bin', 512);
    for (const text of [
      'café 😀 日本',
      'Line one.\nLine two.\n\n',
      '  two leading spaces',
      'Zoë said “hi” — ¿qué? 🐱\n日本語',
    ]) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    // 😀 is not a piece: its four bytes come out as byte tokens and decode back as one character.
    const ids = tok.encode('😀', { addBos: false });
    expect(ids.slice(1)).toEqual([0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  });

  it('matches a literal transcription of run.c encode on TinyStories-like text', () => {
    const tok = parseLlama2cTokenizer(bytes, 'tok512.bin', 512);
    const { pieces, scores } = readPieces(bytes);
    const samples = [
      ref!.teacher_forced.text,
      ref!.greedy_from_bos.text,
      'Tom and Sue played with a ball. "Look!" said Tom. It was fun, 123 times.',
      'Once upon a time... café 😀\nThe end.',
    ];
    for (const s of samples) {
      expect(tok.encode(s, { addEos: true })).toEqual(naiveEncode(pieces, scores, s, true, true));
    }
  });
});

if (!HAVE_STORIES) {
  describe('llama2.c tokenizer: stories260K tok512.bin', () => {
    it.skip(sharedMissing('the stories260K tokenizer tests (tok512.bin, reference.json)'), () => {});
  });
}
