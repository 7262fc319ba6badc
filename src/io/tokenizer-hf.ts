/**
 * Hugging Face tokenizer.json (+ optional tokenizer_config.json) via @huggingface/tokenizers.
 *
 * - Special tokens: bos/eos/pad/unk from tokenizer_config.json (strings or AddedToken objects
 *   {content}); when the config does not mention a role, fall back to the post-processor's template,
 *   the model's unk_token, and well-known names among tokenizer.json's added_tokens.
 * - encode(): by default the tokenizer's own post-processor decides (Llama 2 templates add <s>,
 *   byte-level GPT-2 / SmolLM2 / Qwen2 add nothing; Llama-class configs may override with
 *   add_bos_token / add_eos_token, as transformers' LlamaTokenizerFast does). addBos / addEos
 *   override explicitly. A BOS is never doubled: if the text itself starts with the BOS token
 *   (e.g. a rendered chat template), no second one is prepended.
 * - decode(): exact (no clean_up_tokenization_spaces unless the config asks for it).
 *
 * Browser-safe: no node: imports.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { Tokenizer } from './tokenizer';
import { preview } from '../util/preview';
import { checkRegexCost } from '../util/regex-cost';

type Json = Record<string, unknown>;

const CONFIG_FILE = 'tokenizer_config.json';
const ROLES = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;
type Role = (typeof ROLES)[number];
const EXTRA_ROLES = ['sep_token', 'cls_token', 'mask_token'] as const;

/** Well-known contents by role, used only when neither the config nor the template says. */
const KNOWN_NAMES: Record<Role, string[]> = {
  bos_token: ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '<|endoftext|>'],
  eos_token: ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>'],
  pad_token: ['<pad>', '<|pad|>', '[PAD]', '<|padding|>'],
  unk_token: ['<unk>', '[UNK]', '<|unk|>'],
};

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'object' ? 'an object' : `${typeof x} ${preview(x)}`;
}

/** The list a "Sequence" holds, per component. */
const SEQUENCE_LISTS = {
  normalizer: 'normalizers',
  pre_tokenizer: 'pretokenizers',
  post_processor: 'processors',
  decoder: 'decoders',
} as const;
const MAX_SEQUENCE_DEPTH = 32;
/** Components in one normalizer / pre-tokenizer / post-processor / decoder, Sequences included (real files: < 10). */
const MAX_COMPONENTS = 256;

/** Every regular expression pattern ({"Regex": …}) of a component tree, with its JSON path, timed for backtracking. */
function checkPatterns(v: unknown, path: string, listKey: string, file: string): number {
  if (!isObject(v)) return 0;
  let count = 1;
  const pattern = v.pattern;
  if (isObject(pattern) && typeof pattern.Regex === 'string') {
    checkRegexCost(pattern.Regex, 'gu', `${file}: "${path}.pattern.Regex"`);
  }
  const list = v.type === 'Sequence' ? v[listKey] : undefined;
  if (Array.isArray(list))
    list.forEach((c, i) => (count += checkPatterns(c, `${path}.${listKey}[${i}]`, listKey, file)));
  return count;
}
/**
 * How much a text may grow through a normalizer's Replace steps together: each Replace can multiply the text's
 * length by content length / shortest match (a Regex match is taken as 1 character), and a chain of them multiplies
 * (300 × "a" → "aa" doubles 300 times, and the library cannot be interrupted). Real files: Replace " " → "▁" (1×).
 */
const MAX_REPLACE_GROWTH = 64;

function replaceGrowth(v: unknown, listKey: string): number {
  if (!isObject(v)) return 1;
  let g = 1;
  if (v.type === 'Replace' && typeof v.content === 'string' && isObject(v.pattern)) {
    const p = v.pattern;
    const minLen = typeof p.String === 'string' ? Math.max(1, p.String.length) : 1;
    g = Math.max(1, v.content.length / minLen);
  }
  const list = v.type === 'Sequence' ? v[listKey] : undefined;
  if (Array.isArray(list)) for (const c of list) g *= replaceGrowth(c, listKey);
  return g;
}

/**
 * Longest added token / Unigram piece accepted. The library indexes them in a trie with one object per
 * character (~200 bytes each): a 6 MiB added token took 8 s and 1 GiB. Real ones are a few dozen characters.
 */
