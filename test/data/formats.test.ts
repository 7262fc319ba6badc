import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/data/csv';
import {
  DatasetError,
  detectRecordFormat,
  formatRowError,
  isChat,
  parseDataset,
  type ChatExample,
  type ParseResult,
} from '../../src/data/formats';
import { findJsonSyntaxError, topLevelArrayElementOffsets } from '../../src/data/json-scan';
import { DATASETS_DIR, HAVE_DATASETS, sharedMissing } from '../helpers';

const chat = (r: ParseResult, i: number) => (r.examples[i] as ChatExample).messages;

function thrown(fn: () => unknown): DatasetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

describe('CSV (RFC 4180)', () => {
  it('reads quotes, doubled quotes, delimiters and line breaks inside quotes, CRLF', () => {
    const text = 'a,b,c\r\n1,"x, y","say ""hi"""\r\n2,"line1\r\nline2",\r\n"3",,"end"';
    const { records, issues } = parseCsv(text);
    expect(issues).toEqual([]);
    expect(records).toEqual([
      { line: 1, fields: ['a', 'b', 'c'] },
      { line: 2, fields: ['1', 'x, y', 'say "hi"'] },
      { line: 3, fields: ['2', 'line1\nline2', ''] },
      { line: 5, fields: ['3', '', 'end'] },
    ]);
  });
  it('tab-separated, trailing newline, empty lines skipped', () => {
    expect(parseCsv('q\ta\n\nx\t"y\tz"\n', '\t').records).toEqual([
      { line: 1, fields: ['q', 'a'] },
      { line: 3, fields: ['x', 'y\tz'] },
    ]);
  });
  it('reports an unterminated quote and text after a closing quote', () => {
    expect(parseCsv('a,b\n1,"oops\n').issues).toEqual([
      { line: 2, column: 3, message: 'unterminated quoted field (missing closing ")' },
    ]);
    const r = parseCsv('a,b\n"x"y,2\n');
    expect(r.issues[0]).toMatchObject({ line: 2, column: 4 });
    expect(r.records[1].fields).toEqual(['xy', '2']);
  });
});

describe('JSON helpers', () => {
  it('finds array element offsets, skipping strings with brackets and escapes', () => {
    const t = '[\n {"a":"[x]\\"]"},\n  {"b":[1,{"c":2}]}, 3 ]';
    const offs = topLevelArrayElementOffsets(t);
    expect(offs.map((o) => t[o])).toEqual(['{', '{', '3']);
    expect(offs).toEqual([3, 21, 40]);
  });
  it('locates syntax errors', () => {
    expect(findJsonSyntaxError('{"a": 1,}')).toEqual({
      offset: 8,
      message: 'unexpected "}", expected a property name in double quotes',
    });
    expect(findJsonSyntaxError('[1, 2')).toEqual({
      offset: 5,
      message: "unexpected end of input, expected ',' or ']' after array element",
    });
    expect(findJsonSyntaxError('{"a": "x\ny"}')?.message).toMatch(/unescaped newline/);
    expect(findJsonSyntaxError('[1, 2] {}')?.offset).toBe(7);
    expect(findJsonSyntaxError('{"a": [true, null, -1.5e3, "\\u00e9"]}')).toBeNull();
  });
});

