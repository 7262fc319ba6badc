/**
 * Focused tests for the parser bugs the fuzz suite found (each failed before its fix):
 * stack overflows on deeply nested values, prototype keys taken for supported names, a hang on an absurd
 * layer count, a hang on a sparse tokenizer id, spread arguments overflowing on big rows, and
 * character-at-a-time string building on multi-MB fields.
 */
import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/data/csv';
import { parseDataset, type ChatExample } from '../../src/data/formats';
import { findJsonSyntaxError } from '../../src/data/json-scan';
import { parseHfConfig, toHfConfig } from '../../src/io/hf-config';
import { loadHfCheckpoint } from '../../src/io/hf-model';
import { readSafetensorsHeader, writeSafetensors } from '../../src/io/safetensors';
import { filesSource } from '../../src/io/source';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { gpt2StyleTokenizerJson } from '../fixtures/tokenizers';
import { tinyConfig } from '../tiny-checkpoint';

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

function deepArray(n: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

/** The error thrown by f (fails if none), so its class and message can be checked. */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

/** CPU milliseconds f takes (not wall time: the machine may be busy with other work). */
function cpuMs(f: () => unknown): number {
  const t = process.cpuUsage();
  f();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
}

function safetensorsWithHeader(header: string): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  return out;
}

describe('parsers on deeply nested values: a clear Error, not a stack overflow', () => {
  it('safetensors header fields', () => {
    for (const header of [
      `{"a":{"dtype":"F32","shape":${deep(100_000)},"data_offsets":[0,0]}}`,
      `{"a":{"dtype":"F32","shape":[0],"data_offsets":${deep(100_000)}}}`,
      `{"a":{"dtype":${deep(100_000)},"shape":[0],"data_offsets":[0,0]}}`,
      `{"__metadata__":{"k":${deep(100_000)}}}`,
    ]) {
      const e = thrown(() => readSafetensorsHeader(safetensorsWithHeader(header), 'x.safetensors'));
      expect(e).not.toBeInstanceOf(RangeError);
      expect(e.message).toMatch(/^x\.safetensors: .*nested too deeply to show/);
    }
  });

  it('config.json fields', () => {
    const base = toHfConfig(tinyConfig('llama'));
    for (const field of [
      'hidden_size',
      'architectures',
      'rope_scaling',
      'eos_token_id',
      'hidden_act',
      'tie_word_embeddings',
    ]) {
      const e = thrown(() => parseHfConfig({ ...base, [field]: deepArray(100_000) }, 'c/config.json'));
      expect(e).not.toBeInstanceOf(RangeError);
      expect(e.message).toMatch(new RegExp(`^c/config\\.json: "${field}" .*nested too deeply to show`));
    }
  });

  it('tokenizer.json added_tokens entry and Sequence components', () => {
    const j = gpt2StyleTokenizerJson();
    const e = thrown(() => loadHfTokenizer({ ...j, added_tokens: [deepArray(100_000)] }, null, 't/tokenizer.json'));
    expect(e).not.toBeInstanceOf(RangeError);
    expect(e.message).toMatch(/^t\/tokenizer\.json: expected "added_tokens\[0\]" to be .*nested too deeply to show/);

    let pp: unknown = { type: 'ByteLevel' };
    for (let i = 0; i < 100_000; i++) pp = { type: 'Sequence', processors: [pp] };
    expect(() => loadHfTokenizer({ ...j, post_processor: pp }, null, 't/tokenizer.json')).toThrow(
      /^t\/tokenizer\.json: "post_processor" nests "Sequence" more than 32 levels deep$/,
    );
    // Shallow Sequences (as real files have) still load.
    expect(
      loadHfTokenizer({ ...j, post_processor: { type: 'Sequence', processors: [{ type: 'ByteLevel' }] } }, null).encode(
        'hello',
      ),
    ).toEqual([261]);
  });

  it('datasets: a malformed 100k-deep document and a deep weight', () => {
    expect(findJsonSyntaxError(deep(100_000) + ',')).toEqual({
      offset: 200_000,
      message: 'unexpected "," after the end of the JSON value',
    });
    expect(findJsonSyntaxError('['.repeat(100_000))).toEqual({
      offset: 100_000,
      message: 'unexpected end of input, expected a value',
    });
    expect(findJsonSyntaxError('{"a":'.repeat(50_000) + '1}')).toEqual({
      offset: 250_002,
      message: "unexpected end of input, expected ',' or '}' after property value",
    });
    const e = thrown(() => parseDataset(deep(100_000) + ',', 'deep.json'));
    expect(e.name).toBe('DatasetError');
    expect(e.message).toBe('deep.json:1:200001: malformed JSON: unexpected "," after the end of the JSON value');

    const row = `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","weight":${deep(100_000)}}]}`;
    const e2 = thrown(() => parseDataset(row + '\n', 'w.jsonl'));
    expect(e2.message).toMatch(
      /^w\.jsonl: no valid rows as messages .*weight is \[…\] \(nested too deeply to show\), expected 0 or 1/,
    );
  });
});

