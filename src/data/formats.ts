/**
 * Instruction-dataset parsing: common file formats → one normalised {@link Example} shape.
 *
 * Formats (auto-detected from the records' fields unless `format` is given; `columns` renames fields as
 * LLaMA-Factory's dataset_info.json `columns` does):
 *
 * | format              | record                                                             | becomes |
 * |---------------------|--------------------------------------------------------------------|---------|
 * | `alpaca`            | {instruction, input?, output, system?, history?: [[q, a], ...]}     | messages (history turns first) |
 * | `dolly`             | {instruction, context?, response}                                  | messages |
 * | `prompt_completion` | {prompt, completion} strings (TRL), or lists of messages            | {prompt, completion} / messages |
 * | `messages`          | {messages: [{role, content, weight?}]} (OpenAI / TRL conversational) | messages |
 * | `sharegpt`          | {conversations: [{from, value}], system?}                          | messages (human→user, gpt→assistant) |
 * | `self_instruct`     | {instruction, instances: [{input, output}]}                        | one example per instance |
 * | `qa`                | {question, answer} (GSM8K)                                         | messages |
 * | `text`              | {text} JSONL, or a .txt file split into documents                   | {text} |
 * | `prompts`           | {turns: [...]} questions only (MT-Bench, Vicuna-bench)              | no examples: see below |
 *
 * Containers: JSON array, JSON Lines (.jsonl/.ndjson, also a .json file holding JSON Lines), CSV/TSV with a
 * header row (RFC 4180 quoting), plain text. UTF-8 BOM and CRLF line ends are accepted everywhere.
 *
 * Alpaca-style instruction + input become one user message `instruction + "\n" + input` (as LLaMA-Factory
 * joins them); the two parts are kept on the message (`instruction`, `input`) so the Stanford Alpaca
 * template can render `### Input:` exactly as the original.
 *
 * Questions-only files (`prompts`, e.g. MT-Bench `question.jsonl`) have nothing to train on: parsing one
 * throws a {@link DatasetError} saying so, unless `allowPromptsOnly` is set, in which case the result has
 * no `examples` but lists the questions in `prompts` (for evaluation / generation).
 *
 * Bad rows (missing or non-string fields, empty responses, unknown roles, malformed JSONL lines) are
 * listed in `errors` with the file, line (and array index for JSON arrays) and field; valid rows are kept.
 * A file that cannot be read as a whole (malformed JSON array, no valid row) throws a {@link DatasetError}.
 *
 * Browser-safe: no node: imports.
 */
import { parseCsv } from './csv';
import { findJsonSyntaxError, LineIndex, topLevelArrayElementOffsets } from './json-scan';
import { preview } from '../util/preview';

export type Role = 'system' | 'user' | 'assistant';

export interface Message {
  role: Role;
  content: string;
  /**
   * Assistant turns only: false excludes this turn from the loss (OpenAI `weight: 0`, or the assistant
   * turns inside a TRL conversational `prompt`). Default true.
   */
  train?: boolean;
  /** User turns from instruction datasets: the instruction and input that `content` joins. */
  instruction?: string;
  input?: string;
}

export interface ChatExample {
  messages: Message[];
}
export interface PromptCompletionExample {
  prompt: string;
  completion: string;
}
export interface TextExample {
  text: string;
}
export type Example = ChatExample | PromptCompletionExample | TextExample;

export const isChat = (e: Example): e is ChatExample => 'messages' in e;
export const isPromptCompletion = (e: Example): e is PromptCompletionExample => 'prompt' in e && 'completion' in e;
export const isText = (e: Example): e is TextExample => 'text' in e;

export type DatasetFormat =
  'alpaca' | 'dolly' | 'prompt_completion' | 'messages' | 'sharegpt' | 'self_instruct' | 'qa' | 'text' | 'prompts';

export const DATASET_FORMATS: readonly DatasetFormat[] = [
  'alpaca',
  'dolly',
  'prompt_completion',
  'messages',
  'sharegpt',
  'self_instruct',
  'qa',
  'text',
  'prompts',
];

/** Canonical field names; `columns` maps them to the names used in a file. */
export type CanonicalField =
  | 'instruction'
  | 'input'
  | 'output'
  | 'system'
  | 'history'
  | 'context'
  | 'response'
  | 'prompt'
  | 'completion'
  | 'messages'
  | 'conversations'
  | 'role'
  | 'content'
  | 'from'
  | 'value'
  | 'instances'
  | 'question'
  | 'answer'
  | 'text'
  | 'turns';

export type ColumnMap = Partial<Record<CanonicalField, string>>;

