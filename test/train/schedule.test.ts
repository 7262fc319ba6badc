import { describe, expect, it } from 'vitest';
import {
  constantWithWarmupLambda,
  cosineWithWarmupLambda,
  linearWithWarmupLambda,
  lrLambda,
  makeSchedule,
  warmupStepsFor,
} from '../../src/train/schedule';

describe('HF lr schedules', () => {
  it('linear with warmup (warmup 2, total 10)', () => {
    // lambda(s) = s/2 for s < 2, then (10 − s)/8, floored at 0
    const got = Array.from({ length: 12 }, (_, s) => linearWithWarmupLambda(s, 2, 10));
    expect(got).toEqual([0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0, 0]);
  });

  it('linear without warmup starts at 1 (max(1, total − warmup) guards total = warmup)', () => {
    expect(linearWithWarmupLambda(0, 0, 4)).toBe(1);
    expect(linearWithWarmupLambda(3, 0, 4)).toBe(0.25);
    expect(linearWithWarmupLambda(5, 5, 5)).toBe(0); // (5 − 5)/max(1, 0)
  });

  it('cosine with warmup, num_cycles 0.5 (warmup 2, total 10)', () => {
    expect(cosineWithWarmupLambda(0, 2, 10)).toBe(0);
    expect(cosineWithWarmupLambda(1, 2, 10)).toBe(0.5);
    expect(cosineWithWarmupLambda(2, 2, 10)).toBe(1);
    // progress = (s − 2)/8: s = 4 → 0.25 → 0.5(1 + cos(π/4)); s = 6 → 0.5; s = 10 → 0
    expect(cosineWithWarmupLambda(4, 2, 10)).toBeCloseTo(0.5 * (1 + Math.SQRT1_2), 15);
    expect(cosineWithWarmupLambda(6, 2, 10)).toBeCloseTo(0.5, 15);
    expect(cosineWithWarmupLambda(10, 2, 10)).toBeCloseTo(0, 15);
    // past the end the half-cosine rises again, as in HF (only clamped below at 0)
    expect(cosineWithWarmupLambda(14, 2, 10)).toBeCloseTo(0.5, 15);
    // num_cycles 1: full cosine back to 1 at the end
    expect(cosineWithWarmupLambda(10, 2, 10, 1)).toBeCloseTo(1, 15);
    expect(cosineWithWarmupLambda(6, 2, 10, 1)).toBeCloseTo(0, 15);
    expect(cosineWithWarmupLambda(4, 2, 10, 1)).toBe(0.5 * (1 + Math.cos(Math.PI * 0.5)));
  });

  it('constant and constant_with_warmup', () => {
    expect(lrLambda({ name: 'constant', warmupSteps: 5, totalSteps: 10 }, 0)).toBe(1); // no warmup, as HF get_constant_schedule
    const cw = Array.from({ length: 6 }, (_, s) => constantWithWarmupLambda(s, 4));
    expect(cw).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
    expect(constantWithWarmupLambda(0, 0)).toBe(1);
  });

  it('makeSchedule multiplies the base lr', () => {
    const lrAt = makeSchedule(2e-4, { name: 'linear', warmupSteps: 10, totalSteps: 100 });
    expect(lrAt(0)).toBe(0);
    expect(lrAt(5)).toBeCloseTo(1e-4, 18);
    expect(lrAt(10)).toBe(2e-4);
    expect(lrAt(55)).toBeCloseTo(1e-4, 18);
    expect(lrAt(100)).toBe(0);
    expect(() => makeSchedule(1, { name: 'bogus' as never, warmupSteps: 0, totalSteps: 1 })).toThrow(
      /unknown lr schedule/,
    );
  });

  it('warmup steps: explicit steps win, else ceil(total · ratio) as HF get_warmup_steps', () => {
    expect(warmupStepsFor(100, { warmupSteps: 7, warmupRatio: 0.5 })).toBe(7);
    expect(warmupStepsFor(100, { warmupRatio: 0.1 })).toBe(Math.ceil(100 * 0.1));
    expect(warmupStepsFor(100, { warmupRatio: 0.07 })).toBe(8); // 100·0.07 = 7.000000000000001 in float64, as in Python
    expect(warmupStepsFor(33, { warmupRatio: 0.1 })).toBe(4);
    expect(warmupStepsFor(33, {})).toBe(0);
    expect(() => warmupStepsFor(10, { warmupRatio: 1.5 })).toThrow(/warmupRatio/);
  });
});
