/**
 * Generator of the page's built-in demo dataset (public/datasets/tiny-tasks.jsonl and tiny-tasks-eval.jsonl):
 * tasks that a tiny story model can do from the prompt alone (copy a word, first / last word of a list, say hello
 * to a name, put a name into a story opening), so that a short LoRA run teaches it to follow instructions on words
 * it has never seen. See public/datasets/README.md for the tasks and measured figures. The held-out file uses only words (and names) that never occur in the
 * training file, and part of it phrasings that training never uses. Deterministic: the same options always give
 * the same bytes (test/data/demo-data.test.ts checks the shipped files against it).
 *
 *   npx tsx tools/make-demo-data.ts [outDir] ['{"perTask": 300, ...}']   default outDir public/datasets
 *   npx tsx tools/measure-demo.ts <outDir>/tiny-tasks.jsonl <outDir>/tiny-tasks-eval.jsonl   (tune + score)
 *
 * Words: made of a consonant and a rime ("b"+"at", "s"+"in", …) that stories260K's 512-token tokenizer encodes
 * as exactly two tokens, the same two whether the word starts a line or follows a space. Most are made up
 * ("gom", "yit"), some are English ("pen", "sun"); either way an answer word can only come from the prompt. Names
 * are the capitalised words of some onsets. One word in `heldOutEvery` (after a seeded shuffle) is kept for the
 * held-out file only, with its name. Lists stand one word per line: a word at a line start and the same word after
 * a space begin with different tokens, and copying across that difference is much harder for stories260K.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../src/util/rng';

const ONSETS = 'b c d f g h k l m n p r s t w y'.split(' ');
const RIMES = 'at ot en im om ig ut ay ow un ad an ar et am ir it in ed il id er on oo is ing'.split(' ');
/**
 * Left out: words the tokenizer does not split as onset + rime (a merged token such as " big", " day", " her",
 * " Tim", or a different split such as "r"+"en"), and a few words unsuitable for a children's demo. Words the
 * prompts and responses are written with are left out too (TEMPLATE_WORDS).
 */
const EXCLUDED = new Set('big but day had her his ked mom nam ren rig ret rer Tim nig tit gay pis poo dam'.split(' '));
/** Onsets whose capital has its own space-prefixed token (" T", " S", …): their words, capitalised, are the names. */
const NAME_ONSETS = 't s l b m h'.split(' ');

const words = (): string[] =>
  ONSETS.flatMap((o) => RIMES.map((r) => o + r)).filter((w) => !EXCLUDED.has(w) && !TEMPLATE_WORDS.has(w));

type Phrasing = (...w: string[]) => string;
interface Task {
  name: string;
  /** Phrasings used in training (and for part of the held-out file). */
  train: Phrasing[];
  /** Phrasings that only the held-out file uses. */
  heldOut: Phrasing[];
  /** Use the name pool (capitalised words) instead of the word pool. */
  names?: boolean;
  /** Arguments for one example drawn from the pool, and the response. */
  make(rng: Rng, pool: string[]): { args: string[]; response: string };
}

const pick = <T>(rng: Rng, a: readonly T[]): T => a[rng.int(a.length)];
const distinct = (rng: Rng, a: readonly string[], n: number): string[] => rng.shuffle([...a]).slice(0, n);

const TASKS: Task[] = [
  {
    name: 'repeat',
    train: [(w) => `Say this word:\n${w}`, (w) => `Repeat this word:\n${w}`, (w) => `Copy this word:\n${w}`],
    heldOut: [(w) => `Please say this word:\n${w}`],
    make: (rng, pool) => {
      const w = pick(rng, pool);
      return { args: [w], response: w };
    },
  },
  {
    name: 'first',
    train: [(...w) => `First word:\n${w.join('\n')}`, (...w) => `Say the first word:\n${w.join('\n')}`],
    heldOut: [(...w) => `Which word comes first?\n${w.join('\n')}`],
    make: (rng, pool) => {
      const ws = distinct(rng, pool, 3);
      return { args: ws, response: ws[0] };
    },
  },
  {
    name: 'last',
    train: [(...w) => `Last word:\n${w.join('\n')}`, (...w) => `Say the last word:\n${w.join('\n')}`],
    heldOut: [(...w) => `Which word comes last?\n${w.join('\n')}`],
    make: (rng, pool) => {
      const ws = distinct(rng, pool, 3);
      return { args: ws, response: ws[2] };
    },
  },
  {
    name: 'hello',
    train: [(n) => `Say hello to ${n}.`, (n) => `Greet ${n}.`],
    heldOut: [(n) => `Please say hello to ${n}.`],
    names: true,
    make: (rng, pool) => {
      const n = pick(rng, pool);
      return { args: [n], response: `Hello, ${n}!` };
    },
  },
  {
    name: 'story',
    train: [(n, who) => `A ${who} named ${n}.`, (n, who) => `The ${who} named ${n}.`],
    heldOut: [(n, who) => `Start a story about a ${who} named ${n}.`],
    names: true,
    make: (rng, pool) => {
      const n = pick(rng, pool);
      const who = pick(rng, ['girl', 'boy', 'dog', 'cat', 'bird']);
      return { args: [n, who], response: `Once upon a time, there was a ${who} named ${n}.` };
    },
  },
];

