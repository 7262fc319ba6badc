/**
 * Kernels of our own for the wasm backend (wasm-kernels.wat, WebAssembly SIMD), registered as tfjs kernels.
 *
 * `WebtuneBatchMatMul` runs every product of a step. tfjs-backend-wasm 4.22 runs a batched product with a scalar loop
 * (~1 GFLOP/s on attention's [B·heads, T, head_dim] shapes) and a 2-D one with XNNPACK (31-37 GFLOP/s a thread here,
 * ~10x slower with transposeB). Batches and shallow products run in tiles of 4 x 8 f32x4 accumulators (matmul);
 * 2-D products of 16+ rows and depth 32+ run cache-blocked (gemm_block: panels of b packed per block of 64 columns,
 * ~43 GFLOP/s a thread). Both read a or aᵀ and b or bᵀ in place. In the threaded build large products are split
 * across helper threads (wasm-kernel-threads.ts) that work in the same shared memory. The module imports tfjs's own
 * memory, so operands are read where they are and the result is written into a tensor tfjs allocated: no copies.
 * It is instantiated once per wasm backend, against a plain or a shared memory. The softmax's gradient, RMSNorm,
 * LayerNorm, gelu_new, SwiGLU's silu(g) · u and the cross-entropy (its softmax with the loss's statistics, and its
 * gradient) are one kernel each way where tfjs runs several ops (and the norms, gelu_new and silu · u save their
 * inputs only); these row kernels too are split across the helper threads over many rows (runRows). Row lookups in
 * frozen tables (embeddings, RoPE) replace tfjs's slow GatherV2, and RoPE with attention's head transpose is one
 * sweep each way.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WASM_KERNELS_BINARY } from './wasm-kernels-binary';
import { customOp } from './custom-op';
import type { AdamWScalars } from './adamw-scalars';
import { BATCHED, GEMM, KernelThreads, rowParams, runBlock, type RowKernel } from './wasm-kernel-threads';

export const WASM_MATMUL_KERNEL = 'WebtuneBatchMatMul';
export const WASM_SOFTMAX_GRAD_KERNEL = 'WebtuneSoftmaxGrad';
export const WASM_ATTN_SOFTMAX_KERNEL = 'WebtuneAttentionSoftmax';
export const WASM_RMSNORM_KERNEL = 'WebtuneRmsNorm';
export const WASM_RMSNORM_GRAD_KERNEL = 'WebtuneRmsNormGrad';
export const WASM_CE_GRAD_KERNEL = 'WebtuneCrossEntropyGrad';
export const WASM_CE_SOFTMAX_KERNEL = 'WebtuneCrossEntropySoftmax';
export const WASM_GATHER_ROWS_KERNEL = 'WebtuneGatherRows';
export const WASM_ROPE_HEADS_KERNEL = 'WebtuneRopeHeads';
export const WASM_LORA_LINEAR_KERNEL = 'WebtuneLoraLinear';
export const WASM_LORA_LINEAR_GRAD_KERNEL = 'WebtuneLoraLinearGrad';
export const WASM_LAYERNORM_KERNEL = 'WebtuneLayerNorm';
export const WASM_LAYERNORM_GRAD_KERNEL = 'WebtuneLayerNormGrad';
export const WASM_GELU_KERNEL = 'WebtuneGeluNew';
export const WASM_GELU_GRAD_KERNEL = 'WebtuneGeluNewGrad';
export const WASM_SILU_MUL_KERNEL = 'WebtuneSiluMul';
export const WASM_SILU_MUL_GRAD_KERNEL = 'WebtuneSiluMulGrad';

interface Kernels {
  adamw(
    p: number,
    m: number,
    v: number,
    g: number,
    po: number,
    mo: number,
    vo: number,
    n: number,
    w: number,
    small: number,
    b2: number,
    c2: number,
    eps: number,
    decay: number,
    negStep: number,
    bc2: number,
  ): number;
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
    mode: number,
    T: number,
    past: number,
  ): void;
  gemm_block(
    a: number,
    b: number,
    c: number,
    M: number,
    K: number,
    P: number,
    aRow: number,
    aCol: number,
    bRow: number,
    bCol: number,
    scratch: number,
    j0: number,
    w: number,
    acc: number,
  ): void;
  axpy(src: number, dst: number, n: number, alpha: number, acc: number): void;
  transpose(src: number, dst: number, N: number, R: number, C: number): void;
  softmax_grad(p: number, dp: number, out: number, R: number, S: number, scale: number): void;
  attn_softmax(
    x: number,
    bias: number,
    out: number,
    first: number,
    R: number,
    S: number,
    scale: number,
    T: number,
    perB: number,
  ): void;
  ce_grad(p: number, s: number, t: number, out: number, R: number, S: number): void;
  ce_softmax(z: number, t: number, p: number, out: number, R: number, S: number): void;
  gather_rows(src: number, idx: number, dst: number, n: number, D: number): void;
  rope_heads(
    x: number,
    cos: number,
    sin: number,
    out: number,
    first: number,
    R: number,
    nh: number,
    hd: number,
    T: number,
    mode: number,
  ): void;
  rmsnorm_fwd(x: number, w: number, out: number, R: number, D: number, eps: number, plusOne: number): void;
  rmsnorm_bwd(x: number, w: number, dy: number, dx: number, R: number, D: number, eps: number, plusOne: number): void;
  layernorm_fwd(x: number, w: number, b: number, out: number, R: number, D: number, eps: number): void;
  layernorm_bwd(x: number, w: number, dy: number, dx: number, R: number, D: number, eps: number): void;
  gelu_fwd(x: number, out: number, n: number): void;
  gelu_bwd(x: number, dy: number, dx: number, n: number): void;
  silu_mul_fwd(g: number, u: number, out: number, n: number): void;
  silu_mul_bwd(g: number, u: number, dy: number, dg: number, du: number, n: number): void;
}

/** The parts of tfjs-backend-wasm's BackendWasm this kernel uses. */
interface WasmBackendLike {
  wasm: { asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory };
  getMemoryOffset(dataId: tf.DataId): number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/** The module bound to one backend's memory; `threads` are the helpers of its large products (shared memory only). */
interface Bound {
  k: Kernels;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  shared: boolean;
  /** Whether the products' multiply-adds are relaxed SIMD's (fused where the CPU can); else a multiply and an add. */
  relaxed: boolean;
  threads?: KernelThreads | null;
}

const instances = new WeakMap<object, Bound | null>();
/** The one set of helper threads alive (a backend re-created with another thread count gets new ones). */
let liveThreads: KernelThreads | null = null;

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The kernels bound to this backend's memory, or null where the engine cannot run them (no wasm SIMD). */
function boundFor(backend: WasmBackendLike): Bound | null {
  const known = instances.get(backend.wasm);
  if (known !== undefined) return known;
  let bound: Bound | null = null;
  const memory = memoryOf(backend);
  if (memory) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const build = (relaxed: boolean) => {
      const builds = relaxed ? WASM_KERNELS_BINARY.relaxed : WASM_KERNELS_BINARY.simd;
      const bytes = decode(shared ? builds.shared : builds.plain);
      return WebAssembly.validate(bytes) ? { bytes, relaxed } : null;
    };
    // relaxed SIMD where the engine has it (Chromium 114+, Node 22+), else plain SIMD
    const chosen = build(true) ?? build(false);
    if (chosen) {
      const module = new WebAssembly.Module(chosen.bytes);
      // a new backend (another thread count): the old one's helpers go with it
      liveThreads?.dispose();
      liveThreads = null;
      const k = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Kernels;
      bound = { k, module, memory, shared, relaxed: chosen.relaxed };
    }
  }
  instances.set(backend.wasm, bound);
  return bound;
}

