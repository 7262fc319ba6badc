/**
 * Exported runs (src/train/export-run.ts): the bundle's data, re-rendered with the bundle's own chat template by the
 * page's renderer and tokenized with the same tokenizer, gives the very ids and trained-token masks the run trained
 * on — for every dataset format (Alpaca, ShareGPT, messages, prompt/completion, text), multi-turn conversations,
 * untrained turns, train_on_inputs and an eos_token override; the YAML parses and its settings, and train_trl.py's
 * keyword arguments, read back field by field equal the run's configuration.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { templateTokensOf, type TemplateSpec } from '../../src/data';
import type { Tokenizer } from '../../src/io/tokenizer';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import { resolveFinetuneConfig, type FinetuneConfig } from '../../src/train/config';
import { prepareSessionData, type DatasetSource } from '../../src/train/dataset';
import { buildRunBundle, CHAT_TEMPLATE_FILE, type RunBundle } from '../../src/train/export-run';
import { expectAllSplits, expectSettingsRoundTrip, type Exported } from './export-check';
import { DATASETS_DIR, HAVE_DATASETS, HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';
import { ToyTokenizer } from '../data/toy-tokenizer';

const CHATML_JINJA =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** A Zephyr-style template that writes eos_token after each assistant turn. */
const ZEPHYR_JINJA =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

interface ExportedRun extends Exported {
  bundle: RunBundle;
}

function exportRun(tok: Tokenizer, sources: DatasetSource[], partial: Partial<FinetuneConfig>): ExportedRun {
  const { config } = resolveFinetuneConfig(partial, 512);
  const data = prepareSessionData(tok, { train: sources }, config);
  let eosAsToken: string | null = null;
  if (config.eos_token !== null) {
    const ids = tok.encode(config.eos_token, { addBos: false });
    if (ids.length === 1) eosAsToken = tok.idToToken(ids[0]) ?? null;
  }
  const bundle = buildRunBundle({
    runName: 'test run',
    baseModel: 'org/base-model',
    modelConfig: { family: 'llama', max_position_embeddings: 512 },
    config,
    template: data.template,
    tokens: templateTokensOf(tok),
    eosAsToken,
    splits: { train: data.train.source, validation: data.validation.source, test: data.test.source },
    saveSteps: 25,
  });
  return {
    bundle,
    files: bundle.files,
    config,
    trained: { train: data.train.examples, validation: data.validation.examples, test: data.test.examples },
  };
}

const WANT = { baseModel: 'org/base-model', saveSteps: 25 };

const toy = (opts: ConstructorParameters<typeof ToyTokenizer>[0] = {}) => new ToyTokenizer(opts);

const src = (name: string, rows: unknown[]): DatasetSource => ({
  name,
  bytes: rows.map((r) => JSON.stringify(r)).join('\n') + '\n',
});

