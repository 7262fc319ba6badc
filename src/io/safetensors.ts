/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors format).
 *
 * Layout: 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header, then the data section.
 * The header maps tensor names to { dtype, shape, data_offsets: [begin, end] } (offsets relative
 * to the data section) and may hold "__metadata__": { string: string }.
 *
 * Runs in Node, browsers and workers (no node: imports).
 */
import type { RawTensor, RawTensors } from '../engine/config';
import { preview } from '../util/preview';

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines (sub-byte types excluded). */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};
/** The dtypes this reader converts to float32. */
export const SUPPORTED_DTYPES = ['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
const SUPPORTED = new Set<string>(SUPPORTED_DTYPES);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Offsets relative to the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

function fail(fileName: string, msg: string): never {
  throw new Error(`${fileName}: ${msg}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parse and strictly validate the header of a safetensors file. The data section must be covered
 * exactly by the tensors' byte ranges: no overlaps, gaps or trailing bytes (as the reference
 * implementation requires).
 */
export function readSafetensorsHeader(bytes: Uint8Array, fileName: string): SafetensorsHeader {
  if (bytes.length < 8)
    fail(fileName, `not a safetensors file: ${bytes.length} bytes, expected at least 8 (header length)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = dv.getUint32(0, true),
    hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (n > MAX_HEADER_BYTES)
    fail(fileName, `header length ${n} bytes is absurd (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
  if (8 + n > bytes.length)
    fail(fileName, `header length ${n} bytes runs past the end of the file (${bytes.length} bytes)`);
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    fail(fileName, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(fileName, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header))
    fail(
      fileName,
      `header must be a JSON object, got ${Array.isArray(header) ? 'an array' : header === null ? 'null' : typeof header}`,
    );

  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info)) fail(fileName, '"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== 'string') fail(fileName, `"__metadata__"."${k}" must be a string, got ${preview(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isPlainObject(info)) fail(fileName, `${where}: entry must be an object with dtype, shape, data_offsets`);
    const { dtype, shape, data_offsets: offs } = info;
    if (typeof dtype !== 'string') fail(fileName, `${where}: "dtype" must be a string, got ${preview(dtype)}`);
    const size = DTYPE_BYTES[dtype];
    if (size === undefined)
      fail(fileName, `${where}: unknown dtype "${dtype}" (expected one of ${Object.keys(DTYPE_BYTES).join(', ')})`);
    if (!SUPPORTED.has(dtype))
      fail(fileName, `${where}: dtype ${dtype} is not supported (supported: ${SUPPORTED_DTYPES.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(fileName, `${where}: "shape" must be an array of non-negative integers, got ${preview(shape)}`);
    }
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      fail(fileName, `${where}: "data_offsets" must be [begin, end] non-negative integers, got ${preview(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(fileName, `${where}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLen)
      fail(fileName, `${where}: data_offsets [${begin}, ${end}] out of the data section (${dataLen} bytes)`);
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const want = numel * size;
    if (!Number.isSafeInteger(want) || want !== end - begin) {
      fail(
        fileName,
        `${where}: shape ${preview(shape)} × ${dtype} (${size} B) = ${want} bytes, but data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
      );
    }
    entries.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }

  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: SafetensorsEntry | null = null;
  for (const e of sorted) {
    if (e.begin < pos)
      fail(
        fileName,
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap tensor "${prev!.name}" [${prev!.begin}, ${prev!.end}]`,
      );
    if (e.begin > pos) {
      fail(
        fileName,
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - pos} bytes after ${prev ? `tensor "${prev.name}"` : 'the start of the data section'} (expected begin ${pos})`,
      );
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLen)
    fail(
      fileName,
      `${dataLen - pos} trailing bytes after the last tensor (data section is ${dataLen} bytes, tensors cover ${pos})`,
    );
  return { entries, metadata, dataStart };
}

let f16Table: Uint32Array | null = null;
/** float32 bit patterns of all 65536 float16 values. */
function halfTable(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    let bits: number;
    if (exp === 0) {
      if (mant === 0) bits = sign;
      else {
        // Subnormal: mant × 2^-24, renormalised for float32.
        let e = -14,
          m = mant;
        while ((m & 0x400) === 0) {
          m <<= 1;
          e--;
        }
        bits = sign | ((e + 127) << 23) | ((m & 0x3ff) << 13);
      }
    } else if (exp === 31) {
      bits = sign | 0x7f800000 | (mant << 13); // inf / NaN (payload kept)
    } else {
      bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    t[h] = bits >>> 0;
  }
  return (f16Table = t);
}

/** Decode float16 values (as raw uint16) to float32. */
export function decodeF16(src: Uint16Array): Float32Array {
  const t = halfTable();
  const out = new Float32Array(src.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) u[i] = t[src[i]];
  return out;
}

/** Decode bfloat16 values (as raw uint16) to float32: they are the top half of a float32. */
export function decodeBF16(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
  return out;
}

/** A typed-array-compatible, aligned buffer holding bytes [start, end): a view if aligned, else a copy. */
function alignedBuffer(
  bytes: Uint8Array,
  start: number,
  end: number,
  align: number,
): { buffer: ArrayBuffer; offset: number } {
  const abs = bytes.byteOffset + start;
  if (abs % align === 0 && bytes.buffer instanceof ArrayBuffer) return { buffer: bytes.buffer, offset: abs };
  const copy = bytes.slice(start, end);
  return { buffer: copy.buffer, offset: 0 };
}

function decodeTensor(bytes: Uint8Array, dataStart: number, e: SafetensorsEntry): Float32Array {
  const start = dataStart + e.begin,
    end = dataStart + e.end;
  const size = DTYPE_BYTES[e.dtype];
  const n = (end - start) / size;
  switch (e.dtype) {
    case 'F32': {
      const { buffer, offset } = alignedBuffer(bytes, start, end, 4);
      return new Float32Array(buffer, offset, n);
    }
    case 'F16':
    case 'BF16': {
      const { buffer, offset } = alignedBuffer(bytes, start, end, 2);
      const src = new Uint16Array(buffer, offset, n);
      return e.dtype === 'F16' ? decodeF16(src) : decodeBF16(src);
    }
    case 'F64': {
      const { buffer, offset } = alignedBuffer(bytes, start, end, 8);
      return Float32Array.from(new Float64Array(buffer, offset, n));
    }
    case 'I64': {
      const { buffer, offset } = alignedBuffer(bytes, start, end, 8);
      const src = new BigInt64Array(buffer, offset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
    case 'I32': {
      const { buffer, offset } = alignedBuffer(bytes, start, end, 4);
      return Float32Array.from(new Int32Array(buffer, offset, n));
    }
    case 'I16': {
      const { buffer, offset } = alignedBuffer(bytes, start, end, 2);
      return Float32Array.from(new Int16Array(buffer, offset, n));
    }
    case 'I8':
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset + start, n));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(bytes.subarray(start, end));
    default:
      throw new Error(`tensor "${e.name}": dtype ${e.dtype} is not supported`);
  }
}

/**
 * Parse a safetensors file into float32 tensors. F32 tensors whose bytes are 4-aligned in `bytes`
 * are views of it (no copy); everything else is a fresh array.
 * Throws an Error naming the file and the offending tensor/field on any malformation. Values are kept as stored,
 * NaN and ±Infinity included: loaders of weights check them with checkFinite (src/util/finite.ts).
 */
export function parseSafetensors(
  bytes: Uint8Array,
  fileName: string,
): { tensors: RawTensors; metadata: Record<string, string> } {
  if (!LITTLE_ENDIAN) throw new Error(`${fileName}: big-endian hosts are not supported`);
  const { entries, metadata, dataStart } = readSafetensorsHeader(bytes, fileName);
  const tensors: RawTensors = new Map();
  for (const e of entries) tensors.set(e.name, { shape: e.shape, data: decodeTensor(bytes, dataStart, e) });
  return { tensors, metadata };
}

/** Byte-wise (UTF-8 order for BMP text) name comparison, as the reference implementation sorts. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Serialise float32 tensors as a safetensors file (dtype F32). Like the reference implementation:
 * compact JSON header with "__metadata__" first, tensors sorted by name and laid out in that order,
 * header padded with spaces so the data section starts 8-byte aligned.
 */
export function writeSafetensors(tensors: Map<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('writeSafetensors: big-endian hosts are not supported');
  const names = [...tensors.keys()].sort(byName);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__' || name.length === 0)
      throw new Error(`writeSafetensors: invalid tensor name ${JSON.stringify(name)}`);
    const t = tensors.get(name)!;
    if (!(t.data instanceof Float32Array))
      throw new Error(`writeSafetensors: tensor "${name}": data must be a Float32Array`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `writeSafetensors: tensor "${name}": shape must be non-negative integers, got ${JSON.stringify(t.shape)}`,
      );
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length)
      throw new Error(
        `writeSafetensors: tensor "${name}": shape ${JSON.stringify(t.shape)} has ${numel} elements but data has ${t.data.length}`,
      );
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.length % 2 ** 32, true);
  dv.setUint32(4, Math.floor(json.length / 2 ** 32), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}