function kernelsFor(backend: WasmBackendLike): Kernels | null {
  return boundFor(backend)?.k ?? null;
}

/** Threads the next wasm backend's kernels run on (initBackend sets it with the build it chooses). */
let kernelThreads = 1;

/** Sets the threads our kernels run on: the caller and kernelThreads − 1 helpers (threaded build only). */
export function setWasmKernelThreads(n: number): void {
  kernelThreads = Math.max(1, Math.floor(n));
}

/** The threads our kernels run on (see setWasmKernelThreads). */
export function wasmKernelThreadCount(): number {
  return kernelThreads;
}

/**
 * The helper threads of this backend's large products: the thread count asked for minus the caller, started on first use,
 * only for the threaded build (a shared memory) where workers exist; null means the caller runs every block.
 */
function threadsFor(bound: Bound): KernelThreads | null {
  if (bound.threads !== undefined) return bound.threads;
  const helpers = kernelThreads - 1;
  bound.threads = null;
  if (bound.shared && helpers > 0 && typeof Worker === 'function') {
    liveThreads?.dispose();
    liveThreads = bound.threads = new KernelThreads(bound.module, bound.memory, helpers, bound.k);
  }
  return bound.threads;
}

/**
 * Starts the helper threads of the current wasm backend's large products (see threadsFor) and settles when they run;
 * initBackend awaits it. Returns why they do not run, if they were wanted and do not.
 */
export async function startWasmKernelThreads(): Promise<string | undefined> {
  if (tf.getBackend() !== 'wasm') return undefined;
  const bound = boundFor(tf.backend() as unknown as WasmBackendLike);
  const threads = bound && threadsFor(bound);
  if (!threads) return undefined;
  await threads.started;
  return threads.failure;
}

/** The helper threads in use and how the blocks of large products were shared (tests, the status line). */
export function wasmKernelThreads(): {
  threads: number;
  ready: number;
  totalBlocks: number;
  callerBlocks: number;
  failure?: string;
} {
  const t = liveThreads;
  return t
    ? {
        threads: t.threads,
        ready: t.ready,
        totalBlocks: t.totalBlocks,
        callerBlocks: t.callerBlocks,
        failure: t.failure,
      }
    : { threads: 1, ready: 0, totalBlocks: 0, callerBlocks: 0 };
}

/** Whether the current wasm backend's kernels run relaxed SIMD's fused multiply-adds (false: not, or no kernels). */
export function wasmKernelsRelaxed(): boolean {
  return tf.getBackend() === 'wasm' && (boundFor(tf.backend() as unknown as WasmBackendLike)?.relaxed ?? false);
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
  /** matmul's causal mode (0: none; see wasm-kernels.wat), the query length T and the cached keys before them. */
  causal: number;
  T: number;
  past: number;
}

/**
 * Which [G·T, S] matrix of causal attention a product has (queries t of G heads stacked, S = past + T keys, 0 where
 * a key is past its query's): its output (`out`: the scores, dP), its a (`a`: P·v, dS·k) or its a read transposed
 * (`aT`: Pᵀ·dout, dSᵀ·q). The product then skips the zeros (matmul's modes 1-3). A hint only: a product computed
 * whole is the same (for `a` and `aT` the skipped entries must be exactly 0, as the attention's softmax makes them).
 */
export interface CausalHint {
  at: 'out' | 'a' | 'aT';
  T: number;
  past: number;
}
const CAUSAL_MODES = { out: 1, a: 2, aT: 3 } as const;

function batchMatMulKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB, causal, T, past } = args.attrs as unknown as Attrs;
  const k = requireKernels(backend, WASM_MATMUL_KERNEL);
  // 2-D operands: one item, and a 2-D result (no reshapes around the product)
  const flat = a.shape.length === 2 && b.shape.length === 2;
  const [N, a1, a2] = flat ? [1, ...a.shape] : a.shape;
  const [Nb, b1, b2] = flat ? [1, ...b.shape] : b.shape;
  const [M, K] = transposeA ? [a2, a1] : [a1, a2];
  const [Kb, P] = transposeB ? [b2, b1] : [b1, b2];
  if (
    (!flat && (a.shape.length !== 3 || b.shape.length !== 3)) ||
    N !== Nb ||
    K !== Kb ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32'
  )
    throw new Error(`${WASM_MATMUL_KERNEL}: cannot multiply [${a.shape}] (${a.dtype}) by [${b.shape}] (${b.dtype})`);
  const out = backend.makeOutput(flat ? [M, P] : [N, M, P], 'float32');
  if (N * M * P === 0) return out;
  const c = backend.getMemoryOffset(out.dataId);
  if (K === 0) {
    new Float32Array(memoryOf(backend)!.buffer, c, N * M * P).fill(0);
    return out;
  }
  const aOff = backend.getMemoryOffset(a.dataId);
  let bOff = backend.getMemoryOffset(b.dataId);
  const [aRow, aCol] = transposeA ? [1, M] : [K, 1];
  // 2-D operands, and one item large enough for the cache-blocked product
  if (flat || (N === 1 && M >= GEMM_MIN_ROWS && K >= GEMM_MIN_DEPTH)) {
    product2d(backend, aOff, bOff, c, M, K, P, transposeA, transposeB);
    return out;
  }
  // a·bᵀ: b made row-major [K, P] per item first (the kernel runs along rows of b); b is the small operand here
  const tmp = transposeB ? backend.makeOutput([N, K, P], 'float32') : null;
  if (tmp) {
    const t = backend.getMemoryOffset(tmp.dataId);
    k.transpose(bOff, t, N, P, K);
    bOff = t;
  }
  const bound = boundFor(backend)!;
  // the causal mode where the tiles need no edges (else the whole product, which is the same)
  const mode = causal && M % 4 === 0 && P % 8 === 0 && T % 4 === 0 && (causal !== 3 || K % T === 0) ? causal : 0;
  const threads = N > 1 && N * M * K * P >= THREADED_MACS ? threadsFor(bound) : null;
  if (threads) {
    // items in blocks, about four per thread
    const perBlock = Math.ceil(N / (4 * threads.threads));
    threads.run(
      [BATCHED, aOff, bOff, c, M, K, P, M * K, aRow, aCol, K * P, perBlock, N, 0, mode, T, past],
      Math.ceil(N / perBlock),
    );
  } else k.matmul(aOff, bOff, c, N, M, K, P, M * K, aRow, aCol, K * P, mode, T, past);
  if (tmp) backend.disposeData(tmp.dataId, true);
  return out;
}

