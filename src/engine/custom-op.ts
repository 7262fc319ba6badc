/** tf.customGrad with types: the engine's ops with hand-written gradients (ops.ts, loss.ts, webgpu-kernels.ts). */
import * as tf from '@tensorflow/tfjs-core';

/** A differentiable op with a hand-written gradient (typed wrapper over tf.customGrad). */
export function customOp<T extends tf.Tensor>(
  f: (
    inputs: tf.Tensor[],
    save: tf.GradSaveFunc,
  ) => { value: T; gradFunc: (dy: T, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] },
): (...inputs: tf.Tensor[]) => T {
  const g = (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const { value, gradFunc } = f(args as tf.Tensor[], save);
    // tfjs runs a custom gradient outside any scope of its own: without this its temporaries would live until the
    // whole backward pass ends
    return { value, gradFunc: (dy: T, saved: tf.Tensor[]) => tf.tidy(() => gradFunc(dy, saved)) };
  };
  return tf.customGrad(g as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...inputs: tf.Tensor[]) => T;
}
