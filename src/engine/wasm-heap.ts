/**
 * The tfjs-wasm heap: its ceiling, and a guard that turns an allocation that does not fit into an exception before
 * anything is written (tfjs-backend-wasm 4.22 never checks malloc's result: an exhausted heap silently writes the new
 * tensor at address 0 and the module traps later with its heap corrupted). Used by initBackend('wasm').
 */
import * as tf from '@tensorflow/tfjs-core';
import { formatBytes } from '../util/bytes';

/**
 * tfjs-backend-wasm 4.22's heap ceiling: its emscripten glue's getHeapMax() returns 4294901760 (65535 pages; the
 * .wasm files declare a maximum of 65536 pages = 4 GiB) and growth beyond it fails. Verified in Node 20 by
 * allocating 512 MiB tensors until failure: the heap stopped at 3680 MiB with the next 512 MiB not fitting.
 */
export const WASM_HEAP_MAX_BYTES = 4294901760;

/** Thrown by guardWasmHeap()'s allocator when the wasm heap cannot hold a new tensor (nothing was written). */
export class WasmHeapError extends Error {
  constructor(
    readonly requestedBytes: number,
    readonly heapBytes: number,
    readonly maxBytes: number,
  ) {
    super(
      `the wasm heap cannot hold another ${formatBytes(requestedBytes)} (heap at ${formatBytes(heapBytes)} of ${formatBytes(maxBytes)})`,
    );
    this.name = 'WasmHeapError';
  }
}

const GUARDED = Symbol.for('webtune.wasmHeapGuard');

interface WasmModuleLike {
  _malloc: (n: number) => number;
  _free: (p: number) => void;
  HEAPU8: Uint8Array;
  [GUARDED]?: boolean;
}

/**
 * Make the current (or given) tfjs-wasm backend throw WasmHeapError when a new tensor does not fit its heap, instead
 * of tfjs-wasm 4.22's unchecked malloc writing it at address 0 and corrupting the module. Allocations ending within
 * `reserveBytes` of the heap ceiling are refused too, leaving room for XNNPACK's own (unguarded) allocations.
 * Idempotent; false when the backend is not wasm. Relies on BackendWasm calling `this.wasm._malloc` from JavaScript
 * for every tensor (tfjs-backend-wasm 4.22's backend_wasm.js move()).
 */
export function guardWasmHeap(backend: unknown = tf.backend(), reserveBytes = 128 * 2 ** 20): boolean {
  const wasm = (backend as { wasm?: WasmModuleLike } | null)?.wasm;
  if (!wasm || typeof wasm._malloc !== 'function' || typeof wasm._free !== 'function') return false;
  if (wasm[GUARDED]) return true;
  // emscripten's _malloc is a trampoline that replaces Module._malloc with the raw export on first call: keep
  // whatever gets assigned as the inner allocator and always hand out the guarded one.
  let inner = wasm._malloc;
  const heapBytes = () => wasm.HEAPU8.buffer.byteLength;
  const guarded = (n: number): number => {
    if (!(n <= WASM_HEAP_MAX_BYTES)) throw new WasmHeapError(n, heapBytes(), WASM_HEAP_MAX_BYTES);
    const p = inner(n) >>> 0;
    if (n > 0 && p === 0) throw new WasmHeapError(n, heapBytes(), WASM_HEAP_MAX_BYTES);
    if (n > 0 && p + n > WASM_HEAP_MAX_BYTES - reserveBytes) {
      wasm._free(p);
      throw new WasmHeapError(n, heapBytes(), WASM_HEAP_MAX_BYTES);
    }
    return p;
  };
  Object.defineProperty(wasm, '_malloc', {
    configurable: true,
    enumerable: true,
    get: () => guarded,
    set: (f: (n: number) => number) => {
      inner = f;
    },
  });
  wasm[GUARDED] = true;
  return true;
}

/** Bytes of the wasm backend's linear memory now (it only grows, so this is also its peak); null off wasm. */
export function wasmHeapBytes(backend: unknown = tf.backend()): number | null {
  const wasm = (backend as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return wasm?.HEAPU8 ? wasm.HEAPU8.buffer.byteLength : null;
}
