/**
 * The exponential-pattern check (src/util/regex-cost.ts) times probes on the wall clock, so a probe the machine
 * paused in reads slow. Here the clock jumps 60 ms inside one probe of each pattern: an exponential pattern must still
 * be refused on a short probe (under load it twice ran on to 30 characters, 2.5-3 s), and a real tokenizer
 * pattern must pass.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkRegexCost } from '../../src/util/regex-cost';

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** performance.now() as it is, but `jump` ms later from its `at`-th reading on, until the reading after it. */
function pauseAt(at: number, jump: number) {
  const real = performance.now.bind(performance);
  let reads = 0;
  vi.spyOn(performance, 'now').mockImplementation(() => {
    reads++;
    return real() + (reads === at ? jump : 0);
  });
}

/**
 * Where (x+x+)+y's probe passes the 100 ms cap (~146 ms at 26 repeats): refused there at the latest, whatever the
 * clock did. Both runs below read the real clock too, so on a loaded machine the steady one may stop at 22 and the
 * paused one at 26 (CI once); what the jump must never do is let the pattern run on to 30 (2.5-3 s).
 */
const CAP_REPEATS = 26;

describe('checkRegexCost on a clock that jumps', () => {
  afterEach(() => vi.restoreAllMocks());

  /** The probe length (repeats of "x") on which `pattern` is refused. */
  const refusedAt = (pattern = '(x+x+)+y') => {
    let message = '';
    try {
      checkRegexCost(pattern, 'u', 'test');
    } catch (e) {
      message = (e as Error).message;
    }
    const [, n] = /takes exponential time \(\d+ ms on (\d+) repeats of "x"/.exec(message) ?? [];
    return Number(n);
  };

  // readings come in pairs (start, end) per probe; the 11 generic characters take 7 probes each (154 readings), then
  // 'x' runs at 10, 14, 18, 22, … characters: readings 158, 160 and 162 end its probes at 14, 18 and 22, where
  // (x+x+)+y starts to take milliseconds (each 4 characters multiply its time by ~16)
  for (const at of [158, 160, 162])
    it(`refuses (x+x+)+y no later than on a steady clock when reading ${at} jumps 60 ms`, () => {
      const steady = refusedAt();
      pauseAt(at, 60);
      const paused = refusedAt();
      expect(steady).toBeGreaterThanOrEqual(14);
      expect(paused).toBeGreaterThanOrEqual(14);
      expect(paused).toBeLessThanOrEqual(Math.max(steady, CAP_REPEATS));
    });

  // CI's case: GPT-2's pattern behind (x+x+)+y (~15x per 4 characters: 9 ms at 22, 146 ms at 26, 2.3 s at 30), its
  // 18-character probe paused 3 ms (below SLOW_MS, so not timed again) or 60 ms: refused no later than on a steady
  // clock
  for (const jump of [3, 60])
    it(`refuses (x+x+)+y|<GPT-2's pattern> no later than on a steady clock when its 18-character probe pauses ${jump} ms`, () => {
      const pattern = `(x+x+)+y|${GPT2}`;
      const steady = refusedAt(pattern);
      pauseAt(160, jump);
      const paused = refusedAt(pattern);
      expect(steady).toBeGreaterThanOrEqual(14);
      expect(paused).toBeGreaterThanOrEqual(14);
      expect(paused).toBeLessThanOrEqual(Math.max(steady, CAP_REPEATS));
    });

  for (const at of [2, 6, 10])
    it(`passes GPT-2's pattern when reading ${at} jumps 60 ms`, () => {
      pauseAt(at, 60);
      expect(() => checkRegexCost(GPT2, 'u', 'test')).not.toThrow();
    });
});
