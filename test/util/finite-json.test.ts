import { describe, expect, it } from 'vitest';
import { NonFiniteJsonError, stringifyFinite } from '../../src/util/finite';

describe('stringifyFinite', () => {
  it('writes what JSON.stringify writes for finite values, null included', () => {
    const v = { a: 1.5, b: [1, null, 'x'], c: { d: -0.25 }, e: null };
    expect(stringifyFinite(v)).toBe(JSON.stringify(v));
    expect(stringifyFinite(v, 2)).toBe(JSON.stringify(v, null, 2));
  });

  it('refuses NaN and ±Infinity naming the field instead of writing null', () => {
    expect(JSON.stringify({ mean_nll: NaN })).toBe('{"mean_nll":null}'); // what it replaces
    expect(() => stringifyFinite({ model: 'm', mean_nll: NaN })).toThrow(/^mean_nll is NaN, which JSON cannot/);
    const e = (() => {
      try {
        stringifyFinite({ log_history: [{ loss: 1 }, { loss: 2, grad_norm: -Infinity }] });
      } catch (err) {
        return err as NonFiniteJsonError;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(NonFiniteJsonError);
    expect(e!.path).toBe('log_history[1].grad_norm');
    expect(e!.value).toBe(-Infinity);
    expect(() => stringifyFinite(Infinity)).toThrow(/^\(value\) is Infinity/);
  });
});
