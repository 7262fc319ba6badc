import path from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import {
  CONTENT_SECURITY_POLICY,
  ISOLATION_HEADERS,
  contentSecurityPolicy,
  hubMirror,
  tfjsWasm,
  tfjsWasmThreadedGlue,
} from './tools/vite-plugins.ts';

const root = path.dirname(fileURLToPath(import.meta.url));
/** Local models, served under the Hub URL layout at /hub/ (override with WEBTUNE_MODELS_DIR). */
const modelsDir = path.resolve(root, process.env.WEBTUNE_MODELS_DIR ?? '../shared/models');

export default defineConfig({
  plugins: [react(), tfjsWasm(), tfjsWasmThreadedGlue(), hubMirror(modelsDir), contentSecurityPolicy()],
  // config.plugins apply to workers only in dev; the engine worker's build needs the glue fix too
  worker: { format: 'es', plugins: () => [tfjsWasmThreadedGlue()] },
  // The engine worker imports the tfjs backends lazily; pre-bundle them so the dev server never discovers
  // them mid-session (a re-optimisation would fail the worker's in-flight dynamic imports).
  optimizeDeps: {
    include: [
      '@tensorflow/tfjs',
      '@tensorflow/tfjs-core',
      '@tensorflow/tfjs-backend-cpu',
      '@tensorflow/tfjs-backend-wasm',
      '@tensorflow/tfjs-backend-webgl',
      '@tensorflow/tfjs-backend-webgpu',
      '@huggingface/tokenizers',
      '@huggingface/jinja',
      'comlink',
      'uplot',
    ],
    rolldownOptions: { plugins: [tfjsWasmThreadedGlue()] },
  },
  server: { headers: { ...ISOLATION_HEADERS } },
  preview: { headers: { ...ISOLATION_HEADERS, 'Content-Security-Policy': CONTENT_SECURITY_POLICY } },
  build: { target: 'es2022' },
});
