/**
 * Seeded, serialisable random numbers (PCG-XSH-RR 32-bit over a 64-bit state held as two uint32 halves).
 * Used for LoRA init, dropout seeds, sampling and data order so that a run is reproducible for a seed.
 */
export class Rng {
  private hi: number;
  private lo: number;

  constructor(seed: number | { hi: number; lo: number } = 0) {
    if (typeof seed === 'number') {
      this.hi = 0; this.lo = 0;
      this.next();
      this.lo = (this.lo + (seed >>> 0)) >>> 0;
      this.hi = (this.hi + Math.floor(seed / 2 ** 32)) >>> 0;
      this.next();
    } else {
      this.hi = seed.hi >>> 0; this.lo = seed.lo >>> 0;
    }
  }

  state(): { hi: number; lo: number } { return { hi: this.hi, lo: this.lo }; }

  /** Next uint32. */
  next(): number {
    const oldHi = this.hi, oldLo = this.lo;
    // state = state * 6364136223846793005 + 1442695040888963407 (mod 2^64)
    const mHi = 0x5851f42d, mLo = 0x4c957f2d, iHi = 0x14057b7e, iLo = 0xf767814f;
    const lo = mul64(oldHi, oldLo, mHi, mLo);
    let nLo = lo.lo + iLo;
    const carry = nLo > 0xffffffff ? 1 : 0;
    nLo >>>= 0;
    this.lo = nLo;
    this.hi = (lo.hi + iHi + carry) >>> 0;
    // output: rotr32(((old >> 18) ^ old) >> 27, old >> 59)
    const xsHi = (oldHi >>> 18) ^ oldHi;
    const xsLo = ((oldLo >>> 18) | (oldHi << 14)) ^ oldLo;
    const xorshifted = ((xsLo >>> 27) | (xsHi << 5)) >>> 0;
    const rot = oldHi >>> 27;
    return ((xorshifted >>> rot) | (xorshifted << ((-rot) & 31))) >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number { return this.next() / 4294967296; }

  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.uniform() * n); }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]; a[i] = a[j]; a[j] = t;
    }
    return a;
  }
}

function mul64(aHi: number, aLo: number, bHi: number, bLo: number): { hi: number; lo: number } {
  const a0 = aLo & 0xffff, a1 = aLo >>> 16, b0 = bLo & 0xffff, b1 = bLo >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = ((mid & 0xffff) << 16 | (p00 & 0xffff)) >>> 0;
  const hiFromLo = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  const hi = (hiFromLo + Math.imul(aHi, bLo) + Math.imul(aLo, bHi)) >>> 0;
  return { hi, lo };
}
