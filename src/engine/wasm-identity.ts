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

let copying: tf.KernelConfig | undefined;

/**
 * Use the sharing Identity on wasm (on) or tfjs-wasm's own copying one (off); idempotent. Sharing saves the memory
 * of every saved activation, but on a small model it made a training step slower (stories260K, Node wasm:
 * 338 → 231 ms/step with copies, every kernel slower with shared buffers), so the engine shares only for models
 * whose activations matter for the heap (see CausalLM).
 */
export function setWasmIdentitySharing(on: boolean): void {
  const kernel = tf.getKernel(tf.Identity, 'wasm');
  const sharing = kernel?.kernelFunc === (sharedIdentity as unknown as tf.KernelFunc);
  if (on === sharing) return;
  if (kernel) tf.unregisterKernel(tf.Identity, 'wasm');
  if (on) {
    copying ??= kernel;
    tf.registerKernel({
      kernelName: tf.Identity,
      backendName: 'wasm',
      kernelFunc: sharedIdentity as unknown as tf.KernelFunc,
    });
  } else if (copying) {
    tf.registerKernel(copying);
  }
}

/** Float32 weight bytes from which a model's saved activations share their buffers on wasm. */
export const SHARE_IDENTITY_ABOVE_BYTES = 64 * 2 ** 20;