const MAX_TRIE_TOKEN = 1024;

/** Validate tokenizer.json's structure and fill in optional top-level keys. */
function checkTokenizerJson(json: unknown, file: string): Json {
  const fail = (what: string): never => {
    throw new Error(`${file}: ${what}`);
  };
  if (!isObject(json)) fail(`expected a JSON object at the top level, got ${describe(json)}`);
  const obj = json as Json;
  const model = obj.model;
  if (!isObject(model)) fail(`expected "model" to be an object, got ${describe(model)}`);
  const m = model as Json;
  const type = m.type;
  const supported = ['BPE', 'WordPiece', 'Unigram'];
  if (type !== undefined && !supported.includes(type as string)) {
    fail(
      `expected "model.type" to be one of ${supported.join(', ')} (supported by @huggingface/tokenizers), got ${describe(type)}`,
    );
  }
  if (type === undefined && m.vocab === undefined)
    fail('expected "model" to have a "type" (BPE, WordPiece, Unigram) and a "vocab"');
  // The library keeps tokens in an array indexed by id and walks it up to the largest id (get_vocab), so ids
  // far beyond the number of tokens (e.g. 1e9 in a 300-token file) would cost that many steps: rejected below.
  let count = 0;
  let maxId = -1;
  let maxWhere = '';
  const seeId = (id: number, where: string) => {
    count++;
    if (id > maxId) [maxId, maxWhere] = [id, where];
  };
  // Without a "type" the library infers the model from the vocab's shape: check it the same way.
  const unigram = type === 'Unigram' || (type === undefined && Array.isArray(m.vocab));
  if (type === 'BPE' || type === 'WordPiece' || (type === undefined && !unigram)) {
    if (!isObject(m.vocab))
      fail(`expected "model.vocab" to be an object mapping token -> id, got ${describe(m.vocab)}`);
    for (const [tok, id] of Object.entries(m.vocab as Json)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        fail(`expected "model.vocab" ids to be non-negative integers, got ${describe(id)} for ${preview(tok)}`);
      }
      seeId(id as number, `"model.vocab" token ${preview(tok)}`);
    }
  }
  if (type === 'BPE') {
    if (!Array.isArray(m.merges)) fail(`expected "model.merges" to be an array, got ${describe(m.merges)}`);
    (m.merges as unknown[]).forEach((mg, i) => {
      const ok =
        (typeof mg === 'string' && mg.includes(' ')) ||
        (Array.isArray(mg) && mg.length === 2 && mg.every((p) => typeof p === 'string'));
      if (!ok) fail(`expected "model.merges[${i}]" to be "a b" or ["a", "b"], got ${describe(mg)}`);
    });
  }
  if (unigram) {
    if (!Array.isArray(m.vocab))
      fail(`expected "model.vocab" to be an array of [piece, score], got ${describe(m.vocab)}`);
    (m.vocab as unknown[]).forEach((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') {
        fail(`expected "model.vocab[${i}]" to be [piece, score], got ${describe(e)}`);
      }
      const piece = (e as [string, number])[0];
      if (piece.length > MAX_TRIE_TOKEN)
        fail(`"model.vocab[${i}]" is a piece of ${piece.length} characters (at most ${MAX_TRIE_TOKEN} supported)`);
      seeId(i, `"model.vocab[${i}]"`);
    });
  }
  const added = obj.added_tokens ?? [];
  if (!Array.isArray(added)) fail(`expected "added_tokens" to be an array, got ${describe(added)}`);
  (added as unknown[]).forEach((t, i) => {
    if (!isObject(t) || !Number.isInteger(t.id) || (t.id as number) < 0 || typeof t.content !== 'string') {
      fail(`expected "added_tokens[${i}]" to be {id: integer, content: string, ...}, got ${preview(t)}`);
    }
    const length = ((t as Json).content as string).length;
    if (length > MAX_TRIE_TOKEN)
      fail(`"added_tokens[${i}]" has content of ${length} characters (at most ${MAX_TRIE_TOKEN} supported)`);
    seeId((t as Json).id as number, `"added_tokens[${i}]"`);
  });
  const idLimit = 2 * count + 65536;
  if (maxId >= idLimit) {
    fail(
      `${maxWhere} has id ${maxId}, but the file defines only ${count} tokens (ids must be below ${idLimit}: a sparse id space is not supported)`,
    );
  }
  const out: Json = { ...obj, added_tokens: added };
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const) {
    const v = obj[key] ?? null;
    if (v !== null && (!isObject(v) || typeof v.type !== 'string')) {
      fail(`expected "${key}" to be null or an object with a string "type", got ${describe(v)}`);
    }
    // The library builds nested Sequences recursively: bound the depth (real files nest one or two levels).
    const listKey = SEQUENCE_LISTS[key];
    let level: unknown[] = [v];
    for (let depth = 0; level.length > 0; depth++) {
      if (depth > MAX_SEQUENCE_DEPTH) fail(`"${key}" nests "Sequence" more than ${MAX_SEQUENCE_DEPTH} levels deep`);
      const next: unknown[] = [];
      for (const c of level) {
        const list = isObject(c) && c.type === 'Sequence' ? c[listKey] : undefined;
        if (Array.isArray(list)) for (const x of list) next.push(x);
      }
      level = next;
    }
    const components = checkPatterns(v, key, listKey, file);
    const growth = replaceGrowth(v, listKey);
    if (growth > MAX_REPLACE_GROWTH)
      fail(
        `"${key}" has Replace steps that together can make a text ${growth > 1e15 ? 'astronomically' : `${Math.round(growth)}×`} longer (at most ${MAX_REPLACE_GROWTH}× is supported): each one's content is longer than what it replaces`,
      );
    if (components > MAX_COMPONENTS)
      fail(`"${key}" has ${components} components (at most ${MAX_COMPONENTS} supported)`);
    out[key] = v;
  }
  return out;
}

