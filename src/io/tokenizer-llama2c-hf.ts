/**
 * A llama2.c tokenizer.bin (e.g. stories260K's tok512.bin) as the Hugging Face tokenizer files transformers'
 * LlamaTokenizerFast writes for a SentencePiece BPE model: tokenizer.json and tokenizer_config.json.
 *
 * llama2.c's export (tokenizer.py) wrote SentencePiece's pieces with "▁" turned into " " and <s>/</s> as "\n<s>\n" /
 * "\n</s>\n"; here they become "▁" and "<unk>" / "<s>" / "</s>" again. The tokenizer.json follows transformers'
 * LlamaConverter (legacy): normalizer Prepend("▁") + Replace(" " → "▁") (SentencePiece's dummy prefix; nothing for
 * empty text), no pre-tokenizer, a BPE model with byte_fallback and fuse_unk, merges from SentencePieceExtractor
 * (every split of a piece into two pieces, ordered by the merged piece's score, highest first), a post-processor that
 * adds <s>, and the decoder Replace("▁" → " "), ByteFallback, Fuse, Strip(1 leading space).
 *
 * Encoding with it gives llama2.c's ids: both start from one symbol per code point (bytes <0xHH> for code points
 * that are no piece) and merge the best-scored adjacent pair first, leftmost on ties (checked on the demo dataset in
 * test/io/tokenizer-llama2c-hf.test.ts).
 *
 * Browser-safe: no node: imports.
 */
import { readLlama2cVocab } from './tokenizer-llama2c';

const SPECIAL = ['<unk>', '<s>', '</s>'] as const;
const BYTE_OFFSET = 3;

export interface HfTokenizerFiles {
  'tokenizer.json': string;
  'tokenizer_config.json': string;
}

/** An added special token's fields, as tokenizer.json and tokenizer_config.json's added_tokens_decoder hold them. */
function specialToken(content: string) {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * Convert a llama2.c tokenizer.bin into tokenizer.json + tokenizer_config.json (transformers' LlamaTokenizerFast).
 * @param modelMaxLength tokenizer_config.json model_max_length (the model's context length).
 */
export function llama2cToHfTokenizer(bytes: Uint8Array, fileName: string, modelMaxLength: number): HfTokenizerFiles {
  const v = readLlama2cVocab(bytes, fileName);
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const vocab: Record<string, number> = {};
  const scoreOf = new Map<string, number>();
  for (let id = 0; id < v.pieces.length; id++) {
    let piece: string;
    if (id < BYTE_OFFSET) piece = SPECIAL[id]!;
    else if (id < BYTE_OFFSET + 256) piece = `<0x${(id - BYTE_OFFSET).toString(16).toUpperCase().padStart(2, '0')}>`;
    else {
      try {
        piece = strict.decode(v.pieces[id]!).replaceAll(' ', '▁');
      } catch {
        throw new Error(`${fileName}: token ${id} is not valid UTF-8, so it cannot be a tokenizer.json piece`);
      }
    }
    if (Object.hasOwn(vocab, piece))
      throw new Error(`${fileName}: token ${id} repeats the piece ${JSON.stringify(piece)} of token ${vocab[piece]}`);
    vocab[piece] = id;
    if (id >= BYTE_OFFSET + 256) scoreOf.set(piece, v.scores[id]!);
  }
  // SentencePieceExtractor: for each piece, every split into two pieces (ordered by their ids), then all of them
  // ordered by the merged piece's score, highest first (a stable sort). Special and byte pieces merge with nothing.
  const merges: { pair: [string, string]; score: number }[] = [];
  for (const [piece, score] of scoreOf) {
    const chars = Array.from(piece);
    const local: [string, string][] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (scoreOf.has(l) && scoreOf.has(r)) local.push([l, r]);
    }
    local.sort((a, b) => vocab[a[0]]! - vocab[b[0]]! || vocab[a[1]]! - vocab[b[1]]!);
    for (const pair of local) merges.push({ pair, score });
  }
  merges.sort((a, b) => b.score - a.score);

  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((t, id) => ({ id, ...specialToken(t) })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => m.pair),
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(SPECIAL.map((t, id) => [String(id), specialToken(t)])),
    bos_token: '<s>',
    clean_up_tokenization_spaces: false,
    eos_token: '</s>',
    legacy: true,
    model_max_length: modelMaxLength,
    pad_token: null,
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: '<unk>',
  };
  return {
    'tokenizer.json': JSON.stringify(tokenizer, null, 2) + '\n',
    'tokenizer_config.json': JSON.stringify(config, null, 2) + '\n',
  };
}
