/**
 * When and how the output projection and the loss go over the vocabulary in chunks (./lm-head.ts), as plain
 * numbers: the engine decides with these and the memory estimate (no TensorFlow.js there) predicts with them.
 */

/** Logit elements of one chunk ([tokens, rows]) the chunked paths aim for: 4M floats = 16 MB. */
export const CHUNK_ELEMENTS = 4 * 1024 * 1024;

/** Logit elements of a batch above which the loss runs over vocabulary chunks (64M floats = 256 MB). */
export const CHUNKED_LOSS_ELEMENTS = 64 * 1024 * 1024;

/** Vocabulary rows per chunk for `tokens` positions: CHUNK_ELEMENTS / tokens, at least 256, at most the vocabulary. */
export function vocabChunk(tokens: number, vocab: number, elements = CHUNK_ELEMENTS): number {
  return Math.min(vocab, Math.max(256, Math.floor(elements / Math.max(1, tokens))));
}

/** Whether the loss of `tokens` positions runs over vocabulary chunks (a compact LM head always does). */
export function chunkedLoss(tokens: number, vocab: number, compactHead: boolean): boolean {
  return compactHead || tokens * vocab > CHUNKED_LOSS_ELEMENTS;
}