/** A special-token value in tokenizer_config.json: string, AddedToken object {content}, or null. */
function tokenContent(value: unknown, key: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  throw new Error(
    `${CONFIG_FILE}: expected "${key}" to be a string, null, or an AddedToken object {content: string}, got ${describe(value)}`,
  );
}

function pickChatTemplate(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  const bad = (): never => {
    throw new Error(
      `${CONFIG_FILE}: expected "chat_template" to be a string or a list of {name, template}, got ${describe(value)}`,
    );
  };
  let named: [string, string][] = [];
  if (Array.isArray(value)) {
    named = value.map((e) => {
      if (!isObject(e) || typeof e.name !== 'string' || typeof e.template !== 'string') bad();
      const o = e as Json;
      return [o.name as string, o.template as string];
    });
  } else if (isObject(value)) {
    named = Object.entries(value).map(([k, v]) => (typeof v === 'string' ? [k, v] : bad()));
  } else {
    bad();
  }
  const def = named.find(([name]) => name === 'default');
  // No 'default': transformers would refuse to choose; the first named template is the best guess.
  return (def ?? named[0])?.[1] ?? null;
}

interface Affixes {
  prefix: string[];
  suffix: string[];
}

/** The special tokens the post-processor puts before / after a single sequence. */
function postProcessorAffixes(pp: unknown, file: string): Affixes {
  if (!isObject(pp)) return { prefix: [], suffix: [] };
  const fail = (what: string): never => {
    throw new Error(`${file}: post_processor (${String(pp.type)}): ${what}`);
  };
  switch (pp.type) {
    case 'TemplateProcessing': {
      if (!Array.isArray(pp.single)) fail(`expected "single" to be an array, got ${describe(pp.single)}`);
      const prefix: string[] = [];
      const suffix: string[] = [];
      let seenA = false;
      for (const item of pp.single as unknown[]) {
        if (isObject(item) && isObject(item.SpecialToken) && typeof item.SpecialToken.id === 'string') {
          (seenA ? suffix : prefix).push(item.SpecialToken.id);
        } else if (isObject(item) && isObject(item.Sequence)) {
          seenA = true;
        } else {
          fail(`expected "single" items to be {SpecialToken: {id}} or {Sequence: {id}}, got ${preview(item)}`);
        }
      }
      return { prefix, suffix };
    }
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const tok = (k: string): string => {
        const v = pp[k];
        if (!Array.isArray(v) || typeof v[0] !== 'string')
          fail(`expected "${k}" to be [token, id], got ${describe(v)}`);
        return (v as unknown[])[0] as string;
      };
      return { prefix: [tok('cls')], suffix: [tok('sep')] };
    }
    case 'Sequence': {
      if (!Array.isArray(pp.processors)) fail(`expected "processors" to be an array, got ${describe(pp.processors)}`);
      // Each processor wraps the previous one's output.
      let prefix: string[] = [];
      let suffix: string[] = [];
      for (const sub of pp.processors as unknown[]) {
        const a = postProcessorAffixes(sub, file);
        prefix = [...a.prefix, ...prefix];
        suffix = [...suffix, ...a.suffix];
      }
      return { prefix, suffix };
    }
    default:
      return { prefix: [], suffix: [] };
  }
}

