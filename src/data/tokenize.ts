/**
 * Segments → token ids and labels (-100 = not trained), Hugging Face convention: `labels` has the same
 * length as `input_ids` and the loss shifts it (position t predicts labels[t+1]).
 *
 * How masks are computed: the WHOLE rendered text is tokenized once (so the prompt/response boundary is
 * tokenized exactly as it is when the same text is encoded at generation time), and each token's character
 * span in that text is found by INCREMENTAL DECODING: the ids are detokenized left to right the way streaming
 * generation does it (decode a short window ending at the token, keep the new suffix, hold back tokens that
 * end inside a multi-byte character, i.e. whose text ends in U+FFFD), and the decoded text is aligned to the
 * source text (which absorbs SentencePiece's dummy-prefix space, `<unk>` pieces and similar local
 * differences). A token is trained when its character span overlaps a trained segment — what HF's
 * `return_assistant_tokens_mask` does with char_to_token. If the decoded text cannot be aligned to the
 * source (a normaliser that rewrites text wholesale), the boundaries are found by tokenizing prefixes
 * instead (the method of Stanford Alpaca's train.py): the first k tokens of encode(text[:c]) that agree
 * with the full tokenization lie before character c.
 *
 * Special tokens: template text contains special-token strings (EOS "</s>", "<|im_end|>", a leading
 * bos_token). Tokenizers that recognise them in text (HF tokenizer.json added tokens) get the text in one
 * piece; for those that do not (llama2.c / SentencePiece models), the text is split at the tokenizer's
 * special-token strings and each becomes its id, as HF's slow Llama tokenizer does.
 *
 * BOS: prepended when the tokenizer's own encode() adds one by default (Llama, llama2.c; not GPT-2 or Qwen2)
 * and the text does not already start with it (chat templates that write {{ bos_token }} get no second BOS). The first token of every example is never a target
 * (label -100), which also keeps packed examples from predicting across their boundary.
 *
 * Browser-safe: no node: imports.
 */
import type { Tokenizer } from '../io/tokenizer';
import type { Example } from './formats';
import { renderExample, templateTokensOf, type Segment, type TemplateSpec, type TemplateTokens } from './templates';

export const IGNORE_INDEX = -100;

// ---------------------------------------------------------------------------------------------------------
// Special tokens

interface SpecialInfo {
  /** Special-token strings with their ids, longest first. */
  specials: { text: string; id: number }[];
  /** The tokenizer maps special-token strings in text to their ids itself. */
  handlesSpecials: boolean;
  /** The tokenizer's encode() prepends BOS by default (Llama / llama2.c yes; GPT-2, Qwen2 no). */
  addsBosByDefault: boolean;
}

