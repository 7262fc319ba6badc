/**
 * Datasets (parseDataset, and parseCsv directly): valid files of every record format in every container,
 * then wrong types in fields, unknown and prototype-named roles, deep nesting, multi-MB strings, huge
 * record counts, byte damage (invalid UTF-8, NULs, BOMs, lone CRs), random bytes and mismatched options.
 */
import { parseCsv } from '../../src/data/csv';
import {
  DATASET_FORMATS,
  parseDataset,
  parseDatasetAsync,
  type DatasetFormat,
  type ParseOptions,
  type ParseProgress,
  type ParseResult,
} from '../../src/data/formats';
import type { Rng } from '../../src/util/rng';
import type { FuzzCase, Target } from './harness';
import {
  between,
  chance,
  concatBytes,
  deepArrayText,
  deepObjectText,
  hostileValue,
  hugeString,
  isDeep,
  mutateBytes,
  mutateTree,
  pick,
  randomBytes,
  toJson,
  utf8,
} from './mutate';

type Container = 'json' | 'jsonl' | 'csv' | 'tsv' | 'txt';
const FILE: Record<Container | 'none', string> = {
  json: 'fuzz-data.json',
  jsonl: 'fuzz-data.jsonl',
  csv: 'fuzz-data.csv',
  tsv: 'fuzz-data.tsv',
  txt: 'fuzz-data.txt',
  none: 'fuzz-data',
};
const ROLES = new Set(['system', 'user', 'assistant']);

const WORDS = [
  'hello',
  'world',
  'Write a poem.',
  'x',
  '  ',
  '',
  'é😀',
  'a,b',
  'say "hi"',
  'line\nbreak',
  'tab\there',
  '\r',
  '<|endoftext|>',
  '### Response:',
  'constructor',
  '__proto__',
];

function text(rng: Rng, nonEmpty = true): string {
  let s = '';
  for (let k = between(rng, 1, 4); k > 0; k--) s += (s ? ' ' : '') + pick(rng, WORDS);
  return nonEmpty && s.trim() === '' ? 'ok' : s;
}

/** One valid record of `format` (flat string fields only when `flat`, for CSV/TSV). */
function record(rng: Rng, format: DatasetFormat, flat: boolean): Record<string, unknown> {
  switch (format) {
    case 'alpaca': {
      const r: Record<string, unknown> = {
        instruction: text(rng),
        input: chance(rng, 0.5) ? text(rng, false) : '',
        output: text(rng),
      };
      if (chance(rng, 0.2)) r.system = text(rng);
      if (!flat && chance(rng, 0.2)) r.history = [[text(rng), text(rng)]];
      return r;
    }
    case 'dolly':
      return { instruction: text(rng), context: text(rng, false), response: text(rng) };
    case 'qa':
      return { question: text(rng), answer: text(rng) };
    case 'text':
      return { text: text(rng) };
    case 'prompt_completion':
      if (!flat && chance(rng, 0.3))
        return {
          prompt: [{ role: 'user', content: text(rng) }],
          completion: [{ role: 'assistant', content: text(rng) }],
        };
      return { prompt: text(rng), completion: text(rng) };
    case 'messages': {
      const msgs: unknown[] = chance(rng, 0.3) ? [{ role: 'system', content: text(rng, false) }] : [];
      for (let k = between(rng, 1, 3); k > 0; k--)
        msgs.push(
          { role: pick(rng, ['user', 'human']), content: text(rng) },
          {
            role: pick(rng, ['assistant', 'gpt']),
            content: text(rng),
            ...(chance(rng, 0.2) ? { weight: pick(rng, [0, 1]) } : {}),
          },
        );
      delete (msgs[msgs.length - 1] as { weight?: number }).weight; // something to train on
      return { messages: msgs };
    }
    case 'sharegpt': {
      const conv: unknown[] = [];
      for (let k = between(rng, 1, 3); k > 0; k--)
        conv.push({ from: 'human', value: text(rng) }, { from: 'gpt', value: text(rng) });
      return chance(rng, 0.3) ? { conversations: conv, system: text(rng) } : { conversations: conv };
    }
    case 'self_instruct':
      return {
        instruction: text(rng),
        instances: [
          { input: text(rng, false), output: text(rng) },
          { input: '', output: text(rng) },
        ],
      };
    case 'prompts':
      return { turns: [text(rng), text(rng)], question_id: rng.int(100) };
  }
}

