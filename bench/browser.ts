/**
 * `npm run bench:browser`: the workloads of `npm run bench` (src/train/benchmark.ts) in headless Chromium, through the
 * real engine worker of the production build, on wasm — once per thread count (BENCH_THREADS, default "1,N" with N
 * = navigator.hardwareConcurrency) — as JSON lines with the same fields plus backend, threads and the same
 * backend's 1024³ matMul GFLOP/s measured in the same page. Models as arguments (stories260K smollm2 gpt2; default
 * all); BENCH_STEPS steps (default 5). BENCH_GPU=1 adds webgl and webgpu lines on stories260K (SwiftShader: slow),
 * with per training step the GPU programs dispatched, the reads back to the CPU and their bytes, the most dispatched
 * programs, and the programs per transformer layer (src/engine/gpu-counters.ts; see benchModel, gpuProgramsPerLayer);
 * BENCH_GPU_BACKENDS=webgpu (or webgl) runs only that one, BENCH_GPU_FAMILIES the other families' layer shapes.
 * BENCH_PROFILE=1 adds `kernel_ms` to the wasm lines: the step's kernels by time (src/engine/kernel-times.ts).
 */
import type { BackendName } from '../src/engine/backend';
import type { BackendOptions } from '../src/worker/api';
import { CHROMIUM_MISSING, HAVE_CHROMIUM, launchBrowser, startApp } from '../test/browser/harness';
import type { BenchLine, WorkloadName, WorkloadRequest } from '../src/train/benchmark';

const ALL: WorkloadName[] = ['stories260K', 'smollm2', 'gpt2'];
const args = process.argv.slice(2) as WorkloadName[];
const models = args.length ? args.filter((a) => ALL.includes(a)) : ALL;
const steps = Number(process.env.BENCH_STEPS ?? 5);
const emit = (o: object) => console.log(JSON.stringify(o));

async function main() {
  if (!HAVE_CHROMIUM) throw new Error(CHROMIUM_MISSING);
  const app = await startApp('preview');
  const session = await launchBrowser();
  try {
    const { page } = session;
    // a bench step may outlast the watchdog's default minute of silence
    await page.goto(`${app.url}?watchdog=600000`);
    await page.getByTestId('backend-info').waitFor({ timeout: 120_000 });
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const threadCounts = (process.env.BENCH_THREADS ?? `1,${cores}`).split(',').map(Number);
    const storiesUrl = `${app.url}hub/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin`;
    const run = (backend: BackendName, opts: BackendOptions, req: WorkloadRequest) =>
      page.evaluate(
        async ({ backend, opts, req }) => {
          const engine = window.webtune.engine();
          const status = await engine.setBackend(backend, opts);
          return { status, lines: await engine.bench(req) };
        },
        { backend, opts, req },
      );
    const report = (status: Awaited<ReturnType<typeof run>>['status'], lines: BenchLine[]) => {
      const matmulGflops = lines[0].gflops;
      for (const line of lines)
        emit({
          ...line,
          backend: status.backend,
          threads: status.wasmThreads ?? null,
          ...(status.wasmThreadsNote ? { threads_note: status.wasmThreadsNote } : {}),
          matmul_gflops_same_page: matmulGflops,
          user_agent_cores: cores,
        });
    };
    for (const threads of [...new Set(threadCounts)]) {
      const profile = process.env.BENCH_PROFILE === '1';
      const { status, lines } = await run('wasm', { threads }, { models, steps, storiesUrl, profile });
      report(status, lines);
    }
    if (process.env.BENCH_GPU === '1')
      for (const backend of (process.env.BENCH_GPU_BACKENDS ?? 'webgl,webgpu').split(',') as ('webgl' | 'webgpu')[]) {
        const families = (process.env.BENCH_GPU_FAMILIES ?? 'smollm2,gpt2').split(',').filter(Boolean);
        const layerCounts = backend === 'webgpu' ? (families as WorkloadRequest['layerCounts']) : [];
        const { status, lines } = await run(
          backend,
          {},
          { models: ['stories260K'], steps: 2, storiesUrl, layerCounts },
        );
        report(status, lines);
      }
  } finally {
    await session.close();
    await app.close();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
