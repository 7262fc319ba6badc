/**
 * Finding the PEFT adapter in what TRL and Axolotl write: transformers' Trainer saves `output_dir/checkpoint-N/`
 * folders (adapter_config.json + adapter_model.safetensors beside optimizer.pt, scheduler.pt, trainer_state.json,
 * rng_state.pth, tokenizer files, …) and `trainer.save_model(output_dir)` puts the final adapter at the root. Given
 * the files of a folder (paths relative to it, e.g. from a folder picker or a directory listing), this picks the
 * adapter: the final one at the top when there is one, else the latest checkpoint (transformers'
 * get_last_checkpoint: the highest N). An adapter saved as a PyTorch pickle (adapter_model.bin,
 * safe_serialization=False) is refused with how to re-save it.
 *
 * Browser-safe: no node: imports.
 */
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './peft';

export interface NamedFile {
  /** Path relative to the chosen folder ("adapter_config.json", "out/checkpoint-500/adapter_config.json"). */
  name: string;
  bytes: Uint8Array;
}

export interface ChosenAdapterFiles {
  config: NamedFile;
  weights: NamedFile;
  /** The folder the adapter was taken from ("" for the top). */
  folder: string;
  /** What the choice was, when there were several (for the user). */
  notes: string[];
}

const PICKLE_FILE = 'adapter_model.bin';
const CHECKPOINT = /(^|\/)checkpoint-(\d+)$/;

const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const baseOf = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** The pickle refusal, naming the file. */
export function pickleMessage(file: string): string {
  return (
    `${file} is a PyTorch pickle, which webtune does not read (it can run code): save the adapter with ` +
    'safetensors — model.save_pretrained(dir, safe_serialization=True), the default of PEFT ≥ 0.6 — or convert it ' +
    `(torch.load then safetensors.torch.save_file) to ${ADAPTER_WEIGHTS_FILE}`
  );
}

/** Of the folders holding an adapter_config.json, the one to import: the shallowest non-checkpoint, else the last checkpoint. */
export function pickAdapterFolder(folders: string[]): { folder: string; notes: string[] } | null {
  if (folders.length === 0) return null;
  const depth = (f: string) => (f === '' ? 0 : f.split('/').length);
  const finals = folders.filter((f) => !CHECKPOINT.test(f)).sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
  const checkpoints = folders
    .filter((f) => CHECKPOINT.test(f))
    .map((f) => ({ f, n: Number(CHECKPOINT.exec(f)![2]) }))
    .sort((a, b) => b.n - a.n);
  const notes: string[] = [];
  if (finals.length > 0) {
    if (checkpoints.length > 0)
      notes.push(
        `took the final adapter${finals[0] ? ` in ${finals[0]}/` : ''} rather than the ${checkpoints.length} checkpoint folder(s) (choose a checkpoint-N folder to import one of those)`,
      );
    return { folder: finals[0], notes };
  }
  if (checkpoints.length > 1)
    notes.push(
      `took the latest checkpoint, ${baseOf(checkpoints[0].f)}, of ${checkpoints.length} (${checkpoints.map((c) => baseOf(c.f)).join(', ')})`,
    );
  return { folder: checkpoints[0].f, notes };
}

/** Pick the adapter's two files from a folder's files. Throws a message naming what is missing. */
export function chooseAdapterFiles(files: NamedFile[]): ChosenAdapterFiles {
  const norm = files.map((f) => ({ ...f, name: f.name.replace(/\\/g, '/').replace(/^\.?\//, '') }));
  const byPath = new Map(norm.map((f) => [f.name, f] as const));
  const configs = norm.filter((f) => baseOf(f.name) === ADAPTER_CONFIG_FILE).map((f) => dirOf(f.name));
  const picked = pickAdapterFolder(configs);
  if (!picked) {
    // Two files chosen by hand under other names: one .json and one .safetensors.
    const json = norm.filter((f) => f.name.endsWith('.json'));
    const st = norm.filter((f) => f.name.endsWith('.safetensors'));
    if (json.length === 1 && st.length === 1) return { config: json[0], weights: st[0], folder: '', notes: [] };
    const pickle = norm.find((f) => baseOf(f.name) === PICKLE_FILE);
    if (pickle) throw new Error(pickleMessage(pickle.name));
    throw new Error(
      `no ${ADAPTER_CONFIG_FILE} among ${norm.length} file(s) (${norm
        .slice(0, 4)
        .map((f) => f.name)
        .join(
          ', ',
        )}${norm.length > 4 ? ', …' : ''}): choose a PEFT adapter folder (TRL / Axolotl output_dir or a checkpoint-N folder)`,
    );
  }
  const at = (name: string) => byPath.get(picked.folder ? `${picked.folder}/${name}` : name);
  const config = at(ADAPTER_CONFIG_FILE)!;
  const weights = at(ADAPTER_WEIGHTS_FILE);
  if (!weights) {
    const pickle = at(PICKLE_FILE);
    if (pickle) throw new Error(pickleMessage(pickle.name));
    throw new Error(`${config.name} has no ${ADAPTER_WEIGHTS_FILE} beside it`);
  }
  return { config, weights, folder: picked.folder, notes: picked.notes };
}
