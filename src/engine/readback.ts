/**
 * Reading tensors back to the CPU: asynchronous (.data(), never dataSync), so WebGL/WebGPU do not block, and always a
 * copy (the arrays outlive the tensors, e.g. across a backend switch or in a checkpoint). Like torch's
 * `tensor.detach().cpu()` followed by `.numpy().copy()`.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { RawTensor, RawTensors } from './config';

/** A copy of a tensor's values as float32. */
export async function readTensor(t: tf.Tensor): Promise<Float32Array> {
  return Float32Array.from((await t.data()) as Float32Array);
}

/** A tensor's shape and a copy of its values. */
export async function readRawTensor(t: tf.Tensor): Promise<RawTensor> {
  return { shape: [...t.shape], data: await readTensor(t) };
}

/** Named tensors as RawTensors (read one after another, in order). */
export async function readRawTensors(tensors: Iterable<readonly [string, tf.Tensor]>): Promise<RawTensors> {
  const out: RawTensors = new Map();
  for (const [name, t] of tensors) out.set(name, await readRawTensor(t));
  return out;
}
