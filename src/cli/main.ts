/**
 * The `webtune` command line (Node): score, generate, data, train, export-run.
 *
 * stdout carries only the command's result (JSON or generated text); progress, notes and errors go to
 * stderr. Exit codes: 0 ok, 1 a failure while running (bad model or data file, training diverged, …),
 * 2 a usage error (unknown option, bad value).
 */
import { stringifyFinite } from '../util/finite';
import { readFile } from 'node:fs/promises';
import { readLocalFile } from '../io/node-source';
import { parseArgs } from 'node:util';
import {
  ADAPTER_OPT,
  BACKEND_OPT,
  COMMON,
  CliError,
  attachAdapterArg,
  dataProgress,
  DATA_OPTS,
  MODEL_OPTS,
  UsageError,
  frozenDtypeArg,
  loadProgress,
  num,
  openModel,
  parseOptionsArg,
  readDataFiles,
  resolveSpec,
  splitSize,
  startBackend,
  str,
  templateArg,
  type Command,
  type Io,
  type Values,
} from './common';
import { train } from './train';
import { exportRun } from './export-run';
import { MIN_TEMPERATURE } from '../engine/sampling';

export { CliError, UsageError } from './common';

// ---------------------------------------------------------------------------------------------------------
// score

const score: Command = {
  name: 'score',
  summary: 'mean next-token negative log-likelihood (and perplexity) of a text',
  usage: `Usage: webtune score --model <folder|file.bin|url> (--text "<text>" | --file <path>) [options]

Prints one JSON object: {"model", "tokens" (ids, BOS included when the tokenizer adds it), "n_tokens",
"n_predicted", "mean_nll" (mean next-token cross-entropy in nats), "perplexity", "backend"}.

Options:
  -m, --model <m>        Hugging Face folder, llama2.c .bin file, or Hub URL {base}/{repo}/resolve/{rev}[/{path}]
      --tokenizer <f>    tokenizer file to use instead of the model's (tokenizer.json or llama2.c tokenizer.bin)
      --frozen-dtype <d> keep the frozen weights as float32 (default) | float16 | int8 [frozen_dtype]
      --adapter <a>      apply a PEFT LoRA adapter (folder with adapter_config.json + adapter_model.safetensors, or URL)
      --text <text>      the text to score
      --file <path>      read the text from a file instead
      --no-bos           do not prepend BOS (default: as the tokenizer does; llama2.c always adds it)
      --backend <b>      wasm (default) | cpu | auto
  -q, --quiet            no progress or notes on stderr
      --debug            stack traces on errors
  -h, --help             this help`,
  options: {
    ...COMMON,
    ...MODEL_OPTS,
    ...ADAPTER_OPT,
    ...BACKEND_OPT,
    text: { type: 'string' },
    file: { type: 'string' },
    'no-bos': { type: 'boolean' },
  },
  async run(v, io) {
    const text = await textArg(v);
    const backend = await startBackend(v, io);
    const m = await openModel(v, io);
    const ids = m.tokenizer.encode(text, v['no-bos'] ? { addBos: false } : {});
    const ctx = m.config.max_position_embeddings;
    if (ids.length < 2)
      throw new UsageError(
        `the text is ${ids.length} token${ids.length === 1 ? '' : 's'} long; scoring needs at least 2`,
      );
    if (ids.length > ctx)
      throw new UsageError(`the text is ${ids.length} tokens long, more than the model's context length ${ctx}`);
    for (const id of ids)
      if (id >= m.config.vocab_size)
        throw new CliError(
          `tokenizer id ${id} is outside the model's vocabulary (${m.config.vocab_size}): tokenizer and model do not match`,
        );
    const tf = await import('@tensorflow/tfjs-core');
    const { CausalLM } = await import('../engine/model');
    const model = CausalLM.fromRaw(m.config, m.weights, { frozenDtype: frozenDtypeArg(v) });
    try {
      const adapter = await attachAdapterArg(v, model, { name: m.name, io });
      const inputIds = Int32Array.from(ids);
      const loss = tf.tidy(() => model.loss({ inputIds, labels: inputIds, batchSize: 1, seqLen: ids.length }).loss);
      const meanNll = (await loss.data())[0];
      loss.dispose();
      if (!Number.isFinite(meanNll))
        throw new CliError(
          `the mean NLL of the text is ${meanNll}: the model${adapter ? ` with adapter ${adapter}` : ''} gives non-finite logits (weights too large for float32, or a damaged adapter), so mean_nll and perplexity cannot be reported`,
        );
      io.out(
        stringifyFinite({
          model: m.name,
          tokens: ids,
          n_tokens: ids.length,
          n_predicted: ids.length - 1,
          mean_nll: meanNll,
          perplexity: Math.exp(meanNll),
          backend,
          ...(adapter ? { adapter } : {}),
        }) + '\n',
      );
    } finally {
      model.dispose();
    }
  },
};

