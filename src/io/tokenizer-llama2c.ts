/**
 * Karpathy llama2.c `tokenizer.bin` (e.g. stories260K's tok512.bin).
 *
 * File layout (little-endian): int32 max_token_length, then for every token:
 * float32 score, int32 byte length, that many bytes (the piece; no terminator).
 *
 * Encoding reproduces llama2.c's `encode` in run.c exactly: optional BOS (id 1), a dummy " " prefix
 * for non-empty text, one piece per UTF-8 code point (byte fallback id = byte + 3 when the code point
 * is not a piece), then repeatedly merge the adjacent pair whose concatenation is a piece with the
 * highest score (the leftmost such pair on ties), optional EOS (id 2).
 * A heap gives the same merge order as run.c's quadratic rescan, in O(n log n).
 *
 * Decoding follows run.c's `decode`: after BOS a leading space of the next piece is dropped, and
 * `<0xHH>` pieces stand for raw bytes; the bytes of the whole sequence are then decoded as UTF-8,
 * so multi-byte characters split over byte tokens come out whole.
 *
 * Browser-safe: no node: imports.
 */
import type { Tokenizer } from './tokenizer';

const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
const BYTE_OFFSET = 3;
const MIN_VOCAB = BYTE_OFFSET + 256;

/** Bytes as a "binary string" (one char per byte) so pieces can be Map keys and concatenated. */
function bytesToBinary(bytes: Uint8Array): string {
  // In chunks (not a character at a time): a hostile multi-MB piece must not take seconds.
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  return s;
}

function hex2(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0');
}

interface Node {
  id: number;
  /** Position of the node's first code point in the original sequence (left-to-right order). */
  pos: number;
  prev: Node | null;
  next: Node | null;
  alive: boolean;
  version: number;
}

interface Candidate {
  score: number;
  pos: number;
  mergedId: number;
  left: Node;
  leftVersion: number;
  right: Node;
  rightVersion: number;
}

/** Binary max-heap on (score desc, pos asc): the pair run.c would pick first. */
class CandidateHeap {
  private items: Candidate[] = [];
  get size(): number {
    return this.items.length;
  }
  private better(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.pos < b.pos);
  }
  push(c: Candidate): void {
    const items = this.items;
    items.push(c);
    let i = items.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(items[i]!, items[p]!)) break;
      [items[i], items[p]] = [items[p]!, items[i]!];
      i = p;
    }
  }
  pop(): Candidate | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && this.better(items[l]!, items[best]!)) best = l;
        if (r < items.length && this.better(items[r]!, items[best]!)) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best]!, items[i]!];
        i = best;
      }
    }
    return top;
  }
}