const CANONICAL_FIELDS: readonly CanonicalField[] = [
  'instruction',
  'input',
  'output',
  'system',
  'history',
  'context',
  'response',
  'prompt',
  'completion',
  'messages',
  'conversations',
  'role',
  'content',
  'from',
  'value',
  'instances',
  'question',
  'answer',
  'text',
  'turns',
];
/** Fields inside a message or turn, not on a row. */
const MESSAGE_FIELDS: readonly CanonicalField[] = ['role', 'content', 'from', 'value'];

/** `columns` must rename known fields to field names (own keys only). */
function checkColumns(columns: unknown, file: string): ColumnMap {
  if (columns === undefined) return {};
  if (typeof columns !== 'object' || columns === null || Array.isArray(columns)) {
    throw new DatasetError(`${file}: columns must be an object of field → column name`, file);
  }
  for (const [k, v] of Object.entries(columns)) {
    if (!CANONICAL_FIELDS.includes(k as CanonicalField)) {
      throw new DatasetError(
        `${file}: unknown field "${k}" in columns (expected one of: ${CANONICAL_FIELDS.join(', ')})`,
        file,
      );
    }
    if (typeof v !== 'string' || v === '') {
      throw new DatasetError(
        `${file}: columns.${k} must be a column name (a non-empty string), got ${preview(v)}`,
        file,
      );
    }
  }
  return columns as ColumnMap;
}

/** Every renamed row field must exist in some row: a typo would otherwise silently read nothing. */
function checkColumnsPresent(columns: ColumnMap, rows: RawRow[], file: string): void {
  for (const [field, name] of Object.entries(columns) as [CanonicalField, string][]) {
    if (MESSAGE_FIELDS.includes(field)) continue;
    if (rows.some((r) => typeof r.value === 'object' && r.value !== null && Object.hasOwn(r.value, name))) continue;
    const seen = new Set<string>();
    for (const r of rows.slice(0, 50))
      if (typeof r.value === 'object' && r.value !== null) for (const k of Object.keys(r.value)) seen.add(k);
    throw new DatasetError(
      `${file}: columns maps ${field} to "${name}", but no row has a field "${name}" (fields: ${[...seen].slice(0, 20).join(', ') || 'none'})`,
      file,
    );
  }
}

export interface ParseOptions {
  /** Force a format instead of detecting it. */
  format?: DatasetFormat | 'auto';
  /** Field renames: canonical name → name in the file, e.g. { instruction: 'prompt', output: 'chosen' }. */
  columns?: ColumnMap;
  /** Extra role names (ShareGPT `from` / messages `role` values) → roles, e.g. { bot: 'assistant' }. */
  roles?: Record<string, Role>;
  /** Container override; otherwise from the file extension, then from the content. */
  container?: 'json' | 'jsonl' | 'csv' | 'tsv' | 'txt';
  /**
   * Plain text: how documents are separated. 'auto' (default): blank lines and lines consisting only of
   * `<|endoftext|>`; 'blank-line'; 'line' (one document per line); 'none' (whole file one document);
   * any other string: that exact separator.
   */
  textSeparator?: 'auto' | 'blank-line' | 'line' | 'none' | (string & {});
  /** Accept questions-only files (format `prompts`) and return their questions in `prompts`. */
  allowPromptsOnly?: boolean;
  /** Bytes that are not valid UTF-8: refuse the file (default), or read them as U+FFFD. */
  invalidUtf8?: 'error' | 'replace';
}

export interface RowError {
  file: string;
  /** 1-based line where the row starts (JSONL: its line; JSON array: the element's first line; CSV: record start). */
  line: number;
  /** 1-based column, for syntax errors. */
  column?: number;
  /** 0-based position of the row in a JSON array (or the record number for JSONL/CSV/text). */
  index?: number;
  /** Field path inside the row, e.g. "output" or "conversations[2].from". */
  field?: string;
  message: string;
}

export interface PromptOnlyRow {
  /** The questions, in conversation order (MT-Bench has two turns; the second follows the model's answer). */
  turns: string[];
  /** Reference answers where the file has them (MT-Bench math/reasoning/coding); not responses to train on. */
  reference?: string[];
  id?: string | number;
  category?: string;
}

export interface ParseResult {
  file: string;
  format: DatasetFormat;
  container: 'json' | 'jsonl' | 'csv' | 'tsv' | 'txt';
  examples: Example[];
  errors: RowError[];
  /** Records read from the file (before validation); self-instruct counts tasks, not instances. */
  rows: number;
  /** Only for format `prompts` with allowPromptsOnly. */
  prompts?: PromptOnlyRow[];
}

export class DatasetError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly errors: RowError[] = [],
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}