async function textArg(v: Values): Promise<string> {
  const text = str(v, 'text');
  const file = str(v, 'file');
  if (text !== undefined && file !== undefined) throw new UsageError('give --text or --file, not both');
  if (file !== undefined) {
    try {
      return new TextDecoder().decode(await readLocalFile(file, 'text file'));
    } catch (e) {
      throw new CliError((e as Error).message, e);
    }
  }
  if (text === undefined) throw new UsageError('--text (or --file) is required');
  return text;
}

// ---------------------------------------------------------------------------------------------------------
// generate

const generateCmd: Command = {
  name: 'generate',
  summary: 'continue a prompt (greedy, or sampled with --temperature)',
  usage: `Usage: webtune generate --model <folder|file.bin|url> --prompt "<text>" [options]

Streams the continuation to stdout as it is generated (greedy unless --temperature is given).
An empty prompt starts from BOS alone.

Options:
  -m, --model <m>            Hugging Face folder, llama2.c .bin file, or Hub URL
      --tokenizer <f>        tokenizer file to use instead of the model's
      --frozen-dtype <d>     keep the frozen weights as float32 (default) | float16 | int8 [frozen_dtype]
      --adapter <a>          apply a PEFT LoRA adapter (folder or URL), e.g. the --out of webtune train
  -p, --prompt <text>        the prompt (default "")
  -n, --max-new-tokens <n>   tokens to generate at most (default 128)
      --temperature <t>      sample at this temperature (0 or absent: greedy)
      --top-k <k>            keep the k most likely tokens (0: off)
      --top-p <p>            nucleus sampling: keep the smallest set with probability ≥ p (1: off)
      --seed <s>             sampling seed (default: random, reported with --json)
      --stop <s>             stop when the continuation contains s (repeatable)
      --template <t>         wrap the prompt as a user turn in a template (alpaca | chatml | instruction |
                             chat_template | a custom template with {output}), as training rendered it
      --template-file <f>    the same, from a file (custom template or Jinja chat template)
      --system <text>        system message for --template
      --ignore-eos           keep going past EOS
      --json                 print {"prompt_tokens", "tokens", "text", "finish_reason", ...} instead of streaming
      --backend <b>          wasm (default) | cpu | auto
  -q, --quiet                no progress or notes on stderr
      --debug                stack traces on errors
  -h, --help                 this help`,
  options: {
    ...COMMON,
    ...MODEL_OPTS,
    ...ADAPTER_OPT,
    ...BACKEND_OPT,
    prompt: { type: 'string', short: 'p' },
    'max-new-tokens': { type: 'string', short: 'n' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string', multiple: true },
    'ignore-eos': { type: 'boolean' },
    template: { type: 'string' },
    'template-file': { type: 'string' },
    system: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(v, io) {
    const prompt = str(v, 'prompt') ?? '';
    const maxNewTokens = num(v, 'max-new-tokens', { int: true, min: 1 }) ?? 128;
    const temperature = num(v, 'temperature', { min: 0 }) ?? 0;
    if (temperature > 0 && temperature < MIN_TEMPERATURE) {
      throw new UsageError(
        `--temperature ${temperature} is too small to sample with: use 0 for greedy decoding, or at least ${MIN_TEMPERATURE}`,
      );
    }
    const topK = num(v, 'top-k', { int: true, min: 0 }) ?? 0;
    const topP = num(v, 'top-p', { min: 0, max: 1, minExclusive: true }) ?? 1;
    const seed = num(v, 'seed', { int: true, min: 0, max: 2 ** 32 - 1 }) ?? Math.floor(Math.random() * 2 ** 31);
    const stops = ((v.stop as string[] | undefined) ?? []).filter((s) => s !== '');
    const json = !!v.json;
    const template = await templateArg(v);
    const system = str(v, 'system');
    if (system !== undefined && !template) throw new UsageError('--system needs --template');
    await startBackend(v, io);
    const m = await openModel(v, io);
    const tok = m.tokenizer;

    let promptIds: number[];
    if (template) {
      const { renderTrainedPrompt } = await import('../train/evaluate');
      const messages = [
        ...(system !== undefined ? [{ role: 'system' as const, content: system }] : []),
        { role: 'user' as const, content: prompt },
      ];
      try {
        promptIds = renderTrainedPrompt(tok, m.config, messages, template).ids;
      } catch (e) {
        throw new CliError(`cannot render the prompt with the ${template.kind} template: ${(e as Error).message}`, e);
      }
    } else {
      promptIds = tok.encode(prompt);
    }
    if (promptIds.length === 0) {
      const bos = tok.bosTokenId ?? m.config.bos_token_id;
      if (bos === null || bos === undefined)
        throw new UsageError('the prompt is empty and the model has no BOS token to start from');
      promptIds = [bos];
    }
    for (const id of promptIds)
      if (id >= m.config.vocab_size)
        throw new CliError(
          `tokenizer id ${id} is outside the model's vocabulary (${m.config.vocab_size}): tokenizer and model do not match`,
        );
    const { generationStops } = await import('../train/evaluate');
    const eos = v['ignore-eos'] ? [] : generationStops(tok, m.config).eosTokenIds;

    // Decode the continuation in the context of the prompt, so word-initial spaces come out as the model meant.
    const promptText = tok.decode(promptIds);
    const decode = (ids: number[]) => {
      const full = tok.decode([...promptIds, ...ids]);
      return full.startsWith(promptText) ? full.slice(promptText.length) : tok.decode(ids);
    };

    // Stream, holding back what could still turn out to be the start of a stop string.
    const hold = stops.reduce((a, s) => Math.max(a, s.length - 1), 0);
    let shown = 0;
    let text = '';
    const { CausalLM } = await import('../engine/model');
    const { generate } = await import('../engine/generate');
    const model = CausalLM.fromRaw(m.config, m.weights, { frozenDtype: frozenDtypeArg(v) });
    const t0 = performance.now();
    try {
      await attachAdapterArg(v, model, { name: m.name, io });
      const res = await generate(model, promptIds, {
        maxNewTokens,
        temperature,
        topK,
        topP,
        seed,
        eosTokenIds: eos,
        stopStrings: stops,
        decode,
        onToken: (_id, delta) => {
          if (json) return;
          text += delta;
          const upto = Math.max(shown, text.length - hold);
          if (upto > shown) {
            io.out(text.slice(shown, upto));
            shown = upto;
          }
        },
      });
      const secs = (performance.now() - t0) / 1000;
      if (json) {
        io.out(
          stringifyFinite({
            model: m.name,
            prompt,
            prompt_tokens: promptIds,
            tokens: res.ids,
            text: res.text,
            finish_reason: res.finishReason,
            ...(temperature > 0 ? { seed } : {}),
          }) + '\n',
        );
      } else {
        if (res.text.length > shown) io.out(res.text.slice(shown));
        io.out('\n');
        if (!v.quiet && io.tty)
          io.err(
            `[${res.ids.length} tokens, ${(res.ids.length / secs).toFixed(1)} tokens/s, finish: ${res.finishReason}]\n`,
          );
      }
    } finally {
      model.dispose();
    }
  },
};

// ---------------------------------------------------------------------------------------------------------
// data

const data: Command = {
  name: 'data',
  summary: 'parse (and with --model, tokenize) a dataset and print its report',
  usage: `Usage: webtune data --data <file> [--data <file> ...] [--model <m>] [options]

Without --model: parses the files and prints formats, row and example counts and the first row errors.
With --model: also applies the template, tokenizes with the model's tokenizer and prints the full report
(splits, token counts, truncation, length histogram, a per-token view of the first example).
Only the tokenizer (and config.json) is read for Hugging Face models.

Options:
  -d, --data <file>          JSON, JSONL, CSV, TSV or text dataset (repeatable)
      --format <f>           auto (default) | alpaca | dolly | prompt_completion | messages | sharegpt | self_instruct | qa | text
      --columns <map>        field renames, e.g. instruction=prompt,output=chosen
  -m, --model <m>            tokenize with this model's tokenizer
      --tokenizer <f>        tokenizer file to use instead of the model's
      --template <t>         alpaca | chatml | instruction | chat_template | raw, or a custom template with {output}
                             (default: the tokenizer's chat template if it has one, else alpaca)
      --template-file <f>    a custom template or Jinja chat template from a file
      --max-length <n>       tokens per example (default: min(model context, 1024))
      --train-on-inputs      label prompt tokens too
      --validation <x>       validation split: fraction in (0, 1) or a count (default 0)
      --evaluation <x>       held-out evaluation split (default 0)
      --seed <s>             split seed (default 42)
  -q, --quiet                no progress on stderr
      --debug                stack traces on errors
  -h, --help                 this help`,
  options: { ...COMMON, ...MODEL_OPTS, ...DATA_OPTS },
  async run(v, io) {
    if (!(v.data as string[] | undefined)?.length) throw new UsageError('--data is required');
    const parse = await parseOptionsArg(v);
    const template = await templateArg(v);
    const maxLength = num(v, 'max-length', { int: true, min: 2 });
    const validation = splitSize(v, 'validation');
    const evaluation = splitSize(v, 'evaluation');
    const seed = num(v, 'seed', { int: true, min: 0 }) ?? 42;
    const files = await readDataFiles(v);
    const dataMod = await import('../data');
    if (str(v, 'model') === undefined) {
      if (template || maxLength !== undefined || v['train-on-inputs'])
        throw new UsageError('--template, --max-length and --train-on-inputs need --model (tokenization)');
      const parsed = files.map((f) => {
        try {
          return dataMod.parseDataset(f.data, f.name, parse);
        } catch (e) {
          throw new CliError(
            e instanceof dataMod.DatasetError
              ? e.message.includes(f.name)
                ? e.message
                : `${f.name}: ${e.message}`
              : `${f.name}: ${(e as Error).message}`,
            e,
          );
        }
      });
      const examples = parsed.reduce((a, p) => a + p.examples.length, 0);
      const errors = parsed.flatMap((p) => p.errors);
      const all = parsed.flatMap((p) => p.examples);
      const splits = dataMod.splitDataset(all, { validation, evaluation, seed });
      io.out(
        stringifyFinite(
          {
            files: parsed.map((p) => ({
              file: p.file,
              format: p.format,
              container: p.container,
              rows: p.rows,
              examples: p.examples.length,
              errors: p.errors.length,
            })),
            examples,
            splits: {
              train: splits.train.length,
              validation: splits.validation.length,
              evaluation: splits.evaluation.length,
            },
            errors: errors.slice(0, 50),
            error_count: errors.length,
          },

          2,
        ) + '\n',
      );
      return;
    }
    const { spec, arg } = await resolveSpec(v);
    const { loadModelTokenizer } = await import('../io/load-model');
    let tk: Awaited<ReturnType<typeof loadModelTokenizer>>;
    try {
      tk = await loadModelTokenizer(spec, loadProgress(io, !!v.quiet));
    } catch (e) {
      throw new CliError(`cannot load model ${arg}: ${(e as Error).message}`, e);
    }
    let prepared;
    try {
      prepared = dataMod.prepareDataset(files, tk.tokenizer, {
        template,
        maxLength: maxLength ?? Math.min(tk.config.max_position_embeddings, 1024),
        trainOnInputs: !!v['train-on-inputs'],
        validation,
        evaluation,
        seed,
        parse,
        onProgress: dataProgress(io, !!v.quiet),
      });
    } catch (e) {
      throw new CliError((e as Error).message, e);
    }
    const r = prepared.report;
    const examples = prepared.parsed.reduce((a, p) => a + p.examples.length, 0);
    io.out(stringifyFinite({ model: tk.name, examples, ...r }, 2) + '\n');
  },
};

// ---------------------------------------------------------------------------------------------------------
// Dispatch

export const COMMANDS: Command[] = [score, generateCmd, data, train, exportRun];

function mainUsage(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: webtune <command> [options]

LoRA instruction-tuning of small language models with TensorFlow.js (wasm/cpu in Node).

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}

Run "webtune <command> --help" for a command's options.
Models: a Hugging Face folder (config.json, model.safetensors, tokenizer.json), a llama2.c .bin checkpoint
(with tokenizer.bin or tok{vocab}.bin beside it), or a URL in the Hub layout {base}/{repo}/resolve/{revision}[/{path}].`;
}

/** Keep stdout for results: libraries that print (TF.js notes, warnings) go to stderr, or nowhere with --quiet. */
function routeConsole(io: Io, quiet: boolean, debug: boolean): () => void {
  const saved = { log: console.log, info: console.info, warn: console.warn, debug: console.debug };
  const sink = (...a: unknown[]) => {
    if (quiet && !debug) return;
    const line = a
      .map((x) => (typeof x === 'string' ? x : x instanceof Error ? x.message : JSON.stringify(x)))
      .join(' ');
    if (!debug && /tensorflow|tfjs|tf\.js/i.test(line)) return; // backend banners and platform notes
    io.err(line + '\n');
  };
  console.log = console.info = console.warn = sink;
  console.debug = debug ? sink : () => {};
  return () => Object.assign(console, saved);
}

export async function run(argv: string[], io: Io = processIo()): Promise<number> {
  const debug = argv.includes('--debug');
  const [cmdName, ...rest] = argv;
  if (cmdName === undefined) {
    io.err(mainUsage() + '\n');
    return 2;
  }
  if (cmdName === '--help' || cmdName === '-h' || cmdName === 'help') {
    const sub = COMMANDS.find((c) => c.name === rest[0]);
    io.out((sub ? sub.usage : mainUsage()) + '\n');
    return 0;
  }
  if (cmdName === '--version' || cmdName === '-V') {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    io.out(`webtune ${pkg.version}\n`);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === cmdName);
  if (!cmd) {
    io.err(`webtune: unknown command ${JSON.stringify(cmdName)}\n\n${mainUsage()}\n`);
    return 2;
  }
  let values: Values;
  try {
    const parsed = parseArgs({ args: rest, options: cmd.options, strict: true, allowPositionals: false });
    values = parsed.values as Values;
  } catch (e) {
    io.err(
      `webtune ${cmd.name}: ${(e as Error).message.replace(/\. To specify a positional argument.*$/s, '')}\nRun "webtune ${cmd.name} --help" for usage.\n`,
    );
    return 2;
  }
  if (values.help) {
    io.out(cmd.usage + '\n');
    return 0;
  }
  const restore = routeConsole(io, !!values.quiet, debug);
  try {
    await cmd.run(values, io);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`webtune ${cmd.name}: ${e.message}\nRun "webtune ${cmd.name} --help" for usage.\n`);
      return 2;
    }
    const err = e as Error;
    io.err(`webtune ${cmd.name}: error: ${err?.message ?? String(e)}\n`);
    if (debug) {
      io.err((err?.stack ?? '') + '\n');
      const cause = (e as CliError).cause as Error | undefined;
      if (cause?.stack) io.err('caused by: ' + cause.stack + '\n');
    }
    return 1;
  } finally {
    restore();
  }
}

function processIo(): Io {
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    tty: !!process.stderr.isTTY,
  };
}
