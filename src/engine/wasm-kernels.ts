/**
 * Kernels of our own for the wasm backend (wasm-kernels.wat, WebAssembly SIMD), registered as tfjs kernels.
 *
 * `WebtuneBatchMatMul`, a batched matmul. tfjs-backend-wasm 4.22 runs a batched product with a scalar loop (~1 GFLOP/s on attention's
 * [B·heads, T, head_dim] shapes) and its XNNPACK path only for one 2-D product per call; this kernel runs the whole
 * batch in tiles of 4 x 8 f32x4 accumulators (~40 GFLOP/s on those shapes here). It works inside tfjs's own memory
 * (the module imports it), so operands are read where they are and the result is written into a tensor tfjs
 * allocated: no copies. The module is instantiated once per wasm backend, against a plain or a shared memory
 * (tfjs's threaded build); the kernel runs on the calling thread.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WASM_KERNELS_BINARY } from './wasm-kernels-binary';
import { customOp } from './custom-op';

export const WASM_MATMUL_KERNEL = 'WebtuneBatchMatMul';
export const WASM_SOFTMAX_GRAD_KERNEL = 'WebtuneSoftmaxGrad';
export const WASM_RMSNORM_KERNEL = 'WebtuneRmsNorm';
export const WASM_RMSNORM_GRAD_KERNEL = 'WebtuneRmsNormGrad';

interface Kernels {
  matmul(
    a: number,
    b: number,
    c: number,
    N: number,
    M: number,
    K: number,
    P: number,
    aBatch: number,
    aRow: number,
    aCol: number,
    bBatch: number,
  ): void;
  transpose(src: number, dst: number, N: number, R: number, C: number): void;
  softmax_grad(p: number, dp: number, out: number, R: number, S: number, scale: number): void;
  rmsnorm_fwd(x: number, w: number, out: number, R: number, D: number, eps: number, plusOne: number): void;
  rmsnorm_bwd(x: number, w: number, dy: number, dx: number, R: number, D: number, eps: number, plusOne: number): void;
}

/** The parts of tfjs-backend-wasm's BackendWasm this kernel uses. */
interface WasmBackendLike {
  wasm: { asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory };
  getMemoryOffset(dataId: tf.DataId): number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

const instances = new WeakMap<object, Kernels | null>();

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The kernels bound to this backend's memory, or null where the engine cannot run them (no wasm SIMD). */
function kernelsFor(backend: WasmBackendLike): Kernels | null {
  const known = instances.get(backend.wasm);
  if (known !== undefined) return known;
  let k: Kernels | null = null;
  const memory = memoryOf(backend);
  if (memory) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const bytes = decode(shared ? WASM_KERNELS_BINARY.shared : WASM_KERNELS_BINARY.plain);
    if (WebAssembly.validate(bytes)) {
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
      k = instance.exports as unknown as Kernels;
    }
  }
  instances.set(backend.wasm, k);
  return k;
}

/** tfjs-wasm's memory: exported by its single-threaded build, created (shared) by the glue of its threaded one. */
function memoryOf(backend: WasmBackendLike): WebAssembly.Memory | undefined {
  return backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
}

/** The kernels for a kernel function that runs on `backend`; throws, naming the kernel, where they cannot run. */
function requireKernels(backend: WasmBackendLike, kernel: string): Kernels {
  const k = kernelsFor(backend);
  if (!k) throw new Error(`${kernel}: this engine cannot run wasm SIMD`);
  return k;
}

/** Whether the current backend is wasm and can run the kernel. */
export function wasmKernelsAvailable(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  return kernelsFor(tf.backend() as unknown as WasmBackendLike) !== null;
}

interface Attrs {
  transposeA: boolean;
  transposeB: boolean;
}

function batchMatMulKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as Attrs;
  const k = requireKernels(backend, WASM_MATMUL_KERNEL);
  const [N, a1, a2] = a.shape;
  const [Nb, b1, b2] = b.shape;
  const [M, K] = transposeA ? [a2, a1] : [a1, a2];
  const [Kb, P] = transposeB ? [b2, b1] : [b1, b2];
  if (
    a.shape.length !== 3 ||
    b.shape.length !== 3 ||
    N !== Nb ||
    K !== Kb ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32'
  )
    throw new Error(`${WASM_MATMUL_KERNEL}: cannot multiply [${a.shape}] (${a.dtype}) by [${b.shape}] (${b.dtype})`);
  const out = backend.makeOutput([N, M, P], 'float32');
  if (N * M * P === 0) return out;
  const c = backend.getMemoryOffset(out.dataId);
  if (K === 0) {
    new Float32Array(memoryOf(backend)!.buffer, c, N * M * P).fill(0);
    return out;
  }
  const aOff = backend.getMemoryOffset(a.dataId);
  let bOff = backend.getMemoryOffset(b.dataId);
  // a·bᵀ: b made row-major [K, P] per item first (the kernel runs along rows of b); b is the small operand here
  const tmp = transposeB ? backend.makeOutput([N, K, P], 'float32') : null;
  if (tmp) {
    const t = backend.getMemoryOffset(tmp.dataId);
    k.transpose(bOff, t, N, P, K);
    bOff = t;
  }
  k.matmul(aOff, bOff, c, N, M, K, P, M * K, transposeA ? 1 : K, transposeA ? M : 1, K * P);
  if (tmp) backend.disposeData(tmp.dataId, true);
  return out;
}

tf.registerKernel({
  kernelName: WASM_MATMUL_KERNEL,
  backendName: 'wasm',
  kernelFunc: batchMatMulKernel as unknown as tf.KernelFunc,
});

/**
 * a · b for a [N, M, K] (or [N, K, M] with transposeA) and b [N, K, P] (or [N, P, K] with transposeB) on the wasm
 * kernel; no gradient of its own (see bmm in ops.ts). Check wasmKernelsAvailable() first.
 */
export function wasmBatchMatMul(a: tf.Tensor3D, b: tf.Tensor3D, transposeA = false, transposeB = false): tf.Tensor3D {
  const attrs: Attrs = { transposeA, transposeB };
  return tf.engine().runKernel(WASM_MATMUL_KERNEL, { a, b }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
}

/**
 * Products up to this many multiply-accumulates go to the kernel as 2-D products too (linear layers of small models,
 * every LoRA product): there tfjs's XNNPACK path packs a new right operand on each call and a·bᵀ needs two
 * Transpose ops around it. Above it XNNPACK's cache blocking wins (measured on SmolLM2 / GPT-2 shapes).
 */
export const SMALL_PRODUCT_MACS = 2 ** 24;

/** Whether an [M, K] · [K, P] product runs on the kernel (see SMALL_PRODUCT_MACS). */
export function wasmSmallProduct(M: number, K: number, P: number): boolean {
  return M * K * P <= SMALL_PRODUCT_MACS && wasmKernelsAvailable();
}

/** 2-D op(a) · op(b) on the kernel (no gradient of its own). */
export function wasmMatMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  const c = wasmBatchMatMul(
    tf.reshape(a, [1, ...a.shape]) as tf.Tensor3D,
    tf.reshape(b, [1, ...b.shape]) as tf.Tensor3D,
    transposeA,
    transposeB,
  );
  return tf.reshape(c, [c.shape[1], c.shape[2]]) as tf.Tensor2D;
}

function softmaxGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { p, dp } = args.inputs as { p: tf.TensorInfo; dp: tf.TensorInfo };
  const { scale } = args.attrs as unknown as { scale: number };
  const k = requireKernels(backend, WASM_SOFTMAX_GRAD_KERNEL);
  if (!tf.util.arraysEqual(p.shape, dp.shape) || p.dtype !== 'float32' || dp.dtype !== 'float32')
    throw new Error(`${WASM_SOFTMAX_GRAD_KERNEL}: p [${p.shape}] and dp [${dp.shape}] must be float32 of one shape`);
  const out = backend.makeOutput(p.shape, 'float32');
  const S = p.shape[p.shape.length - 1] ?? 1;
  const R = tf.util.sizeFromShape(p.shape) / Math.max(S, 1);
  if (R * S === 0) return out;
  k.softmax_grad(
    backend.getMemoryOffset(p.dataId),
    backend.getMemoryOffset(dp.dataId),
    backend.getMemoryOffset(out.dataId),
    R,
    S,
    scale,
  );
  return out;
}