/**
 * c[M, P] = op(a) · op(b) for 2-D operands at heap offsets (a [M, K] or with transposeA [K, M]; b [K, P] or with
 * transposeB [P, K]); with acc, c += op(a) · op(b). Cache-blocked (gemm) from GEMM_MIN_ROWS rows and GEMM_MIN_DEPTH
 * deep, else the tiled kernel (b of a·bᵀ transposed into a scratch first; with acc the product goes to a scratch and
 * is added).
 */
function product2d(
  backend: WasmBackendLike,
  a: number,
  b: number,
  c: number,
  M: number,
  K: number,
  P: number,
  transposeA: boolean,
  transposeB: boolean,
  acc = false,
): void {
  const [aRow, aCol] = transposeA ? [1, M] : [K, 1];
  if (M * P === 0) return;
  if (K === 0) {
    if (!acc) new Float32Array(memoryOf(backend)!.buffer, c, M * P).fill(0);
    return;
  }
  if (M >= GEMM_MIN_ROWS && K >= GEMM_MIN_DEPTH) {
    gemm(backend, a, b, c, M, K, P, aRow, aCol, transposeB ? 1 : P, transposeB ? K : 1, acc);
    return;
  }
  const k = boundFor(backend)!.k;
  const scratch: tf.TensorInfo[] = [];
  const temp = (floats: number) => {
    const t = backend.makeOutput([floats], 'float32');
    scratch.push(t);
    return backend.getMemoryOffset(t.dataId);
  };
  try {
    if (transposeB) {
      const t = temp(K * P);
      k.transpose(b, t, 1, P, K);
      b = t;
    }
    const to = acc ? temp(M * P) : c;
    k.matmul(a, b, to, 1, M, K, P, M * K, aRow, aCol, K * P, 0, 0, 0);
    if (acc) k.axpy(to, c, M * P, 1, 1);
  } finally {
    for (const t of scratch) backend.disposeData(t.dataId, true);
  }
}

/** Columns per block of the cache-blocked product (its packed panels stay in L2: measured best at 32-64 here). */
const GEMM_BLOCK = 64;
/**
 * Rows per block of the cache-blocked product: the blocks of a chunk of rows share its [256, 256] slice of a (256 KB)
 * in L2 instead of streaming all of a per block of columns. Measured here: 1024³ on 2 threads 47.6-50.7 ->
 * 51.5-55.1 GFLOP/s, [4096, 768] · [768, 768]ᵀ on 1 thread 25-27 -> 30-38 GFLOP/s; 512-row shapes unchanged.
 */
const GEMM_ROW_CHUNK = 256;
/** The depth of gemm_block's slices (wasm-kernels.wat), which bounds its packed scratch. */
const GEMM_DEPTH_SLICE = 256;
/**
 * 2-D products of at least this many rows and this depth run cache-blocked (gemm_block): packing b's columns pays
 * for itself once each packed value is used 16 times, and below a depth of 32 the tiles' stores dominate. The rest
 * (attention's batches, LoRA's rank-deep products) run on the tiled kernel as they are. Measured on 2-D shapes from
 * [512, 8] x [8, 1536] to [512, 768] x [768, 50257].
 */
const GEMM_MIN_ROWS = 16;
const GEMM_MIN_DEPTH = 32;
/**
 * Products from this many multiply-accumulates on (~0.8 ms of one thread) are split across the helper threads; below
 * it waking them costs about what it saves (measured on stories260K's products: 2^22 made its step slower).
 */
const THREADED_MACS = 2 ** 24;

/**
 * c[M, P] = a(M, K) · b(K, P) (acc: c += …) by gemm_block over blocks of GEMM_BLOCK columns and GEMM_ROW_CHUNK rows,
 * on the caller and the helper threads (wasm-kernel-threads.ts) when there are any and the product is large enough.
 * Offsets and strides as gemm_block's.
 */
function gemm(
  backend: WasmBackendLike,
  a: number,
  b: number,
  c: number,
  M: number,
  K: number,
  P: number,
  aRow: number,
  aCol: number,
  bRow: number,
  bCol: number,
  acc = false,
): void {
  const bound = boundFor(backend)!;
  const rows = M > GEMM_ROW_CHUNK ? GEMM_ROW_CHUNK : M;
  const blocks = Math.ceil(P / GEMM_BLOCK) * Math.ceil(M / rows);
  const threads = M * K * P >= THREADED_MACS && blocks > 1 ? threadsFor(bound) : null;
  // gemm_block packs at most GEMM_DEPTH_SLICE rows of the block's columns at a time
  const slotBytes = Math.min(K, GEMM_DEPTH_SLICE) * GEMM_BLOCK * 4;
  const scratch = backend.makeOutput([((threads?.threads ?? 1) * slotBytes) / 4], 'float32');
  const s = backend.getMemoryOffset(scratch.dataId);
  const params = [GEMM, a, b, c, M, K, P, aRow, aCol, bRow, bCol, s, slotBytes, GEMM_BLOCK, +acc, rows];
  try {
    if (threads) threads.run(params, blocks);
    else for (let j = 0; j < blocks; j++) runBlock(bound.k, params, j, 0);
  } finally {
    backend.disposeData(scratch.dataId, true);
  }
}

/**
 * Row kernels over at least this many floats are split across the helper threads by rows (~0.1 ms of one thread):
 * GPT-2's [512, 768] activations and up; stories260K's [512, 64] stay on the caller, where waking a helper costs
 * about what it saves.
 */
const THREADED_ROW_FLOATS = 2 ** 18;

/**
 * Runs row kernel `name` over `count` rows (or elements) on `pointers` ([pointer, bytes per row]: 0 for a vector
 * every row reads) with `extras` after the count: split in blocks of rows across the helper threads when there are
 * any and the rows hold `floats` ≥ THREADED_ROW_FLOATS in all (`align`: rows per block a multiple of it), else in
 * one call. Rows are independent, so the result is the same either way, bit for bit.
 */
function runRows(
  backend: WasmBackendLike,
  name: RowKernel,
  pointers: [number, number][],
  count: number,
  extras: number[],
  floats: number,
  align = 1,
): void {
  const bound = boundFor(backend)!;
  const threads = floats >= THREADED_ROW_FLOATS && count >= 2 * align ? threadsFor(bound) : null;
  if (!threads) {
    (bound.k[name] as (...args: number[]) => void)(...pointers.map(([at]) => at), count, ...extras);
    return;
  }
  // about four blocks per thread, so a late helper only shifts blocks to the others
  const perBlock = Math.ceil(count / (4 * threads.threads) / align) * align;
  threads.run(rowParams(name, pointers, count, perBlock, extras), Math.ceil(count / perBlock));
}

/** runRows for an element-wise kernel over n floats at each pointer: blocks of whole f32x4 vectors. */
function runElementwise(backend: WasmBackendLike, name: RowKernel, pointers: number[], n: number): void {
  runRows(
    backend,
    name,
    pointers.map((at): [number, number] => [at, 4]),
    n,
    [],
    n,
    4,
  );
}

tf.registerKernel({
  kernelName: WASM_MATMUL_KERNEL,
  backendName: 'wasm',
  kernelFunc: batchMatMulKernel as unknown as tf.KernelFunc,
});

