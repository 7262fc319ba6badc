/**
 * When and how the output projection and the loss go over the vocabulary in chunks (./lm-head.ts), as plain
 * numbers: the engine decides with these and the memory estimate (no TensorFlow.js there) predicts with them.
 */

/** Logit elements of one chunk ([tokens, rows]) the chunked paths aim for: 4M floats = 16 MB. */
export const CHUNK_ELEMENTS = 4 * 1024 * 1024;

/**
 * Vocabularies from which the loss always runs over chunks: with 128k+ tokens (Qwen's 151,936, Gemma 3's 262,144) the
 * logits of a single 512-token row and their softmax copies pass a gigabyte. Smaller vocabularies keep the one-pass
 * loss, which is faster on wasm (one LM-head matmul less in the backward pass).
 */
export const CHUNKED_LOSS_VOCAB = 100_000;

/** Vocabulary rows per chunk for `tokens` positions: CHUNK_ELEMENTS / tokens, at least 256, at most the vocabulary. */
export function vocabChunk(tokens: number, vocab: number, elements = CHUNK_ELEMENTS): number {
  return Math.min(vocab, Math.max(256, Math.floor(elements / Math.max(1, tokens))));
}

/** Whether the loss runs over vocabulary chunks: a big vocabulary, or a compact LM head (never expanded whole). */
export function chunkedLoss(vocab: number, compactHead: boolean): boolean {
  return compactHead || vocab >= CHUNKED_LOSS_VOCAB;
}