const FLAT_FORMATS: DatasetFormat[] = ['alpaca', 'dolly', 'qa', 'text', 'prompt_completion'];

function csvField(s: string, delim: string): string {
  return /[",\t\r\n]/.test(s) || s.includes(delim) ? `"${s.replace(/"/g, '""')}"` : s;
}

function serialize(rng: Rng, recs: unknown[], container: Container): string {
  switch (container) {
    case 'json':
      return toJson(recs, chance(rng, 0.5) ? 2 : undefined);
    case 'jsonl':
      return recs.map((r) => toJson(r)).join(chance(rng, 0.2) ? '\r\n' : '\n') + (chance(rng, 0.5) ? '\n' : '');
    case 'txt':
      return recs
        .map((r) =>
          typeof r === 'object' && r !== null && typeof (r as { text?: unknown }).text === 'string'
            ? (r as { text: string }).text
            : toJson(r),
        )
        .join(pick(rng, ['\n\n', '\n<|endoftext|>\n', '\r\n\r\n']));
    default: {
      const delim = container === 'csv' ? ',' : '\t';
      // Rows that are not plain objects (or are deep hostile values) become empty rows.
      const rows = recs.map((r) =>
        typeof r === 'object' && r !== null && !Array.isArray(r) && !isDeep(r) ? (r as Record<string, unknown>) : {},
      );
      const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      const lines = [cols.map((c) => csvField(c, delim)).join(delim)];
      for (const o of rows) {
        lines.push(
          cols
            .map((c) =>
              csvField(typeof o[c] === 'string' ? (o[c] as string) : o[c] === undefined ? '' : toJson(o[c]), delim),
            )
            .join(delim),
        );
      }
      return lines.join(chance(rng, 0.2) ? '\r\n' : '\n');
    }
  }
}

function checkDataset(fileName: string) {
  return (r: unknown): string | null => {
    const res = r as ParseResult;
    if (!DATASET_FORMATS.includes(res.format)) return `format ${String(res.format)}`;
    if (res.file !== fileName) return `file ${res.file}`;
    for (const e of res.errors) {
      if (
        e.file !== fileName ||
        !(Number.isSafeInteger(e.line) && e.line >= 1) ||
        typeof e.message !== 'string' ||
        !e.message
      )
        return `row error ${toJson(e).slice(0, 200)}`;
    }
    if (res.format === 'prompts') {
      if (!res.prompts?.length) return 'prompts result without prompts';
      for (const p of res.prompts)
        if (!p.turns.length || !p.turns.every((t) => typeof t === 'string' && t.trim())) return 'bad prompt turns';
      return null;
    }
    if (res.examples.length === 0) return 'no examples';
    for (const e of res.examples) {
      if ('messages' in e) {
        if (!Array.isArray(e.messages) || e.messages.length === 0) return 'empty messages';
        for (const m of e.messages) {
          if (!ROLES.has(m.role as string))
            return `message role ${typeof m.role === 'string' ? JSON.stringify(m.role) : typeof m.role}`;
          if (typeof m.content !== 'string') return `message content is ${typeof m.content}`;
        }
        if (e.messages[e.messages.length - 1].role !== 'assistant')
          return 'conversation does not end with the assistant';
        if (!e.messages.some((m) => m.role === 'user')) return 'conversation without a user message';
      } else if ('prompt' in e) {
        if (
          typeof e.prompt !== 'string' ||
          typeof e.completion !== 'string' ||
          !e.prompt.trim() ||
          !e.completion.trim()
        )
          return 'bad prompt/completion';
      } else if ('text' in e) {
        if (typeof e.text !== 'string' || !e.text.trim()) return 'bad text example';
      } else return `unknown example shape ${Object.keys(e as object).join(',')}`;
    }
    return null;
  };
}

function dataCase(
  label: string,
  input: string | Uint8Array | ArrayBuffer,
  fileName: string,
  options: ParseOptions = {},
  expect?: 'accept' | 'reject',
  size?: number,
  async = false,
): FuzzCase {
  const n = size ?? (typeof input === 'string' ? input.length * 3 : input.byteLength);
  const opts = Object.keys(options).length ? ` ${toJson(options).slice(0, 120)}` : '';
  if (!async)
    return {
      label: `${label}${opts}`,
      size: n,
      names: [fileName],
      run: () => parseDataset(input, fileName, options),
      check: checkDataset(fileName),
      expect,
    };
  // parseDatasetAsync: the same parse in chunks; its progress must count up to its total within each phase.
  const progress: ParseProgress[] = [];
  const check = (r: unknown): string | null => {
    for (let k = 0; k < progress.length; k++) {
      const p = progress[k];
      const prev = progress[k - 1];
      if (!(p.done >= 0 && p.done <= p.total) || (prev && prev.phase === p.phase && prev.done > p.done))
        return `progress ${JSON.stringify(prev)} then ${JSON.stringify(p)}`;
    }
    return checkDataset(fileName)(r);
  };
  return {
    label: `${label}${opts} (async)`,
    size: n,
    names: [fileName],
    run: () => parseDatasetAsync(input, fileName, { ...options, onProgress: (p) => progress.push(p) }),
    check,
    expect,
  };
}

function edges(): (() => FuzzCase)[] {
  const big = (n: number, unit = 'x') => unit.repeat(n);
  const M = 1 << 20;
  const out: [string, () => string | Uint8Array, Container | 'none', ParseOptions?, ('accept' | 'reject')?][] = [
    ['empty', () => '', 'jsonl', {}, 'reject'],
    ['whitespace', () => ' \n\t\r\n', 'json', {}, 'reject'],
    ['BOM only', () => Uint8Array.of(0xef, 0xbb, 0xbf), 'jsonl', {}, 'reject'],
    ['NUL bytes', () => new Uint8Array(1000), 'jsonl', {}, 'reject'],
    ['NUL bytes (sniffed)', () => new Uint8Array(1000), 'none', {}],
    ['100k nested arrays', () => deepArrayText(100_000), 'json', {}, 'reject'],
    ['100k nested arrays, unclosed', () => '['.repeat(100_000), 'json', {}, 'reject'],
    ['100k nested arrays, then a comma', () => deepArrayText(100_000) + ',', 'json', {}, 'reject'],
    ['100k nested objects line', () => deepObjectText(100_000), 'jsonl', {}, 'reject'],
    ['100k nested objects line, unclosed', () => '{"a":'.repeat(100_000), 'jsonl', {}, 'reject'],
    [
      'record with a 100k nested array field',
      () => `{"instruction":"a","output":${deepArrayText(100_000)}}`,
      'jsonl',
      {},
      'reject',
    ],
    [
      'messages weight 100k nested',
      () =>
        `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a","weight":${deepArrayText(100_000)}}]}`,
      'jsonl',
      {},
      'reject',
    ],
    [
      'messages content 100k nested',
      () => `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":${deepArrayText(100_000)}}]}`,
      'jsonl',
      {},
      'reject',
    ],
    ['"[" × 1 MiB', () => big(M, '['), 'json', {}, 'reject'],
    ['"{" × 1 MiB', () => big(M, '{'), 'jsonl', {}, 'reject'],
    ['5 MiB text field (jsonl)', () => `{"text":"${big(5 * M)}"}`, 'jsonl', {}, 'accept'],
    ['5 MiB output (json)', () => `[{"instruction":"a","output":"${big(5 * M, 'é')}"}]`, 'json', {}, 'accept'],
    ['5 MiB quoted CSV field', () => `text\n"${big(5 * M)}"\n`, 'csv', {}, 'accept'],
    ['5 MiB unquoted CSV field', () => `text\n${big(5 * M)}\n`, 'csv', {}, 'accept'],
    ['5 MiB unterminated quoted CSV field', () => `text\n"${big(5 * M)}`, 'csv', {}],
    ['5 MiB TSV field with quotes inside', () => `text\n${big(5 * M, 'a"')}\n`, 'tsv', {}],
    ['5 MiB plain text', () => big(5 * M, 'word '), 'txt', {}, 'accept'],
    ['5 MiB plain text, one doc per line', () => big(M, 'a\n'), 'txt', { textSeparator: 'line' }, 'accept'],
    ['1M blank lines', () => big(M, '\n'), 'txt', {}, 'reject'],
    ['1M lone CRs', () => big(M, '\r'), 'csv', {}, 'reject'],
    ['5 MiB JSON string of escapes', () => `{"text":"${big(M, '\\u00e9\\n')}"}`, 'jsonl', {}, 'accept'],
    [
      '5 MiB role',
      () => `{"messages":[{"role":"${big(5 * M)}","content":"q"},{"role":"assistant","content":"a"}]}`,
      'jsonl',
      {},
      'reject',
    ],
    ['100k "{}" lines', () => big(100_000, '{}\n'), 'jsonl', {}, 'reject'],
    ['100k malformed lines', () => big(100_000, '{\n'), 'jsonl', {}, 'reject'],
    ['200k small records', () => '[' + new Array(200_000).fill('{"text":"a"}').join(',') + ']', 'json', {}, 'accept'],
    [
      '100k JSONL lines, every 7th malformed (async)',
      () => Array.from({ length: 100_000 }, (_, i) => (i % 7 ? '{"text":"a"}' : '{"text":')).join('\n'),
      'jsonl',
      {},
      'accept',
    ],
    [
      'self_instruct with 300k instances',
      () => toJson({ instruction: 'q', instances: new Array(300_000).fill({ output: 'a' }) }),
      'jsonl',
      {},
      'accept',
    ],
    [
      'alpaca with 300k history pairs',
      () => toJson({ instruction: 'q', output: 'a', history: new Array(300_000).fill(['a', 'b']) }),
      'jsonl',
      {},
      'accept',
    ],
    [
      '300k messages',
      () =>
        toJson({
          messages: new Array(300_000).fill(0).map((_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'a' })),
        }),
      'jsonl',
      {},
      'accept',
    ],
    [
      '300k content parts',
      () =>
        toJson({
          messages: [
            { role: 'user', content: 'q' },
            { role: 'assistant', content: new Array(300_000).fill({ type: 'text', text: 'a' }) },
          ],
        }),
      'jsonl',
      {},
      'accept',
    ],
    [
      'role "constructor"',
      () =>
        toJson({
          messages: [
            { role: 'constructor', content: 'q' },
            { role: 'user', content: 'q' },
            { role: 'assistant', content: 'a' },
          ],
        }),
      'jsonl',
      {},
      'reject',
    ],
    [
      'role "__proto__"',
      () =>
        toJson({
          messages: [
            { role: '__proto__', content: 'q' },
            { role: 'user', content: 'q' },
            { role: 'assistant', content: 'a' },
          ],
        }),
      'jsonl',
      {},
      'reject',
    ],
    [
      'role "toString" (sharegpt)',
      () =>
        toJson({
          conversations: [
            { from: 'human', value: 'q' },
            { from: 'toString', value: 'a' },
          ],
        }),
      'jsonl',
      {},
      'reject',
    ],
    [
      'role "hasOwnProperty" as the only assistant',
      () =>
        toJson({
          messages: [
            { role: 'user', content: 'q' },
            { role: 'hasOwnProperty', content: 'a' },
          ],
        }),
      'jsonl',
      {},
      'reject',
    ],
    ['CSV header "__proto__"', () => '__proto__,text\nx,hello\n', 'csv', {}],
    ['CSV header "constructor"', () => 'constructor,text\nx,hello\n', 'csv', {}],
    [
      'CSV 100k columns',
      () =>
        new Array(100_000)
          .fill(0)
          .map((_, i) => `c${i}`)
          .join(',') +
        '\n' +
        new Array(100_000).fill('a').join(','),
      'csv',
      {},
      'reject',
    ],
    ['CSV duplicate header', () => 'text,text\na,b\n', 'csv', {}, 'reject'],
    ['CSV empty header name', () => 'text,\na,b\n', 'csv', {}, 'reject'],
    // Invalid UTF-8 is refused with the line and byte (issue: silent U+FFFD replacement), or replaced on request.
    [
      'invalid UTF-8 in JSONL',
      () => concatBytes(utf8('{"text":"a'), Uint8Array.of(0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80), utf8('"}\n')),
      'jsonl',
      {},
      'reject',
    ],
    [
      'invalid UTF-8 in JSONL, replaced on request',
      () => concatBytes(utf8('{"text":"a'), Uint8Array.of(0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80), utf8('"}\n')),
      'jsonl',
      { invalidUtf8: 'replace' },
      'accept',
    ],
    ['lone surrogate escape', () => '{"text":"\\ud800"}\n', 'jsonl', {}, 'accept'],
    ['NUL escape', () => '{"text":"\\u0000"}\n', 'jsonl', {}, 'accept'],
    ['raw NUL inside a JSON string', () => '{"text":"a\u0000b"}\n', 'jsonl', {}, 'reject'],
    ['rows are numbers and nulls', () => '[1, null, "x", [], true]', 'json', {}, 'reject'],
    ['a single object as .json', () => '{"text":"hello"}', 'json', {}, 'accept'],
    ['forced format on mismatched data', () => '{"text":"hello"}\n', 'jsonl', { format: 'sharegpt' }, 'reject'],
    ['questions only', () => '{"turns":["q1","q2"]}\n', 'jsonl', {}, 'reject'],
    ['questions only, allowed', () => '{"turns":["q1","q2"]}\n', 'jsonl', { allowPromptsOnly: true }, 'accept'],
    [
      'columns mapped to "constructor"',
      () => '{"text":"hello"}\n',
      'jsonl',
      { columns: { text: 'constructor' } },
      'reject',
    ],
    [
      'columns mapped to "__proto__"',
      () => '{"instruction":"a","output":"b"}\n',
      'jsonl',
      { columns: { output: '__proto__' } },
      'reject',
    ],
  ];
  return out.map(
    ([what, make, c, opts, expect]) =>
      () =>
        dataCase(what, make(), FILE[c], opts, expect, undefined, what.endsWith('(async)')),
  );
}