/**
 * a · b for a [N, M, K] (or [N, K, M] with transposeA) and b [N, K, P] (or [N, P, K] with transposeB) on the wasm
 * kernel, skipping causal attention's zeros when told where they are (CausalHint); no gradient of its own (see bmm
 * in ops.ts). Check wasmKernelsAvailable() first.
 */
export function wasmBatchMatMul(
  a: tf.Tensor3D,
  b: tf.Tensor3D,
  transposeA = false,
  transposeB = false,
  causal: CausalHint | null = null,
): tf.Tensor3D {
  const attrs: Attrs = {
    transposeA,
    transposeB,
    causal: causal ? CAUSAL_MODES[causal.at] : 0,
    T: causal?.T ?? 0,
    past: causal?.past ?? 0,
  };
  return tf.engine().runKernel(WASM_MATMUL_KERNEL, { a, b }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
}

/** 2-D op(a) · op(b) on the kernel (no gradient of its own). */
export function wasmMatMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  const attrs: Attrs = { transposeA, transposeB, causal: 0, T: 0, past: 0 };
  return tf.engine().runKernel(WASM_MATMUL_KERNEL, { a, b }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

interface LoraLinearAttrs {
  scaling: number;
  /** W [out, in] (nn.Linear: y = x · Wᵀ) or [in, out] (GPT-2's Conv1D: y = x · W). */
  outIn: boolean;
}

/** The operands' shapes of a LoRA layer, checked: x [M, in], W, A [r, in], B [out, r]. */
function loraShapes(
  name: string,
  x: tf.TensorInfo,
  W: tf.TensorInfo,
  A: tf.TensorInfo,
  B: tf.TensorInfo,
  outIn: boolean,
) {
  const [M, n] = x.shape;
  const [out, wIn] = outIn ? W.shape : [W.shape[1], W.shape[0]];
  const r = A.shape[0];
  const ok =
    [x, W, A, B].every((t) => t.shape.length === 2 && t.dtype === 'float32') &&
    wIn === n &&
    A.shape[1] === n &&
    B.shape[0] === out &&
    B.shape[1] === r;
  if (!ok)
    throw new Error(`${name}: x [${x.shape}], W [${W.shape}], A [${A.shape}], B [${B.shape}] do not make a LoRA layer`);
  return { M, n, out, r };
}

/**
 * A frozen linear layer with its LoRA path in one kernel: y = x · W(ᵀ) (+ bias or + residual) + xa · Bᵀ with
 * xa = scaling · xin · Aᵀ (xin: x after lora_dropout, or x). Outputs y and xa (kept for dB). The bias rows or the
 * residual go into y first, the base product adds onto them (gemm's acc), then the path's product.
 */
function loraLinearKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo[] {
  const backend = args.backend as WasmBackendLike;
  const { x, W, A, B, xin, bias, residual } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { scaling, outIn } = args.attrs as unknown as LoraLinearAttrs;
  const k = requireKernels(backend, WASM_LORA_LINEAR_KERNEL);
  const { M, n, out, r } = loraShapes(WASM_LORA_LINEAR_KERNEL, x!, W!, A!, B!, outIn);
  if (
    (xin && xin.shape.join() !== x!.shape.join()) ||
    (bias && bias.shape.join() !== `${out}`) ||
    (residual && residual.shape.join() !== `${M},${out}`)
  )
    throw new Error(
      `${WASM_LORA_LINEAR_KERNEL}: x [${x!.shape}] with xin [${xin?.shape}], bias [${bias?.shape}], residual [${residual?.shape}]`,
    );
  const y = backend.makeOutput([M, out], 'float32');
  const xa = backend.makeOutput([M, r], 'float32');
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const heap = memoryOf(backend)!;
  const yv = new Float32Array(heap.buffer, off(y), M * out);
  if (residual) yv.set(new Float32Array(heap.buffer, off(residual), M * out));
  else if (bias) {
    const b = new Float32Array(heap.buffer, off(bias), out);
    for (let i = 0; i < M; i++) yv.set(b, i * out);
  }
  product2d(backend, off(x!), off(W!), off(y), M, n, out, false, outIn, !!(residual || bias));
  product2d(backend, off(xin ?? x!), off(A!), off(xa), M, n, r, false, true);
  k.axpy(off(xa), off(xa), M * r, scaling, 0);
  product2d(backend, off(xa), off(B!), off(y), M, r, out, false, true, true);
  return [y, xa];
}

/**
 * Its gradients from dy [M, out]: dB = dyᵀ · xa, dxa = scaling · dy · B, dA = dxaᵀ · xin, and dx = dy · W(ᵀ) +
 * dxa · A (when xin is x; else dx = dy · W(ᵀ) and dxin = dxa · A apart). Outputs dx, dA, dB (, dxin).
 */
function loraLinearGradKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: unknown;
}): tf.TensorInfo[] {
  const backend = args.backend as WasmBackendLike;
  const { dy, x, W, A, B, xa, xin } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { scaling, outIn } = args.attrs as unknown as LoraLinearAttrs;
  const k = requireKernels(backend, WASM_LORA_LINEAR_GRAD_KERNEL);
  const { M, n, out, r } = loraShapes(WASM_LORA_LINEAR_GRAD_KERNEL, x!, W!, A!, B!, outIn);
  if (dy!.shape.join() !== `${M},${out}` || xa!.shape.join() !== `${M},${r}`)
    throw new Error(
      `${WASM_LORA_LINEAR_GRAD_KERNEL}: dy [${dy!.shape}] or xa [${xa!.shape}] do not fit x [${x!.shape}]`,
    );
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const dx = backend.makeOutput([M, n], 'float32');
  const dA = backend.makeOutput([r, n], 'float32');
  const dB = backend.makeOutput([out, r], 'float32');
  const dxin = xin ? backend.makeOutput([M, n], 'float32') : null;
  const dxa = backend.makeOutput([M, r], 'float32');
  try {
    product2d(backend, off(dy!), off(xa!), off(dB), out, M, r, true, false);
    product2d(backend, off(dy!), off(B!), off(dxa), M, out, r, false, false);
    k.axpy(off(dxa), off(dxa), M * r, scaling, 0);
    product2d(backend, off(dxa), off(xin ?? x!), off(dA), r, M, n, true, false);
    product2d(backend, off(dxa), off(A!), off(dxin ?? dx), M, r, n, false, false);
    product2d(backend, off(dy!), off(W!), off(dx), M, out, n, false, !outIn, !dxin);
  } finally {
    backend.disposeData(dxa.dataId, true);
  }
  return dxin ? [dx, dA, dB, dxin] : [dx, dA, dB];
}

tf.registerKernel({
  kernelName: WASM_LORA_LINEAR_KERNEL,
  backendName: 'wasm',
  kernelFunc: loraLinearKernel as unknown as tf.KernelFunc,
});
tf.registerKernel({
  kernelName: WASM_LORA_LINEAR_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: loraLinearGradKernel as unknown as tf.KernelFunc,
});

/**
 * A frozen linear layer with its LoRA path on the kernels, forward and backward each one kernel (PEFT's
 * base(x) + lora_B(lora_A(dropout(x))) · scaling; the tfjs ops take a product, a scale and an add for the path, and
 * its gradient's two sums, a dozen kernels each way): x [M, in], W frozen ([out, in] with outIn, GPT-2's [in, out]
 * without), `bias` frozen [out] or a `residual` [M, out] added (not both), `xin` x after lora_dropout (null: x).
 * Check wasmKernelsAvailable() first.
 */
