import { Rng } from '../../src/util/rng';
import { describe, expect, it } from 'vitest';
import {
  parseSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  decodeF16,
  decodeBF16,
} from '../../src/io/safetensors';
import type { RawTensor } from '../../src/engine/config';
import { checkFinite } from '../../src/util/finite';

/** Build a safetensors file by hand from a header (object or raw string) and a data section. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), opts: { headerLen?: number } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, opts.headerLen ?? json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function u16Bytes(vals: number[]): Uint8Array {
  const b = new Uint8Array(vals.length * 2);
  const dv = new DataView(b.buffer);
  vals.forEach((v, i) => dv.setUint16(2 * i, v, true));
  return b;
}

function f32Bytes(vals: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(vals).buffer);
}

function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform();
}

describe('writeSafetensors / parseSafetensors', () => {
  it('round-trips exactly, including special values, scalars and empty tensors', () => {
    const r = rng(1);
    const tensors = new Map<string, RawTensor>();
    tensors.set('b.weight', { shape: [3, 5], data: Float32Array.from({ length: 15 }, () => r() * 2 - 1) });
    tensors.set('a.bias', { shape: [4], data: new Float32Array([NaN, Infinity, -Infinity, -0]) });
    tensors.set('scalar', { shape: [], data: new Float32Array([1.5]) });
    tensors.set('empty', { shape: [0, 7], data: new Float32Array(0) });
    tensors.set('c', { shape: [1, 1, 2], data: new Float32Array([1e-45, 3.4028234663852886e38]) });
    const bytes = writeSafetensors(tensors, { format: 'pt' });
    const { tensors: back, metadata } = parseSafetensors(bytes, 'rt.safetensors');
    expect(metadata).toEqual({ format: 'pt' });
    expect([...back.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const b = back.get(name)!;
      expect(b.shape).toEqual(t.shape);
      expect(new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength)).toEqual(
        new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      );
    }
    // Writing what we read gives the same bytes.
    expect(writeSafetensors(back, metadata)).toEqual(bytes);
  });

  it('writes the reference layout: sorted keys, compact JSON, space padding to 8 bytes', () => {
    const tensors = new Map<string, RawTensor>([
      ['z', { shape: [1], data: new Float32Array([1]) }],
      ['a', { shape: [2], data: new Float32Array([2, 3]) }],
    ]);
    const bytes = writeSafetensors(tensors, { format: 'pt' });
    const n = new DataView(bytes.buffer).getUint32(0, true);
    expect(n % 8).toBe(0);
    expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const json =
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
    expect(text).toBe(json + ' '.repeat(n - json.length));
    expect(n - json.length).toBeLessThan(8);
    expect(Array.from(new Float32Array(bytes.slice(8 + n).buffer))).toEqual([2, 3, 1]);
    // No metadata: no __metadata__ key.
    const noMeta = writeSafetensors(tensors);
    expect(new TextDecoder().decode(noMeta.subarray(8, 16))).toBe('{"a":{"d');
  });

  it('rejects bad input to the writer', () => {
    expect(() => writeSafetensors(new Map([['x', { shape: [2, 2], data: new Float32Array(3) }]]))).toThrow(
      /"x".*4 elements but data has 3/,
    );
    expect(() => writeSafetensors(new Map([['x', { shape: [-1], data: new Float32Array(0) }]]))).toThrow(/"x".*shape/);
    expect(() => writeSafetensors(new Map([['__metadata__', { shape: [0], data: new Float32Array(0) }]]))).toThrow(
      /invalid tensor name/,
    );
  });

  it('reads tensors at unaligned offsets (copying) and inside a larger buffer', () => {
    // An F16 tensor of 1 element first puts the F32 tensor at data offset 2.
    const data = new Uint8Array([...u16Bytes([0x3c00]), ...f32Bytes([1.25, -7])]);
    const header = {
      h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
      f: { dtype: 'F32', shape: [2], data_offsets: [2, 10] },
    };
    const file = rawFile(header, data);
    for (const shift of [0, 1, 2, 3]) {
      const big = new Uint8Array(file.length + shift);
      big.set(file, shift);
      const { tensors } = parseSafetensors(big.subarray(shift), 'u.safetensors');
      expect(Array.from(tensors.get('f')!.data)).toEqual([1.25, -7]);
      expect(Array.from(tensors.get('h')!.data)).toEqual([1]);
    }
  });

  it('decodes F16 against hand-computed values', () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x3800, 0.5],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0xfbff, -65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x8001, -(2 ** -24)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
      [0x0000, 0],
      [0x4248, 3.140625],
    ];
    const out = decodeF16(new Uint16Array(cases.map((c) => c[0])));
    cases.forEach(([, v], i) => expect(out[i]).toBe(v));
    const z = decodeF16(new Uint16Array([0x8000, 0x7e00, 0xfe01]));
    expect(Object.is(z[0], -0)).toBe(true);
    expect(Number.isNaN(z[1])).toBe(true);
    expect(Number.isNaN(z[2])).toBe(true);
    // Exhaustive cross-check against the arithmetic definition.
    const all = decodeF16(Uint16Array.from({ length: 65536 }, (_, i) => i));
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1,
        e = (h >> 10) & 31,
        m = h & 1023;
      const want =
        e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
      if (!Object.is(all[h], want)) throw new Error(`f16 0x${h.toString(16)}: got ${all[h]}, want ${want}`);
    }
  });

  it('decodes BF16 against hand-computed values', () => {
    const cases: [number, number][] = [
      [0x3f80, 1],
      [0xc000, -2],
      [0x4049, 3.140625],
      [0x7f80, Infinity],
      [0xff80, -Infinity],
      [0x0001, 2 ** -133],
      [0x0080, 2 ** -126],
      [0x7f7f, 3.3895313892515355e38],
      [0x3e80, 0.25],
    ];
    const out = decodeBF16(new Uint16Array(cases.map((c) => c[0])));
    cases.forEach(([, v], i) => expect(out[i]).toBe(v));
    const z = decodeBF16(new Uint16Array([0x8000, 0x7fc0]));
    expect(Object.is(z[0], -0)).toBe(true);
    expect(Number.isNaN(z[1])).toBe(true);
  });

  it('parses F16/BF16/F64/I64/I32 tensors from a file', () => {
    const parts = [
      u16Bytes([0x3c00, 0xc000, 0x0001]),
      u16Bytes([0x3f80, 0xc000]),
      new Uint8Array(new Float64Array([0.1]).buffer),
      new Uint8Array(new BigInt64Array([-5n, 7n]).buffer),
      new Uint8Array(new Int32Array([-3]).buffer),
    ];
    // Lay out the 8-byte types first so they are aligned: F64 [0,8), I64 [8,24), I32 [24,28), F16 [28,34), BF16 [34,38).
    const data = new Uint8Array([...parts[2], ...parts[3], ...parts[4], ...parts[0], ...parts[1]]);
    const header = {
      d: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
      l: { dtype: 'I64', shape: [2], data_offsets: [8, 24] },
      i: { dtype: 'I32', shape: [1, 1], data_offsets: [24, 28] },
      h: { dtype: 'F16', shape: [3], data_offsets: [28, 34] },
      b: { dtype: 'BF16', shape: [2, 1], data_offsets: [34, 38] },
    };
    const { tensors } = parseSafetensors(rawFile(header, data), 'mixed.safetensors');
    expect(Array.from(tensors.get('h')!.data)).toEqual([1, -2, 2 ** -24]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([1, -2]);
    expect(tensors.get('b')!.shape).toEqual([2, 1]);
    expect(tensors.get('d')!.data[0]).toBe(Math.fround(0.1));
    expect(Array.from(tensors.get('l')!.data)).toEqual([-5, 7]);
    expect(Array.from(tensors.get('i')!.data)).toEqual([-3]);
  });
});

describe('parseSafetensors rejects malformed files with a message naming file, tensor/field and expectation', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const okData = f32Bytes([1, 2]);
  const F = 'bad.safetensors';
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['file shorter than 8 bytes', () => new Uint8Array(5), /bad\.safetensors: .*5 bytes, expected at least 8/],
    [
      'header length past the end',
      () => rawFile(ok, okData, { headerLen: 10_000 }),
      /bad\.safetensors: header length 10000 bytes runs past the end of the file/,
    ],
    [
      'absurd header length',
      () => {
        const b = rawFile(ok, okData);
        new DataView(b.buffer).setUint32(4, 1, true);
        return b;
      },
      /bad\.safetensors: header length 4294967\d+ bytes is absurd/,
    ],
    ['header > 100MB', () => rawFile(ok, okData, { headerLen: 100_000_001 }), /absurd \(limit 100000000\)/],
    ['header not JSON', () => rawFile('{"w": {', okData), /bad\.safetensors: header is not valid JSON/],
    ['header not an object', () => rawFile('[1,2]'), /bad\.safetensors: header must be a JSON object, got an array/],
    ['header null', () => rawFile('null'), /header must be a JSON object, got null/],
    ['entry not an object', () => rawFile({ w: 3 }), /tensor "w": entry must be an object/],
    [
      'metadata not strings',
      () => rawFile({ __metadata__: { a: 1 }, ...ok }, okData),
      /"__metadata__"\."a" must be a string/,
    ],
    [
      'unknown dtype',
      () => rawFile({ w: { dtype: 'F31', shape: [2], data_offsets: [0, 8] } }, okData),
      /tensor "w": unknown dtype "F31" \(expected one of F64, F32, F16, BF16/,
    ],
    [
      'unsupported dtype',
      () => rawFile({ w: { dtype: 'F8_E4M3', shape: [8], data_offsets: [0, 8] } }, okData),
      /tensor "w": dtype F8_E4M3 is not supported/,
    ],
    [
      'dtype missing',
      () => rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, okData),
      /tensor "w": "dtype" must be a string/,
    ],
    [
      'shape not array',
      () => rawFile({ w: { dtype: 'F32', shape: 2, data_offsets: [0, 8] } }, okData),
      /tensor "w": "shape" must be an array of non-negative integers, got 2/,
    ],
    [
      'negative dim',
      () => rawFile({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, okData),
      /tensor "w": "shape" must be an array of non-negative integers, got \[-2\]/,
    ],
    [
      'fractional dim',
      () => rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, okData),
      /"shape" must be an array of non-negative integers/,
    ],
    [
      'bad data_offsets',
      () => rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, okData),
      /tensor "w": "data_offsets" must be \[begin, end\]/,
    ],
    [
      'end before begin',
      () => rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, okData),
      /tensor "w": data_offsets \[8, 0\] end before begin/,
    ],
    [
      'size mismatch',
      () => rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, okData),
      /tensor "w": shape \[3\] × F32 \(4 B\) = 12 bytes, but data_offsets \[0, 8\] span 8 bytes/,
    ],
    [
      'out of data section',
      () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, okData),
      /tensor "w": data_offsets \[0, 16\] out of the data section \(8 bytes\)/,
    ],
    [
      'overlap',
      () =>
        rawFile(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          okData,
        ),
      /tensor "b": data_offsets \[4, 8\] overlap tensor "a" \[0, 8\]/,
    ],
    [
      'gap',
      () => rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, okData),
      /tensor "a": .*gap of 4 bytes after the start of the data section \(expected begin 0\)/,
    ],
    [
      'gap between',
      () =>
        rawFile(
          {
            a: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
            b: { dtype: 'F16', shape: [1], data_offsets: [4, 6] },
          },
          new Uint8Array(6),
        ),
      /tensor "b": .*gap of 2 bytes after tensor "a"/,
    ],
    [
      'trailing bytes',
      () => rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, okData),
      /4 trailing bytes after the last tensor/,
    ],
    [
      'invalid UTF-8',
      () => rawFile('{}', new Uint8Array(0)).map((b, i) => (i === 9 ? 0xff : b)),
      /header is not valid UTF-8/,
    ],
  ];
  for (const [what, make, re] of cases) {
    it(what, () => {
      let err: Error | undefined;
      try {
        parseSafetensors(make(), F);
      } catch (e) {
        err = e as Error;
      }
      expect(err, `expected an error for ${what}`).toBeInstanceOf(Error);
      expect(err!.message).toMatch(/^bad\.safetensors: /);
      expect(err!.message).toMatch(re);
    });
  }

  it('accepts a valid hand-made file and zero-length tensors anywhere', () => {
    const h = readSafetensorsHeader(
      rawFile({ e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] }, ...ok }, okData),
      F,
    );
    expect(h.entries.map((e) => e.name).sort()).toEqual(['e', 'w']);
    expect(h.dataStart).toBeGreaterThan(8);
  });
});

describe('checkFinite: non-finite weights are refused, naming the tensor and the element', () => {
  it('NaN and Infinity in any tensor', () => {
    const good = { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
    for (const bad of [NaN, Infinity, -Infinity]) {
      const data = Float32Array.from([1, 2, 3, 4, bad, 6]);
      const bytes = writeSafetensors(
        new Map<string, RawTensor>([
          ['a.weight', good],
          ['b.weight', { shape: [2, 3], data }],
        ]),
      );
      // The format keeps the value; a loader of weights refuses it.
      const { tensors } = parseSafetensors(bytes, 'model.safetensors');
      expect(() => checkFinite(tensors, 'model.safetensors')).toThrow(
        `model.safetensors: tensor "b.weight" holds ${bad} at element [1, 1] (flat index 4): weights must be finite numbers`,
      );
    }
  });
});