function randomOptions(rng: Rng): ParseOptions {
  const o: ParseOptions = {};
  if (chance(rng, 0.1)) o.format = pick(rng, [...DATASET_FORMATS, 'auto'] as const);
  if (chance(rng, 0.05)) o.container = pick(rng, ['json', 'jsonl', 'csv', 'tsv', 'txt'] as const);
  if (chance(rng, 0.1)) o.textSeparator = pick(rng, ['auto', 'blank-line', 'line', 'none', '###', '\n\n']);
  if (chance(rng, 0.1)) o.allowPromptsOnly = true;
  if (chance(rng, 0.05))
    o.columns = pick(rng, [
      { instruction: 'prompt', output: 'chosen' },
      { messages: 'conversations' },
      { text: 'content' },
      { role: 'from', content: 'value' },
    ]);
  if (chance(rng, 0.05))
    o.roles = pick(rng, [{ bot: 'assistant' as const }, JSON.parse('{"__proto__": "user"}') as Record<string, 'user'>]);
  return o;
}

function random(rng: Rng): FuzzCase {
  const r = rng.next();
  if (r < 0.06) {
    const n = pick(rng, [between(rng, 0, 64), between(rng, 0, 16384)]);
    const c = pick(rng, ['json', 'jsonl', 'csv', 'tsv', 'txt', 'none'] as const);
    return dataCase(`random ${n} bytes`, randomBytes(rng, n), FILE[c], randomOptions(rng));
  }
  const container = pick(rng, ['json', 'jsonl', 'jsonl', 'csv', 'tsv', 'txt'] as const);
  const flat = container === 'csv' || container === 'tsv' || container === 'txt';
  const format =
    container === 'txt'
      ? 'text'
      : pick(rng, flat ? FLAT_FORMATS : DATASET_FORMATS.filter((f) => f !== 'prompts' || chance(rng, 0.2)));
  const recs: unknown[] = Array.from({ length: between(rng, 1, 12) }, () => record(rng, format, flat));
  const what: string[] = [`${format} × ${recs.length} in ${container}`];
  let extra = 0;
  const options = randomOptions(rng);
  if (r < 0.2) {
    const textOut = serialize(rng, recs, container);
    return dataCase(
      `valid ${what[0]}`,
      chance(rng, 0.5) ? utf8(textOut) : textOut,
      FILE[chance(rng, 0.1) ? 'none' : container],
      options,
      Object.keys(options).length || format === 'prompts' ? undefined : 'accept',
    );
  }
  if (r < 0.6) {
    for (let k = between(rng, 1, 3); k > 0; k--) {
      const m = mutateTree(rng, recs, [
        /^\[\d+\]\.[a-z_]+$/,
        /^\[\d+\]\.(messages|conversations|instances|history)\[\d+\]/,
      ]);
      what.push(m.what);
      extra += m.size;
    }
    if (chance(rng, 0.1)) {
      const h = hostileValue(rng);
      recs.push(h.value);
      what.push(`extra row ${h.what}`);
      extra += h.size;
    }
    const t = serialize(rng, recs, container);
    return dataCase(
      what.join('; '),
      chance(rng, 0.5) ? utf8(t) : t,
      FILE[container],
      options,
      undefined,
      t.length * 3 + extra,
      chance(rng, 0.2),
    );
  }
  const bytes = utf8(serialize(rng, recs, container));
  const lineStarts = [0];
  bytes.forEach((b, i) => b === 0x0a && lineStarts.push(i + 1));
  const m = mutateBytes(rng, bytes, lineStarts);
  what.push(m.what);
  if (chance(rng, 0.05)) {
    const s = hugeString(rng, pick(rng, [1 << 20, 4 << 20]));
    const at = pick(rng, lineStarts);
    const withHuge = concatBytes(
      m.bytes.subarray(0, Math.min(at, m.bytes.length)),
      utf8(s),
      m.bytes.subarray(Math.min(at, m.bytes.length)),
    );
    return dataCase(`${what.join('; ')}; ${s.length}-char string at ${at}`, withHuge, FILE[container], options);
  }
  return dataCase(
    what.join('; '),
    chance(rng, 0.2) ? m.bytes.slice().buffer : m.bytes,
    FILE[container],
    options,
    undefined,
    undefined,
    chance(rng, 0.2),
  );
}