const ALPACA_ROWS = [
  { instruction: 'Name a colour.', input: '', output: 'Blue.' },
  { instruction: 'Add the numbers.', input: '2 and 3', output: '5' },
  {
    instruction: 'And now double it.',
    input: '',
    output: '10',
    system: 'You are a calculator.',
    history: [
      ['Add 2 and 3', '5'],
      ['Now subtract 1', '4'],
    ],
  },
  { instruction: 'Multi\nline instruction', input: 'with\ninput', output: 'multi\nline output' },
];
const SHAREGPT_ROWS = [
  {
    conversations: [
      { from: 'human', value: 'Hi there' },
      { from: 'gpt', value: 'Hello! How can I help?' },
      { from: 'human', value: 'Tell me a joke' },
      { from: 'gpt', value: 'Why did the chicken cross the road?' },
    ],
    system: 'Be funny.',
  },
  {
    conversations: [
      { from: 'human', value: 'One' },
      { from: 'gpt', value: 'Two' },
    ],
  },
  {
    conversations: [
      { from: 'human', value: 'Three' },
      { from: 'gpt', value: 'Four' },
      { from: 'human', value: 'Five' },
      { from: 'gpt', value: 'Six' },
    ],
  },
];
const MESSAGES_ROWS = [
  {
    messages: [
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: 'What is 1+1?' },
      { role: 'assistant', content: 'Three.', weight: 0 },
      { role: 'user', content: 'Wrong. Again?' },
      { role: 'assistant', content: 'Two.' },
    ],
  },
  {
    messages: [
      { role: 'user', content: 'Part one.' },
      { role: 'user', content: 'Part two.' },
      { role: 'assistant', content: 'Both parts read.' },
    ],
  },
  {
    messages: [
      { role: 'user', content: 'Say hi' },
      { role: 'assistant', content: 'hi' },
    ],
  },
];
const PC_ROWS = [
  { prompt: 'The sky is', completion: ' blue.' },
  { prompt: 'Grass is', completion: ' green.' },
  { prompt: 'Two plus two is', completion: ' four.' },
];
const TEXT_ROWS = [
  { text: 'Once upon a time there was a cat.' },
  { text: 'The end of a story.' },
  { text: 'Lines\nof text.' },
];

const ALL_SOURCES = () => ({
  alpaca: src('alpaca.jsonl', ALPACA_ROWS),
  sharegpt: src('sharegpt.jsonl', SHAREGPT_ROWS),
  messages: src('messages.jsonl', MESSAGES_ROWS),
  prompt_completion: src('pc.jsonl', PC_ROWS),
  text: src('text.jsonl', TEXT_ROWS),
});

const TEMPLATES: TemplateSpec[] = [
  { kind: 'alpaca' },
  { kind: 'instruction' },
  { kind: 'chatml' },
  {
    kind: 'custom',
    template: 'Q: {instruction}\nInput: {input}\nA: {output}</s>\n',
    templateNoInput: '{system}Q: {instruction}\nA: {output}',
    separator: '\n---\n',
  },
  { kind: 'chat_template', template: ZEPHYR_JINJA },
];

describe('exported data re-renders to the ids and masks the run trained on (toy tokenizer)', () => {
  for (const template of TEMPLATES) {
    for (const [format, source] of Object.entries(ALL_SOURCES())) {
      for (const train_on_inputs of [false, true]) {
        it(`${template.kind} · ${format} · train_on_inputs=${train_on_inputs}`, () => {
          const tok = toy({ recognizeSpecials: true, extraSpecials: ['<|im_start|>', '<|im_end|>'] });
          const e = exportRun(tok, [source], { template, train_on_inputs, val_size: 1, test_size: 1, seed: 3 });
          expect(expectAllSplits(tok, e)).toBeGreaterThan(1);
          expectSettingsRoundTrip(e, WANT);
        });
      }
    }
  }

  it('the raw template exports prompt/completion rows (TRL completion_only_loss, Axolotl input_output segments)', () => {
    const tok = toy();
    const e = exportRun(tok, [ALL_SOURCES().prompt_completion], { template: { kind: 'raw' } });
    expect(e.bundle.plan.mainKind).toBe('prompt_completion');
    const rows = e.bundle.files.get('data/train.jsonl')!.trim().split('\n');
    expect(rows.sort()).toEqual(PC_ROWS.map((r) => JSON.stringify(r)).sort());
    expect(e.bundle.files.has(CHAT_TEMPLATE_FILE)).toBe(false);
    expect(expectAllSplits(tok, e)).toBe(3);
    expectSettingsRoundTrip(e, WANT);
  });

  it("the tokenizer's own chat template (ChatML with EOS <|im_end|>) is exported as it is", () => {
    const tok = toy({
      recognizeSpecials: true,
      extraSpecials: ['<|im_start|>'],
      eosText: '<|im_end|>',
      chatTemplate: CHATML_JINJA,
    });
    const e = exportRun(tok, [ALL_SOURCES().sharegpt, ALL_SOURCES().messages], {});
    expect(e.bundle.files.get(CHAT_TEMPLATE_FILE)).toBe(CHATML_JINJA + '\n');
    expect(e.bundle.plan.generationBlocks).toBe(false);
    expect(e.bundle.plan.notes.join('\n')).toMatch(/no \{% generation %\} blocks/);
    expect(expectAllSplits(tok, e)).toBe(6);
    expectSettingsRoundTrip(e, WANT);
  });

  it('writes Stanford Alpaca JSON beside the messages for instruction runs, history included', () => {
    const tok = toy();
    const e = exportRun(tok, [ALL_SOURCES().alpaca], { template: { kind: 'alpaca' }, seed: 1 });
    const alpaca = JSON.parse(e.bundle.files.get('data/train.alpaca.json')!) as Record<string, unknown>[];
    expect(alpaca).toHaveLength(4);
    expect(alpaca).toContainEqual(ALPACA_ROWS[2]);
    expect(alpaca).toContainEqual(ALPACA_ROWS[1]);
  });

  it('a mixed dataset keeps the minority rows in their own file and says so', () => {
    const tok = toy();
    const e = exportRun(tok, [ALL_SOURCES().alpaca, ALL_SOURCES().text], { template: { kind: 'alpaca' } });
    expect(e.bundle.files.get('data/train.text.jsonl')!.trim().split('\n')).toHaveLength(3);
    expect(e.bundle.plan.notes.join('\n')).toMatch(/3 row\(s\) are plain texts/);
  });
});

