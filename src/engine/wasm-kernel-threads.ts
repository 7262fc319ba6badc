/**
 * Helper threads for the wasm kernels' large products (gemm_block and matmul in wasm-kernels.wat) and their row
 * kernels over many rows (softmax_grad, the norms, gelu, silu · u, the cross-entropy's; ROW_KERNELS).
 *
 * tfjs-backend-wasm's threaded build keeps its tensors in one shared WebAssembly.Memory. Each helper is a plain
 * worker that instantiates our kernel module against that same memory; a product is split into blocks of columns
 * (gemm_block) or of items (a batched matmul) and every thread, the caller included, claims whole blocks until none are left, so a helper that has not started
 * yet (workers start asynchronously) or is slow to wake only means the others take more blocks. The caller blocks
 * until every block is written (Atomics.wait where the context allows it, else it spins), so to tfjs the kernel is
 * as synchronous as its own.
 *
 * Coordination, all in a SharedArrayBuffer of our own:
 * - `seq` is a seqlock over the job's parameters: odd while the caller writes them, even when they are whole. A
 *   helper reads them between two equal even loads of `seq`.
 * - Blocks are claimed from a 64-bit counter that only grows (`next`, within [base, end) of the current job), by
 *   compare-exchange against the job's own end: a helper that read an older job and wakes late finds the counter at
 *   or past that end and claims nothing, so it can never run a new job's block with old parameters.
 * - `done` counts finished blocks; the thread that finishes the last one wakes the caller. A helper that fails sets
 *   `failed` and still counts its block, so the caller wakes and throws instead of hanging.
 */

/** Int32 slots of the control buffer. */
const SEQ = 0;
const DONE = 1;
const FAILED = 2;
const PARAMS = 4;
/**
 * A job's parameters: its kind, then
 * - GEMM: gemm_block's a, b, c, M, K, P, aRow, aCol, bRow, bCol, then the scratch base, its stride per thread
 *   (bytes), the block width (columns), acc (1: c += a · b) and the rows per chunk (0: all; blocks run column
 *   blocks within a chunk of rows, then the next chunk);
 * - BATCHED: matmul's a, b, c, M, K, P, aBatch, aRow, aCol, bBatch, then the items per block, the items N, 0, and
 *   matmul's causal mode, T and past;
 * - ROWS: a row kernel's index in ROW_KERNELS, the rows (or elements) in all, the rows per block, the number of
 *   pointers, up to ROW_POINTERS pairs (pointer, bytes per row: 0 for a vector every row reads; the pair [0, 1]
 *   passes the block's first row), then up to ROW_EXTRAS arguments after the row count, stored as float32 (slots
 *   FLOAT_FROM on; integers up to 2^24 are exact).
 * Unused slots are 0.
 */
const N_PARAMS = 19;
export const GEMM = 0;
export const BATCHED = 1;
export const ROWS = 2;
export const ROW_POINTERS = 5;
export const ROW_EXTRAS = 4;
const FLOAT_FROM = N_PARAMS - ROW_EXTRAS;
/**
 * The kernels of wasm-kernels.wat whose rows are independent: each takes its pointers, then the row (or element)
 * count, then its other arguments, so a block of rows is the same call on offset pointers and a smaller count.
 */
export const ROW_KERNELS = [
  'attn_softmax',
  'softmax_grad',
  'ce_grad',
  'ce_softmax',
  'rmsnorm_fwd',
  'rmsnorm_bwd',
  'layernorm_fwd',
  'layernorm_bwd',
  'gelu_fwd',
  'gelu_bwd',
  'silu_mul_fwd',
  'silu_mul_bwd',
  'rope_heads',
] as const;
export type RowKernel = (typeof ROW_KERNELS)[number];
/** BigInt64 slots of the counter buffer. */
const NEXT = 0;
const BASE = 1;
const END = 2;

const START_TIMEOUT_MS = 10_000;

/** The kernels' exports a block runs on. */
type BlockKernels = Record<'gemm_block' | 'matmul' | RowKernel, (...args: number[]) => void>;

/**
 * The parameters of a ROWS job: kernel `name` over `count` rows in blocks of `perBlock`, on `pointers` ([pointer,
 * bytes per row]) and `extras` (the arguments after the count).
 */
export function rowParams(
  name: RowKernel,
  pointers: [number, number][],
  count: number,
  perBlock: number,
  extras: number[],
): number[] {
  if (pointers.length > ROW_POINTERS || extras.length > ROW_EXTRAS) throw new Error(`${name}: too many arguments`);
  const p = new Array<number>(N_PARAMS).fill(0);
  p[0] = ROWS;
  p[1] = ROW_KERNELS.indexOf(name);
  p[2] = count;
  p[3] = perBlock;
  p[4] = pointers.length;
  pointers.forEach(([at, stride], i) => {
    p[5 + 2 * i] = at;
    p[6 + 2 * i] = stride;
  });
  extras.forEach((x, i) => (p[FLOAT_FROM + i] = x));
  return p;
}