// ---------------------------------------------------------------------------------------------------------
// parseCsv on its own (it returns issues instead of throwing).

function checkCsv(input: string) {
  return (r: unknown): string | null => {
    const { records, issues } = r as ReturnType<typeof parseCsv>;
    let last = 0;
    for (const rec of records) {
      if (!(Number.isSafeInteger(rec.line) && rec.line >= 1 && rec.line >= last))
        return `record line ${rec.line} after ${last}`;
      if (!rec.fields.length || !rec.fields.every((f) => typeof f === 'string')) return 'bad fields';
      last = rec.line;
    }
    const fieldChars = records.reduce((a, rec) => a + rec.fields.reduce((b, f) => b + f.length, 0), 0);
    if (fieldChars > input.length) return `${fieldChars} field characters from ${input.length} characters of input`;
    for (const is of issues)
      if (!(is.line >= 1 && is.column >= 1 && is.message)) return `bad issue ${JSON.stringify(is)}`;
    return null;
  };
}

function csvCase(label: string, input: string, delim = ','): FuzzCase {
  return {
    label,
    size: input.length * 3,
    names: ['CSV'],
    run: () => parseCsv(input, delim),
    check: checkCsv(input),
    expect: 'accept',
  };
}

function csvEdges(): (() => FuzzCase)[] {
  const M = 1 << 20;
  const cases: [string, () => string, string?][] = [
    ['empty', () => ''],
    ['only newlines', () => '\n\r\n\r'],
    ['one quote', () => '"'],
    ['two quotes', () => '""'],
    ['"a""', () => '"a""'],
    ['5 MiB quoted', () => `"${'x'.repeat(5 * M)}"`],
    ['5 MiB unquoted', () => 'x'.repeat(5 * M)],
    ['5 MiB of quotes', () => '"'.repeat(5 * M)],
    ['1M empty fields', () => ','.repeat(M)],
    ['200k lines', () => 'a\n'.repeat(200_000)],
    ['5 MiB doubled quotes', () => `"${'""'.repeat(2 * M)}"`],
    ['quotes after a closing quote', () => '"a"b"c"d,e\n'],
    ['tab delimited', () => 'a\tb\n"c\t"\td', '\t'],
    ['NULs', () => '\u0000,\u0000\n'],
  ];
  return cases.map(
    ([what, make, d]) =>
      () =>
        csvCase(what, make(), d),
  );
}

function csvRandom(rng: Rng): FuzzCase {
  const alphabet = ['a', 'b', ',', '"', '""', '\n', '\r\n', '\r', '\t', ' ', 'é', '\u0000'];
  let s = '';
  for (let n = between(rng, 0, 400); n > 0; n--) s += pick(rng, alphabet);
  const delim = pick(rng, [',', '\t', ';', '|']);
  return csvCase(`random ${s.length} chars, delimiter ${JSON.stringify(delim)}`, s, delim);
}

export const dataTargets: Target[] = [
  { name: 'parseDataset', weight: 15, edges: edges(), random },
  { name: 'parseCsv', weight: 3, edges: csvEdges(), random: csvRandom },
];