/** Formats a row error as "file:line[:column] [index] field: message". */
export function formatRowError(e: RowError): string {
  const where = `${e.file}:${e.line}${e.column !== undefined ? `:${e.column}` : ''}`;
  const idx = e.index !== undefined ? ` [row ${e.index}]` : '';
  return `${where}${idx}${e.field ? ` ${e.field}` : ''}: ${e.message}`;
}

// ---------------------------------------------------------------------------------------------------------
// Reading the container

interface RawRow {
  line: number;
  index: number;
  value: unknown;
}

/**
 * A record's own field: a column named like an Object.prototype member ("toString", "__proto__", "constructor")
 * must not find the prototype's value.
 */
function own(rec: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

/** Byte offset of the first byte that is not part of a valid UTF-8 sequence, or -1. */
function invalidUtf8At(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    // overlong forms, surrogates and code points above U+10FFFF
    if (n === 2 && ((c === 0xe0 && b[i + 1] < 0xa0) || (c === 0xed && b[i + 1] > 0x9f))) return i;
    if (n === 3 && ((c === 0xf0 && b[i + 1] < 0x90) || (c === 0xf4 && b[i + 1] > 0x8f))) return i;
    i += n + 1;
  }
  return -1;
}

/**
 * The file's text. Bytes must be UTF-8 (a leading BOM is dropped): a UTF-16 file or invalid bytes are refused with
 * the line and byte offset, unless `invalidUtf8: 'replace'` asks for U+FFFD in their place.
 */
function decodeInput(input: string | Uint8Array | ArrayBuffer, file: string, invalidUtf8: 'error' | 'replace'): string {
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    const bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : input;
    if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
      throw new DatasetError(
        `${file}: the file is UTF-16 text (byte-order mark ${bytes[0] === 0xff ? 'FF FE' : 'FE FF'}); save it as UTF-8`,
        file,
      );
    }
    try {
      text = new TextDecoder('utf-8', { fatal: invalidUtf8 === 'error' }).decode(bytes);
    } catch {
      const at = invalidUtf8At(bytes);
      let line = 1;
      for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
      throw new DatasetError(
        `${file}:${line}: invalid UTF-8 at byte ${at} (0x${bytes[at]?.toString(16).padStart(2, '0')}): the file is not UTF-8 text. Save it as UTF-8, or set invalidUtf8: 'replace' to read bad bytes as U+FFFD`,
        file,
      );
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

function containerFromName(fileName: string): ParseResult['container'] | null {
  const lower = fileName.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.tsv') || lower.endsWith('.tab')) return 'tsv';
  if (lower.endsWith('.txt') || lower.endsWith('.text') || lower.endsWith('.md')) return 'txt';
  return null;
}

function sniffContainer(text: string): ParseResult['container'] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) return 'json';
  if (trimmed.startsWith('{')) return 'jsonl';
  return 'txt';
}

function jsonSyntaxError(file: string, text: string, lineOffset = 0, index?: number): RowError {
  const found = findJsonSyntaxError(text);
  const pos = new LineIndex(text).position(found?.offset ?? 0);
  return {
    file,
    line: pos.line + lineOffset,
    column: pos.column,
    index,
    message: `malformed JSON: ${found?.message ?? 'could not parse'}`,
  };
}

function readJsonArray(file: string, text: string): RawRow[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const e = jsonSyntaxError(file, text);
    throw new DatasetError(`${formatRowError(e)}`, file, [e]);
  }
  if (!Array.isArray(value)) {
    throw new DatasetError(`${file}: expected a JSON array of records (or JSON Lines), found ${kindOf(value)}`, file);
  }
  const lines = new LineIndex(text);
  const offsets = topLevelArrayElementOffsets(text);
  return value.map((v, index) => ({
    value: v,
    index,
    line: offsets[index] !== undefined ? lines.line(offsets[index]) : 1,
  }));
}

function* readJsonLines(file: string, text: string, errors: RowError[]): Generator<ParseProgress, RawRow[]> {
  const rows: RawRow[] = [];
  const lines = text.split('\n');
  let index = 0;
  for (let l = 0; l < lines.length; l++) {
    if (l % PROGRESS_EVERY === 0 && l > 0) yield { phase: 'read', done: l, total: lines.length };
    let s = lines[l];
    if (s.endsWith('\r')) s = s.slice(0, -1);
    if (s.trim() === '') continue;
    try {
      rows.push({ value: JSON.parse(s), line: l + 1, index });
    } catch {
      errors.push(jsonSyntaxError(file, s, l, index));
    }
    index++;
  }
  return rows;
}