describe('prototype keys are not supported names', () => {
  it('config.json architectures / model_type', () => {
    const base = toHfConfig(tinyConfig('llama'));
    for (const arch of ['toString', '__proto__', 'hasOwnProperty', 'constructor']) {
      expect(() => parseHfConfig({ ...base, architectures: [arch] }, 'config.json')).toThrow(
        `config.json: unsupported architecture "${arch}"`,
      );
      expect(() => parseHfConfig({ ...base, architectures: null, model_type: arch }, 'config.json')).toThrow(
        `config.json: unsupported model_type "${arch}"`,
      );
    }
  });

  it('dataset roles', () => {
    for (const role of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const r = parseDataset(
        [
          JSON.stringify({
            messages: [
              { role: 'user', content: 'q' },
              { role, content: 'a' },
            ],
          }),
          JSON.stringify({
            messages: [
              { role: 'user', content: 'q' },
              { role: 'assistant', content: 'a' },
            ],
          }),
        ].join('\n'),
        'roles.jsonl',
      );
      expect(r.examples).toHaveLength(1);
      expect((r.examples[0] as ChatExample).messages.map((m) => m.role)).toEqual(['user', 'assistant']);
      expect(r.errors).toEqual([
        {
          file: 'roles.jsonl',
          line: 1,
          index: 0,
          field: 'messages[1].role',
          message: expect.stringMatching(new RegExp(`^unknown role "${role}" \\(expected one of`)),
        },
      ]);
    }
  });
});

describe('absurd sizes end quickly', () => {
  it('config.json with num_hidden_layers 2^40: rejected without enumerating the layers', async () => {
    const hf = { ...toHfConfig(tinyConfig('llama')), num_hidden_layers: 2 ** 40 };
    const src = filesSource(
      new Map<string, Blob>([
        ['config.json', new Blob([JSON.stringify(hf)])],
        [
          'model.safetensors',
          new Blob([
            writeSafetensors(new Map([['model.norm.weight', { shape: [16], data: new Float32Array(16) }]])).slice(),
          ]),
        ],
      ]),
    );
    const t = process.cpuUsage();
    await expect(loadHfCheckpoint(src)).rejects.toThrow(
      /model\.safetensors: checkpoint does not match LlamaForCausalLM config: 1099511627776 layers, but only 1 tensors in the checkpoint/,
    );
    const d = process.cpuUsage(t);
    expect((d.user + d.system) / 1000).toBeLessThan(1000);
  });

  it('tokenizer.json with a token id of 1e9: rejected without walking a billion ids', () => {
    const j = gpt2StyleTokenizerJson();
    (j.model as { vocab: Record<string, number> }).vocab['Ġx'] = 1e9;
    let e: Error | undefined;
    expect(cpuMs(() => (e = thrown(() => loadHfTokenizer(j, null, 'tokenizer.json'))))).toBeLessThan(1000);
    expect(e!.message).toBe(
      'tokenizer.json: "model.vocab" token "Ġx" has id 1000000000, but the file defines only 268 tokens (ids must be below 66072: a sparse id space is not supported)',
    );
    const added = gpt2StyleTokenizerJson();
    (added.added_tokens as unknown[]).push({ id: 2 ** 31, content: '<big>', special: true });
    expect(() => loadHfTokenizer(added, null)).toThrow(
      /"added_tokens\[1\]" has id 2147483648, but the file defines only 268 tokens/,
    );
    // A typeless model's vocab is checked too (the library infers the model from it).
    const typeless = gpt2StyleTokenizerJson();
    delete (typeless.model as Record<string, unknown>).type;
    (typeless.model as { vocab: Record<string, unknown> }).vocab.x = -1;
    expect(() => loadHfTokenizer(typeless, null)).toThrow(
      /"model\.vocab" ids to be non-negative integers, got number -1 for "x"/,
    );
  });

  it('tokenizer.json with a 6 MiB added token: rejected before the library builds a per-character trie', () => {
    const j = gpt2StyleTokenizerJson();
    (j.added_tokens as { content: string }[])[0].content = 'x'.repeat(6 << 20);
    let e: Error | undefined;
    expect(cpuMs(() => (e = thrown(() => loadHfTokenizer(j, null, 'tokenizer.json'))))).toBeLessThan(1000);
    expect(e!.message).toBe(
      'tokenizer.json: "added_tokens[0]" has content of 6291456 characters (at most 1024 supported)',
    );
  });

  it('100k additional_special_tokens load in linear time, and are still skipped when decoding', () => {
    const j = gpt2StyleTokenizerJson();
    const cfg = { additional_special_tokens: [...Array.from({ length: 100_000 }, (_, i) => `<t${i}>`), 'he'] };
    let tok: ReturnType<typeof loadHfTokenizer> | undefined;
    expect(cpuMs(() => (tok = loadHfTokenizer(j, cfg)))).toBeLessThan(1500);
    expect(tok!.decode([256, 257], { skipSpecialTokens: true })).toBe('ll'); // 256 = "he" is special here
    expect(tok!.decode([256, 257])).toBe('hell');
  });

  it('a 5 MiB value is shortened in error messages', () => {
    const e = thrown(() => parseHfConfig({ ...toHfConfig(tinyConfig('llama')), hidden_size: 'x'.repeat(5 << 20) }));
    expect(e.message).toMatch(
      /^config\.json: "hidden_size" must be a positive integer, got "x{119}… \(5242882 characters\)$/,
    );
    const role = 'r'.repeat(5 << 20);
    const d = thrown(() =>
      parseDataset(
        JSON.stringify({
          messages: [
            { role: 'user', content: 'q' },
            { role, content: 'a' },
          ],
        }),
        'big.jsonl',
      ),
    );
    expect(d.message.length).toBeLessThan(1000);
  });
});