tf.registerKernel({
  kernelName: WASM_SOFTMAX_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: softmaxGradKernel as unknown as tf.KernelFunc,
});

/**
 * The gradient of softmax(scale · z) over the last axis with respect to z, from the softmax's output p and the
 * incoming gradient dp: scale · p · (dp − Σ p · dp), one sweep per row. Check wasmKernelsAvailable() first.
 */
export function wasmSoftmaxGrad<T extends tf.Tensor>(p: T, dp: T, scale: number): T {
  return tf.engine().runKernel(WASM_SOFTMAX_GRAD_KERNEL, { p, dp }, { scale }) as T;
}

interface RmsNormAttrs {
  eps: number;
  plusOne: number;
}

/** Forward (inputs x, w) or backward (inputs x, w, dy) of RMSNorm over the last axis. */
function rmsNormKernel(grad: boolean) {
  const name = grad ? WASM_RMSNORM_GRAD_KERNEL : WASM_RMSNORM_KERNEL;
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo => {
    const backend = args.backend as WasmBackendLike;
    const { x, w, dy } = args.inputs as { x: tf.TensorInfo; w: tf.TensorInfo; dy?: tf.TensorInfo };
    const { eps, plusOne } = args.attrs as unknown as RmsNormAttrs;
    const k = requireKernels(backend, name);
    const D = x.shape[x.shape.length - 1] ?? 1;
    const ok = [x, w, ...(dy ? [dy] : [])].every((t) => t.dtype === 'float32');
    if (!ok || w.shape.length !== 1 || w.shape[0] !== D || (dy && !tf.util.arraysEqual(dy.shape, x.shape)))
      throw new Error(`${name}: x [${x.shape}], w [${w.shape}]${dy ? `, dy [${dy.shape}]` : ''} do not match`);
    const out = backend.makeOutput(x.shape, 'float32');
    const R = tf.util.sizeFromShape(x.shape) / Math.max(D, 1);
    if (R * D === 0) return out;
    const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    if (dy) k.rmsnorm_bwd(off(x), off(w), off(dy), off(out), R, D, eps, plusOne);
    else k.rmsnorm_fwd(off(x), off(w), off(out), R, D, eps, plusOne);
    return out;
  };
}

for (const grad of [false, true])
  tf.registerKernel({
    kernelName: grad ? WASM_RMSNORM_GRAD_KERNEL : WASM_RMSNORM_KERNEL,
    backendName: 'wasm',
    kernelFunc: rmsNormKernel(grad) as unknown as tf.KernelFunc,
  });

/**
 * RMSNorm x / sqrt(mean(x²) + eps) · (w + plusOne) over the last axis for a frozen w [D] (plusOne 1: Gemma's
 * (1 + w)), one kernel each way; saves x only. Check wasmKernelsAvailable() first.
 */
export function wasmRmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number, plusOne: 0 | 1): tf.Tensor {
  const attrs = { eps, plusOne } as unknown as tf.NamedAttrMap;
  const f = customOp<tf.Tensor>(([xi], save) => {
    save([xi]);
    return {
      value: tf.engine().runKernel(WASM_RMSNORM_KERNEL, { x: xi, w }, attrs) as tf.Tensor,
      gradFunc: (dy, [xs]) => tf.engine().runKernel(WASM_RMSNORM_GRAD_KERNEL, { x: xs, w, dy }, attrs) as tf.Tensor,
    };
  });
  return f(x);
}
