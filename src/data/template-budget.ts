/**
 * Chat templates are programs from files a user hands in (tokenizer_config.json, a .jinja file): one that loops a
 * billion times, doubles a string or a list until memory runs out, or runs for minutes would freeze the worker or
 * abort Node. Every rendering here runs under a budget — interpreter steps, characters and list items of any value,
 * items range() may create, and wall-clock time — and a template that exceeds it is refused with its name and the
 * limit it hit. The budget is generous for real templates (a ChatML or Llama 3 template over a 20-turn chat takes
 * a few thousand steps).
 *
 * @huggingface/jinja has no such hooks, so its Interpreter's evaluate/evaluateBlock are wrapped once; the wrapper
 * does nothing while no budgeted rendering is active (rendering is synchronous, so one active budget at a time).
 */
import { Interpreter, type Template } from '@huggingface/jinja';

export interface TemplateBudget {
  /** Expressions and statements evaluated. */
  maxSteps: number;
  /** Characters in any one value, and in all the text the rendering's blocks produce together. */
  maxChars: number;
  /** Items of any one list, and the sum of all range() lengths. */
  maxItems: number;
  /** Milliseconds of wall-clock time. */
  maxMs: number;
}

export const DEFAULT_TEMPLATE_BUDGET: Readonly<TemplateBudget> = Object.freeze({
  maxSteps: 300_000,
  maxChars: 4_000_000,
  maxItems: 100_000,
  maxMs: 2_000,
});

/** A template stopped by its budget. */
export class TemplateBudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateBudgetError';
  }
}

interface Active {
  name: string;
  budget: TemplateBudget;
  steps: number;
  produced: number;
  rangeItems: number;
  start: number;
}

let active: Active | null = null;

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());
const fmt = (n: number) => n.toLocaleString('en-US');

function stop(a: Active, what: string): never {
  throw new TemplateBudgetError(
    `${a.name}: rendering stopped: ${what}. A chat template that needs this much is almost certainly broken or hostile (a runaway loop, or text or lists that double); check its loops and range() calls`,
  );
}

/** Length of a runtime value that can grow: strings and arrays (the interpreter's StringValue / ArrayValue). */
function checkValue(a: Active, v: unknown): void {
  const value = (v as { value?: unknown } | null)?.value;
  if (typeof value === 'string' && value.length > a.budget.maxChars) {
    stop(a, `a value grew to ${fmt(value.length)} characters, over the limit of ${fmt(a.budget.maxChars)}`);
  }
  if (Array.isArray(value) && value.length > a.budget.maxItems) {
    stop(a, `a list grew to ${fmt(value.length)} items, over the limit of ${fmt(a.budget.maxItems)}`);
  }
}

type Evaluate = (this: Interpreter, statement: unknown, environment: unknown) => unknown;
const proto = Interpreter.prototype as unknown as { evaluate: Evaluate; evaluateBlock: Evaluate };
const evaluate = proto.evaluate;
const evaluateBlock = proto.evaluateBlock;

proto.evaluate = function (statement, environment) {
  const a = active;
  if (a) {
    if ((statement as { type?: string } | null)?.type === 'Program') budgetRange(a, environment as EnvironmentLike);
    if (++a.steps > a.budget.maxSteps) stop(a, `more than ${fmt(a.budget.maxSteps)} steps`);
    if ((a.steps & 1023) === 0 && now() - a.start > a.budget.maxMs) stop(a, `longer than ${fmt(a.budget.maxMs)} ms`);
  }
  const v = evaluate.call(this, statement, environment);
  if (a) checkValue(a, v);
  return v;
};

proto.evaluateBlock = function (statements, environment) {
  const v = evaluateBlock.call(this, statements, environment);
  const a = active;
  if (a) {
    checkValue(a, v);
    const text = (v as { value?: unknown }).value;
    // Loops add up their blocks' text before returning it: count every block's text as it is produced.
    a.produced += typeof text === 'string' ? text.length : 0;
    if (a.produced > 4 * a.budget.maxChars) {
      stop(a, `its blocks produced over ${fmt(4 * a.budget.maxChars)} characters`);
    }
  }
  return v;
};

/** The number of items range(…args) yields, as Jinja's range() counts them (0 for arguments it would refuse). */
function rangeLength(args: unknown[]): number {
  const [a, b, step = 1] = args as number[];
  const [lo, hi] = b === undefined ? [0, a] : [a, b];
  if (![lo, hi, step].every((x) => typeof x === 'number' && Number.isFinite(x)) || step === 0) return 0;
  return Math.max(0, Math.ceil((hi - lo) / step));
}

interface FunctionValueLike {
  value: (args: { value: unknown }[], scope: unknown) => unknown;
  constructor: new (fn: FunctionValueLike['value']) => FunctionValueLike;
}
interface EnvironmentLike {
  lookupVariable(name: string): unknown;
  setVariable(name: string, value: unknown): unknown;
}

/** Replace the program's global range() with one that counts its lengths against the budget before building a list. */
function budgetRange(a: Active, env: EnvironmentLike): void {
  const range = env.lookupVariable('range') as FunctionValueLike | undefined;
  if (typeof range?.value !== 'function') return;
  env.setVariable(
    'range',
    new range.constructor((args, scope) => {
      a.rangeItems += rangeLength(args.map((x) => x.value));
      if (a.rangeItems > a.budget.maxItems) {
        stop(a, `range() asked for ${fmt(a.rangeItems)} items in all, over the limit of ${fmt(a.budget.maxItems)}`);
      }
      return range.value(args, scope);
    }),
  );
}

/**
 * template.render(vars) under a budget. `name` says which template it is in messages (e.g. "the chat template of
 * tokenizer_config.json"). Errors other than the budget's pass through unchanged.
 */
export function renderWithBudget(
  template: Template,
  vars: Record<string, unknown>,
  name: string,
  budget: TemplateBudget = DEFAULT_TEMPLATE_BUDGET,
): string {
  const outer = active;
  const a: Active = { name, budget, steps: 0, produced: 0, rangeItems: 0, start: now() };
  active = a;
  try {
    return template.render(vars);
  } finally {
    active = outer;
  }
}