function readDelimited(file: string, text: string, delimiter: string, errors: RowError[]): RawRow[] {
  const { records, issues } = parseCsv(text, delimiter);
  for (const is of issues) errors.push({ file, line: is.line, column: is.column, message: `CSV: ${is.message}` });
  if (records.length === 0) return [];
  const header = records[0].fields.map((h) => h.trim());
  const seen = new Set<string>();
  for (const h of header) {
    if (h === '') throw new DatasetError(`${file}:1: the header row has an empty column name`, file);
    if (seen.has(h)) throw new DatasetError(`${file}:1: the header row repeats the column name "${h}"`, file);
    seen.add(h);
  }
  const rows: RawRow[] = [];
  for (let r = 1; r < records.length; r++) {
    const rec = records[r];
    if (rec.fields.length !== header.length) {
      errors.push({
        file,
        line: rec.line,
        index: r - 1,
        message: `expected ${header.length} fields (as in the header), found ${rec.fields.length}`,
      });
      continue;
    }
    const obj: Record<string, string> = {};
    header.forEach((h, k) => (obj[h] = rec.fields[k]));
    rows.push({ value: obj, line: rec.line, index: r - 1 });
  }
  return rows;
}

function readPlainText(text: string, separator: NonNullable<ParseOptions['textSeparator']>): RawRow[] {
  const norm = text.replace(/\r\n?/g, '\n');
  const lines = norm.split('\n');
  const docs: RawRow[] = [];
  if (separator === 'none') {
    const firstLine = lines.findIndex((l) => l.trim() !== '');
    if (norm.trim()) docs.push({ value: { text: norm.trim() }, line: firstLine + 1, index: 0 });
    return docs;
  }
  if (separator !== 'auto' && separator !== 'blank-line' && separator !== 'line') {
    let offset = 0;
    const li = new LineIndex(norm);
    for (const part of norm.split(separator)) {
      const lead = part.length - part.trimStart().length;
      if (part.trim()) docs.push({ value: { text: part.trim() }, line: li.line(offset + lead), index: docs.length });
      offset += part.length + separator.length;
    }
    return docs;
  }
  let cur: string[] = [];
  let start = 0;
  const flush = () => {
    const t = cur.join('\n').trim();
    if (t) docs.push({ value: { text: t }, line: start + 1, index: docs.length });
    cur = [];
  };
  for (let l = 0; l < lines.length; l++) {
    const s = lines[l];
    const isSep = separator === 'line' || s.trim() === '' || (separator === 'auto' && s.trim() === '<|endoftext|>');
    if (separator === 'line') {
      if (s.trim()) docs.push({ value: { text: s.trim() }, line: l + 1, index: docs.length });
      continue;
    }
    if (isSep) flush();
    else {
      if (cur.length === 0) start = l;
      cur.push(s);
    }
  }
  flush();
  return docs;
}

// ---------------------------------------------------------------------------------------------------------
// Detecting the format

const DEFAULT_ROLE_NAMES: Record<string, Role> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  human: 'user',
  assistant: 'assistant',
  gpt: 'assistant',
  chatgpt: 'assistant',
  bard: 'assistant',
  bing: 'assistant',
  model: 'assistant',
};

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decides a record's format from its (renamed) fields; null if none fits. */
export function detectRecordFormat(rec: Record<string, unknown>, columns: ColumnMap = {}): DatasetFormat | null {
  const has = (f: CanonicalField) => own(rec, columns[f] ?? f) !== undefined;
  if (has('messages') && Array.isArray(own(rec, columns.messages ?? 'messages'))) return 'messages';
  if (has('conversations')) return 'sharegpt';
  if (has('instances') && has('instruction')) return 'self_instruct';
  if (has('instruction') && has('output')) return 'alpaca';
  if (has('instruction') && has('response')) return 'dolly';
  if (has('prompt') && has('completion')) return 'prompt_completion';
  if (has('question') && has('answer')) return 'qa';
  if (has('turns')) return 'prompts';
  if (has('text')) return 'text';
  if (has('instruction')) return 'alpaca'; // reported row by row as missing its output
  return null;
}