describe.skipIf(!HAVE_STORIES)(
  HAVE_STORIES
    ? 'exported data re-renders identically with the stories260K tokenizer'
    : sharedMissing('stories260K tokenizer export test'),
  () => {
    it.skipIf(!HAVE_DATASETS)(
      'every shared dataset, with its preset (instruction, eos_token "\\n") and with alpaca + train_on_inputs',
      () => {
        const tok = parseLlama2cTokenizer(readFileSync(path.join(STORIES_DIR, 'tok512.bin')), 'tok512.bin');
        const names = [
          'alpaca_en_demo.json',
          'code_alpaca_2k.json',
          'identity.json',
          'lima.json',
          'sharegpt_dummy_conversation.json',
          'c4_demo.jsonl',
          'gsm8k_test.jsonl',
          'self_instruct_seed_tasks.jsonl',
          'user_oriented_instructions.jsonl',
          'tinystories_sample.txt',
        ];
        const counts: Record<string, number> = {};
        for (const name of names) {
          const source: DatasetSource = { name, bytes: readFileSync(path.join(DATASETS_DIR, name)) };
          for (const partial of [
            { template: { kind: 'instruction' } as TemplateSpec, eos_token: '\n', max_length: 256, val_size: 0.1 },
            { template: { kind: 'alpaca' } as TemplateSpec, train_on_inputs: true, max_length: 128, test_size: 0.1 },
          ]) {
            const e = exportRun(tok, [source], partial);
            counts[`${name} ${partial.template.kind}`] = expectAllSplits(tok, e);
            expectSettingsRoundTrip(e, WANT);
          }
        }
        console.log('examples re-rendered identically:', counts);
      },
      240_000,
    );
  },
);

describe('train_trl.py compiles', () => {
  it('python3 -m py_compile accepts the script', () => {
    const e = exportRun(toy(), [ALL_SOURCES().messages, ALL_SOURCES().alpaca], {
      template: { kind: 'alpaca' },
      target_modules: 'all-linear',
      use_rslora: true,
      eos_token: '</s>',
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'webtune-export-'));
    const file = path.join(dir, 'train_trl.py');
    writeFileSync(file, e.bundle.files.get('train_trl.py')!);
    try {
      execFileSync('python3', ['-m', 'py_compile', file], { stdio: 'pipe' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // no python3 here
      throw new Error(String((err as { stderr?: Buffer }).stderr ?? err), { cause: err });
    }
  });
});
