/**
 * Pick the tokenizer format from the input: JSON (parsed object, text, or bytes starting with '{')
 * -> tokenizer.json via @huggingface/tokenizers; other bytes -> llama2.c tokenizer.bin.
 * Browser-safe: no node: imports.
 */
import type { Tokenizer } from './tokenizer';
import { loadHfTokenizer } from './tokenizer-hf';
import { parseLlama2cTokenizer } from './tokenizer-llama2c';

export interface TokenizerInput {
  /** Used in error messages. */
  fileName: string;
  /** tokenizer.json (parsed object, JSON text, or its bytes) or a llama2.c tokenizer.bin's bytes. */
  data: unknown;
  /** tokenizer_config.json (parsed object, JSON text, or bytes), if any; unused for llama2.c. */
  config?: unknown;
  /** llama2.c only: the model's vocab size, checked against the file. */
  vocabSize?: number;
}

function asBytes(x: unknown): Uint8Array | null {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  return null;
}

function parseJson(x: unknown, fileName: string): unknown {
  const bytes = asBytes(x);
  if (bytes === null && typeof x !== 'string') return x;
  const text = bytes !== null ? new TextDecoder().decode(bytes) : (x as string);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${fileName}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

function looksLikeJson(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    if (b === 0xef && bytes[i + 1] === 0xbb && bytes[i + 2] === 0xbf) {
      i += 2; // UTF-8 BOM
      continue;
    }
    return b === 0x7b; // '{'
  }
  return false;
}

export function loadTokenizer(input: TokenizerInput): Tokenizer {
  const bytes = asBytes(input.data);
  if (bytes !== null && !looksLikeJson(bytes)) {
    return parseLlama2cTokenizer(bytes, input.fileName, input.vocabSize);
  }
  const json = parseJson(input.data, input.fileName);
  const config =
    input.config === undefined || input.config === null ? null : parseJson(input.config, 'tokenizer_config.json');
  if (config !== null && (typeof config !== 'object' || Array.isArray(config))) {
    throw new Error('tokenizer_config.json: expected a JSON object at the top level');
  }
  return loadHfTokenizer(json, config as Record<string, unknown> | null, input.fileName);
}