function detectFormat(file: string, rows: RawRow[], columns: ColumnMap): DatasetFormat {
  const counts = new Map<DatasetFormat, number>();
  for (const r of rows.slice(0, 50)) {
    if (!isRecord(r.value)) continue;
    const f = detectRecordFormat(r.value, columns);
    if (f) counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  let best: DatasetFormat | null = null;
  let bestN = 0;
  for (const [f, n] of counts) {
    if (n > bestN) {
      best = f;
      bestN = n;
    }
  }
  if (!best) {
    const first = rows.find((r) => isRecord(r.value));
    const keys = first ? Object.keys(first.value as object).join(', ') : '';
    throw new DatasetError(
      `${file}: cannot tell the dataset format${keys ? ` from fields [${keys}]` : ''}; ` +
        `expected e.g. instruction/input/output (Alpaca), messages, conversations (ShareGPT), prompt/completion, ` +
        `question/answer or text — or pass format and columns`,
      file,
    );
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------
// Converting records

class RowContext {
  constructor(
    readonly file: string,
    readonly row: RawRow,
    readonly columns: ColumnMap,
    readonly errors: RowError[],
  ) {}
  name(f: CanonicalField): string {
    return this.columns[f] ?? f;
  }
  error(field: string | undefined, message: string): null {
    this.errors.push({ file: this.file, line: this.row.line, index: this.row.index, field, message });
    return null;
  }
  /** A required string field; `nonEmpty` rejects whitespace-only strings. */
  str(
    rec: Record<string, unknown>,
    f: CanonicalField,
    what: string,
    nonEmpty: boolean,
    path = this.name(f),
  ): string | null {
    const v = own(rec, this.name(f));
    if (v === undefined || v === null)
      return this.error(path, `missing ${what} (expected a ${nonEmpty ? 'non-empty ' : ''}string)`);
    return this.checkStr(v, path, what, nonEmpty);
  }
  checkStr(v: unknown, path: string, what: string, nonEmpty: boolean): string | null {
    if (typeof v !== 'string') return this.error(path, `${what} is ${kindOf(v)}, expected a string`);
    if (nonEmpty && v.trim() === '') return this.error(path, `empty ${what}`);
    return v;
  }
  /** An optional string field: absent/null → '', wrong type → error (undefined returned). */
  optStr(rec: Record<string, unknown>, f: CanonicalField, what: string): string | undefined {
    const v = own(rec, this.name(f));
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') {
      this.error(this.name(f), `${what} is ${kindOf(v)}, expected a string`);
      return undefined;
    }
    return v;
  }
}

function joinInstruction(instruction: string, input: string): string {
  return input.trim() ? `${instruction}\n${input}` : instruction;
}

function userTurn(instruction: string, input: string): Message {
  return { role: 'user', content: joinInstruction(instruction, input), instruction, input };
}

function convertAlpaca(
  ctx: RowContext,
  rec: Record<string, unknown>,
  responseField: 'output' | 'response',
  inputField: 'input' | 'context',
): Example | null {
  const instruction = ctx.str(rec, 'instruction', 'instruction', true);
  const input = ctx.optStr(rec, inputField, inputField);
  const output = ctx.str(rec, responseField, 'response', true);
  const system = ctx.optStr(rec, 'system', 'system prompt');
  const messages: Message[] = [];
  let ok = instruction !== null && input !== undefined && output !== null && system !== undefined;
  if (system) messages.push({ role: 'system', content: system });
  const hv = own(rec, ctx.name('history'));
  if (hv !== undefined && hv !== null) {
    const hName = ctx.name('history');
    if (!Array.isArray(hv)) {
      ctx.error(hName, `history is ${kindOf(hv)}, expected a list of [instruction, response] pairs`);
      ok = false;
    } else {
      hv.forEach((pair, k) => {
        if (!Array.isArray(pair) || pair.length !== 2) {
          ctx.error(
            `${hName}[${k}]`,
            `expected an [instruction, response] pair, found ${Array.isArray(pair) ? `${pair.length} items` : kindOf(pair)}`,
          );
          ok = false;
          return;
        }
        const q = ctx.checkStr(pair[0], `${hName}[${k}][0]`, 'history instruction', true);
        const a = ctx.checkStr(pair[1], `${hName}[${k}][1]`, 'history response', true);
        if (q === null || a === null) ok = false;
        else messages.push(userTurn(q, ''), { role: 'assistant', content: a });
      });
    }
  }
  if (!ok) return null;
  messages.push(userTurn(instruction!, input!), { role: 'assistant', content: output! });
  return { messages };
}

function convertMessageList(
  ctx: RowContext,
  list: unknown,
  path: string,
  roleKey: string,
  contentKey: string,
  roles: Record<string, Role>,
): Message[] | null {
  if (!Array.isArray(list)) return ctx.error(path, `${path} is ${kindOf(list)}, expected a list of messages`);
  const out: Message[] = [];
  let ok = true;
  list.forEach((m, k) => {
    const p = `${path}[${k}]`;
    if (!isRecord(m)) {
      ctx.error(p, `message is ${kindOf(m)}, expected an object with "${roleKey}" and "${contentKey}"`);
      ok = false;
      return;
    }
    const rv = own(m, roleKey);
    if (typeof rv !== 'string') {
      ctx.error(`${p}.${roleKey}`, rv === undefined ? `missing role` : `role is ${kindOf(rv)}, expected a string`);
      ok = false;
      return;
    }
    // Own keys only: "constructor" or "__proto__" must not resolve through Object.prototype.
    const lower = rv.toLowerCase();
    const role = Object.hasOwn(roles, rv) ? roles[rv] : Object.hasOwn(roles, lower) ? roles[lower] : undefined;
    if (!role) {
      const known = Object.keys(roles).join(', ');
      ctx.error(`${p}.${roleKey}`, `unknown role ${preview(rv)} (expected one of: ${known})`);
      ok = false;
      return;
    }
    let cv = own(m, contentKey);
    if (Array.isArray(cv)) {
      // OpenAI content parts: only text parts are supported.
      const texts: string[] = [];
      for (const part of cv) {
        if (isRecord(part) && part.type === 'text' && typeof part.text === 'string') texts.push(part.text);
        else {
          ctx.error(
            `${p}.${contentKey}`,
            `content part ${isRecord(part) ? `of type "${String(part.type)}"` : kindOf(part)} is not supported (text parts only)`,
          );
          ok = false;
          return;
        }
      }
      cv = texts.join('');
    }
    if (cv === undefined || cv === null) {
      ctx.error(`${p}.${contentKey}`, `missing content (expected a string)`);
      ok = false;
      return;
    }
    if (typeof cv !== 'string') {
      ctx.error(`${p}.${contentKey}`, `content is ${kindOf(cv)}, expected a string`);
      ok = false;
      return;
    }
    if (role !== 'system' && cv.trim() === '') {
      ctx.error(`${p}.${contentKey}`, role === 'assistant' ? 'empty response' : 'empty user message');
      ok = false;
      return;
    }
    if (role === 'system' && k !== 0) {
      ctx.error(`${p}.${roleKey}`, 'a system message is only allowed as the first message');
      ok = false;
      return;
    }
    const msg: Message = { role, content: cv };
    // webtune's exported runs keep an instruction dataset's two parts on the user message (src/train/export-rows.ts)
    const instruction = own(m, 'instruction');
    if (role === 'user' && typeof instruction === 'string') {
      const input = own(m, 'input');
      msg.instruction = instruction;
      msg.input = typeof input === 'string' ? input : '';
    }
    if (role === 'assistant') {
      const w = m.weight ?? m.train;
      if (w === 0 || w === false) msg.train = false;
      else if (w !== undefined && w !== 1 && w !== true) {
        ctx.error(`${p}.weight`, `weight is ${preview(w)}, expected 0 or 1`);
        ok = false;
        return;
      }
    }
    out.push(msg);
  });
  return ok ? out : null;
}

/** Checks a conversation has something to train on; drops trailing turns after the last assistant turn. */
function finishConversation(ctx: RowContext, messages: Message[], path: string): Example | null {
  let last = messages.length - 1;
  while (last >= 0 && messages[last].role !== 'assistant') last--;
  if (last < 0) return ctx.error(path, 'conversation has no assistant response');
  const trimmed = messages.slice(0, last + 1);
  if (!trimmed.some((m) => m.role === 'assistant' && m.train !== false)) {
    return ctx.error(path, 'conversation has no trainable assistant response (all have weight 0)');
  }
  if (!trimmed.some((m) => m.role === 'user')) return ctx.error(path, 'conversation has no user message');
  return { messages: trimmed };
}

function convertRow(format: DatasetFormat, ctx: RowContext, roles: Record<string, Role>): Example[] | null {
  const rec = ctx.row.value;
  if (!isRecord(rec)) return ctx.error(undefined, `row is ${kindOf(rec)}, expected an object`);
  switch (format) {
    case 'alpaca': {
      const e = convertAlpaca(ctx, rec, 'output', 'input');
      return e && [e];
    }
    case 'dolly': {
      const e = convertAlpaca(ctx, rec, 'response', 'context');
      return e && [e];
    }
    case 'qa': {
      const q = ctx.str(rec, 'question', 'question', true);
      const a = ctx.str(rec, 'answer', 'answer', true);
      if (q === null || a === null) return null;
      return [{ messages: [userTurn(q, ''), { role: 'assistant', content: a }] }];
    }
    case 'text': {
      const t = ctx.str(rec, 'text', 'text', true);
      return t === null ? null : [{ text: t }];
    }
    case 'prompt_completion': {
      const pv = own(rec, ctx.name('prompt'));
      const cv = own(rec, ctx.name('completion'));
      if (Array.isArray(pv) || Array.isArray(cv)) {
        // TRL conversational prompt/completion: assistant turns inside the prompt are context only.
        const prompt = convertMessageList(ctx, pv ?? [], ctx.name('prompt'), 'role', 'content', roles);
        const completion = convertMessageList(ctx, cv ?? [], ctx.name('completion'), 'role', 'content', roles);
        if (!prompt || !completion) return null;
        if (!completion.some((m) => m.role === 'assistant'))
          return ctx.error(ctx.name('completion'), 'completion has no assistant message');
        const e = finishConversation(
          ctx,
          [...prompt.map((m) => (m.role === 'assistant' ? { ...m, train: false } : m)), ...completion],
          ctx.name('completion'),
        );
        return e && [e];
      }
      const p = ctx.str(rec, 'prompt', 'prompt', true);
      const c = ctx.str(rec, 'completion', 'completion', true);
      if (p === null || c === null) return null;
      return [{ prompt: p, completion: c }];
    }
    case 'messages': {
      const name = ctx.name('messages');
      const msgs = convertMessageList(
        ctx,
        own(rec, name),
        name,
        ctx.columns.role ?? 'role',
        ctx.columns.content ?? 'content',
        roles,
      );
      const e = msgs && finishConversation(ctx, msgs, name);
      return e && [e];
    }
    case 'sharegpt': {
      const name = ctx.name('conversations');
      const list = own(rec, name);
      // ShareGPT uses from/value; some exports use role/content under "conversations".
      const firstMsg = Array.isArray(list) ? list.find(isRecord) : undefined;
      const roleKey =
        ctx.columns.from ??
        ctx.columns.role ??
        (firstMsg && !('from' in firstMsg) && 'role' in firstMsg ? 'role' : 'from');
      const contentKey =
        ctx.columns.value ??
        ctx.columns.content ??
        (firstMsg && !('value' in firstMsg) && 'content' in firstMsg ? 'content' : 'value');
      const msgs = convertMessageList(ctx, list, name, roleKey, contentKey, roles);
      if (!msgs) return null;
      const system = ctx.optStr(rec, 'system', 'system prompt');
      if (system === undefined) return null;
      if (system && msgs[0]?.role !== 'system') msgs.unshift({ role: 'system', content: system });
      const e = finishConversation(ctx, msgs, name);
      return e && [e];
    }
    case 'self_instruct': {
      const instruction = ctx.str(rec, 'instruction', 'instruction', true);
      const iname = ctx.name('instances');
      const inst = own(rec, iname);
      if (!Array.isArray(inst)) {
        ctx.error(
          iname,
          inst === undefined
            ? 'missing instances (expected a list of {input, output})'
            : `instances is ${kindOf(inst)}, expected a list of {input, output}`,
        );
        return null;
      }
      if (instruction === null) return null;
      const out: Example[] = [];
      inst.forEach((it, k) => {
        const p = `${iname}[${k}]`;
        if (!isRecord(it)) {
          ctx.error(p, `instance is ${kindOf(it)}, expected an object with input and output`);
          return;
        }
        const iv = it[ctx.name('input')];
        const input =
          iv === undefined || iv === null ? '' : ctx.checkStr(iv, `${p}.${ctx.name('input')}`, 'input', false);
        const ov = it[ctx.name('output')];
        const output =
          ov === undefined
            ? ctx.error(`${p}.${ctx.name('output')}`, 'missing response (expected a non-empty string)')
            : ctx.checkStr(ov, `${p}.${ctx.name('output')}`, 'response', true);
        if (input === null || output === null) return;
        out.push({ messages: [userTurn(instruction, input), { role: 'assistant', content: output }] });
      });
      return out;
    }
    case 'prompts':
      return null; // handled separately
  }
}

function convertPromptRow(ctx: RowContext): PromptOnlyRow | null {
  const rec = ctx.row.value;
  if (!isRecord(rec)) return ctx.error(undefined, `row is ${kindOf(rec)}, expected an object`);
  const name = ctx.name('turns');
  const tv = own(rec, name);
  if (!Array.isArray(tv) || tv.length === 0) return ctx.error(name, `expected a non-empty list of question strings`);
  const turns: string[] = [];
  for (let k = 0; k < tv.length; k++) {
    const s = ctx.checkStr(tv[k], `${name}[${k}]`, 'question', true);
    if (s === null) return null;
    turns.push(s);
  }
  const row: PromptOnlyRow = { turns };
  if (Array.isArray(rec.reference) && rec.reference.every((r) => typeof r === 'string'))
    row.reference = rec.reference as string[];
  const id = rec.question_id ?? rec.id;
  if (typeof id === 'string' || typeof id === 'number') row.id = id;
  if (typeof rec.category === 'string') row.category = rec.category;
  return row;
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Parses one dataset file. `fileName` is used for the container (by extension) and in messages.
 * Throws {@link DatasetError} when the file cannot be read as a whole or has no valid row.
 */
/** Progress of a parse: rows read (JSON Lines) or converted, out of the total. */
export interface ParseProgress {
  phase: 'read' | 'convert';
  done: number;
  total: number;
}

const PROGRESS_EVERY = 2000;

/** Parse a dataset file in one go (see parseDatasetAsync for large files). */
export function parseDataset(
  input: string | Uint8Array | ArrayBuffer,
  fileName: string,
  options: ParseOptions = {},
): ParseResult {
  const it = parseSteps(input, fileName, options);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/**
 * The same parse in chunks of rows, yielding to the event loop between them and reporting progress,
 * so that a worker parsing a 100 MB file still answers messages (e.g. a cancel) while it works.
 */
export async function parseDatasetAsync(
  input: string | Uint8Array | ArrayBuffer,
  fileName: string,
  options: ParseOptions & { onProgress?: (p: ParseProgress) => void; signal?: { aborted: boolean } } = {},
): Promise<ParseResult> {
  const it = parseSteps(input, fileName, options);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
    options.onProgress?.(r.value);
    if (options.signal?.aborted) throw new DatasetError(`${fileName}: parsing cancelled`, fileName);
    await new Promise((res) => setTimeout(res, 0));
  }
}

function* parseSteps(
  input: string | Uint8Array | ArrayBuffer,
  fileName: string,
  options: ParseOptions,
): Generator<ParseProgress, ParseResult> {
  const file = fileName;
  const text = decodeInput(input, file, options.invalidUtf8 ?? 'error');
  const columns = checkColumns(options.columns, file);
  const roles: Record<string, Role> = { ...DEFAULT_ROLE_NAMES, ...(options.roles ?? {}) };
  const errors: RowError[] = [];
  if (text.trim() === '') throw new DatasetError(`${file}: the file is empty`, file);

  let container = options.container ?? containerFromName(fileName) ?? sniffContainer(text);
  let rows: RawRow[];
  if (container === 'json' && !text.trimStart().startsWith('[')) {
    // Many ".json" files on the Hub are JSON Lines; a single object is a one-row file too.
    container = 'jsonl';
  }
  switch (container) {
    case 'json':
      rows = readJsonArray(file, text);
      break;
    case 'jsonl':
      rows = yield* readJsonLines(file, text, errors);
      break;
    case 'csv':
      rows = readDelimited(file, text, ',', errors);
      break;
    case 'tsv':
      rows = readDelimited(file, text, '\t', errors);
      break;
    case 'txt':
      rows = readPlainText(text, options.textSeparator ?? 'auto');
      break;
  }

  if (container !== 'txt') checkColumnsPresent(columns, rows, file);
  const format =
    options.format && options.format !== 'auto'
      ? options.format
      : container === 'txt'
        ? 'text'
        : rows.length === 0
          ? null
          : detectFormat(file, rows, columns);
  if (!format) {
    throw new DatasetError(
      `${file}: no readable rows${errors.length ? `; first problem: ${formatRowError(errors[0])}` : ''}`,
      file,
      errors,
    );
  }

  const result: ParseResult = { file, format, container, examples: [], errors, rows: rows.length };
  if (format === 'prompts') {
    const prompts: PromptOnlyRow[] = [];
    for (const row of rows) {
      const p = convertPromptRow(new RowContext(file, row, columns, errors));
      if (p) prompts.push(p);
    }
    if (!options.allowPromptsOnly) {
      throw new DatasetError(
        `${file}: questions only — ${prompts.length} rows of "${columns.turns ?? 'turns'}" with no responses to train on ` +
          `(an MT-Bench / Vicuna-bench style question file). Use it for evaluation prompts (allowPromptsOnly), not as training data.`,
        file,
        errors,
      );
    }
    if (prompts.length === 0) throw new DatasetError(`${file}: no valid rows`, file, errors);
    result.prompts = prompts;
    return result;
  }

  for (let i = 0; i < rows.length; i++) {
    if (i % PROGRESS_EVERY === 0 && i > 0) yield { phase: 'convert', done: i, total: rows.length };
    const ex = convertRow(format, new RowContext(file, rows[i], columns, errors), roles);
    if (ex) for (const e of ex) result.examples.push(e); // no spread: one row can hold 100k+ instances
  }
  if (result.examples.length === 0) {
    const first = errors[0];
    throw new DatasetError(
      `${file}: no valid rows as ${format}${first ? ` (${errors.length} errors; first: ${formatRowError(first)})` : ''}`,
      file,
      errors,
    );
  }
  return result;
}
