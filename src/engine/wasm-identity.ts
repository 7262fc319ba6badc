/**
 * Identity (tf.clone) on wasm without a copy.
 *
 * tfjs-backend-wasm 4.22's Identity kernel copies its input into a new buffer, and the engine clones every tensor it
 * saves for the backward pass (engine.saveTensorsForBackwardMode). So on wasm each saved activation is a full copy,
 * one per op that saves it: in a SmolLM2-135M step the logits [512, 49152] were held four times (the loss, a reshape,
 * argMax, and the forward's own), the 113 MB embedding once more for its gather. The cpu backend's Identity shares
 * the buffer and counts a reference instead; tensors are immutable in tfjs (Variable.assign swaps its buffer, no
 * kernel writes into an input), so sharing is safe. This registers that kernel for wasm.
 */
import * as tf from '@tensorflow/tfjs-core';

interface RefCounting {
  incRef(dataId: tf.DataId): void;
}

function sharedIdentity({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const x = inputs.x as tf.TensorInfo;
  (backend as RefCounting).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let installed = false;

/**
 * Use the sharing Identity on wasm (idempotent; called when the wasm backend is set up). It saves the memory of every
 * saved activation, and time too: on stories260K (Node wasm, 1 thread, 664 kernels a step) a step took 42-49 ms
 * with shared buffers against 48-50 ms with copies, in alternating runs (an older engine, with a copy per saved
 * tensor in many more ops, had measured the opposite).
 */
export function installWasmIdentity(): void {
  if (installed || !tf.getKernel(tf.Identity, 'wasm')) return;
  installed = true;
  tf.unregisterKernel(tf.Identity, 'wasm');
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: 'wasm',
    kernelFunc: sharedIdentity as unknown as tf.KernelFunc,
  });
}
