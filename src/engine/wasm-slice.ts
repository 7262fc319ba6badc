/**
 * Slice and SplitV on wasm that read their input where it lies.
 *
 * tfjs-backend-wasm 4.22's Slice first copies its whole input out of the heap (readSync) and SplitV is a Slice per
 * piece, so splitting n pieces off a tensor copies it n times: the AdamW update's split of 60 LoRA tensors off a
 * 460,800-value vector took 135 ms of a SmolLM2 step. These kernels copy only the values each piece holds, from a
 * view of the heap (taken after the output is allocated, which may grow the heap). Strings keep tfjs's kernels.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): tf.TypedArray;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/** Copy the box [begin, begin + size) of x (row-major) into a new tensor, one contiguous run at a time. */
function sliceInPlace(backend: WasmBackendLike, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const n = size.reduce((a, b) => a * b, 1);
  if (n === 0) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const rank = x.shape.length;
  const strides = [...tf.util.computeStrides(x.shape), 1];
  // a run: the trailing axes taken whole, and the range of the axis before them
  let axis = rank - 1;
  while (axis > 0 && size[axis] === x.shape[axis]) axis--;
  const run = size.slice(axis).reduce((a, b) => a * b, 1);
  const idx = new Array<number>(axis).fill(0); // odometer over the axes before `axis`
  for (let r = 0; r < n / run; r++) {
    let off = begin[axis] * strides[axis];
    for (let a = 0; a < axis; a++) off += (begin[a] + idx[a]) * strides[a];
    dst.set(src.subarray(off, off + run), r * run);
    for (let a = axis - 1; a >= 0 && ++idx[a] === size[a]; a--) idx[a] = 0;
  }
  return out;
}

let installed = false;

/** Replace tfjs-wasm's kernel `name` by `ours` for numeric tensors; string tensors keep tfjs's kernel. */
function replaceForNumbers(
  name: string,
  ours: (x: tf.TensorInfo, args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[],
): void {
  const original = tf.getKernel(name, 'wasm')!;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({
    kernelName: name,
    backendName: 'wasm',
    kernelFunc: ((args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      return x.dtype === 'string' ? original.kernelFunc(args as Parameters<tf.KernelFunc>[0]) : ours(x, args);
    }) as unknown as tf.KernelFunc,
  });
}

/** Register the in-place Slice and SplitV for the wasm backend (once; after tfjs-backend-wasm has loaded). */
export function installWasmSlice(): void {
  if (installed || !tf.getKernel(tf.Slice, 'wasm') || !tf.getKernel(tf.SplitV, 'wasm')) return;
  installed = true;
  replaceForNumbers(tf.Slice, (x, args) => {
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    return sliceInPlace(args.backend as WasmBackendLike, x, b, s);
  });
  replaceForNumbers(tf.SplitV, (x, args) => {
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[ax] = s;
      const piece = sliceInPlace(args.backend as WasmBackendLike, x, [...begin], size);
      begin[ax] += s;
      return piece;
    });
  });
}