class HfTokenizerWrapper implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly specialTokens: Record<string, string>;
  readonly chatTemplate: string | null;

  private readonly tok: HfTokenizer;
  /** Ids the post-processor adds around a single sequence. */
  private readonly prefixIds: number[];
  private readonly suffixIds: number[];
  private readonly defaultBos: boolean;
  private readonly defaultEos: boolean;
  private readonly specialIds: Set<number>;
  private readonly cleanUpSpaces: boolean;

  constructor(json: unknown, config: Json | null, file: string) {
    const tj = checkTokenizerJson(json, file);
    if (config !== null && !isObject(config)) {
      throw new Error(`${CONFIG_FILE}: expected a JSON object at the top level, got ${describe(config)}`);
    }
    const cfg: Json = config ?? {};

    // Special tokens named by the config (null = explicitly none; undefined = not mentioned).
    const fromConfig: Partial<Record<string, string | null>> = {};
    for (const key of [...ROLES, ...EXTRA_ROLES]) {
      if (key in cfg) fromConfig[key] = tokenContent(cfg[key], key);
    }
    const extra = cfg.additional_special_tokens;
    if (extra !== undefined && extra !== null && !Array.isArray(extra)) {
      throw new Error(`${CONFIG_FILE}: expected "additional_special_tokens" to be a list, got ${describe(extra)}`);
    }
    const additional = ((extra as unknown[] | null | undefined) ?? []).map(
      (t, i) => tokenContent(t, `additional_special_tokens[${i}]`) ?? '',
    );

    // The library reads a few config keys; hand it plain strings where it expects them. Not the additional
    // special tokens: it only uses them to skip tokens in decode, which decode() below already does by id
    // (specialIds), and it checks each against a list of the others (quadratic: 100k of them took seconds).
    const libConfig: Json = { ...cfg, additional_special_tokens: [] };
    for (const [k, v] of Object.entries(fromConfig)) libConfig[k] = v ?? undefined;
    try {
      this.tok = new HfTokenizer(tj, libConfig);
    } catch (e) {
      throw new Error(`${file}: @huggingface/tokenizers could not load it: ${(e as Error).message}`, { cause: e });
    }

    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const affixes = postProcessorAffixes(tj.post_processor, file);
    const idOf = (content: string, where: string): number => {
      const id = this.tok.token_to_id(content);
      if (id === undefined)
        throw new Error(`${where}: special token ${preview(content)} is not in the vocabulary of ${file}`);
      return id;
    };
    this.prefixIds = affixes.prefix.map((t) => idOf(t, `${file} post_processor`));
    this.suffixIds = affixes.suffix.map((t) => idOf(t, `${file} post_processor`));

    const addedContents = new Set((tj.added_tokens as Json[]).map((t) => t.content as string));
    const modelUnk = (tj.model as Json).unk_token;
    const fallback = (role: Role): string | null => {
      if (role === 'bos_token' && affixes.prefix.length === 1) return affixes.prefix[0]!;
      if (role === 'eos_token' && affixes.suffix.length === 1 && affixes.prefix.length <= 1) return affixes.suffix[0]!;
      if (role === 'unk_token' && typeof modelUnk === 'string' && this.tok.token_to_id(modelUnk) !== undefined)
        return modelUnk;
      return KNOWN_NAMES[role].find((n) => addedContents.has(n)) ?? null;
    };

    const specialTokens: Record<string, string> = {};
    const roleIds: Partial<Record<Role, number | null>> = {};
    for (const role of ROLES) {
      const content = role in fromConfig ? fromConfig[role]! : fallback(role);
      roleIds[role] = content === null ? null : idOf(content, role in fromConfig ? `${CONFIG_FILE} "${role}"` : file);
      if (content !== null) specialTokens[role] = content;
    }
    for (const key of EXTRA_ROLES) {
      const content = fromConfig[key];
      if (content !== undefined && content !== null) specialTokens[key] = content;
    }
    this.specialTokens = specialTokens;
    this.bosTokenId = roleIds.bos_token ?? null;
    this.eosTokenId = roleIds.eos_token ?? null;
    this.padTokenId = roleIds.pad_token ?? null;
    this.unkTokenId = roleIds.unk_token ?? null;

    this.chatTemplate = pickChatTemplate(cfg.chat_template);

    // Defaults: what the post-processor does; Llama-class configs override like LlamaTokenizerFast.
    let defaultBos = this.bosTokenId !== null && this.prefixIds.includes(this.bosTokenId);
    let defaultEos = this.eosTokenId !== null && this.suffixIds.includes(this.eosTokenId);
    const cls = typeof cfg.tokenizer_class === 'string' ? cfg.tokenizer_class : '';
    if (/^(Llama|CodeLlama|Gemma)Tokenizer(Fast)?$/.test(cls)) {
      if (typeof cfg.add_bos_token === 'boolean') defaultBos = cfg.add_bos_token;
      if (typeof cfg.add_eos_token === 'boolean') defaultEos = cfg.add_eos_token;
    }
    this.defaultBos = defaultBos;
    this.defaultEos = defaultEos;

    this.specialIds = new Set<number>();
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) this.specialIds.add(id);
    for (const id of [this.bosTokenId, this.eosTokenId, this.padTokenId, this.unkTokenId]) {
      if (id !== null) this.specialIds.add(id);
    }
    for (const t of additional) {
      const id = t === '' ? undefined : this.tok.token_to_id(t);
      if (id !== undefined) this.specialIds.add(id);
    }
    this.cleanUpSpaces = cfg.clean_up_tokenization_spaces === true;
  }

  encode(text: string, opts: { addBos?: boolean; addEos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`encode: expected a string, got ${describe(text)}`);
    const body = text.length === 0 ? [] : this.tok.encode(text, { add_special_tokens: false }).ids;
    if (body.some((id) => typeof id !== 'number')) {
      throw new Error(
        `encode: the tokenizer produced a token with no id (no unk_token?) for ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
    const bos = this.bosTokenId;
    const eos = this.eosTokenId;
    const wantBos = (opts.addBos ?? this.defaultBos) && bos !== null;
    const wantEos = (opts.addEos ?? this.defaultEos) && eos !== null;
    const prefix = this.prefixIds.filter((id) => id !== bos);
    const suffix = this.suffixIds.filter((id) => id !== eos);
    // Never double BOS: a text that starts with the BOS token already has it.
    if (wantBos && !(prefix.length === 0 && body[0] === bos)) prefix.unshift(bos!);
    if (wantEos) suffix.push(eos!);
    return [...prefix, ...body, ...suffix];
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new RangeError(`decode: token id ${id} is not a non-negative integer`);
    }
    const skip = opts.skipSpecialTokens ?? false;
    // Ids with no token (e.g. a model's padded embedding rows) decode to nothing, as in HF tokenizers.
    const kept = ids.filter((id) => this.tok.id_to_token(id) !== undefined && !(skip && this.specialIds.has(id)));
    if (kept.length === 0) return '';
    return this.tok.decode(kept, { skip_special_tokens: skip, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Token string -> id (vocabulary or added tokens). */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}

/**
 * Load a tokenizer.json (already JSON-parsed) with its tokenizer_config.json (or null).
 * Errors name `fileName` (or tokenizer_config.json) and what was expected.
 */
export function loadHfTokenizer(
  tokenizerJson: unknown,
  tokenizerConfig: Record<string, unknown> | null,
  fileName = 'tokenizer.json',
): Tokenizer & { readonly unkTokenId: number | null; tokenToId(token: string): number | undefined } {
  return new HfTokenizerWrapper(tokenizerJson, tokenizerConfig, fileName);
}
