/**
 * The metrics history stored in a checkpoint (checkpoint.json session.history and session.window), checked like the
 * rest of the checkpoint before a run resumes from it: every row an object of known fields (those the session logs,
 * HF log_history names: loss, learning_rate, grad_norm, eval_loss, …), every value a finite number (JSON has no NaN:
 * a null is one saved as null), steps whole and in order (a train row and its evaluation share a step) and not past
 * the checkpoint's global_step. A bad row is refused naming the row and the field.
 */
import type { LogEntry, StepRecord } from './metrics';
import { METRICS_CSV_COLUMNS } from './metrics-export';

/** Fields of a history row: the metrics.csv columns (SessionMetrics and EvalMetrics) and an evaluation's steps. */
const LOG_FIELDS: ReadonlySet<string> = new Set<string>([...METRICS_CSV_COLUMNS, 'steps']);

/** Fields of a step of the logging window not yet logged: StepRecord (./metrics.ts). */
const WINDOW_FIELDS: ReadonlySet<string> = new Set([
  'step',
  'loss',
  'accuracy',
  'correct',
  'tokens',
  'learning_rate',
  'gradNorm',
  'msPerStep',
  'tokensPerSec',
  'numTensors',
  'inputTokens',
]);

function checkRows(
  rows: unknown[],
  name: string,
  fields: ReadonlySet<string>,
  globalStep: number,
  strictlyIncreasing: boolean,
  fail: (what: string) => never,
): void {
  let prev = -Infinity;
  rows.forEach((row, i) => {
    const at = `${name}[${i}]`;
    if (typeof row !== 'object' || row === null || Array.isArray(row)) fail(`${at} is not an object`);
    const r = row as Record<string, unknown>;
    for (const [k, v] of Object.entries(r)) {
      if (!fields.has(k)) fail(`${at} has an unknown field "${k}" (known: ${[...fields].join(', ')})`);
      if (typeof v !== 'number')
        fail(
          `${at}.${k} is ${v === null ? 'null (a NaN or Infinity saved as null?)' : JSON.stringify(v)}, expected a finite number`,
        );
      if (!Number.isFinite(v)) fail(`${at}.${k} is ${v}, expected a finite number`);
    }
    const step = r.step;
    if (step === undefined) fail(`${at} has no "step"`);
    if (!Number.isSafeInteger(step) || (step as number) < 0) fail(`${at}.step is ${step}, expected a whole number ≥ 0`);
    const s = step as number;
    if (s > globalStep) fail(`${at}.step is ${s}, after the checkpoint's progress.global_step ${globalStep}`);
    if (strictlyIncreasing ? s <= prev : s < prev)
      fail(
        `${at}.step is ${s}, but the row before it is at step ${prev}: steps must ${strictlyIncreasing ? 'increase' : 'not decrease'}`,
      );
    prev = s;
    if ('epoch' in r && (r.epoch as number) < 0) fail(`${at}.epoch is ${r.epoch}, expected ≥ 0`);
  });
}

/** Throws (through `fail`, which names the file) unless session.history and session.window are well-formed. */
export function validateSessionHistory(
  session: { history: unknown[]; window: unknown[] },
  globalStep: number,
  fail: (what: string) => never,
): { history: LogEntry[]; window: StepRecord[] } {
  checkRows(session.history, 'session.history', LOG_FIELDS, globalStep, false, fail);
  checkRows(session.window, 'session.window', WINDOW_FIELDS, globalStep, true, fail);
  return { history: session.history as LogEntry[], window: session.window as StepRecord[] };
}
