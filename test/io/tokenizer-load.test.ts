import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/io/tokenizer-load';
import { llamaStyleTokenizerConfig, llamaStyleTokenizerJson } from '../fixtures/tokenizers';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';

describe('loadTokenizer picks the format from the input', () => {
  const json = llamaStyleTokenizerJson();
  const text = JSON.stringify(json);
  const config = llamaStyleTokenizerConfig();

  it('parsed object, JSON text and JSON bytes all load tokenizer.json', () => {
    const fromObject = loadTokenizer({ fileName: 'tokenizer.json', data: json, config });
    const fromText = loadTokenizer({ fileName: 'tokenizer.json', data: text, config: JSON.stringify(config) });
    const fromBytes = loadTokenizer({
      fileName: 'tokenizer.json',
      data: new TextEncoder().encode('\n ' + text),
      config: new TextEncoder().encode(JSON.stringify(config)).buffer,
    });
    for (const t of [fromObject, fromText, fromBytes]) {
      expect(t.encode('hello the world')).toEqual([1, 280, 274, 277, 263, 267]);
      expect(t.chatTemplate).toBe(config.chat_template);
    }
  });

  it('invalid JSON names the file', () => {
    expect(() => loadTokenizer({ fileName: 'm/tokenizer.json', data: '{"model": ' })).toThrow(
      /m\/tokenizer\.json: not valid JSON/,
    );
    expect(() => loadTokenizer({ fileName: 'tokenizer.json', data: json, config: '[' })).toThrow(
      /tokenizer_config\.json: not valid JSON/,
    );
    expect(() => loadTokenizer({ fileName: 'tokenizer.json', data: json, config: '[]' })).toThrow(
      /tokenizer_config\.json: expected a JSON object/,
    );
  });

  it('non-JSON bytes are a llama2.c tokenizer.bin', () => {
    expect(() => loadTokenizer({ fileName: 'tok.bin', data: new Uint8Array([7, 0]) })).toThrow(
      /tok\.bin: truncated llama2\.c tokenizer/,
    );
  });

  it.skipIf(!HAVE_STORIES)(HAVE_STORIES ? 'loads stories260K tok512.bin' : sharedMissing('loading tok512.bin'), () => {
    const bytes = new Uint8Array(readFileSync(path.join(STORIES_DIR, 'tok512.bin')));
    const t = loadTokenizer({ fileName: 'tok512.bin', data: bytes, vocabSize: 512 });
    expect(t.vocabSize).toBe(512);
    expect(t.decode(t.encode('Once upon a time'))).toBe('Once upon a time');
  });
});
