/**
 * A small deterministic tokenizer implementing the project's Tokenizer interface, for data-pipeline tests.
 *
 * ids: 0 <unk>, 1 <s>, 2 </s>, 3 <pad>, then extra special tokens, then multi-character pieces (greedy
 * longest match), then printable ASCII + "\n" + "\t" one per id, then 256 byte-fallback pieces <0xNN> for
 * everything else (UTF-8 bytes, decoded with U+FFFD for incomplete sequences like real byte fallback).
 *
 * Options imitate real tokenizers: `dummyPrefix` (SentencePiece: encode prepends a space, decode drops the
 * first piece's leading space), `recognizeSpecials` (HF added tokens: special strings in text → their ids).
 */
import type { Tokenizer } from '../../src/io/tokenizer';

export interface ToyOptions {
  pieces?: string[];
  extraSpecials?: string[];
  dummyPrefix?: boolean;
  recognizeSpecials?: boolean;
  chatTemplate?: string | null;
  /** Name the EOS differently, e.g. '<|im_end|>' (it stays id 2). */
  eosText?: string;
}

export class ToyTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId = 1;
  readonly eosTokenId = 2;
  readonly padTokenId = 3;
  readonly specialTokens: Record<string, string>;
  readonly chatTemplate: string | null;
  private readonly vocab: string[] = [];
  private readonly index = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  private readonly specialStrings: string[];
  readonly byteBase: number;
  private readonly maxPiece: number;

  constructor(private readonly opts: ToyOptions = {}) {
    const eos = opts.eosText ?? '</s>';
    const specials = ['<unk>', '<s>', eos, '<pad>', ...(opts.extraSpecials ?? [])];
    for (const s of specials) this.add(s, true);
    for (const p of opts.pieces ?? []) this.add(p, false);
    for (let c = 32; c < 127; c++) this.add(String.fromCharCode(c), false);
    this.add('\n', false);
    this.add('\t', false);
    this.byteBase = this.vocab.length;
    for (let b = 0; b < 256; b++) this.vocab.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    this.vocabSize = this.vocab.length;
    this.specialTokens = { bos_token: '<s>', eos_token: eos, unk_token: '<unk>', pad_token: '<pad>' };
    this.chatTemplate = opts.chatTemplate ?? null;
    this.specialStrings = [...specials].sort((a, b) => b.length - a.length);
    this.maxPiece = Math.max(...[...this.index.keys()].map((k) => k.length));
  }

  private add(piece: string, special: boolean): void {
    if (this.index.has(piece)) return;
    const id = this.vocab.length;
    this.vocab.push(piece);
    this.index.set(piece, id);
    if (special) this.specialIds.add(id);
  }

  idOf(piece: string): number {
    const id = this.index.get(piece);
    if (id === undefined) throw new Error(`no piece ${JSON.stringify(piece)}`);
    return id;
  }

  private encodePlain(text: string, out: number[]): void {
    let i = 0;
    while (i < text.length) {
      let matched = 0;
      for (let len = Math.min(this.maxPiece, text.length - i); len >= 1; len--) {
        const id = this.index.get(text.slice(i, i + len));
        if (id !== undefined && !this.specialIds.has(id)) {
          out.push(id);
          matched = len;
          break;
        }
      }
      if (matched) {
        i += matched;
        continue;
      }
      const cp = text.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of new TextEncoder().encode(ch)) out.push(this.byteBase + b);
      i += ch.length;
    }
  }

  encode(text: string, opts: { addBos?: boolean; addEos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.addBos ?? true) out.push(this.bosTokenId);
    if (this.opts.dummyPrefix && text.length > 0) text = ' ' + text;
    if (this.opts.recognizeSpecials) {
      let last = 0;
      let i = 0;
      outer: while (i < text.length) {
        for (const s of this.specialStrings) {
          if (text.startsWith(s, i)) {
            this.encodePlain(text.slice(last, i), out);
            out.push(this.index.get(s)!);
            i += s.length;
            last = i;
            continue outer;
          }
        }
        i++;
      }
      this.encodePlain(text.slice(last), out);
    } else this.encodePlain(text, out);
    if (opts.addEos) out.push(this.eosTokenId);
    return out;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    let out = '';
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) out += new TextDecoder().decode(Uint8Array.from(bytes));
      bytes = [];
    };
    let first = true;
    for (const id of ids) {
      if (id >= this.byteBase && id < this.byteBase + 256) {
        bytes.push(id - this.byteBase);
        first = false;
        continue;
      }
      flush();
      if (this.specialIds.has(id)) {
        if (!opts.skipSpecialTokens) out += this.vocab[id];
        if (id === this.bosTokenId) first = true;
        continue;
      }
      let piece = this.vocab[id] ?? '';
      if (this.opts.dummyPrefix && first && piece.startsWith(' ')) piece = piece.slice(1);
      first = false;
      out += piece;
    }
    flush();
    return out;
  }

  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }
}