class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId = BOS_ID;
  readonly eosTokenId = EOS_ID;
  readonly padTokenId = null;
  readonly specialTokens: Record<string, string>;
  readonly chatTemplate = null;
  readonly maxTokenLength: number;

  /** Piece bytes as binary strings, by id. */
  private readonly pieces: string[];
  private readonly scores: Float32Array;
  /** Binary piece -> lowest id with that piece. */
  private readonly lookup = new Map<string, number>();
  /** Display strings, by id. */
  private readonly display: string[];
  /** Bytes each id contributes when decoded (before the after-BOS space rule). */
  private readonly decodeBytes: Uint8Array[];
  private readonly encoder = new TextEncoder();

  constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.scores = scores;
    this.pieces = pieces.map(bytesToBinary);
    this.pieces.forEach((p, id) => {
      if (!this.lookup.has(p)) this.lookup.set(p, id);
    });
    const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
    this.display = pieces.map((bytes, id) => {
      const text = lossy.decode(bytes);
      // llama2.c's export writes BOS/EOS as "\n<s>\n" / "\n</s>\n"; show them as "<s>" / "</s>".
      return id <= EOS_ID ? text.trim() : text;
    });
    this.decodeBytes = pieces.map((bytes) => {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(bytesToBinary(bytes));
      return m ? Uint8Array.of(parseInt(m[1]!, 16)) : bytes;
    });
    this.specialTokens = {
      unk_token: this.display[UNK_ID]!,
      bos_token: this.display[BOS_ID]!,
      eos_token: this.display[EOS_ID]!,
    };
  }

  encode(text: string, opts: { addBos?: boolean; addEos?: boolean } = {}): number[] {
    const addBos = opts.addBos ?? true;
    const addEos = opts.addEos ?? false;
    const out: number[] = [];
    if (addBos) out.push(BOS_ID);
    if (text.length > 0) {
      const ids: number[] = [];
      // Dummy prefix, as SentencePiece's add_dummy_prefix (run.c looks up " ").
      const space = this.lookup.get(' ');
      ids.push(space ?? BYTE_OFFSET + 0x20);
      const bytes = this.encoder.encode(text);
      let start = 0;
      for (let i = 0; i < bytes.length; i++) {
        // Group a byte with its following UTF-8 continuation bytes (at most 4 bytes), as run.c does.
        const next = i + 1 < bytes.length ? bytes[i + 1]! : 0;
        if ((next & 0xc0) === 0x80 && i + 1 - start < 4) continue;
        const cp = bytes.subarray(start, i + 1);
        const id = this.lookup.get(bytesToBinary(cp));
        if (id !== undefined) ids.push(id);
        else for (const b of cp) ids.push(b + BYTE_OFFSET);
        start = i + 1;
      }
      for (const id of this.merge(ids)) out.push(id); // no spread: texts can be long
    }
    if (addEos) out.push(EOS_ID);
    return out;
  }

  /** Greedy highest-score merges, leftmost first on ties (run.c's loop). */
  private merge(ids: number[]): number[] {
    if (ids.length < 2) return ids;
    const heap = new CandidateHeap();
    const nodes: Node[] = ids.map((id, pos) => ({ id, pos, prev: null, next: null, alive: true, version: 0 }));
    for (let i = 0; i < nodes.length; i++) {
      nodes[i]!.prev = nodes[i - 1] ?? null;
      nodes[i]!.next = nodes[i + 1] ?? null;
    }
    const consider = (left: Node | null): void => {
      if (!left || !left.next) return;
      const right = left.next;
      const merged = this.lookup.get(this.pieces[left.id]! + this.pieces[right.id]!);
      if (merged === undefined) return;
      const score = this.scores[merged]!;
      // run.c starts from best_score = -1e10 and needs a strictly greater score (so NaN never merges).
      if (!(score > -1e10)) return;
      heap.push({
        score,
        pos: left.pos,
        mergedId: merged,
        left,
        leftVersion: left.version,
        right,
        rightVersion: right.version,
      });
    };
    for (const n of nodes) consider(n);
    while (heap.size > 0) {
      const c = heap.pop()!;
      const { left, right } = c;
      if (!left.alive || !right.alive || left.next !== right) continue;
      if (left.version !== c.leftVersion || right.version !== c.rightVersion) continue;
      left.id = c.mergedId;
      left.version++;
      right.alive = false;
      left.next = right.next;
      if (right.next) right.next.prev = left;
      consider(left.prev);
      consider(left);
    }
    const out: number[] = [];
    for (let n: Node | null = nodes[0]!; n; n = n.next) out.push(n.id);
    return out;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    // SentencePiece's decode drops control tokens, and run.c never prints the BOS it starts from,
    // so skipping is the default here; skipSpecialTokens: false renders them as "<s>" / "</s>" / "<unk>".
    const skip = opts.skipSpecialTokens ?? true;
    const chunks: Uint8Array[] = [];
    let total = 0;
    let prev = -1;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`llama2.c tokenizer: token id ${id} out of range [0, ${this.vocabSize})`);
      }
      let bytes: Uint8Array;
      if (id <= EOS_ID) {
        bytes = skip ? new Uint8Array(0) : this.encoder.encode(this.display[id]!);
      } else {
        bytes = this.decodeBytes[id]!;
        // Following BOS, SentencePiece strips the leading space (run.c checks the raw piece).
        if (prev === BOS_ID && this.pieces[id]!.charCodeAt(0) === 0x20) bytes = bytes.subarray(1);
      }
      chunks.push(bytes);
      total += bytes.length;
      prev = id;
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all);
  }

  idToToken(id: number): string | undefined {
    return this.display[id];
  }
}