describe('format detection and conversion', () => {
  it('detects each format from its fields', () => {
    expect(detectRecordFormat({ instruction: 'x', input: '', output: 'y' })).toBe('alpaca');
    expect(detectRecordFormat({ instruction: 'x', context: '', response: 'y', category: 'qa' })).toBe('dolly');
    expect(detectRecordFormat({ prompt: 'x', completion: 'y' })).toBe('prompt_completion');
    expect(detectRecordFormat({ messages: [] })).toBe('messages');
    expect(detectRecordFormat({ conversations: [] })).toBe('sharegpt');
    expect(detectRecordFormat({ instruction: 'x', instances: [] })).toBe('self_instruct');
    expect(detectRecordFormat({ question: 'x', answer: 'y' })).toBe('qa');
    expect(detectRecordFormat({ text: 'x' })).toBe('text');
    expect(detectRecordFormat({ question_id: 1, turns: ['x'] })).toBe('prompts');
    expect(detectRecordFormat({ q: 'x', a: 'y' }, { question: 'q', answer: 'a' })).toBe('qa');
    expect(detectRecordFormat({ foo: 1 })).toBeNull();
  });

  it('Alpaca with input, system and history (LLaMA-Factory)', () => {
    const data = JSON.stringify([
      { instruction: 'Add', input: '2 and 3', output: '5', system: 'Be terse.', history: [['Hi', 'Hello!']] },
      { instruction: 'Say hi', output: 'hi' },
    ]);
    const r = parseDataset(data, 'a.json');
    expect(r.format).toBe('alpaca');
    expect(r.errors).toEqual([]);
    expect(chat(r, 0)).toEqual([
      { role: 'system', content: 'Be terse.' },
      { role: 'user', content: 'Hi', instruction: 'Hi', input: '' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Add\n2 and 3', instruction: 'Add', input: '2 and 3' },
      { role: 'assistant', content: '5' },
    ]);
    expect(chat(r, 1)).toEqual([
      { role: 'user', content: 'Say hi', instruction: 'Say hi', input: '' },
      { role: 'assistant', content: 'hi' },
    ]);
  });

  it('Dolly, QA, prompt/completion, text', () => {
    const dolly = parseDataset(
      '{"instruction":"Sum up","context":"Long text","response":"Short","category":"summarization"}\n',
      'd.jsonl',
    );
    expect(dolly.format).toBe('dolly');
    expect(chat(dolly, 0)[0]).toEqual({
      role: 'user',
      content: 'Sum up\nLong text',
      instruction: 'Sum up',
      input: 'Long text',
    });
    const qa = parseDataset('{"question":"1+1?","answer":"2\\n#### 2"}', 'q.jsonl');
    expect(qa.format).toBe('qa');
    expect(chat(qa, 0)[1]).toEqual({ role: 'assistant', content: '2\n#### 2' });
    const pc = parseDataset('{"prompt":"The sky is","completion":" blue."}', 'p.jsonl');
    expect(pc.examples).toEqual([{ prompt: 'The sky is', completion: ' blue.' }]);
    const tx = parseDataset('{"text":"hello"}\n{"text":"world"}', 't.jsonl');
    expect(tx.examples).toEqual([{ text: 'hello' }, { text: 'world' }]);
  });

  it('TRL conversational prompt/completion: assistant turns in the prompt are not trained', () => {
    const r = parseDataset(
      JSON.stringify({
        prompt: [
          { role: 'user', content: 'a' },
          { role: 'assistant', content: 'b' },
          { role: 'user', content: 'c' },
        ],
        completion: [{ role: 'assistant', content: 'd' }],
      }),
      'pc.jsonl',
    );
    expect(chat(r, 0)).toEqual([
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b', train: false },
      { role: 'user', content: 'c' },
      { role: 'assistant', content: 'd' },
    ]);
  });

  it('OpenAI messages with weight 0 and text content parts; ShareGPT with system and role map', () => {
    const r = parseDataset(
      JSON.stringify({
        messages: [
          { role: 'system', content: 'S' },
          { role: 'user', content: [{ type: 'text', text: 'Q1' }] },
          { role: 'assistant', content: 'A1', weight: 0 },
          { role: 'user', content: 'Q2' },
          { role: 'assistant', content: 'A2', weight: 1 },
        ],
      }),
      'm.jsonl',
    );
    expect(r.format).toBe('messages');
    expect(chat(r, 0)).toEqual([
      { role: 'system', content: 'S' },
      { role: 'user', content: 'Q1' },
      { role: 'assistant', content: 'A1', train: false },
      { role: 'user', content: 'Q2' },
      { role: 'assistant', content: 'A2' },
    ]);
    const s = parseDataset(
      JSON.stringify([
        {
          system: 'Sys',
          conversations: [
            { from: 'human', value: 'hi' },
            { from: 'bot', value: 'yo' },
            { from: 'human', value: 'dangling' },
          ],
        },
      ]),
      's.json',
      { roles: { bot: 'assistant' } },
    );
    expect(s.format).toBe('sharegpt');
    // the trailing user turn has no response and is dropped
    expect(chat(s, 0)).toEqual([
      { role: 'system', content: 'Sys' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'yo' },
    ]);
  });

  it('self-instruct: one example per instance', () => {
    const r = parseDataset(
      '{"id":"t0","instruction":"Classify","instances":[{"input":"a","output":"x"},{"input":"","output":"y"},{"input":"c","output":""}]}',
      'si.jsonl',
    );
    expect(r.format).toBe('self_instruct');
    expect(r.examples.map((e) => (e as ChatExample).messages.map((m) => m.content))).toEqual([
      ['Classify\na', 'x'],
      ['Classify', 'y'],
    ]);
    expect(r.errors).toEqual([
      { file: 'si.jsonl', line: 1, index: 0, field: 'instances[2].output', message: 'empty response' },
    ]);
  });

  it('column mapping', () => {
    const r = parseDataset('{"q":"Why?","a":"Because."}', 'x.jsonl', { columns: { question: 'q', answer: 'a' } });
    expect(r.format).toBe('qa');
    expect(chat(r, 0).map((m) => m.content)).toEqual(['Why?', 'Because.']);
    const forced = parseDataset('{"prompt":"P","chosen":"C"}', 'x.jsonl', {
      format: 'alpaca',
      columns: { instruction: 'prompt', output: 'chosen' },
    });
    expect(chat(forced, 0).map((m) => m.content)).toEqual(['P', 'C']);
  });

  it('CSV and TSV with header and mapping, BOM and CRLF', () => {
    const csv = '\uFEFFinstruction,input,output\r\n"Say ""hi""",,"Hi,\r\nthere"\r\nEcho,x,x\r\n';
    const r = parseDataset(new TextEncoder().encode(csv), 'd.csv');
    expect(r.container).toBe('csv');
    expect(r.format).toBe('alpaca');
    expect(chat(r, 0).map((m) => m.content)).toEqual(['Say "hi"', 'Hi,\nthere']);
    expect(chat(r, 1)).toEqual([
      { role: 'user', content: 'Echo\nx', instruction: 'Echo', input: 'x' },
      { role: 'assistant', content: 'x' },
    ]);
    const tsv = parseDataset('Q\tA\nq1\ta1\nq2\n', 'd.tsv', { columns: { question: 'Q', answer: 'A' } });
    expect(tsv.examples.length).toBe(1);
    expect(tsv.errors).toEqual([
      { file: 'd.tsv', line: 3, index: 1, message: 'expected 2 fields (as in the header), found 1' },
    ]);
  });

  it('plain text: blank lines and <|endoftext|> separate documents', () => {
    const r = parseDataset('\r\nOne\r\ntwo\r\n\r\n\r\nThree\r\n<|endoftext|>\r\nFour\r\n', 'x.txt');
    expect(r.format).toBe('text');
    expect(r.examples).toEqual([{ text: 'One\ntwo' }, { text: 'Three' }, { text: 'Four' }]);
    expect(parseDataset('a\nb\n', 'x.txt', { textSeparator: 'line' }).examples).toEqual([{ text: 'a' }, { text: 'b' }]);
    expect(parseDataset('a\n\nb', 'x.txt', { textSeparator: 'none' }).examples).toEqual([{ text: 'a\n\nb' }]);
    expect(parseDataset('a###b', 'x.txt', { textSeparator: '###' }).examples).toEqual([{ text: 'a' }, { text: 'b' }]);
  });

  it('a .json file holding JSON Lines is read as JSON Lines', () => {
    const r = parseDataset('{"text":"a"}\n{"text":"b"}\n', 'x.json');
    expect(r.container).toBe('jsonl');
    expect(r.examples.length).toBe(2);
  });
});

describe('bad input', () => {
  it('malformed JSON array: file, line and column', () => {
    const e = thrown(() =>
      parseDataset('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]', 'bad.json'),
    );
    expect(e.errors).toEqual([
      {
        file: 'bad.json',
        line: 3,
        column: 23,
        index: undefined,
        message: "malformed JSON: unexpected \"\\\"\", expected ',' or '}' after property value",
      },
    ]);
    expect(e.message).toBe(
      "bad.json:3:23: malformed JSON: unexpected \"\\\"\", expected ',' or '}' after property value",
    );
  });

  it('malformed JSONL lines are reported and skipped, valid rows kept', () => {
    const r = parseDataset('{"text": "ok"}\r\n{"text": "broken}\r\n\r\n{"text": "fine"}\r\n', 'x.jsonl');
    expect(r.examples).toEqual([{ text: 'ok' }, { text: 'fine' }]);
    expect(r.errors).toEqual([
      { file: 'x.jsonl', line: 2, column: 18, index: 1, message: 'malformed JSON: unterminated string' },
    ]);
  });

  it('per-row field errors name the line, index and field', () => {
    const text = [
      '[',
      '  {"instruction": "ok", "input": "", "output": "fine"},',
      '  {"instruction": "no output", "input": ""},',
      '  {"instruction": 7, "output": "x"},',
      '  {"instruction": "empty", "output": "   "},',
      '  {"instruction": "bad input", "input": ["x"], "output": "y"},',
      '  {"instruction": "bad history", "output": "y", "history": [["only one"]]},',
      '  "not an object"',
      ']',
    ].join('\n');
    const r = parseDataset(text, 'rows.json');
    expect(r.examples.length).toBe(1);
    expect(r.errors.map(formatRowError)).toEqual([
      'rows.json:3 [row 1] output: missing response (expected a non-empty string)',
      'rows.json:4 [row 2] instruction: instruction is a number, expected a string',
      'rows.json:5 [row 3] output: empty response',
      'rows.json:6 [row 4] input: input is an array, expected a string',
      'rows.json:7 [row 5] history[0]: expected an [instruction, response] pair, found 1 items',
      'rows.json:8 [row 6]: row is a string, expected an object',
    ]);
  });

  it('unknown roles, misplaced system, empty turns, no response', () => {
    const lines = [
      {
        conversations: [
          { from: 'human', value: 'q' },
          { from: 'gpt', value: 'a' },
        ],
      },
      {
        conversations: [
          { from: 'human', value: 'q' },
          { from: 'function_call', value: '{}' },
        ],
      },
      {
        conversations: [
          { from: 'human', value: 'q' },
          { from: 'system', value: 's' },
          { from: 'gpt', value: 'a' },
        ],
      },
      {
        conversations: [
          { from: 'human', value: 'q' },
          { from: 'gpt', value: '' },
        ],
      },
      { conversations: [{ from: 'human', value: 'q' }] },
      { conversations: 'nope' },
      {
        conversations: [
          { from: 'human', value: 3 },
          { from: 'gpt', value: 'a' },
        ],
      },
    ].map((o) => JSON.stringify(o));
    const r = parseDataset(lines.join('\n'), 'chat.jsonl');
    expect(r.format).toBe('sharegpt');
    expect(r.examples.length).toBe(1);
    expect(r.errors.map((e) => [e.line, e.field, e.message])).toEqual([
      [
        2,
        'conversations[1].from',
        'unknown role "function_call" (expected one of: system, developer, user, human, assistant, gpt, chatgpt, bard, bing, model)',
      ],
      [3, 'conversations[1].from', 'a system message is only allowed as the first message'],
      [4, 'conversations[1].value', 'empty response'],
      [5, 'conversations', 'conversation has no assistant response'],
      [6, 'conversations', 'conversations is a string, expected a list of messages'],
      [7, 'conversations[0].value', 'content is a number, expected a string'],
    ]);
  });

  it('a file with no valid rows is an error listing the row errors', () => {
    const e = thrown(() => parseDataset('[{"instruction": "a", "output": ""}]', 'empty.json'));
    expect(e.message).toBe(
      'empty.json: no valid rows as alpaca (1 errors; first: empty.json:1 [row 0] output: empty response)',
    );
    expect(e.errors.length).toBe(1);
    expect(thrown(() => parseDataset('  \n', 'blank.jsonl')).message).toBe('blank.jsonl: the file is empty');
    expect(thrown(() => parseDataset('{"foo": 1}', 'odd.jsonl')).message).toMatch(
      /^odd\.jsonl: cannot tell the dataset format from fields \[foo\]/,
    );
    expect(thrown(() => parseDataset('{"a": 1}', 'obj.json', { container: 'json' })).message).toMatch(
      /cannot tell the dataset format/,
    );
  });
});

const file = (name: string) => readFileSync(path.join(DATASETS_DIR, name));

describe.skipIf(!HAVE_DATASETS)('shared datasets (../shared/datasets)', () => {
  const load = (name: string) => parseDataset(file(name), name);

  it('alpaca_en_demo.json: 999 Alpaca examples', () => {
    const r = load('alpaca_en_demo.json');
    expect([r.format, r.container, r.rows, r.examples.length, r.errors.length]).toEqual([
      'alpaca',
      'json',
      999,
      999,
      0,
    ]);
    expect(chat(r, 1)[0].content).toBe('Transform the following sentence using a synonym: The car sped quickly.');
  });

  it('identity.json: 91 examples, placeholders kept verbatim', () => {
    const r = load('identity.json');
    expect([r.format, r.examples.length, r.errors.length]).toEqual(['alpaca', 91, 0]);
    expect(chat(r, 0)[1].content).toBe(
      'Hello! I am {{name}}, an AI assistant developed by {{author}}. How can I assist you today?',
    );
  });

  it('code_alpaca_2k.json: 2017 rows, 2 with empty output reported with line, index and field', () => {
    const r = load('code_alpaca_2k.json');
    expect([r.format, r.rows, r.examples.length]).toEqual(['alpaca', 2017, 2015]);
    expect(r.errors).toEqual([
      { file: 'code_alpaca_2k.json', line: 1187, index: 237, field: 'output', message: 'empty response' },
      { file: 'code_alpaca_2k.json', line: 9297, index: 1859, field: 'output', message: 'empty response' },
    ]);
  });

  it('lima.json: 1029 examples; history turns become earlier messages', () => {
    const raw = JSON.parse(file('lima.json').toString('utf8')) as { history: unknown[] }[];
    const r = load('lima.json');
    expect([r.format, r.examples.length, r.errors.length]).toEqual(['alpaca', 1029, 0]);
    const expectedMessages = raw.reduce((s, row) => s + 2 * (row.history.length + 1), 0);
    expect(r.examples.reduce((s, e) => s + (e as ChatExample).messages.length, 0)).toBe(expectedMessages);
    const multi = r.examples.filter((e) => (e as ChatExample).messages.length > 2).length;
    expect(multi).toBe(raw.filter((row) => row.history.length > 0).length);
    expect(multi).toBe(29);
  });

  it('sharegpt_dummy_conversation.json: 500 conversations, 1000 assistant turns', () => {
    const r = load('sharegpt_dummy_conversation.json');
    expect([r.format, r.examples.length, r.errors.length]).toEqual(['sharegpt', 500, 0]);
    const turns = r.examples.flatMap((e) => (e as ChatExample).messages.filter((m) => m.role === 'assistant'));
    expect(turns.length).toBe(1000);
    expect(chat(r, 0).map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  });

  for (const name of ['self_instruct_seed_tasks.jsonl', 'user_oriented_instructions.jsonl']) {
    it(`${name}: one example per instance`, () => {
      const lines = file(name)
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim());
      const instances = lines.reduce((s, l) => s + (JSON.parse(l) as { instances: unknown[] }).instances.length, 0);
      const r = load(name);
      expect(r.format).toBe('self_instruct');
      expect(r.rows).toBe(lines.length);
      expect(r.examples.length).toBe(instances);
      expect(r.errors).toEqual([]);
    });
  }
  it('instance counts are the documented ones', () => {
    expect(load('self_instruct_seed_tasks.jsonl').examples.length).toBe(175);
    expect(load('user_oriented_instructions.jsonl').examples.length).toBe(252);
  });

  it('gsm8k_test.jsonl: 1319 question/answer examples', () => {
    const r = load('gsm8k_test.jsonl');
    expect([r.format, r.examples.length, r.errors.length]).toEqual(['qa', 1319, 0]);
    expect(chat(r, 0)[1].content.endsWith('#### 18')).toBe(true);
  });

  it('c4_demo.jsonl: 300 text examples', () => {
    const r = load('c4_demo.jsonl');
    expect([r.format, r.examples.length, r.errors.length]).toEqual(['text', 300, 0]);
  });

  it('tinystories_sample.txt: 5 stories split at <|endoftext|>', () => {
    const r = load('tinystories_sample.txt');
    expect([r.format, r.container, r.examples.length]).toEqual(['text', 'txt', 5]);
    expect(
      (r.examples[0] as { text: string }).text.startsWith('Once upon a time there was a little boy named Ben.'),
    ).toBe(true);
    expect(r.examples.every((e) => !(e as { text: string }).text.includes('<|endoftext|>'))).toBe(true);
  });

  for (const [name, turns] of [
    ['mt_bench_question.jsonl', 160],
    ['vicuna_bench_question.jsonl', 80],
  ] as const) {
    it(`${name}: questions only — not training data; 80 prompts with allowPromptsOnly`, () => {
      const e = thrown(() => load(name));
      expect(e.message).toBe(
        `${name}: questions only — 80 rows of "turns" with no responses to train on (an MT-Bench / Vicuna-bench style question file). ` +
          'Use it for evaluation prompts (allowPromptsOnly), not as training data.',
      );
      const r = parseDataset(file(name), name, { allowPromptsOnly: true });
      expect([r.format, r.examples.length, r.prompts?.length]).toEqual(['prompts', 0, 80]);
      expect(r.prompts!.reduce((s, p) => s + p.turns.length, 0)).toBe(turns);
    });
  }

  it('every example from every training file is well formed', () => {
    for (const name of [
      'alpaca_en_demo.json',
      'lima.json',
      'sharegpt_dummy_conversation.json',
      'gsm8k_test.jsonl',
      'self_instruct_seed_tasks.jsonl',
    ]) {
      for (const ex of load(name).examples) {
        if (!isChat(ex)) continue;
        expect(ex.messages[ex.messages.length - 1].role).toBe('assistant');
        for (const m of ex.messages) expect(typeof m.content).toBe('string');
      }
    }
  });
});

if (!HAVE_DATASETS) {
  describe('shared datasets', () => {
    it.skip(sharedMissing('loading the shared dataset files'), () => {});
  });
}

describe('refuse instead of guessing: encodings and columns', () => {
  const enc = (s: string) => new TextEncoder().encode(s);

  it('invalid UTF-8 names the file, the line and the byte; replacing is an opt-in', () => {
    const good = enc('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "');
    const bytes = new Uint8Array([...good, 0xff, 0x64, ...enc('"}\n')]);
    expect(() => parseDataset(bytes, 'bad.jsonl')).toThrow(
      `bad.jsonl:2: invalid UTF-8 at byte ${good.length} (0xff): the file is not UTF-8 text. Save it as UTF-8, or set invalidUtf8: 'replace' to read bad bytes as U+FFFD`,
    );
    const r = parseDataset(bytes, 'bad.jsonl', { invalidUtf8: 'replace' });
    expect(r.examples).toHaveLength(2);
    // an overlong encoding and a lone surrogate are invalid too
    expect(() => parseDataset(new Uint8Array([...enc('{"text": "'), 0xc0, 0xaf, ...enc('"}')]), 'o.jsonl')).toThrow(
      /o\.jsonl:1: invalid UTF-8 at byte 10 \(0xc0\)/,
    );
    expect(() =>
      parseDataset(new Uint8Array([...enc('{"text": "'), 0xed, 0xa0, 0x80, ...enc('"}')]), 's.jsonl'),
    ).toThrow(/s\.jsonl:1: invalid UTF-8 at byte 10 \(0xed\)/);
  });

  it('UTF-16 text is named as such', () => {
    const utf16 = new Uint8Array([0xff, 0xfe, ...[...'[{"text":"hi"}]'].flatMap((c) => [c.charCodeAt(0), 0])]);
    expect(() => parseDataset(utf16, 'wide.json')).toThrow(
      'wide.json: the file is UTF-16 text (byte-order mark FF FE); save it as UTF-8',
    );
  });

  it('columns: unknown fields, missing columns and prototype names are refused', () => {
    const data = '[{"q": "Say hi", "a": "hi"}]';
    expect(parseDataset(data, 'x.json', { columns: { instruction: 'q', output: 'a' } }).examples).toHaveLength(1);
    expect(() => parseDataset(data, 'x.json', { columns: { instrution: 'q' } as never })).toThrow(
      /x\.json: unknown field "instrution" in columns \(expected one of: instruction, input, output/,
    );
    expect(() => parseDataset(data, 'x.json', { columns: { instruction: 'question', output: 'a' } })).toThrow(
      'x.json: columns maps instruction to "question", but no row has a field "question" (fields: q, a)',
    );
    for (const name of ['toString', '__proto__', 'constructor']) {
      expect(() => parseDataset(data, 'x.json', { columns: { instruction: name, output: 'a' } })).toThrow(
        `x.json: columns maps instruction to "${name}", but no row has a field "${name}"`,
      );
    }
  });
});