export function wasmLoraLinear(
  x: tf.Tensor2D,
  W: tf.Tensor2D,
  outIn: boolean,
  lora: { A: tf.Tensor2D; B: tf.Tensor2D; scaling: number; xin: tf.Tensor2D | null },
  bias: tf.Tensor1D | null,
  residual: tf.Tensor2D | null,
): tf.Tensor2D {
  if (bias && residual) throw new Error('wasmLoraLinear: a layer with a bias takes no residual');
  const { A, B, scaling, xin } = lora;
  const attrs = { scaling, outIn } as unknown as tf.NamedAttrMap;
  const inputs: tf.Tensor[] = [x, A, B];
  if (xin) inputs.push(xin);
  if (residual) inputs.push(residual);
  const f = customOp<tf.Tensor2D>((args, save) => {
    const [xi, Ai, Bi, ...rest] = args as tf.Tensor2D[];
    const xini = xin ? rest.shift()! : null;
    const res = residual ? rest.shift()! : null;
    const forward: tf.NamedTensorMap = { x: xi, W, A: Ai, B: Bi };
    if (xini) forward.xin = xini;
    if (bias) forward.bias = bias;
    if (res) forward.residual = res;
    const [y, xa] = tf.engine().runKernel(WASM_LORA_LINEAR_KERNEL, forward, attrs) as tf.Tensor2D[];
    save(xini ? [xi, Ai, Bi, xa, xini] : [xi, Ai, Bi, xa]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xs, As, Bs, xas, xins] = saved as tf.Tensor2D[];
        const backward: tf.NamedTensorMap = { dy, x: xs, W, A: As, B: Bs, xa: xas };
        if (xins) backward.xin = xins;
        const [dx, dA, dB, dxin] = tf.engine().runKernel(WASM_LORA_LINEAR_GRAD_KERNEL, backward, attrs) as tf.Tensor[];
        const grads = [dx, dA, dB];
        if (dxin) grads.push(dxin);
        if (res) grads.push(tf.clone(dy));
        return grads;
      },
    };
  });
  return f(...inputs);
}

interface AttnSoftmaxAttrs {
  scale: number;
  B: number;
  T: number;
}

function attnSoftmaxKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, bias } = args.inputs as { x: tf.TensorInfo; bias?: tf.TensorInfo };
  const { scale, B, T } = args.attrs as unknown as AttnSoftmaxAttrs;
  requireKernels(backend, WASM_ATTN_SOFTMAX_KERNEL);
  const S = x.shape[x.shape.length - 1] ?? 0;
  const R = tf.util.sizeFromShape(x.shape) / Math.max(S, 1);
  if (
    x.dtype !== 'float32' ||
    !(B > 0 && T > 0) ||
    R % (B * T) !== 0 ||
    (bias && (bias.dtype !== 'float32' || tf.util.sizeFromShape(bias.shape) !== B * T * S))
  )
    throw new Error(
      `${WASM_ATTN_SOFTMAX_KERNEL}: scores [${x.shape}] and bias [${bias?.shape ?? 'none'}] do not fit B ${B}, T ${T}`,
    );
  const out = backend.makeOutput(x.shape, 'float32');
  if (R * S === 0) return out;
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const row = 4 * S;
  const pointers: [number, number][] = [
    [off(x), row],
    [bias ? off(bias) : 0, 0],
    [off(out), row],
    [0, 1], // the block's first row
  ];
  runRows(backend, 'attn_softmax', pointers, R, [S, scale, T, R / B], R * S);
  return out;
}

tf.registerKernel({
  kernelName: WASM_ATTN_SOFTMAX_KERNEL,
  backendName: 'wasm',
  kernelFunc: attnSoftmaxKernel as unknown as tf.KernelFunc,
});

/**
 * Attention's probabilities softmax(scale · scores + bias) over the last axis, in one sweep per row: scores
 * [B·KV, G·T, S] (any shape of B·KV·G·T rows of S), bias null or [B, 1, 1, T, S] (0 or -1e9, shared by every head
 * of a batch item). Masked columns at a row's end are skipped (probability 0, as in float32 arithmetic). No gradient
 * of its own (see attentionSoftmax). Check wasmKernelsAvailable() first.
 */
export function wasmAttentionSoftmax<T extends tf.Tensor>(
  scores: T,
  bias: tf.Tensor | null,
  scale: number,
  B: number,
  T: number,
): T {
  const attrs = { scale, B, T } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(WASM_ATTN_SOFTMAX_KERNEL, bias ? { x: scores, bias } : { x: scores }, attrs) as T;
}

function softmaxGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { p, dp } = args.inputs as { p: tf.TensorInfo; dp: tf.TensorInfo };
  const { scale } = args.attrs as unknown as { scale: number };
  requireKernels(backend, WASM_SOFTMAX_GRAD_KERNEL);
  if (!tf.util.arraysEqual(p.shape, dp.shape) || p.dtype !== 'float32' || dp.dtype !== 'float32')
    throw new Error(`${WASM_SOFTMAX_GRAD_KERNEL}: p [${p.shape}] and dp [${dp.shape}] must be float32 of one shape`);
  const out = backend.makeOutput(p.shape, 'float32');
  const S = p.shape[p.shape.length - 1] ?? 1;
  const R = tf.util.sizeFromShape(p.shape) / Math.max(S, 1);
  if (R * S === 0) return out;
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const row = 4 * S;
  runRows(
    backend,
    'softmax_grad',
    [
      [off(p), row],
      [off(dp), row],
      [off(out), row],
    ],
    R,
    [S, scale],
    R * S,
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

function crossEntropyGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { p, scale, targets } = args.inputs as { p: tf.TensorInfo; scale: tf.TensorInfo; targets: tf.TensorInfo };
  requireKernels(backend, WASM_CE_GRAD_KERNEL);
  const [R, S] = p.shape;
  if (
    p.shape.length !== 2 ||
    p.dtype !== 'float32' ||
    !tf.util.arraysEqual(scale.shape, [R]) ||
    scale.dtype !== 'float32' ||
    !tf.util.arraysEqual(targets.shape, [R]) ||
    targets.dtype !== 'int32'
  )
    throw new Error(
      `${WASM_CE_GRAD_KERNEL}: p [${p.shape}], scale [${scale.shape}], targets [${targets.shape}] do not match`,
    );
  const out = backend.makeOutput(p.shape, 'float32');
  if (R * S === 0) return out;
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const row = 4 * S;
  runRows(
    backend,
    'ce_grad',
    [
      [off(p), row],
      [off(scale), 4],
      [off(targets), 4],
      [off(out), row],
    ],
    R,
    [S],
    R * S,
  );
  return out;
}

tf.registerKernel({
  kernelName: WASM_CE_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: crossEntropyGradKernel as unknown as tf.KernelFunc,
});

/**
 * The gradient of a cross-entropy with respect to the logits: scale[r] · (p[r, j] − [j = targets[r]]) for the softmax
 * p [R, S], scale [R] and the target column of each row, targets [R] (int32, each in [0, S)). Check
 * wasmKernelsAvailable() first.
 */