/** Every word of the phrasings and the fixed response text (a pool word must not be one of them). */
const TEMPLATE_WORDS = new Set(
  TASKS.flatMap((t) => [...t.train, ...t.heldOut].map((p) => p('', '', '')))
    .concat(['Once upon a time there was a named girl boy dog cat bird hello'])
    .join(' ')
    .toLowerCase()
    .match(/[a-z]+/g),
);

export interface DemoDataOptions {
  /** Training examples per task. */
  perTask: number;
  /** Held-out examples per task: [with a training phrasing, with a held-out phrasing]. */
  evalPerTask: [number, number];
  /** One pool word in this many is held out. */
  heldOutEvery: number;
}

export const DEMO_DATA_OPTIONS: DemoDataOptions = { perTask: 200, evalPerTask: [4, 2], heldOutEvery: 6 };

export interface Row {
  task: string;
  messages: { role: 'user' | 'assistant'; content: string }[];
}

const row = (task: string, prompt: string, response: string): Row => ({
  task,
  messages: [
    { role: 'user', content: prompt },
    { role: 'assistant', content: response },
  ],
});

/** Splits a pool into [training words, held-out words]. */
function split(rng: Rng, pool: string[], every: number): [string[], string[]] {
  const shuffled = rng.shuffle([...pool]);
  return [shuffled.filter((_, i) => i % every !== 0).sort(), shuffled.filter((_, i) => i % every === 0).sort()];
}

export function generateDemoData(opts: DemoDataOptions = DEMO_DATA_OPTIONS): {
  train: Row[];
  evaluation: Row[];
  pools: { train: string[]; heldOut: string[] };
} {
  const rng = new Rng('webtune demo data v3');
  const [trainWords, evalWords] = split(rng.derive('words'), words(), opts.heldOutEvery);
  // names: the capitalised words of some onsets, held out with their word (a held-out "bet" means a held-out "Bet")
  const asNames = (ws: string[]) =>
    ws
      .filter((w) => NAME_ONSETS.includes(w[0]))
      .map((w) => w[0].toUpperCase() + w.slice(1))
      .filter((n) => !EXCLUDED.has(n));
  const [trainNames, evalNames] = [asNames(trainWords), asNames(evalWords)];
  const train: Row[] = [];
  const evaluation: Row[] = [];
  const seen = new Set<string>();
  for (const task of TASKS) {
    const r = rng.derive('train', task.name);
    const pool = task.names ? trainNames : trainWords;
    let made = 0;
    for (let tries = 0; made < opts.perTask && tries < opts.perTask * 50; tries++) {
      const { args, response } = task.make(r, pool);
      const prompt = task.train[made % task.train.length](...args);
      if (seen.has(prompt)) continue;
      seen.add(prompt);
      train.push(row(task.name, prompt, response));
      made++;
    }
    const e = rng.derive('eval', task.name);
    const evalSeen = new Set<string>();
    for (const [k, phrasings] of [task.train, task.heldOut].entries()) {
      made = 0;
      for (let tries = 0; made < opts.evalPerTask[k] && tries < 1000; tries++) {
        const { args, response } = task.make(e, task.names ? evalNames : evalWords);
        const prompt = phrasings[made % phrasings.length](...args);
        if (evalSeen.has(args[0])) continue;
        evalSeen.add(args[0]);
        evaluation.push(row(task.name, prompt, response));
        made++;
      }
    }
  }
  const out = { train: rng.derive('order').shuffle(train), evaluation };
  checkDemoData(out.train, out.evaluation, [...evalWords, ...evalNames], [...trainWords, ...trainNames]);
  return { ...out, pools: { train: [...trainWords, ...trainNames], heldOut: [...evalWords, ...evalNames] } };
}

/** Words of a text, lower case. */
export const wordsOf = (text: string): string[] => text.toLowerCase().match(/[a-z]+/g) ?? [];

/**
 * Throws when a held-out word occurs anywhere in the training file, when a held-out prompt is also a training
 * prompt, or when a held-out prompt contains a training pool word (trainPool, if given).
 */
export function checkDemoData(train: Row[], evaluation: Row[], heldOutWords: string[], trainPool: string[] = []): void {
  const trainWords = new Set(train.flatMap((r) => r.messages.flatMap((m) => wordsOf(m.content))));
  for (const w of heldOutWords)
    if (trainWords.has(w.toLowerCase())) throw new Error(`held-out word "${w}" occurs in training`);
  const prompts = new Set(train.map((r) => r.messages[0].content));
  const pool = new Set(trainPool.map((w) => w.toLowerCase()));
  for (const r of evaluation) {
    const prompt = r.messages[0].content;
    if (prompts.has(prompt)) throw new Error(`held-out prompt in training: ${prompt}`);
    const w = wordsOf(prompt).find((x) => pool.has(x));
    if (w) throw new Error(`held-out prompt uses the training word "${w}": ${prompt}`);
  }
}

export const jsonl = (rows: Row[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const outDir = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', 'public', 'datasets'));
  const opts = { ...DEMO_DATA_OPTIONS, ...(process.argv[3] ? JSON.parse(process.argv[3]) : {}) } as DemoDataOptions;
  const { train, evaluation, pools } = generateDemoData(opts);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'tiny-tasks.jsonl'), jsonl(train));
  writeFileSync(path.join(outDir, 'tiny-tasks-eval.jsonl'), jsonl(evaluation));
  console.log(
    `wrote ${train.length} training and ${evaluation.length} held-out examples to ${outDir} ` +
      `(${pools.train.length} training words/names, ${pools.heldOut.length} held out)`,
  );
}