/** One block of a job on this thread (slot: its scratch); the helpers run the same code (RUN_BLOCK). */
export function runBlock(k: BlockKernels, p: ArrayLike<number>, block: number, slot: number): void {
  if (p[0] === ROWS) {
    const n0 = block * p[3];
    const args: number[] = [];
    for (let i = 0; i < p[4]; i++) args.push(p[5 + 2 * i] + n0 * p[6 + 2 * i]);
    args.push(Math.min(p[3], p[2] - n0));
    for (let i = FLOAT_FROM; i < N_PARAMS; i++) args.push(p[i]);
    k[ROW_KERNELS[p[1]]](...args);
  } else if (p[0] === GEMM) {
    // blocks of p[13] columns, in chunks of p[15] rows (0: all rows)
    const cols = Math.ceil(p[6] / p[13]);
    const rows = p[15] || p[4];
    const j0 = (block % cols) * p[13];
    const i0 = Math.floor(block / cols) * rows;
    k.gemm_block(
      p[1] + 4 * i0 * p[7],
      p[2],
      p[3] + 4 * i0 * p[6],
      Math.min(rows, p[4] - i0),
      p[5],
      p[6],
      p[7],
      p[8],
      p[9],
      p[10],
      p[11] + slot * p[12],
      j0,
      Math.min(p[13], p[6] - j0),
      p[14],
    );
  } else {
    const n0 = block * p[11];
    const n = Math.min(p[11], p[12] - n0);
    k.matmul(
      p[1] + 4 * n0 * p[7],
      p[2] + 4 * n0 * p[10],
      p[3] + 4 * n0 * p[4] * p[6],
      n,
      p[4],
      p[5],
      p[6],
      p[7],
      p[8],
      p[9],
      p[10],
      p[14],
      p[15],
      p[16],
    );
  }
}

/** runBlock for the helpers' source (a CSP without 'unsafe-eval' rules out building it from runBlock.toString()). */
const RUN_BLOCK = `const ROW_KERNELS = ${JSON.stringify(ROW_KERNELS)};
function runBlock(k, p, block, slot) {
  if (p[0] === ${ROWS}) {
    const n0 = block * p[3];
    const args = [];
    for (let i = 0; i < p[4]; i++) args.push(p[5 + 2 * i] + n0 * p[6 + 2 * i]);
    args.push(Math.min(p[3], p[2] - n0));
    for (let i = ${FLOAT_FROM}; i < ${N_PARAMS}; i++) args.push(p[i]);
    k[ROW_KERNELS[p[1]]](...args);
  } else if (p[0] === ${GEMM}) {
    const cols = Math.ceil(p[6] / p[13]);
    const rows = p[15] || p[4];
    const j0 = (block % cols) * p[13];
    const i0 = Math.floor(block / cols) * rows;
    k.gemm_block(p[1] + 4 * i0 * p[7], p[2], p[3] + 4 * i0 * p[6], Math.min(rows, p[4] - i0), p[5], p[6], p[7], p[8], p[9], p[10], p[11] + slot * p[12], j0, Math.min(p[13], p[6] - j0), p[14]);
  } else {
    const n0 = block * p[11];
    const n = Math.min(p[11], p[12] - n0);
    k.matmul(p[1] + 4 * n0 * p[7], p[2] + 4 * n0 * p[10], p[3] + 4 * n0 * p[4] * p[6], n, p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[14], p[15], p[16]);
  }
}`;

/** The helper's source (a classic worker from a blob: URL). */
const HELPER_SOURCE = `
${RUN_BLOCK}
onmessage = (e) => {
  const { module, memory, control, counter, slot, lateMs } = e.data;
  const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const ctl = new Int32Array(control);
  const next = new BigInt64Array(counter);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let seen = Atomics.load(ctl, ${SEQ});
  postMessage('ready');
  for (;;) {
    Atomics.wait(ctl, ${SEQ}, seen);
    const s1 = Atomics.load(ctl, ${SEQ});
    seen = s1;
    if (s1 & 1) continue;
    const raw = ctl.slice(${PARAMS}, ${PARAMS + N_PARAMS});
    const p = Array.from(raw);
    const floats = new Float32Array(raw.buffer);
    for (let i = ${FLOAT_FROM}; i < ${N_PARAMS}; i++) p[i] = floats[i];
    const base = Atomics.load(next, ${BASE});
    const end = Atomics.load(next, ${END});
    if (Atomics.load(ctl, ${SEQ}) !== s1) continue;
    if (lateMs) Atomics.wait(nap, 0, 0, lateMs);
    for (;;) {
      const v = Atomics.load(next, ${NEXT});
      if (v >= end) break;
      if (Atomics.compareExchange(next, ${NEXT}, v, v + 1n) !== v) continue;
      try {
        runBlock(k, p, Number(v - base), slot);
      } catch (err) {
        Atomics.store(ctl, ${FAILED}, 1);
      }
      if (Atomics.add(ctl, ${DONE}, 1) + 1 === Number(end - base)) Atomics.notify(ctl, ${DONE});
    }
  }
};
`;