const specialCache = new WeakMap<Tokenizer, SpecialInfo>();

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function specialTokenInfo(tok: Tokenizer): SpecialInfo {
  let info = specialCache.get(tok);
  if (info) return info;
  const byText = new Map<string, number>();
  const known: [string | undefined, number | null][] = [
    [
      tok.specialTokens.bos_token ?? (tok.bosTokenId !== null ? tok.idToToken(tok.bosTokenId) : undefined),
      tok.bosTokenId,
    ],
    [
      tok.specialTokens.eos_token ?? (tok.eosTokenId !== null ? tok.idToToken(tok.eosTokenId) : undefined),
      tok.eosTokenId,
    ],
    [tok.specialTokens.pad_token, tok.padTokenId],
  ];
  for (const [text, id] of known) if (text && id !== null && !byText.has(text)) byText.set(text, id);
  const others = Object.values(tok.specialTokens).filter((t) => typeof t === 'string' && t !== '' && !byText.has(t));
  if (others.length > 0) {
    const wanted = new Set(others);
    for (let id = 0; id < tok.vocabSize && wanted.size > 0; id++) {
      const p = tok.idToToken(id);
      if (p !== undefined && wanted.has(p)) {
        byText.set(p, id);
        wanted.delete(p);
      }
    }
  }
  const specials = [...byText].map(([text, id]) => ({ text, id })).sort((a, b) => b.text.length - a.text.length);
  let handlesSpecials = true;
  const probe = specials.find((s) => s.id === tok.eosTokenId) ?? specials[0];
  if (probe) handlesSpecials = sameIds(tok.encode(probe.text, { addBos: false, addEos: false }), [probe.id]);
  const bos = tok.bosTokenId;
  const addsBosByDefault = bos !== null && tok.encode('a')[0] === bos && tok.encode('a', { addBos: false })[0] !== bos;
  info = { specials, handlesSpecials, addsBosByDefault };
  specialCache.set(tok, info);
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// Encoding with character offsets

export interface EncodedText {
  ids: number[];
  /** Character span [starts[k], ends[k]) of token k in the text (BOS: empty span at 0). */
  starts: Int32Array;
  ends: Int32Array;
  /** How the spans were found: 'decode' (incremental decoding), or 'prefix' when only boundaries are exact. */
  method: 'decode' | 'prefix';
  /** Whether a BOS id was prepended (not part of the text). */
  bosAdded: boolean;
}

interface Chunk {
  start: number;
  end: number;
  special?: number;
}

function splitOnSpecials(text: string, info: SpecialInfo): Chunk[] {
  if (info.handlesSpecials || info.specials.length === 0) return [{ start: 0, end: text.length }];
  const chunks: Chunk[] = [];
  let last = 0;
  let i = 0;
  outer: while (i < text.length) {
    for (const s of info.specials) {
      if (text.startsWith(s.text, i)) {
        if (i > last) chunks.push({ start: last, end: i });
        chunks.push({ start: i, end: i + s.text.length, special: s.id });
        i += s.text.length;
        last = i;
        continue outer;
      }
    }
    i++;
  }
  if (last < text.length) chunks.push({ start: last, end: text.length });
  return chunks;
}

/** Incremental detokenization: per-token spans in the decoded string, and the decoded string. */
export function incrementalDecode(
  tok: Tokenizer,
  ids: number[],
): { text: string; starts: Int32Array; ends: Int32Array } {
  const n = ids.length;
  const starts = new Int32Array(n);
  const ends = new Int32Array(n);
  let out = '';
  let prefixOffset = 0;
  let readOffset = 0;
  let prefixText = '';
  const dec = (a: number, b: number) => tok.decode(ids.slice(a, b), { skipSpecialTokens: false });
  const emit = (delta: string, upTo: number) => {
    const s = out.length;
    out += delta;
    for (let k = readOffset; k < upTo; k++) {
      starts[k] = s;
      ends[k] = out.length;
    }
  };
  for (let i = 0; i < n; i++) {
    const text = dec(prefixOffset, i + 1);
    if (text.length > prefixText.length && text.startsWith(prefixText) && !text.endsWith('\uFFFD')) {
      emit(text.slice(prefixText.length), i + 1);
      prefixOffset = readOffset;
      readOffset = i + 1;
      prefixText = dec(prefixOffset, readOffset);
    }
  }
  if (readOffset < n) {
    const text = dec(prefixOffset, n);
    emit(text.startsWith(prefixText) ? text.slice(prefixText.length) : '', n);
  }
  return { text: out, starts, ends };
}

/**
 * Aligns `decoded` to `source`: returns map[d] = source offset of decoded char d (length decoded.length + 1),
 * or null if the texts differ too much to align locally. `partial`: `decoded` decodes only the first tokens
 * of `source`.
 */
export function alignDecoded(decoded: string, source: string, window = 24, partial = false): Int32Array | null {
  const map = new Int32Array(decoded.length + 1);
  let i = 0;
  let j = 0;
  const K = 6;
  const agree = (x: number, y: number) => {
    const k = Math.min(K, decoded.length - x, source.length - y);
    if (k <= 0) return x === decoded.length && y === source.length;
    for (let t = 0; t < k; t++) if (decoded[x + t] !== source[y + t]) return false;
    return true;
  };
  while (i < decoded.length && j < source.length) {
    if (decoded[i] === source[j]) {
      map[i++] = j++;
      continue;
    }
    let found: [number, number] | null = null;
    for (let s = 1; s <= 2 * window && !found; s++) {
      for (let a = 0; a <= Math.min(s, window); a++) {
        const b = s - a;
        if (b > window || i + a > decoded.length || j + b > source.length) continue;
        if (agree(i + a, j + b)) {
          found = [a, b];
          break;
        }
      }
    }
    if (!found) return null;
    // Skipped decoded chars map proportionally onto the skipped source chars (exact for same-length
    // substitutions; all onto the first source char when the source side is shorter, e.g. "<unk>" for "é").
    for (let k = 0; k < found[0]; k++) map[i + k] = j + Math.floor((k * found[1]) / found[0]);
    i += found[0];
    j += found[1];
  }
  // Leftover decoded chars (extra text at the end) map to the end; leftover source is absorbed by the last
  // token, unless `decoded` is only the decoding of a prefix of the tokens (partial).
  while (i < decoded.length) map[i++] = source.length;
  map[decoded.length] = partial ? j : source.length;
  return map;
}

/** Whether to prepend BOS to `text` by default: as the tokenizer's own encode() does, never twice. */
export function wantsBos(tok: Tokenizer, text: string, tokens: TemplateTokens = templateTokensOf(tok)): boolean {
  if (tok.bosTokenId === null || !specialTokenInfo(tok).addsBosByDefault) return false;
  return !(tokens.bosToken && text.startsWith(tokens.bosToken));
}

/**
 * Tokenizes `text` once (split only at special-token strings the tokenizer does not recognise itself) and
 * finds each token's character span. `boundaries` (character offsets) are only needed for the prefix
 * fallback; tokens then get spans that are exact at those offsets. `limit`: spans are only needed for the
 * first `limit` tokens (truncation); later tokens get an empty span at the end of the text.
 */
export function encodeWithOffsets(
  tok: Tokenizer,
  text: string,
  opts: { addBos?: boolean; boundaries?: number[]; limit?: number } = {},
): EncodedText {
  const limit = opts.limit ?? Infinity;
  const info = specialTokenInfo(tok);
  const bosAdded = (opts.addBos ?? wantsBos(tok, text)) && tok.bosTokenId !== null;
  const ids: number[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  if (bosAdded) {
    ids.push(tok.bosTokenId!);
    starts.push(0);
    ends.push(0);
  }
  let method: EncodedText['method'] = 'decode';
  const chunks = splitOnSpecials(text, info);
  const pieces: { chunk: Chunk; ids: number[] }[] = [];
  for (const chunk of chunks) {
    if (chunk.special !== undefined) pieces.push({ chunk, ids: [chunk.special] });
    else pieces.push({ chunk, ids: tok.encode(text.slice(chunk.start, chunk.end), { addBos: false, addEos: false }) });
  }
  for (const { chunk, ids: cids } of pieces) {
    if (chunk.special !== undefined) {
      ids.push(chunk.special);
      starts.push(chunk.start);
      ends.push(chunk.end);
      continue;
    }
    const src = text.slice(chunk.start, chunk.end);
    const need = Math.max(0, Math.min(cids.length, limit - ids.length));
    if (need === 0) {
      for (const id of cids) {
        ids.push(id);
        starts.push(text.length);
        ends.push(text.length);
      }
      continue;
    }
    const dec = incrementalDecode(tok, need < cids.length ? cids.slice(0, need) : cids);
    const map = alignDecoded(dec.text, src, 24, need < cids.length);
    if (map) {
      for (let k = 0; k < cids.length; k++) {
        ids.push(cids[k]);
        if (k >= need) {
          starts.push(text.length);
          ends.push(text.length);
          continue;
        }
        const s = map[dec.starts[k]];
        const e = Math.max(s, map[dec.ends[k]]);
        starts.push(chunk.start + s);
        ends.push(chunk.start + e);
      }
    } else {
      method = 'prefix';
      const local = (opts.boundaries ?? []).filter((c) => c > chunk.start && c < chunk.end).map((c) => c - chunk.start);
      const spans = prefixSpans(tok, src, cids, local);
      for (let k = 0; k < cids.length; k++) {
        ids.push(cids[k]);
        starts.push(chunk.start + spans.starts[k]);
        ends.push(chunk.start + spans.ends[k]);
      }
    }
  }
  return { ids, starts: Int32Array.from(starts), ends: Int32Array.from(ends), method, bosAdded };
}

/**
 * Fallback spans from prefix tokenization: for each boundary c, the tokens of encode(src[:c]) that agree with
 * the full tokenization lie before c; a token where they disagree straddles c. Tokens between two
 * boundaries get the span between them (only membership in segments is meaningful then).
 */
function prefixSpans(
  tok: Tokenizer,
  src: string,
  ids: number[],
  boundaries: number[],
): { starts: Int32Array; ends: Int32Array } {
  const n = ids.length;
  const starts = new Int32Array(n);
  const ends = new Int32Array(n).fill(src.length);
  // cut[k] = first token index at or after boundary k (tokens < cut lie before the boundary)
  const points = [...new Set(boundaries)].sort((a, b) => a - b);
  let prevCut = 0;
  let prevChar = 0;
  for (const c of points) {
    const p = tok.encode(src.slice(0, c), { addBos: false, addEos: false });
    let k = 0;
    while (k < p.length && k < n && p[k] === ids[k]) k++;
    const clean = k === p.length;
    // tokens [prevCut, k) lie in [prevChar, c); a straddling token k spans the boundary
    for (let t = prevCut; t < k; t++) {
      starts[t] = prevChar;
      ends[t] = c;
    }
    if (!clean && k < n) {
      starts[k] = c - 1; // overlaps the characters on both sides of the boundary
      ends[k] = c + 1;
      prevCut = k + 1;
    } else prevCut = Math.max(prevCut, k);
    prevChar = c;
  }
  for (let t = prevCut; t < n; t++) {
    starts[t] = prevChar;
    ends[t] = src.length;
  }
  return { starts, ends };
}

// ---------------------------------------------------------------------------------------------------------
// Segments → labels

export interface TokenizeOptions {
  /** Keep at most this many tokens (the start is kept). */
  maxLength: number;
  /** Train on prompt tokens too (LLaMA-Factory train_on_prompt). Default false: completion only. */
  trainOnInputs?: boolean;
  /** Prepend BOS; default: when the tokenizer's encode() adds one by default and the text does not start with it. */
  addBos?: boolean;
}

export interface TokenizedExample {
  inputIds: Int32Array;
  /** Same length as inputIds; -100 where not trained. */
  labels: Int32Array;
  /** Tokens before truncation. */
  fullLength: number;
  truncated: boolean;
  /** Tokens with a label (after truncation). */
  trainedTokens: number;
}

export interface TokenizedWithText extends TokenizedExample {
  text: string;
  starts: Int32Array;
  ends: Int32Array;
  method: EncodedText['method'];
}

/**
 * Characters tokenized at first per token kept: English runs about 4 characters per token, code and
 * whitespace more; a window that gives too few tokens is doubled.
 */
export const WINDOW_CHARS_PER_TOKEN = 8;
/** Tokens past max_length the window must give, so the kept tokens do not depend on where the window ends. */
export const WINDOW_MARGIN_TOKENS = 16;

/**
 * Bounded tokenization of a long text: only a window of it is tokenized, starting with
 * (maxLength + margin) × WINDOW_CHARS_PER_TOKEN characters and doubled until it yields maxLength + margin
 * tokens or holds the whole text. Tokens are local (pre-tokenizers split on spaces and punctuation), so the
 * first maxLength tokens of the window are those of the whole text; the work is bounded by max_length, not by
 * the row (a 50 MB row with max_length 512 tokenizes a few tens of thousands of characters).
 */
function encodeWindowed(
  tok: Tokenizer,
  text: string,
  keep: number,
  opts: { addBos?: boolean; boundaries: number[] },
): { enc: EncodedText; length: number } {
  const want = keep + WINDOW_MARGIN_TOKENS;
  let window = want * WINDOW_CHARS_PER_TOKEN;
  const addBos = opts.addBos ?? wantsBos(tok, text);
  for (;;) {
    if (window >= text.length) {
      const enc = encodeWithOffsets(tok, text, { addBos, boundaries: opts.boundaries, limit: keep });
      return { enc, length: text.length };
    }
    let cut = window;
    // Never split a surrogate pair.
    const c = text.charCodeAt(cut - 1);
    if (c >= 0xd800 && c <= 0xdbff) cut--;
    const part = text.slice(0, cut);
    const enc = encodeWithOffsets(tok, part, {
      addBos,
      boundaries: opts.boundaries.filter((b) => b < cut),
      limit: keep,
    });
    if (enc.ids.length >= want) return { enc, length: cut };
    window *= 2;
  }
}

/**
 * Tokenizes rendered segments; keepText adds the text and token spans (for reports). A text much longer than
 * maxLength tokens is tokenized in a bounded window (encodeWindowed): `fullLength` then counts the tokens of
 * that window (a lower bound of the whole text's length, above maxLength) and `text` is the window's text.
 */
export function tokenizeSegments(tok: Tokenizer, segments: Segment[], opts: TokenizeOptions): TokenizedWithText {
  const whole = segments.map((s) => s.text).join('');
  const boundaries: number[] = [];
  let pos = 0;
  for (const s of segments) {
    pos += s.text.length;
    boundaries.push(pos);
  }
  const keepLimit = Math.max(0, Math.floor(opts.maxLength));
  const { enc, length } = encodeWindowed(tok, whole, keepLimit, { addBos: opts.addBos, boundaries });
  const text = length < whole.length ? whole.slice(0, length) : whole;
  const trainedChar = new Uint8Array(text.length);
  pos = 0;
  for (const s of segments) {
    if (pos >= text.length) break;
    if (s.train) trainedChar.fill(1, pos, Math.min(text.length, pos + s.text.length));
    pos += s.text.length;
  }
  const n = enc.ids.length;
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    let trained = false;
    if (opts.trainOnInputs) trained = true;
    else {
      const s = enc.starts[k];
      const e = enc.ends[k];
      if (e > s) {
        for (let c = s; c < e; c++) {
          if (trainedChar[c]) {
            trained = true;
            break;
          }
        }
      } else trained = !(k === 0 && enc.bosAdded) && s < text.length && trainedChar[s] === 1;
    }
    labels[k] = trained ? enc.ids[k] : IGNORE_INDEX;
  }
  if (n > 0) labels[0] = IGNORE_INDEX;
  const keep = Math.min(n, keepLimit);
  const inputIds = Int32Array.from(enc.ids.slice(0, keep));
  const outLabels = labels.slice(0, keep);
  let trainedTokens = 0;
  for (let k = 0; k < keep; k++) if (outLabels[k] !== IGNORE_INDEX) trainedTokens++;
  return {
    inputIds,
    labels: outLabels,
    fullLength: n,
    truncated: n > keep || length < whole.length,
    trainedTokens,
    text,
    starts: enc.starts.slice(0, keep),
    ends: enc.ends.slice(0, keep),
    method: enc.method,
  };
}

export interface DroppedExample {
  /** Index into the input examples. */
  index: number;
  reason: 'no-trained-tokens' | 'template-error' | 'empty';
  message: string;
}

export interface TokenizeDatasetResult {
  examples: TokenizedExample[];
  /** For each kept example, its index in the input. */
  sourceIndex: number[];
  /** Kept examples that were cut to maxLength. */
  truncated: number;
  dropped: DroppedExample[];
}

/** Examples tokenized so far of `total` (called every PROGRESS_EVERY examples and at the end). */
export type TokenizeProgress = (done: number, total: number) => void;
export const PROGRESS_EVERY = 1000;

/**
 * Renders and tokenizes examples. Examples whose trained part is cut off entirely by truncation (or that
 * have nothing trained, or that the template cannot render) are dropped and listed.
 */
export function tokenizeDataset(
  tok: Tokenizer,
  examples: Example[],
  template: TemplateSpec,
  opts: TokenizeOptions & { tokens?: TemplateTokens; onProgress?: TokenizeProgress },
): TokenizeDatasetResult {
  const tokens = opts.tokens ?? templateTokensOf(tok);
  const out: TokenizeDatasetResult = { examples: [], sourceIndex: [], truncated: 0, dropped: [] };
  const report = opts.onProgress;
  examples.forEach((ex, index) => {
    if (report && index > 0 && index % PROGRESS_EVERY === 0) report(index, examples.length);
    let segments: Segment[];
    try {
      segments = renderExample(ex, template, tokens);
    } catch (e) {
      out.dropped.push({ index, reason: 'template-error', message: (e as Error).message });
      return;
    }
    const t = tokenizeSegments(tok, segments, opts);
    if (t.inputIds.length < 2) {
      out.dropped.push({ index, reason: 'empty', message: 'fewer than 2 tokens' });
      return;
    }
    if (t.trainedTokens === 0) {
      out.dropped.push({
        index,
        reason: 'no-trained-tokens',
        message: t.truncated
          ? `no trained token within the first ${opts.maxLength} tokens (prompt is ${t.fullLength} tokens long with its response)`
          : 'nothing to train on',
      });
      return;
    }
    if (t.truncated) out.truncated++;
    out.examples.push({
      inputIds: t.inputIds,
      labels: t.labels,
      fullLength: t.fullLength,
      truncated: t.truncated,
      trainedTokens: t.trainedTokens,
    });
    out.sourceIndex.push(index);
  });
  report?.(examples.length, examples.length);
  return out;
}