describe('big rows and fields', () => {
  it('a self-instruct row with 300k instances (spread arguments overflowed the stack)', () => {
    const r = parseDataset(
      JSON.stringify({ instruction: 'q', instances: new Array(300_000).fill({ output: 'a' }) }),
      'si.jsonl',
    );
    expect(r.examples).toHaveLength(300_000);
  });

  it('a 5 MiB CSV field is one slice, and a field full of quotes is one issue', () => {
    const big = 'x'.repeat(5 << 20);
    let r: ReturnType<typeof parseCsv> | undefined;
    expect(cpuMs(() => (r = parseCsv(`text\n"${big}"\n${big}\n`)))).toBeLessThan(1500);
    expect(r!.records.map((x) => x.fields[0].length)).toEqual([4, 5 << 20, 5 << 20]);
    const quotes = parseCsv('text\n' + 'a"'.repeat(1 << 20) + '\nb"c,"d""e"\r\n"f\r\ng"');
    expect(quotes.issues).toEqual([
      {
        line: 2,
        column: 2,
        message: 'quote inside an unquoted field (quote the whole field and double the quote: "")',
      },
      {
        line: 3,
        column: 2,
        message: 'quote inside an unquoted field (quote the whole field and double the quote: "")',
      },
    ]);
    expect(quotes.records.slice(2)).toEqual([
      { line: 3, fields: ['b"c', 'd"e'] },
      { line: 4, fields: ['f\ng'] },
    ]);
  });

  it('a llama2.c tokenizer with a 4 MiB piece', () => {
    const enc = new TextEncoder();
    const pieces = [enc.encode('<unk>'), enc.encode('\n<s>\n'), enc.encode('\n</s>\n')];
    for (let b = 0; b < 256; b++) pieces.push(enc.encode(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
    pieces.push(enc.encode(' '), new Uint8Array(4 << 20).fill(0x61));
    const bytes = new Uint8Array(4 + pieces.reduce((a, p) => a + 8 + p.length, 0));
    const dv = new DataView(bytes.buffer);
    dv.setInt32(0, 16, true);
    let o = 4;
    for (const p of pieces) {
      dv.setInt32(o + 4, p.length, true);
      bytes.set(p, o + 8);
      o += 8 + p.length;
    }
    let tok: ReturnType<typeof parseLlama2cTokenizer> | undefined;
    expect(cpuMs(() => (tok = parseLlama2cTokenizer(bytes, 'tok.bin')))).toBeLessThan(1500);
    expect(tok!.vocabSize).toBe(261);
    expect(tok!.idToToken(260)!.length).toBe(4 << 20);
    expect(tok!.encode('ab', { addBos: false })).toEqual([259, 97 + 3, 98 + 3]);
  });
});