/** Whether this context may block in Atomics.wait (workers and Node may; a page's main thread may not). */
function mayWait(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

export class KernelThreads {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(32 * 4));
  /** The same slots as float32: a ROWS job's extras. */
  private readonly ctlFloats = new Float32Array(this.ctl.buffer);
  private readonly next = new BigInt64Array(new SharedArrayBuffer(4 * 8));
  private readonly workers: Worker[] = [];
  private readonly canWait = mayWait();
  private readonly url: string;
  /** Helpers that have started (instantiated the module against the memory), and that failed to. */
  ready = 0;
  private failed = 0;
  /**
   * Settles once every helper has started or failed, or after START_TIMEOUT_MS. A worker starts only while its
   * creator's event loop runs, so the engine awaits this when the wasm backend starts rather than creating helpers
   * in the middle of a step (a training step never yields to the event loop).
   */
  readonly started: Promise<void>;
  /** Why a helper did not start, if one did not (the caller then runs its blocks). */
  failure: string | undefined;
  /** Blocks the caller ran, and blocks in all (for tests and the status line). */
  callerBlocks = 0;
  totalBlocks = 0;

  /**
   * Starts `helpers` workers on `memory` (shared); each runs `module` (the kernels, built for a shared memory); `k`
   * is the caller's own instance.
   */
  constructor(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    readonly helpers: number,
    private readonly k: BlockKernels,
    /** Tests only: helpers sleep this long between reading a job and claiming its blocks (a late wake-up). */
    lateMs = 0,
  ) {
    this.url = URL.createObjectURL(new Blob([HELPER_SOURCE], { type: 'text/javascript' }));
    let settle = () => {};
    this.started = new Promise<void>((resolve) => (settle = resolve));
    const timer = setTimeout(() => {
      this.failure ??= `${helpers - this.ready} of ${helpers} helper threads did not start within ${START_TIMEOUT_MS / 1000} s`;
      settle();
    }, START_TIMEOUT_MS);
    const check = () => {
      if (this.ready + this.failed < helpers) return;
      clearTimeout(timer);
      settle();
    };
    for (let i = 0; i < helpers; i++) {
      const w = new Worker(this.url);
      w.onmessage = () => {
        this.ready++;
        check();
      };
      w.onerror = (e) => {
        e.preventDefault();
        this.failure ??= `a helper thread failed: ${e.message || 'no message'}`;
        this.failed++;
        check();
      };
      w.postMessage({ module, memory, control: this.ctl.buffer, counter: this.next.buffer, slot: i + 1, lateMs });
      this.workers.push(w);
    }
  }

  /** Threads that may take blocks: the caller and its helpers. */
  get threads(): number {
    return this.helpers + 1;
  }

  /**
   * Runs blocks 0 … blocks − 1 of one job (params: see N_PARAMS) on every thread and returns when all are written.
   * The caller uses scratch slot 0, helper i slot i.
   */
  run(params: number[], blocks: number): void {
    const { ctl, next } = this;
    if (params.length > N_PARAMS) throw new Error(`KernelThreads.run: at most ${N_PARAMS} parameters`);
    if (params.length < N_PARAMS) params = [...params, ...new Array<number>(N_PARAMS - params.length).fill(0)];
    Atomics.add(ctl, SEQ, 1);
    ctl.set(params, PARAMS);
    for (let i = FLOAT_FROM; i < N_PARAMS; i++) this.ctlFloats[PARAMS + i] = params[i];
    const base = Atomics.load(next, END);
    Atomics.store(next, BASE, base);
    Atomics.store(next, END, base + BigInt(blocks));
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, FAILED, 0);
    Atomics.add(ctl, SEQ, 1);
    Atomics.notify(ctl, SEQ);
    const end = base + BigInt(blocks);
    for (;;) {
      const v = Atomics.load(next, NEXT);
      if (v >= end) break;
      if (Atomics.compareExchange(next, NEXT, v, v + 1n) !== v) continue;
      runBlock(this.k, params, Number(v - base), 0);
      this.callerBlocks++;
      if (Atomics.add(ctl, DONE, 1) + 1 === blocks) break;
    }
    for (let d = Atomics.load(ctl, DONE); d < blocks; d = Atomics.load(ctl, DONE))
      if (this.canWait) Atomics.wait(ctl, DONE, d);
    this.totalBlocks += blocks;
    if (Atomics.load(ctl, FAILED)) throw new Error('wasm gemm: a helper thread failed to run its block');
  }

  dispose(): void {
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
    URL.revokeObjectURL(this.url);
  }
}
