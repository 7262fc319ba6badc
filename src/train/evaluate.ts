/**
 * Generation-based evaluation on held-out examples: greedy decoding from the prompt rendered with the training
 * template (generation prompt only), scored against the reference answer with the metrics of
 * Super-NaturalInstructions (Wang et al. 2022, compute_metrics.py):
 * - answers are normalised as its normalize_answer: lowercase, remove ASCII punctuation (Python's
 *   string.punctuation), collapse whitespace (no article removal, unlike SQuAD);
 * - exact match: normalised prediction == normalised reference;
 * - ROUGE-L F1: longest common subsequence over whitespace tokens of the normalised strings,
 *   P = LCS/|pred|, R = LCS/|ref|, F = 2PR/(P+R) (0 when either side is empty, as rouge_score). SNI's scorer also
 *   Porter-stems English tokens; this implementation does not stem.
 * With several references an example scores its best reference (metric_max_over_ground_truths).
 * Aggregates are percentages (0–100) as SNI reports them; per-example scores are in [0, 1].
 *
 * "Base vs tuned" runs the same prompts with the LoRA adapter detached and then attached.
 *
 * Browser-safe: no node: imports.
 */
import { eosIds, type ModelConfig } from '../engine/config';
import { generate } from '../engine/generate';
import type { CausalLM } from '../engine/model';
import type { Tokenizer } from '../io/tokenizer';
import { isChat, isPromptCompletion, type Example, type Message } from '../data/formats';
import { renderGenerationPrompt, templateTokensOf, type TemplateSpec, type TemplateTokens } from '../data/templates';
import { encodeWithOffsets } from '../data/tokenize';

/** Python's string.punctuation. */
const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** SNI normalize_answer: lowercase, strip punctuation, collapse whitespace. */
export function normalizeAnswer(s: string): string {
  let out = '';
  for (const ch of s.toLowerCase()) if (!PUNCTUATION.has(ch)) out += ch;
  return out.split(/\s+/).filter(Boolean).join(' ');
}

/** 1 when the normalised strings are equal, else 0 (best over references). */
export function exactMatch(prediction: string, references: string | string[]): number {
  const p = normalizeAnswer(prediction);
  return refs(references).some((r) => normalizeAnswer(r) === p) ? 1 : 0;
}

/** Length of the longest common subsequence of two token lists (O(|a|·|b|) time, O(|b|) memory). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** ROUGE-L F1 of the normalised strings over whitespace tokens (best over references). */
export function rougeL(prediction: string, references: string | string[]): number {
  const p = tokens(prediction);
  let best = 0;
  for (const r of refs(references)) {
    const t = tokens(r);
    const lcs = lcsLength(p, t);
    if (lcs === 0) continue;
    const precision = lcs / p.length;
    const recall = lcs / t.length;
    best = Math.max(best, (2 * precision * recall) / (precision + recall));
  }
  return best;
}

function tokens(s: string): string[] {
  const n = normalizeAnswer(s);
  return n === '' ? [] : n.split(' ');
}

function refs(r: string | string[]): string[] {
  return Array.isArray(r) ? r : [r];
}

// ---------------------------------------------------------------------------------------------------------

/** A prompt (all messages before the last assistant turn) and its reference (that turn), or null for text examples. */
export function promptAndReference(ex: Example): { messages: Message[]; reference: string } | null {
  if (isPromptCompletion(ex)) return { messages: [{ role: 'user', content: ex.prompt }], reference: ex.completion };
  if (!isChat(ex)) return null;
  let last = ex.messages.length - 1;
  while (last >= 0 && ex.messages[last].role !== 'assistant') last--;
  if (last < 0) return null;
  return { messages: ex.messages.slice(0, last), reference: ex.messages[last].content };
}

/** Where a generation of a model trained with `eosToken` (TRL eos_token; null = the tokenizer's EOS) ends. */
export interface GenerationStops {
  /** The model's EOS ids (config.json eos_token_id) and the tokenizer's EOS id. */
  eosTokenIds: number[];
  /** An end-of-response string that is not the tokenizer's EOS token, matched as text. */
  stopStrings: string[];
  /** The template tokens with eosToken applied (what training rendered with). */
  tokens: TemplateTokens;
}

export function generationStops(tok: Tokenizer, model: ModelConfig, eosToken?: string | null): GenerationStops {
  const base = templateTokensOf(tok);
  const tokens: TemplateTokens = eosToken ? { ...base, eosToken } : base;
  const eos = new Set<number>(eosIds(model));
  if (tok.eosTokenId !== null) eos.add(tok.eosTokenId);
  const stopStrings = tokens.eosToken && tokens.eosToken !== base.eosToken ? [tokens.eosToken] : [];
  return { eosTokenIds: [...eos], stopStrings, tokens };
}

/** A prompt rendered as training renders it (the template's generation prompt), tokenized as training does. */
export interface TrainedPrompt extends GenerationStops {
  prompt: string;
  ids: number[];
}

/**
 * The generation prompt of `messages` with the training template and end-of-response token (as TRL/LLaMA-Factory
 * render an inference prompt), its ids (BOS by the tokenizer's default, special-token strings as their ids) and
 * where generation stops.
 */