/**
 * Parse a llama2.c tokenizer.bin. `vocabSize` (from the model header), when given, must equal the
 * number of tokens in the file.
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, fileName: string, vocabSize?: number): Tokenizer {
  const v = readLlama2cVocab(bytes, fileName, vocabSize);
  return new Llama2cTokenizer(v.pieces, v.scores, v.maxTokenLength);
}

/** A llama2.c tokenizer.bin's pieces (raw bytes, by id) and scores, checked as parseLlama2cTokenizer checks them. */
export interface Llama2cVocab {
  pieces: Uint8Array[];
  scores: Float32Array;
  maxTokenLength: number;
}

/** Read and check a llama2.c tokenizer.bin (see parseLlama2cTokenizer). */
export function readLlama2cVocab(bytes: Uint8Array, fileName: string, vocabSize?: number): Llama2cVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  if (n < 4) {
    throw new Error(
      `${fileName}: truncated llama2.c tokenizer: expected at least 4 bytes (int32 max_token_length), got ${n}`,
    );
  }
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) {
    throw new Error(
      `${fileName}: invalid llama2.c tokenizer: max_token_length is ${maxTokenLength}, expected a positive int32`,
    );
  }
  if (vocabSize !== undefined && (!Number.isInteger(vocabSize) || vocabSize <= 0)) {
    throw new Error(`${fileName}: expected vocabSize to be a positive integer, got ${vocabSize}`);
  }
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < n && (vocabSize === undefined || pieces.length < vocabSize)) {
    const index = pieces.length;
    if (off + 8 > n) {
      throw new Error(
        `${fileName}: truncated at token ${index}: expected 8 header bytes (float32 score, int32 length) at offset ${off}, ` +
          `only ${n - off} remain`,
      );
    }
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0) {
      throw new Error(`${fileName}: token ${index} has negative length ${len} (at offset ${off - 4})`);
    }
    if (off + len > n) {
      throw new Error(
        `${fileName}: token ${index} length ${len} runs past the end of the file: expected ${len} bytes at offset ${off}, ` +
          `only ${n - off} remain`,
      );
    }
    pieces.push(bytes.slice(off, off + len));
    scores.push(score);
    off += len;
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    throw new Error(`${fileName}: wrong vocab count: expected ${vocabSize} tokens, the file holds ${pieces.length}`);
  }
  if (off !== n) {
    // Only reachable when vocabSize stopped the loop early.
    throw new Error(
      `${fileName}: wrong vocab count: expected ${vocabSize} tokens, but ${n - off} bytes remain after token ${pieces.length - 1}`,
    );
  }
  if (pieces.length < MIN_VOCAB) {
    throw new Error(
      `${fileName}: wrong vocab count: expected at least ${MIN_VOCAB} tokens (<unk>, <s>, </s> and 256 byte pieces), got ${pieces.length}`,
    );
  }
  // llama2.c hard-codes byte fallback as id = byte + 3: check the file agrees.
  for (let b = 0; b < 256; b++) {
    const id = b + BYTE_OFFSET;
    const expected = `<0x${hex2(b)}>`;
    const actual = bytesToBinary(pieces[id]!);
    if (actual !== expected) {
      throw new Error(`${fileName}: token ${id}: expected byte piece ${expected}, got ${JSON.stringify(actual)}`);
    }
  }
  return { pieces, scores: Float32Array.from(scores), maxTokenLength };
}