export function wasmCrossEntropyGrad(p: tf.Tensor2D, scale: tf.Tensor1D, targets: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel(WASM_CE_GRAD_KERNEL, { p, scale, targets }) as tf.Tensor2D;
}

function crossEntropySoftmaxKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo[] {
  const backend = args.backend as WasmBackendLike;
  const { z, targets } = args.inputs as { z: tf.TensorInfo; targets: tf.TensorInfo };
  requireKernels(backend, WASM_CE_SOFTMAX_KERNEL);
  const [R, S] = z.shape;
  if (
    z.shape.length !== 2 ||
    !(S > 0) ||
    z.dtype !== 'float32' ||
    !tf.util.arraysEqual(targets.shape, [R]) ||
    targets.dtype !== 'int32'
  )
    throw new Error(`${WASM_CE_SOFTMAX_KERNEL}: z [${z.shape}] (${z.dtype}), targets [${targets.shape}] do not match`);
  const p = backend.makeOutput([R, S], 'float32');
  const stats = backend.makeOutput([R, 4], 'float32');
  if (R === 0) return [p, stats];
  const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  const row = 4 * S;
  runRows(
    backend,
    'ce_softmax',
    [
      [off(z), row],
      [off(targets), 4],
      [off(p), row],
      [off(stats), 16],
    ],
    R,
    [S],
    R * S,
  );
  return [p, stats];
}

tf.registerKernel({
  kernelName: WASM_CE_SOFTMAX_KERNEL,
  backendName: 'wasm',
  kernelFunc: crossEntropySoftmaxKernel as unknown as tf.KernelFunc,
});

/**
 * The cross-entropy's forward pass over the logits z [R, S] (S > 0) in one sweep per row, for targets [R] (int32,
 * each in [0, S)): the softmax p [R, S], and per row [max z, max p, z at the target, 1 if argMax(z) is the target]
 * [R, 4] (lse = max z − log(max p)); no gradient. Check wasmKernelsAvailable() first.
 */
export function wasmCrossEntropySoftmax(z: tf.Tensor2D, targets: tf.Tensor1D): [tf.Tensor2D, tf.Tensor2D] {
  const [p, stats] = tf.engine().runKernel(WASM_CE_SOFTMAX_KERNEL, { z, targets }) as unknown as tf.Tensor2D[];
  return [p, stats];
}

function gatherRowsKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { table, ids } = args.inputs as { table: tf.TensorInfo; ids: tf.TensorInfo };
  const k = requireKernels(backend, WASM_GATHER_ROWS_KERNEL);
  const [rows, D] = table.shape;
  if (table.shape.length !== 2 || table.dtype !== 'float32' || ids.shape.length !== 1 || ids.dtype !== 'int32')
    throw new Error(
      `${WASM_GATHER_ROWS_KERNEL}: table [${table.shape}] (${table.dtype}), ids [${ids.shape}] (${ids.dtype})`,
    );
  const n = ids.shape[0];
  const out = backend.makeOutput([n, D], 'float32');
  if (n * D === 0) return out;
  const idx = backend.getMemoryOffset(ids.dataId);
  const view = new Int32Array(memoryOf(backend)!.buffer, idx, n);
  for (let i = 0; i < n; i++)
    if (!(view[i] >= 0 && view[i] < rows))
      throw new Error(`${WASM_GATHER_ROWS_KERNEL}: id ${view[i]} at ${i} is outside the table's ${rows} rows`);
  k.gather_rows(backend.getMemoryOffset(table.dataId), idx, backend.getMemoryOffset(out.dataId), n, D);
  return out;
}

tf.registerKernel({
  kernelName: WASM_GATHER_ROWS_KERNEL,
  backendName: 'wasm',
  kernelFunc: gatherRowsKernel as unknown as tf.KernelFunc,
});

/**
 * Rows ids of a frozen table [rows, D] (float32), [ids.length, D], as tf.gather along axis 0; no gradient (the
 * embedding and RoPE tables are never trained). Check wasmKernelsAvailable() first.
 */
export function wasmGatherRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel(WASM_GATHER_ROWS_KERNEL, { table, ids }) as tf.Tensor2D;
}

interface RopeHeadsAttrs {
  B: number;
  T: number;
  heads: number;
  headDim: number;
  /** 'none': the transpose alone. */
  layout: 'half' | 'interleaved' | 'none';
  /** false: token rows [B·T, heads·hd] to heads [B, heads, T, hd], rotated; true: back, rotated the other way. */
  inverse: boolean;
}

const ROPE_MODES = { none: 0, half: 1, interleaved: 2 } as const;

function ropeHeadsKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, cos, sin } = args.inputs as { x: tf.TensorInfo; cos?: tf.TensorInfo; sin?: tf.TensorInfo };
  const { B, T, heads, headDim, layout, inverse } = args.attrs as unknown as RopeHeadsAttrs;
  requireKernels(backend, WASM_ROPE_HEADS_KERNEL);
  const n = B * T * heads * headDim;
  const tables = layout !== 'none';
  const tableSize = (B * T * headDim) / 2;
  const fits = (t?: tf.TensorInfo) => !!t && t.dtype === 'float32' && tf.util.sizeFromShape(t.shape) === tableSize;
  if (
    x.dtype !== 'float32' ||
    tf.util.sizeFromShape(x.shape) !== n ||
    (tables && (headDim % 2 !== 0 || !fits(cos) || !fits(sin)))
  )
    throw new Error(
      `${WASM_ROPE_HEADS_KERNEL}: x [${x.shape}], cos [${cos?.shape ?? 'none'}], sin [${sin?.shape ?? 'none'}] do ` +
        `not fit B ${B}, T ${T}, ${heads} heads of ${headDim}${tables ? ` with ${layout} RoPE tables [B·T, hd / 2]` : ''}`,
    );
  const out = backend.makeOutput(inverse ? [B * T, heads * headDim] : [B, heads, T, headDim], 'float32');
  if (n === 0) return out;
  const off = (t?: tf.TensorInfo) => (t ? backend.getMemoryOffset(t.dataId) : 0);
  // every address is worked out from the absolute token row (the pair [0, 1] passes a block's first row)
  const pointers: [number, number][] = [
    [off(x), 0],
    [tables ? off(cos) : 0, 0],
    [tables ? off(sin) : 0, 0],
    [off(out), 0],
    [0, 1],
  ];
  const mode = ROPE_MODES[layout] + (inverse ? 3 : 0);
  runRows(backend, 'rope_heads', pointers, B * T, [heads, headDim, T, mode], n);
  return out;
}

tf.registerKernel({
  kernelName: WASM_ROPE_HEADS_KERNEL,
  backendName: 'wasm',
  kernelFunc: ropeHeadsKernel as unknown as tf.KernelFunc,
});

/**
 * Attention's heads from a projection's token rows, with RoPE: x [B·T, heads·hd] → [B, heads, T, hd], each head's
 * pairs turned by its token's angles (cos, sin [B·T, hd / 2] as gathered at the position ids, any shape of that size;
 * null with layout 'none': the transpose alone). One sweep and one kernel each way where tfjs runs a reshape, a
 * transpose and RoPE's five ops; the gradient is the inverse turn back to token rows. Check wasmKernelsAvailable()
 * first.
 */
