/** Checkpoint history rows are checked like the rest of checkpoint.json (issue #12: junk history rows were accepted). */
import { describe, expect, it } from 'vitest';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  CheckpointFormatError,
  validateCheckpointMeta,
} from '../../src/train/checkpoint';

const trainRow = (step: number) => ({
  step,
  epoch: step / 4,
  loss: 2.5 - step / 10,
  accuracy: 0.25,
  learning_rate: 1e-3,
  grad_norm: 0.8,
  tokens_per_sec: 120,
  trained_tokens: 40,
  ms_per_step: 35,
  num_tensors: 110,
  steps: 2,
});
const evalRow = (step: number) => ({
  step,
  epoch: step / 4,
  eval_loss: 2.4,
  eval_accuracy: 0.3,
  eval_tokens: 20,
  eval_runtime: 0.2,
});
const windowRow = (step: number) => ({
  step,
  loss: 2.1,
  accuracy: 0.3,
  correct: 6,
  tokens: 20,
  learning_rate: 1e-3,
  gradNorm: 0.7,
  msPerStep: 30,
  tokensPerSec: 100,
  numTensors: 110,
  inputTokens: 40,
});

function meta(history: unknown[], window: unknown[] = [windowRow(5)]) {
  return {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    model: { hash: 'sha256:' + '0'.repeat(64) },
    dataset: { hash: 'abc' },
    config: {},
    lora: {},
    progress: { global_step: 5, max_steps: 10 },
    optimizer: { step: 5, param_steps: {} },
    schedule: {},
    data_cursor: {},
    rng: { key: [1, 2], s: [1, 2, 3, 4] },
    session: { history, window, last_eval_step: 4 },
  };
}

const good = [trainRow(2), evalRow(2), trainRow(4), evalRow(4)];

function refusal(history: unknown[], window?: unknown[]): string {
  try {
    validateCheckpointMeta(JSON.parse(JSON.stringify(meta(history, window))), 'run/checkpoint-5/checkpoint.json');
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointFormatError);
    return (e as Error).message;
  }
  return 'accepted';
}

describe('checkpoint session history', () => {
  it('a history as the session writes it is accepted', () => {
    expect(refusal(good)).toBe('accepted');
    expect(refusal([], [])).toBe('accepted');
  });

  it('junk rows are refused naming the file, the row and the field', () => {
    const cases: [unknown[], string][] = [
      [[trainRow(2), 'loss 2.3'], 'session.history[1] is not an object'],
      [[trainRow(2), { ...trainRow(4), loss: '2.3' }], 'session.history[1].loss is "2.3", expected a finite number'],
      [[{ ...trainRow(2), grad_norm: NaN }], 'session.history[0].grad_norm is null (a NaN or Infinity saved as null?)'],
      [[{ ...trainRow(2), note: 'x' }], 'session.history[0] has an unknown field "note"'],
      [[{ ...trainRow(2), __proto__x: 1 }], 'session.history[0] has an unknown field "__proto__x"'],
      [[trainRow(4), trainRow(2)], 'session.history[1].step is 2, but the row before it is at step 4'],
      [[trainRow(2.5)], 'session.history[0].step is 2.5, expected a whole number'],
      [[trainRow(9)], "session.history[0].step is 9, after the checkpoint's progress.global_step 5"],
      [[{ epoch: 0, loss: 1 }], 'session.history[0] has no "step"'],
      [[{ ...trainRow(2), epoch: -1 }], 'session.history[0].epoch is -1'],
    ];
    for (const [history, want] of cases) {
      const msg = refusal(history);
      expect(msg, JSON.stringify(history)).toContain('run/checkpoint-5/checkpoint.json: ' + want);
    }
    expect(refusal(good, [windowRow(5), windowRow(5)])).toContain(
      'session.window[1].step is 5, but the row before it is at step 5',
    );
    expect(refusal(good, [{ ...windowRow(5), gradNorm: 'big' }])).toContain('session.window[0].gradNorm is "big"');
  });
});
