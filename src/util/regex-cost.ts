/**
 * Regular expressions from files a user hands in (a tokenizer.json Split or Replace pattern, PEFT's target_modules
 * as a pattern) run on JavaScript's backtracking engine, where a pattern like `(a+)+$` takes exponential time on a
 * short input and cannot be interrupted. Before such a pattern is used, it is timed on growing runs of the
 * characters it names and of common character classes; a pattern whose time multiplies as the input grows by a few
 * characters is refused, naming where it came from. Real tokenizer patterns (GPT-2, Llama 3, Qwen2) take
 * microseconds on every probe.
 */

/** Lengths of the probe runs; each step adds 4 characters (exponential patterns multiply their time per step). */
const LENGTHS = [10, 14, 18, 22, 26, 30, 34];
/**
 * A probe above SLOW_MS whose time grew more than GROWTH times on each of two steps in a row, or more than GROWTH²
 * times over the last two steps (8 characters; a probe the machine paused in between cannot hide it), marks the
 * pattern.
 */
const GROWTH = 4;
const SLOW_MS = 5;
/** Any probe this slow marks the pattern at once (timed twice, so a pause alone does not). */
const HOPELESS_MS = 100;
const GENERIC = ['a', 'A', '0', ' ', '\n', '\t', 'é', '_', '.', "'", '-'];

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** Probe units: generic characters, the literal characters of the pattern, and its literal character pairs. */
function probeUnits(pattern: string): string[] {
  const literal = pattern.replace(/\\[pPuxk]\{[^}]*\}|\\[\s\S]|\[\^?|\]|[(){}|*+?^$.]/g, '\u0000');
  const units = new Set(GENERIC);
  for (const run of literal.split('\u0000')) {
    for (let i = 0; i < run.length; i++) {
      units.add(run[i]);
      if (i + 1 < run.length) units.add(run.slice(i, i + 2));
    }
  }
  return [...units].slice(0, 64);
}

/**
 * Throws when `pattern` (compiled with `flags`) shows exponential backtracking on a probe. `where` names the
 * pattern's origin in the message, e.g. 'tokenizer.json: "pre_tokenizer.pretokenizers[0].pattern.Regex"'.
 * A pattern that does not compile is left to the caller.
 */
export function checkRegexCost(pattern: string, flags: string, where: string): void {
  let re: RegExp;
  try {
    re = new RegExp(pattern, flags.includes('g') ? flags : flags + 'g');
  } catch {
    return;
  }
  for (const unit of probeUnits(pattern)) {
    const times: number[] = [];
    let grew = 0;
    for (const n of LENGTHS) {
      const text = unit.repeat(n) + '\u0001';
      const time = () => {
        const t0 = now();
        re.lastIndex = 0;
        text.match(re);
        return now() - t0;
      };
      // a slow probe is timed again: one the machine paused in is not slow twice (one far past HOPELESS_MS is not
      // run twice)
      let ms = time();
      if (ms > SLOW_MS && ms <= 2 * HOPELESS_MS) ms = Math.min(ms, time());
      // growth over one step (twice in a row) and over two steps (a paused probe between cannot hide it)
      const step = ms / Math.max(times[times.length - 1] ?? 0, 0.01);
      grew = step > GROWTH ? grew + 1 : 0;
      const before = times.length >= 2 ? times[times.length - 2] : Infinity;
      const growth = ms / Math.max(before, 0.01);
      times.push(ms);
      if (ms > HOPELESS_MS || (ms > SLOW_MS && (grew >= 2 || growth > GROWTH * GROWTH))) {
        throw new Error(
          `${where}: the regular expression ${JSON.stringify(pattern.length > 120 ? pattern.slice(0, 120) + '…' : pattern)} ` +
            `takes exponential time (${ms.toFixed(0)} ms on ${n} repeats of ${JSON.stringify(unit)}, ${growth.toFixed(0)}x the time of ${n - 8}): ` +
            'it would hang on ordinary text. Nested repetition such as (a+)+ or overlapping alternatives such as (a|aa)+ cause this; rewrite the pattern without them',
        );
      }
    }
  }
}
