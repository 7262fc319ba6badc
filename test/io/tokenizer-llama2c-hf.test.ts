import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { llama2cToHfTokenizer } from '../../src/io/tokenizer-llama2c-hf';
import { HAVE_STORIES, ROOT, STORIES_DIR, sharedMissing } from '../helpers';

/** Every text of the demo dataset (user and assistant turns), and the whole file as one text. */
function demoTexts(): string[] {
  const file = readFileSync(path.join(ROOT, 'public', 'datasets', 'tiny-tasks.jsonl'), 'utf8');
  const texts: string[] = [file];
  for (const line of file.split('\n').filter((l) => l.trim())) {
    const row = JSON.parse(line) as { messages: { content: string }[] };
    for (const m of row.messages) texts.push(m.content);
    texts.push(row.messages.map((m) => m.content).join('\n'));
  }
  return texts;
}

describe.skipIf(!HAVE_STORIES)('llama2.c tokenizer.bin → tokenizer.json (stories260K tok512.bin)', () => {
  const bin = HAVE_STORIES ? new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin'))) : new Uint8Array();

  it('gives the same ids as the llama2.c tokenizer on the demo dataset, with and without BOS/EOS', () => {
    const files = llama2cToHfTokenizer(bin, 'tok512.bin', 512);
    const hf = loadHfTokenizer(
      JSON.parse(files['tokenizer.json']),
      JSON.parse(files['tokenizer_config.json']) as Record<string, unknown>,
    );
    const l2c = parseLlama2cTokenizer(bin, 'tok512.bin');
    expect(hf.vocabSize).toBe(l2c.vocabSize);
    expect([hf.bosTokenId, hf.eosTokenId]).toEqual([l2c.bosTokenId, l2c.eosTokenId]);
    const texts = [...demoTexts(), '', ' ', 'x', '  two  spaces ', 'émoji 🙂 ünïcödé\ttab', 'Once upon a time'];
    let tokens = 0;
    for (const t of texts) {
      const want = l2c.encode(t);
      expect(hf.encode(t), JSON.stringify(t)).toEqual(want);
      expect(hf.encode(t, { addBos: false, addEos: true }), JSON.stringify(t)).toEqual(
        l2c.encode(t, { addBos: false, addEos: true }),
      );
      expect(hf.decode(want, { skipSpecialTokens: true })).toBe(l2c.decode(want));
      tokens += want.length;
    }
    expect(tokens).toBeGreaterThan(1000);
  });

  it('writes the files LlamaTokenizerFast writes: BPE with byte fallback, <s> added, the legacy normalizer', () => {
    const files = llama2cToHfTokenizer(bin, 'tok512.bin', 512);
    const json = JSON.parse(files['tokenizer.json']) as {
      model: { type: string; byte_fallback: boolean; vocab: Record<string, number>; merges: [string, string][] };
      added_tokens: { id: number; content: string; special: boolean }[];
      normalizer: unknown;
    };
    expect(json.model).toMatchObject({ type: 'BPE', byte_fallback: true, unk_token: '<unk>', fuse_unk: true });
    expect(Object.keys(json.model.vocab)).toHaveLength(512);
    expect(json.model.vocab['<0x0A>']).toBe(13);
    expect(json.model.vocab['▁']).toBeGreaterThan(258);
    expect(Object.keys(json.model.vocab).some((p) => p.includes(' '))).toBe(false);
    expect(json.model.merges.length).toBeGreaterThan(100); // 165: the pieces longer than one character
    expect(json.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual([
      [0, '<unk>', true],
      [1, '<s>', true],
      [2, '</s>', true],
    ]);
    const config = JSON.parse(files['tokenizer_config.json']) as Record<string, unknown>;
    expect(config).toMatchObject({
      tokenizer_class: 'LlamaTokenizer',
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      add_bos_token: true,
      add_eos_token: false,
      model_max_length: 512,
    });
  });

  it('refuses a vocabulary with a repeated piece, naming it', () => {
    // duplicate the last piece's bytes onto the one before it: rebuild the file
    const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
    const pieces: { score: number; bytes: Uint8Array }[] = [];
    let off = 4;
    while (off < bin.length) {
      const len = view.getInt32(off + 4, true);
      pieces.push({ score: view.getFloat32(off, true), bytes: bin.slice(off + 8, off + 8 + len) });
      off += 8 + len;
    }
    pieces[pieces.length - 2]!.bytes = pieces[pieces.length - 1]!.bytes;
    const out = new Uint8Array(4 + pieces.reduce((s, p) => s + 8 + p.bytes.length, 0));
    const w = new DataView(out.buffer);
    w.setInt32(0, view.getInt32(0, true), true);
    off = 4;
    for (const p of pieces) {
      w.setFloat32(off, p.score, true);
      w.setInt32(off + 4, p.bytes.length, true);
      out.set(p.bytes, off + 8);
      off += 8 + p.bytes.length;
    }
    expect(() => llama2cToHfTokenizer(out, 'dup.bin', 512)).toThrow(/dup\.bin: token 511 repeats the piece/);
  });
});

if (!HAVE_STORIES) it.skip(sharedMissing('the tokenizer.json conversion test (tok512.bin)'), () => {});