export function renderTrainedPrompt(
  tok: Tokenizer,
  model: ModelConfig,
  messages: Message[],
  template: TemplateSpec,
  eosToken?: string | null,
): TrainedPrompt {
  const stops = generationStops(tok, model, eosToken);
  const prompt = renderGenerationPrompt(messages, template, stops.tokens);
  const ids = encodeWithOffsets(tok, prompt, { limit: 0 }).ids;
  return { ...stops, prompt, ids };
}

export interface GenerationEvalOptions {
  template: TemplateSpec;
  /** End-of-response string the model was trained with (TRL eos_token); default the tokenizer's EOS. */
  eosToken?: string | null;
  /** Default 32. */
  maxNewTokens?: number;
  /** Evaluate at most this many examples (default all). */
  maxExamples?: number;
  /** More strings that end a generation. */
  stopStrings?: string[];
  signal?: { aborted: boolean };
  onProgress?: (done: number, total: number) => void;
}

export interface GenerationEvalExample {
  prompt: string;
  reference: string;
  prediction: string;
  /** 0 or 1. */
  exact_match: number;
  /** [0, 1]. */
  rougeL: number;
  finish_reason: string;
}

export interface GenerationEvalResult {
  /** Percent (0–100) of examples whose normalised prediction equals the reference. */
  exact_match: number;
  /** Mean ROUGE-L F1 in percent (0–100). */
  rougeL: number;
  count: number;
  /** Examples skipped because their prompt does not fit the context with room to generate. */
  skipped: number;
  examples: GenerationEvalExample[];
  runtime_s: number;
}

interface PreparedPrompt {
  prompt: string;
  ids: number[];
  reference: string;
}

function preparePrompts(
  model: CausalLM,
  tok: Tokenizer,
  examples: readonly Example[],
  opts: GenerationEvalOptions,
): { prompts: PreparedPrompt[]; skipped: number } {
  const prompts: PreparedPrompt[] = [];
  let skipped = 0;
  for (const ex of examples.slice(0, opts.maxExamples ?? examples.length)) {
    const pr = promptAndReference(ex);
    if (!pr) continue;
    const { prompt, ids } = renderTrainedPrompt(tok, model.config, pr.messages, opts.template, opts.eosToken);
    if (ids.length === 0 || ids.length >= model.config.max_position_embeddings) {
      skipped++;
      continue;
    }
    prompts.push({ prompt, ids, reference: pr.reference });
  }
  return { prompts, skipped };
}

/** Greedy generation on the prompts with the model as it is (adapter attached or not), scored. */
export async function evaluateGeneration(
  model: CausalLM,
  tok: Tokenizer,
  examples: readonly Example[],
  opts: GenerationEvalOptions,
): Promise<GenerationEvalResult> {
  const t0 = now();
  const { prompts, skipped } = preparePrompts(model, tok, examples, opts);
  const end = generationStops(tok, model.config, opts.eosToken);
  const stops = [...(opts.stopStrings ?? []), ...end.stopStrings];
  const out: GenerationEvalExample[] = [];
  for (const p of prompts) {
    if (opts.signal?.aborted) break;
    const g = await generate(model, p.ids, {
      maxNewTokens: opts.maxNewTokens ?? 32,
      eosTokenIds: end.eosTokenIds,
      stopStrings: stops,
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
      signal: opts.signal,
    });
    const prediction = g.text.trim();
    out.push({
      prompt: p.prompt,
      reference: p.reference,
      prediction,
      exact_match: exactMatch(prediction, p.reference),
      rougeL: rougeL(prediction, p.reference),
      finish_reason: g.finishReason,
    });
    opts.onProgress?.(out.length, prompts.length);
  }
  const n = out.length;
  const mean = (f: (e: GenerationEvalExample) => number) => (n ? (100 * out.reduce((s, e) => s + f(e), 0)) / n : 0);
  return {
    exact_match: mean((e) => e.exact_match),
    rougeL: mean((e) => e.rougeL),
    count: n,
    skipped,
    examples: out,
    runtime_s: (now() - t0) / 1000,
  };
}

export interface BaseVsTuned {
  base: GenerationEvalResult;
  tuned: GenerationEvalResult;
}

/** The same evaluation with the adapter detached (the base model) and attached (the tuned model). */
export async function compareBaseTuned(
  model: CausalLM,
  tok: Tokenizer,
  examples: readonly Example[],
  opts: GenerationEvalOptions,
): Promise<BaseVsTuned> {
  const adapter = model.adapter;
  if (!adapter) throw new Error('compareBaseTuned: the model has no LoRA adapter attached');
  if (adapter.merged) throw new Error('compareBaseTuned: the adapter is merged into the weights; unmerge it first');
  let base: GenerationEvalResult;
  model.adapter = null;
  try {
    base = await evaluateGeneration(model, tok, examples, opts);
  } finally {
    model.adapter = adapter;
  }
  const tuned = await evaluateGeneration(model, tok, examples, opts);
  return { base, tuned };
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());