export function wasmRopeHeads(
  x: tf.Tensor2D,
  tables: { cos: tf.Tensor; sin: tf.Tensor; layout: 'half' | 'interleaved' } | null,
  B: number,
  T: number,
  heads: number,
  headDim: number,
): tf.Tensor4D {
  const attrs = (inverse: boolean) =>
    ({ B, T, heads, headDim, layout: tables?.layout ?? 'none', inverse }) as unknown as tf.NamedAttrMap;
  const run = (v: tf.Tensor, inverse: boolean, cs: tf.Tensor[]) =>
    tf
      .engine()
      .runKernel(WASM_ROPE_HEADS_KERNEL, cs.length ? { x: v, cos: cs[0], sin: cs[1] } : { x: v }, attrs(inverse));
  const f = customOp<tf.Tensor4D>(([xi], save) => {
    const cs = tables ? [tables.cos, tables.sin] : [];
    // the tables are made in the caller's scope: saved, so they outlive it into the backward pass
    save(cs);
    return {
      value: run(xi, false, cs) as tf.Tensor4D,
      gradFunc: (dy, saved) => run(dy, true, saved) as tf.Tensor2D,
    };
  });
  return f(x);
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
    requireKernels(backend, name);
    const D = x.shape[x.shape.length - 1] ?? 1;
    const ok = [x, w, ...(dy ? [dy] : [])].every((t) => t.dtype === 'float32');
    if (!ok || w.shape.length !== 1 || w.shape[0] !== D || (dy && !tf.util.arraysEqual(dy.shape, x.shape)))
      throw new Error(`${name}: x [${x.shape}], w [${w.shape}]${dy ? `, dy [${dy.shape}]` : ''} do not match`);
    const out = backend.makeOutput(x.shape, 'float32');
    const R = tf.util.sizeFromShape(x.shape) / Math.max(D, 1);
    if (R * D === 0) return out;
    const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    const row = 4 * D;
    if (dy)
      runRows(
        backend,
        'rmsnorm_bwd',
        [
          [off(x), row],
          [off(w), 0],
          [off(dy), row],
          [off(out), row],
        ],
        R,
        [D, eps, plusOne],
        R * D,
      );
    else
      runRows(
        backend,
        'rmsnorm_fwd',
        [
          [off(x), row],
          [off(w), 0],
          [off(out), row],
        ],
        R,
        [D, eps, plusOne],
        R * D,
      );
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

/** Forward (inputs x, w, b) or backward (inputs x, w, dy) of LayerNorm over the last axis. */
function layerNormKernel(grad: boolean) {
  const name = grad ? WASM_LAYERNORM_GRAD_KERNEL : WASM_LAYERNORM_KERNEL;
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown }): tf.TensorInfo => {
    const backend = args.backend as WasmBackendLike;
    const { x, w, b, dy } = args.inputs as {
      x: tf.TensorInfo;
      w: tf.TensorInfo;
      b?: tf.TensorInfo;
      dy?: tf.TensorInfo;
    };
    const { eps } = args.attrs as unknown as { eps: number };
    requireKernels(backend, name);
    const D = x.shape[x.shape.length - 1] ?? 1;
    const third = grad ? dy : b;
    const ok =
      third !== undefined &&
      [x, w, third].every((t) => t.dtype === 'float32') &&
      tf.util.arraysEqual(w.shape, [D]) &&
      tf.util.arraysEqual(third.shape, grad ? x.shape : [D]);
    if (!ok)
      throw new Error(
        `${name}: x [${x.shape}], w [${w.shape}], ${grad ? 'dy' : 'b'} [${third?.shape ?? 'missing'}] do not match`,
      );
    const out = backend.makeOutput(x.shape, 'float32');
    const R = tf.util.sizeFromShape(x.shape) / Math.max(D, 1);
    if (R * D === 0) return out;
    const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    const row = 4 * D;
    // backward: x, w, dy, dx; forward: x, w, b, out (b a vector like w)
    const pointers: [number, number][] = [
      [off(x), row],
      [off(w), 0],
      [off(third), grad ? row : 0],
      [off(out), row],
    ];
    runRows(backend, grad ? 'layernorm_bwd' : 'layernorm_fwd', pointers, R, [D, eps], R * D);
    return out;
  };
}

for (const grad of [false, true])
  tf.registerKernel({
    kernelName: grad ? WASM_LAYERNORM_GRAD_KERNEL : WASM_LAYERNORM_KERNEL,
    backendName: 'wasm',
    kernelFunc: layerNormKernel(grad) as unknown as tf.KernelFunc,
  });

/**
 * torch.nn.LayerNorm over the last axis (biased variance), (x − mean) / sqrt(var + eps) · w + b, for a frozen w and
 * b [D]: one kernel each way, the backward pass giving dx only (from x, the one tensor it saves; mean and variance
 * are recomputed). Check wasmKernelsAvailable() first.
 */
export function wasmLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const attrs = { eps } as unknown as tf.NamedAttrMap;
  const f = customOp<tf.Tensor>(([xi], save) => {
    save([xi]);
    return {
      value: tf.engine().runKernel(WASM_LAYERNORM_KERNEL, { x: xi, w, b }, attrs) as tf.Tensor,
      gradFunc: (dy, [xs]) => tf.engine().runKernel(WASM_LAYERNORM_GRAD_KERNEL, { x: xs, w, dy }, attrs) as tf.Tensor,
    };
  });
  return f(x);
}

/** Forward (input x) or backward (inputs x, dy) of gelu_new, element by element. */
function geluKernel(grad: boolean) {
  const name = grad ? WASM_GELU_GRAD_KERNEL : WASM_GELU_KERNEL;
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo => {
    const backend = args.backend as WasmBackendLike;
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy?: tf.TensorInfo };
    requireKernels(backend, name);
    if (x.dtype !== 'float32' || (grad && (dy?.dtype !== 'float32' || !tf.util.arraysEqual(dy.shape, x.shape))))
      throw new Error(
        `${name}: x [${x.shape}] (${x.dtype})${grad ? `, dy [${dy?.shape ?? 'missing'}]` : ''} do not match`,
      );
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n === 0) return out;
    const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
    if (dy) runElementwise(backend, 'gelu_bwd', [off(x), off(dy), off(out)], n);
    else runElementwise(backend, 'gelu_fwd', [off(x), off(out)], n);
    return out;
  };
}

for (const grad of [false, true])
  tf.registerKernel({
    kernelName: grad ? WASM_GELU_GRAD_KERNEL : WASM_GELU_KERNEL,
    backendName: 'wasm',
    kernelFunc: geluKernel(grad) as unknown as tf.KernelFunc,
  });

/**
 * GPT-2's gelu_new, x · σ(2u) with u = √(2/π)(x + 0.044715 x³), one kernel each way (an f32x4 exp of our own: see
 * $exp4 in wasm-kernels.wat); saves x only. Check wasmKernelsAvailable() first.
 */
