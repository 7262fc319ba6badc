/**
 * Fuzz harness: runs one case at a time and checks that it either returns (and the result passes the
 * target's invariants) or throws an Error with a clear message naming the file, within a time bound and
 * with heap growth bounded by the input size. A watchdog thread kills the process (after saying which case)
 * if a case hangs for longer than the hard limit, since a synchronous loop cannot be interrupted.
 *
 * Environment:
 *   FUZZ_CASES    total number of cases over all parsers (default 3000)
 *   FUZZ_SEED     seed (default 20240917)
 *   FUZZ_CASE_MS  per-case bound on CPU time in ms (default 2000; CPU rather than wall time, so that
 *                 other work on a loaded machine does not fail cases; a wall-clock watchdog catches hangs)
 *   FUZZ_HANG_MS  watchdog limit in ms (default 30000)
 *   FUZZ_ONLY     run only targets whose name contains this string
 *
 * Random case i of a parser is generated from rng.derive(parser name, i) of the seed alone, so a failure
 * reported as "<parser> #<i>" comes back with the same FUZZ_SEED whatever FUZZ_CASES is (as long as it
 * reaches i); edge cases ("<parser> edge #<i>") are deterministic.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import type { Rng } from '../../src/util/rng';

export interface FuzzCase {
  /** What was generated / mutated, to reproduce and read failures. */
  label: string;
  /** Input size in bytes (files) or JSON characters (parsed objects): the memory bound scales with it. */
  size: number;
  /** An error message must contain one of these (the file name the parser was given). */
  names: string[];
  run: () => unknown;
  /** Invariants of an accepted result: a problem description, or null. */
  check?: (result: unknown) => string | null;
  /** Unmutated valid input must be accepted; known-bad input must be rejected. */
  expect?: 'accept' | 'reject';
  /**
   * A third-party library's own failure that the parser wraps with the file name and says so
   * (e.g. "@huggingface/tokenizers could not load it: …"): tolerated even with an engine message, and counted.
   */
  wrapped?: RegExp;
}

export interface Target {
  name: string;
  /** Share of FUZZ_CASES. */
  weight: number;
  /** Deterministic edge cases, run first (generated lazily, one at a time). */
  edges: (() => FuzzCase)[];
  /** The i-th random case. */
  random: (rng: Rng, i: number) => FuzzCase;
}

const envInt = (k: string, d: number): number => {
  const v = process.env[k];
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : d;
};

export const FUZZ = {
  cases: envInt('FUZZ_CASES', 3000),
  seed: envInt('FUZZ_SEED', 20240917),
  caseMs: envInt('FUZZ_CASE_MS', 2000),
  hangMs: envInt('FUZZ_HANG_MS', 30000),
  only: process.env.FUZZ_ONLY ?? '',
};

/** Heap + ArrayBuffer growth allowed for a case: a constant plus a multiple of the input size. */
export const MEM_SLACK = 32 << 20;
export const MEM_FACTOR = 64;
/** Peak RSS growth allowed (catches transient allocations the heap numbers miss after a GC). */
export const RSS_SLACK = 256 << 20;
/** An error message may quote the input, but not amplify it. */
export const MSG_SLACK = 16 << 10;

/** Messages that come from the engine rather than from a parser that checked its input. */
const INTERNAL =
  /Cannot read propert|Cannot destructure|is not a function|is not iterable|is not a constructor|(undefined|null) is not (an object|a function|iterable)|Maximum call stack|Invalid array length|Invalid typed array length|Array buffer allocation failed|Map maximum size|Set maximum size|out of memory|Invalid string length|Cannot convert|offset is out of bounds|Start offset|should be a multiple of/;

export interface Stats {
  name: string;
  cases: number;
  accepted: number;
  rejected: number;
  failures: string[];
  /** CPU time of the slowest case. */
  slowestMs: number;
  slowestLabel: string;
  slowestWallMs: number;
  maxHeapGrowth: number;
  maxHeapLabel: string;
  maxRssGrowth: number;
  maxMessage: number;
  /** Errors of a third-party library, wrapped by the parser (see FuzzCase.wrapped). */
  wrappedLib: number;
  totalMs: number;
}

function gcFunction(): (() => void) | null {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    const f = vm.runInNewContext('gc') as unknown;
    return typeof f === 'function' ? (f as () => void) : null;
  } catch {
    return null;
  }
}
const gc = gcFunction();

