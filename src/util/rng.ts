/**
 * Seeded, splittable, serialisable random numbers for training (data order, dropout seeds, …).
 *
 * Generator: xoshiro128** (four uint32 words of state, period 2^128 − 1), written from the published
 * algorithm description. Every Rng also carries a 64-bit *key* (two uint32 words) fixed at creation:
 *
 * - `derive(...path)` makes a child stream that is a pure function of (key, path). It does not consume
 *   numbers from the parent, so `rng.derive(step, micro)` gives the same numbers whether or not a run was
 *   interrupted and resumed — use it for anything that must be reproducible per step.
 * - `split()` makes an independent child keyed by two fresh outputs of the parent (advances the parent).
 * - `state()` / `Rng.fromState()` export and restore key and position exactly (plain JSON numbers).
 *
 * Pure JS, no Node modules: runs in Node, browsers and workers.
 */

export interface RngState {
  /** 64-bit stream key as two uint32 words. */
  key: [number, number];
  /** xoshiro128** state, four uint32 words (never all zero). */
  s: [number, number, number, number];
}

export type RngPathItem = number | string;

const GOLDEN = 0x9e3779b9;

/** 32-bit finaliser (xor-shift / multiply avalanche). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Fold one uint32 word into a 64-bit key; the two lanes use different mixing so keys do not collapse. */
function absorb(k: [number, number], w: number): [number, number] {
  const a = fmix32((k[0] ^ fmix32((w + GOLDEN) >>> 0)) >>> 0);
  const b = fmix32((Math.imul(k[1] ^ w, 0x2c1b3c6d) + a + 0x7f4a7c15) >>> 0);
  return [a, b];
}

function absorbItem(k: [number, number], item: RngPathItem): [number, number] {
  if (typeof item === 'number') {
    if (!Number.isSafeInteger(item))
      throw new Error(`Rng path items and seeds must be safe integers or strings, got ${item}`);
    const neg = item < 0 ? 1 : 0;
    const mag = Math.abs(item);
    k = absorb(k, 0x6e756d00 | neg); // type tag 'num' + sign
    k = absorb(k, mag >>> 0);
    return absorb(k, Math.floor(mag / 4294967296) >>> 0);
  }
  k = absorb(k, 0x73747200); // type tag 'str'
  k = absorb(k, item.length >>> 0);
  for (let i = 0; i < item.length; i++) k = absorb(k, item.charCodeAt(i));
  return k;
}

const ROOT_KEY: [number, number] = [0x243f6a88, 0x85a308d3];

export class Rng {
  private key: [number, number];
  private s: [number, number, number, number];

  /** seed: a safe integer (e.g. 42) or a string; the same seed always gives the same stream. */
  constructor(seed: number | string = 0) {
    this.key = absorbItem(ROOT_KEY, seed);
    this.s = Rng.initState(this.key);
  }

  private static initState(key: [number, number]): [number, number, number, number] {
    const s: [number, number, number, number] = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) {
      const z = (key[0] + Math.imul(i + 1, GOLDEN)) >>> 0;
      s[i] = fmix32((z ^ fmix32((key[1] + Math.imul(i + 1, 0x632be5ab)) >>> 0)) >>> 0);
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
    return s;
  }

  private static fromKey(key: [number, number]): Rng {
    const r = Object.create(Rng.prototype) as Rng;
    r.key = key;
    r.s = Rng.initState(key);
    return r;
  }

  static fromState(st: RngState): Rng {
    if (!st || !Array.isArray(st.key) || st.key.length !== 2 || !Array.isArray(st.s) || st.s.length !== 4) {
      throw new Error('Rng.fromState: expected { key: [uint32, uint32], s: [uint32 ×4] }');
    }
    const s = st.s.map((x) => x >>> 0) as [number, number, number, number];
    if ((s[0] | s[1] | s[2] | s[3]) === 0) throw new Error('Rng.fromState: xoshiro state must not be all zero');
    const r = Object.create(Rng.prototype) as Rng;
    r.key = [st.key[0] >>> 0, st.key[1] >>> 0];
    r.s = s;
    return r;
  }

  state(): RngState {
    return { key: [this.key[0], this.key[1]], s: [this.s[0], this.s[1], this.s[2], this.s[3]] };
  }

  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** Next uint32 (xoshiro128**). */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Unbiased integer in [0, n), 1 ≤ n ≤ 2^32 (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296)
      throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    if (n === 4294967296) return this.nextUint32();
    const limit = 4294967296 - (4294967296 % n); // accept x < limit
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal (Box–Muller, one value per call, no cached spare so state() is the whole state). */
  normal(mean = 0, std = 1): number {
    const u1 = 1 - this.next(); // (0, 1]
    const u2 = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** A uint32 suitable as a seed for tf.dropout / the engine's dropoutSeed. */
  seed(): number {
    return this.nextUint32();
  }

  /** Fisher–Yates shuffle in place (unbiased). */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    const a = Array.from({ length: n }, (_, i) => i);
    return this.shuffle(a);
  }

  /** Independent child stream keyed by two fresh outputs of this one (advances this stream). */
  split(): Rng {
    let k = absorb(this.key, 0x73706c74); // 'splt'
    k = absorb(k, this.nextUint32());
    k = absorb(k, this.nextUint32());
    return Rng.fromKey(k);
  }

  /**
   * Child stream that depends only on this stream's key and `path` (not on how many numbers were drawn):
   * e.g. `rng.derive('data', epoch)` or `rng.derive(step, micro)`.
   */
  derive(...path: RngPathItem[]): Rng {
    let k: [number, number] = absorb(this.key, 0x64727600 | (path.length & 0xff)); // 'drv' + arity
    for (const item of path) k = absorbItem(k, item);
    return Rng.fromKey(k);
  }
}