export function wasmGeluNew(x: tf.Tensor): tf.Tensor {
  const f = customOp<tf.Tensor>(([xi], save) => {
    save([xi]);
    return {
      value: tf.engine().runKernel(WASM_GELU_KERNEL, { x: xi }) as tf.Tensor,
      gradFunc: (dy, [xs]) => tf.engine().runKernel(WASM_GELU_GRAD_KERNEL, { x: xs, dy }) as tf.Tensor,
    };
  });
  return f(x);
}

/** Forward (inputs g, u: one output) or backward (inputs g, u, dy: outputs dg and du) of silu(g) · u. */
function siluMulKernel(grad: boolean) {
  const name = grad ? WASM_SILU_MUL_GRAD_KERNEL : WASM_SILU_MUL_KERNEL;
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo | tf.TensorInfo[] => {
    const backend = args.backend as WasmBackendLike;
    const { g, u, dy } = args.inputs as { g: tf.TensorInfo; u: tf.TensorInfo; dy?: tf.TensorInfo };
    requireKernels(backend, name);
    const ins = grad ? [g, u, dy] : [g, u];
    if (!ins.every((t) => t !== undefined && t.dtype === 'float32' && tf.util.arraysEqual(t.shape, g.shape)))
      throw new Error(`${name}: ${ins.map((t) => `[${t?.shape ?? 'missing'}] (${t?.dtype})`).join(', ')} do not match`);
    const outs = (grad ? [0, 1] : [0]).map(() => backend.makeOutput(g.shape, 'float32'));
    const n = tf.util.sizeFromShape(g.shape);
    if (n > 0) {
      const off = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
      if (dy) runElementwise(backend, 'silu_mul_bwd', [off(g), off(u), off(dy), ...outs.map(off)], n);
      else runElementwise(backend, 'silu_mul_fwd', [off(g), off(u), off(outs[0])], n);
    }
    return grad ? outs : outs[0];
  };
}

for (const grad of [false, true])
  tf.registerKernel({
    kernelName: grad ? WASM_SILU_MUL_GRAD_KERNEL : WASM_SILU_MUL_KERNEL,
    backendName: 'wasm',
    kernelFunc: siluMulKernel(grad) as unknown as tf.KernelFunc,
  });

/**
 * SwiGLU's silu(g) · u = g · σ(g) · u for float32 g and u of one shape: one kernel forward, one backward that writes
 * both dg = dy · u · σ(g) · (1 + g · (1 − σ(g))) and du = dy · g · σ(g) (on the exp of wasm-kernels.wat); saves g
 * and u only. Check wasmKernelsAvailable() first.
 */
export function wasmSiluMul(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  const f = customOp<tf.Tensor>(([gi, ui], save) => {
    save([gi, ui]);
    return {
      value: tf.engine().runKernel(WASM_SILU_MUL_KERNEL, { g: gi, u: ui }) as tf.Tensor,
      gradFunc: (dy, [gs, us]) =>
        tf.engine().runKernel(WASM_SILU_MUL_GRAD_KERNEL, { g: gs, u: us, dy }) as unknown as tf.Tensor[],
    };
  });
  return f(g, u);
}

export const WASM_ADAMW_KERNEL = 'WebtuneAdamW';

/**
 * AdamW's step over the flat vectors p, m, v with the flat gradient g in one kernel (wasm-kernels.wat's adamw): outputs
 * [p', m', v', applied]. A closed gate (a bool scalar: false) leaves all three as they were. With checkWeights, an
 * update that would leave a weight non-finite or above ~1.8e19 (Σ p'² not finite) is refused the same way, and
 * `applied` says whether p' passed that check (p' = p where the gate is closed); without, it is true. The same
 * results as the optimizer's plain ops.
 */
function adamwKernel(args: {
  inputs: { p: tf.TensorInfo; m: tf.TensorInfo; v: tf.TensorInfo; g: tf.TensorInfo; gate: tf.TensorInfo };
  backend: WasmBackendLike;
  attrs: AdamWScalars & { checkWeights: boolean };
}): tf.TensorInfo[] {
  const { inputs, backend, attrs: s } = args;
  const k = requireKernels(backend, WASM_ADAMW_KERNEL);
  const { p, m, v, g, gate } = inputs;
  const n = p.shape.reduce((a, b) => a * b, 1);
  for (const [name, t] of Object.entries({ p, m, v, g }))
    if (t.dtype !== 'float32' || t.shape.length !== 1 || t.shape[0] !== n)
      throw new Error(`${WASM_ADAMW_KERNEL}: ${name} is [${t.shape}] (${t.dtype}), expected [${n}] (float32)`);
  if (gate.dtype !== 'bool' || gate.shape.length !== 0)
    throw new Error(`${WASM_ADAMW_KERNEL}: gate is [${gate.shape}] (${gate.dtype}), expected a bool scalar`);
  const outs = [p, m, v].map(() => backend.makeOutput([n], 'float32'));
  const applied = backend.makeOutput([], 'bool');
  const at = (t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId);
  // (views after every allocation: growing the memory detaches its old buffer)
  const heap = memoryOf(backend)!.buffer;
  const open = new Uint8Array(heap, at(gate), 1)[0] !== 0;
  let ok = true;
  if (open && n > 0) {
    const sq = k.adamw(
      ...([p, m, v, g, ...outs].map(at) as [number, number, number, number, number, number, number]),
      n,
      s.lerpW,
      s.lerpSmall ? 1 : 0,
      s.b2,
      s.c2,
      s.eps,
      s.decay,
      s.negStep,
      s.bc2sqrt,
    );
    ok = !s.checkWeights || Number.isFinite(sq);
  } else if (s.checkWeights) {
    // (the plain ops check the unchanged weights too)
    let sq = 0;
    for (const x of new Float32Array(heap, at(p), n)) sq += x * x;
    ok = Number.isFinite(Math.fround(sq));
  }
  if (!open || !ok || n === 0) {
    const f = new Float32Array(heap);
    [p, m, v].forEach((t, i) => f.copyWithin(at(outs[i]) / 4, at(t) / 4, at(t) / 4 + n));
  }
  new Uint8Array(heap, at(applied), 1)[0] = ok ? 1 : 0;
  return [...outs, applied];
}

tf.registerKernel({
  kernelName: WASM_ADAMW_KERNEL,
  backendName: 'wasm',
  kernelFunc: adamwKernel as unknown as tf.KernelFunc,
});

/**
 * One AdamW step of the optimizer's flat vectors (see adamwKernel): the new p, m, v and whether the update was applied
 * (a bool scalar). Not differentiable. Check wasmKernelsAvailable() first.
 */
export function wasmAdamW(
  p: tf.Tensor1D,
  m: tf.Tensor1D,
  v: tf.Tensor1D,
  g: tf.Tensor1D,
  gate: tf.Scalar,
  scalars: AdamWScalars,
  checkWeights: boolean,
): { p: tf.Tensor1D; m: tf.Tensor1D; v: tf.Tensor1D; applied: tf.Scalar } {
  const [np, nm, nv, applied] = tf.engine().runKernel(WASM_ADAMW_KERNEL, { p, m, v, g, gate }, {
    ...scalars,
    checkWeights,
  } as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Scalar];
  return { p: np, m: nm, v: nv, applied };
}
