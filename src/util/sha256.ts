/**
 * SHA-256 (FIPS 180-4): crypto.subtle when present, else the streaming implementation below (crypto.subtle is missing
 * in insecure browser contexts). Digests equal Python's hashlib.sha256 / node:crypto. Used by the checkpoint hashes of
 * model weights, data and tensor files (src/train/checkpoint.ts).
 *
 * Browser-safe: no node: imports, no TensorFlow.js.
 */
const K = new Uint32Array(64);
const H0 = new Uint32Array(8);
{
  // FIPS 180-4 §4.2.2 / §5.3.3: the first 32 bits of the fractional parts of the cube roots (K) and square roots (H0)
  // of the first primes, computed rather than tabulated (checked against node:crypto in the tests).
  const primes: number[] = [];
  for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p !== 0)) primes.push(n);
  const frac32 = (x: number) => Math.floor((x - Math.floor(x)) * 4294967296) >>> 0;
  for (let i = 0; i < 64; i++) K[i] = frac32(Math.cbrt(primes[i]));
  for (let i = 0; i < 8; i++) H0[i] = frac32(Math.sqrt(primes[i]));
}

const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));

/** Streaming SHA-256 (pure JS). */
export class Sha256 {
  private readonly h = Uint32Array.from(H0);
  private readonly w = new Uint32Array(64);
  private readonly buf = new Uint8Array(64);
  private bufLen = 0;
  private total = 0;
  private done = false;

  update(data: Uint8Array | string): this {
    if (this.done) throw new Error('Sha256: update after digest');
    const d = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    this.total += d.length;
    let i = 0;
    if (this.bufLen > 0) {
      const take = Math.min(64 - this.bufLen, d.length);
      this.buf.set(d.subarray(0, take), this.bufLen);
      this.bufLen += take;
      i = take;
      if (this.bufLen < 64) return this;
      this.block(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 64 <= d.length; i += 64) this.block(d, i);
    if (i < d.length) {
      this.buf.set(d.subarray(i), 0);
      this.bufLen = d.length - i;
    }
    return this;
  }

  digest(): Uint8Array {
    if (this.done) throw new Error('Sha256: digest called twice');
    const bits = this.total * 8;
    const pad = new Uint8Array((this.bufLen < 56 ? 56 : 120) - this.bufLen + 8);
    pad[0] = 0x80;
    const dv = new DataView(pad.buffer);
    dv.setUint32(pad.length - 8, Math.floor(bits / 4294967296), false);
    dv.setUint32(pad.length - 4, bits >>> 0, false);
    this.update(pad);
    this.done = true;
    const out = new Uint8Array(32);
    const odv = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) odv.setUint32(4 * i, this.h[i], false);
    return out;
  }

  private block(b: Uint8Array, o: number): void {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      const j = o + 4 * t;
      w[t] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15],
        y = w[t - 2];
      const s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3);
      const s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    const h = this.h;
    let a = h[0],
      bb = h[1],
      c = h[2],
      d = h[3],
      e = h[4],
      f = h[5],
      g = h[6],
      hh = h[7];
    for (let t = 0; t < 64; t++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) | 0;
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = bb;
      bb = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function subtle(): SubtleCrypto | null {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  return c && c.subtle && typeof c.subtle.digest === 'function' ? c.subtle : null;
}

/** SHA-256 of bytes (crypto.subtle when available, else the JS implementation). */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  const s = subtle();
  if (s) {
    try {
      // A copy when `data` views a SharedArrayBuffer or part of a larger buffer is left to the browser.
      return new Uint8Array(await s.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
    } catch {
      // fall through (e.g. a SharedArrayBuffer view some engines refuse)
    }
  }
  return new Sha256().update(data).digest();
}

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  return toHex(await sha256(typeof data === 'string' ? new TextEncoder().encode(data) : data));
}