// ---------------------------------------------------------------------------------------------------------
// Watchdog

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const i32 = new Int32Array(workerData.ctl, 0, 2);
const started = new Float64Array(workerData.ctl, 8, 1);
const label = new Uint8Array(workerData.label);
setInterval(() => {
  if (Atomics.load(i32, 0) !== 1) return;
  const ms = Date.now() - started[0];
  if (ms < workerData.hangMs) return;
  const text = Buffer.from(label.subarray(0, Atomics.load(i32, 1))).toString('utf8');
  fs.writeSync(2, '\\nFUZZ WATCHDOG: case ' + text + ' has run for ' + ms + ' ms (hang); killing the test process\\n');
  process.kill(process.pid, 'SIGKILL');
}, 200);
`;

class Watchdog {
  private readonly ctl = new SharedArrayBuffer(16);
  private readonly label = new SharedArrayBuffer(1024);
  private readonly i32 = new Int32Array(this.ctl, 0, 2);
  private readonly started = new Float64Array(this.ctl, 8, 1);
  private readonly labelBytes = new Uint8Array(this.label);
  private readonly worker: Worker;
  private readonly enc = new TextEncoder();

  constructor(hangMs: number) {
    this.worker = new Worker(WATCHDOG, { eval: true, workerData: { ctl: this.ctl, label: this.label, hangMs } });
    this.worker.unref();
  }
  begin(label: string): void {
    const { written } = this.enc.encodeInto(label.slice(0, 1000), this.labelBytes);
    Atomics.store(this.i32, 1, written);
    this.started[0] = Date.now();
    Atomics.store(this.i32, 0, 1);
  }
  end(): void {
    Atomics.store(this.i32, 0, 0);
  }
  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------------------

const short = (s: string, n = 160): string => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

function judgeError(e: unknown, c: FuzzCase): string | null {
  if (!(e instanceof Error)) return `threw a non-Error: ${short(String(e))}`;
  const msg = e.message;
  if (typeof msg !== 'string' || msg.trim() === '') return `threw ${e.name} with an empty message`;
  if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError || e instanceof ReferenceError) {
    return `threw an internal ${e.name}: ${short(msg)}`;
  }
  if (INTERNAL.test(msg) && !c.wrapped?.test(msg)) return `unclear error (engine message): ${short(msg)}`;
  if (!c.names.some((n) => msg.includes(n)))
    return `error does not name the file (${c.names.join(' | ')}): ${short(msg)}`;
  if (msg.length > 2 * c.size + MSG_SLACK) return `error message of ${msg.length} chars for ${c.size} bytes of input`;
  return null;
}

export class FuzzRunner {
  private readonly watchdog = new Watchdog(FUZZ.hangMs);
  readonly stats: Stats[] = [];
  private sinceGc = 0;

  async runTarget(t: Target, rng: Rng, count: number): Promise<Stats> {
    const s: Stats = {
      name: t.name,
      cases: 0,
      accepted: 0,
      rejected: 0,
      failures: [],
      slowestMs: 0,
      slowestLabel: '',
      slowestWallMs: 0,
      maxHeapGrowth: 0,
      maxHeapLabel: '',
      maxRssGrowth: 0,
      maxMessage: 0,
      wrappedLib: 0,
      totalMs: 0,
    };
    this.stats.push(s);
    const t0 = performance.now();
    const nRandom = Math.max(0, count - t.edges.length);
    for (let i = 0; i < t.edges.length + nRandom; i++) {
      let c: FuzzCase;
      const id = i < t.edges.length ? `${t.name} edge #${i}` : `${t.name} #${i - t.edges.length}`;
      try {
        c = i < t.edges.length ? t.edges[i]() : t.random(rng.derive(t.name, i - t.edges.length), i - t.edges.length);
      } catch (e) {
        s.failures.push(`${id}: the generator failed: ${(e as Error).stack ?? String(e)}`);
        continue;
      }
      await this.runCase(s, `${id} [${c.label}]`, c);
    }
    s.totalMs = performance.now() - t0;
    return s;
  }

  private async runCase(s: Stats, label: string, c: FuzzCase): Promise<void> {
    if (gc && (c.size > 1 << 20 || ++this.sinceGc >= 200)) {
      gc();
      this.sinceGc = 0;
    }
    const rss0 = process.resourceUsage().maxRSS * 1024;
    const m0 = process.memoryUsage();
    this.watchdog.begin(label);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let result: unknown;
    let error: unknown;
    let threw = false;
    try {
      result = c.run();
      if (result instanceof Promise) result = await result;
    } catch (e) {
      error = e;
      threw = true;
    }
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const ms = (cpu.user + cpu.system) / 1000;
    this.watchdog.end();
    const m1 = process.memoryUsage();
    const rss1 = process.resourceUsage().maxRSS * 1024;
    const growth = Math.max(0, m1.heapUsed - m0.heapUsed) + Math.max(0, m1.arrayBuffers - m0.arrayBuffers);

    s.cases++;
    const problems: string[] = [];
    if (threw) {
      s.rejected++;
      const p = judgeError(error, c);
      if (p) problems.push(p);
      else if (c.wrapped && error instanceof Error && c.wrapped.test(error.message)) s.wrappedLib++;
      if (error instanceof Error && typeof error.message === 'string')
        s.maxMessage = Math.max(s.maxMessage, error.message.length);
      if (c.expect === 'accept')
        problems.push(`valid input was rejected: ${short(String((error as Error)?.message ?? error))}`);
    } else {
      s.accepted++;
      if (c.expect === 'reject') problems.push('invalid input was accepted');
      if (c.check) {
        let p: string | null;
        try {
          p = c.check(result);
        } catch (e) {
          p = `checking the accepted result threw: ${short(String((e as Error)?.stack ?? e), 400)}`;
        }
        if (p) problems.push(`accepted, but ${p}`);
      }
    }
    if (ms > FUZZ.caseMs)
      problems.push(`took ${ms.toFixed(0)} ms of CPU (${wallMs.toFixed(0)} ms wall; bound ${FUZZ.caseMs} ms)`);
    const memBound = MEM_SLACK + MEM_FACTOR * c.size;
    if (growth > memBound)
      problems.push(
        `heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB for ${c.size} bytes of input (bound ${(memBound / 2 ** 20).toFixed(1)} MiB)`,
      );
    if (rss1 - rss0 > RSS_SLACK + MEM_FACTOR * c.size)
      problems.push(`peak RSS grew by ${((rss1 - rss0) / 2 ** 20).toFixed(1)} MiB for ${c.size} bytes of input`);
    s.slowestWallMs = Math.max(s.slowestWallMs, wallMs);
    if (ms > s.slowestMs) {
      s.slowestMs = ms;
      s.slowestLabel = label;
    }
    if (growth > s.maxHeapGrowth) {
      s.maxHeapGrowth = growth;
      s.maxHeapLabel = label;
    }
    s.maxRssGrowth = Math.max(s.maxRssGrowth, rss1 - rss0);
    if (problems.length > 0) s.failures.push(`${short(label, 300)}: ${problems.join('; ')}`);
  }

  report(): string {
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    const rows = [
      [
        'parser',
        'cases',
        'accepted',
        'rejected',
        'failed',
        'slowest cpu ms',
        'slowest wall ms',
        'max heap MiB',
        'max RSS+ MiB',
        'longest msg',
        'lib errors',
        'total s',
      ],
    ];
    for (const s of this.stats) {
      rows.push([
        s.name,
        String(s.cases),
        String(s.accepted),
        String(s.rejected),
        String(s.failures.length),
        s.slowestMs.toFixed(0),
        s.slowestWallMs.toFixed(0),
        mib(s.maxHeapGrowth),
        mib(s.maxRssGrowth),
        String(s.maxMessage),
        String(s.wrappedLib),
        (s.totalMs / 1000).toFixed(1),
      ]);
    }
    const total = this.stats.reduce((a, s) => a + s.cases, 0);
    const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
    const lines = rows.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  '));
    const slow = this.stats.map(
      (s) => `  slowest ${s.name}: ${short(s.slowestLabel, 200)}; most heap: ${short(s.maxHeapLabel, 200)}`,
    );
    return [
      `fuzz: seed ${FUZZ.seed}, FUZZ_CASES ${FUZZ.cases}, bounds ${FUZZ.caseMs} ms CPU/case, heap ${MEM_FACTOR}×input + ${mib(MEM_SLACK)} MiB${gc ? '' : ' (no gc())'}`,
      ...lines,
      `total: ${total} cases`,
      ...slow,
    ].join('\n');
  }

  async close(): Promise<void> {
    await this.watchdog.stop();
  }
}

/** Split `total` cases over targets by weight (each target gets at least its edge cases). */
export function allocate(targets: Target[], total: number): Map<Target, number> {
  const w = targets.reduce((a, t) => a + t.weight, 0);
  return new Map(targets.map((t) => [t, Math.max(t.edges.length, Math.round((total * t.weight) / w))]));
}
