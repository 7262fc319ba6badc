/** The tokenizer interface every model uses, whatever file it came from. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Special tokens by role, e.g. { bos_token: '<s>', eos_token: '</s>' } as in tokenizer_config.json. */
  readonly specialTokens: Record<string, string>;
  /** Jinja chat template from tokenizer_config.json, if any. */
  readonly chatTemplate: string | null;
  /** Encode text; addBos prepends BOS when the tokenizer has one (default: as the tokenizer's own post-processor / llama2.c: true). */
  encode(text: string, opts?: { addBos?: boolean; addEos?: boolean }): number[];
  /** Decode ids to text; skipSpecial drops BOS/EOS/pad etc. */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The piece string for one id (for per-token views). */
  idToToken(id: number): string | undefined;
}
