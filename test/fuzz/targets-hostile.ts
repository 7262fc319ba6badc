/**
 * Hostile programs and endpoints (issue #12, round two): chat templates that loop or grow (renderChatTemplate
 * under its budget), tokenizer.json Split/Replace patterns with catastrophic backtracking (loadHfTokenizer's
 * regex cost probe), PEFT adapters with hostile target_modules patterns and values (parsePeftAdapter), and Hub
 * URLs served by a local server that stalls, trickles, never ends its body or lies about its length (hubSource
 * with short deadlines). Each case ends in a result or an Error naming the file / URL, in bounded CPU and heap.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { renderChatTemplate } from '../../src/data/templates';
import type { ModelConfig, RawTensors } from '../../src/engine/config';
import { linearModules } from '../../src/engine/params';
import { parsePeftAdapter } from '../../src/io/peft';
import { writeSafetensors } from '../../src/io/safetensors';
import { hubSource } from '../../src/io/source';
import { loadHfTokenizer } from '../../src/io/tokenizer-hf';
import type { Tokenizer } from '../../src/io/tokenizer';
import type { Rng } from '../../src/util/rng';
import { gpt2StyleTokenizerConfig, gpt2StyleTokenizerJson } from '../fixtures/tokenizers';
import { tinyConfig } from '../tiny-checkpoint';
import type { FuzzCase, Target } from './harness';
import { between, chance, hostileValue, mutateBytes, mutateTree, pick, toJson, utf8 } from './mutate';

// ---------------------------------------------------------------------------------------------------------
// Chat templates

const TEMPLATE_NAME = 'fuzz.jinja';
const TOKENS = { bosToken: '<s>', eosToken: '</s>', chatTemplate: null, specialTokens: {} };
const MESSAGES = [
  { role: 'user' as const, content: 'hello' },
  { role: 'assistant' as const, content: 'hi there' },
];

/** Fragments of templates: real loops and output, and runaway ones (huge ranges, doubling, deep nesting). */
const TEMPLATE_PARTS = [
  '{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}{% endfor %}',
  '{{ bos_token }}',
  '{% for i in range(1000000000) %}x{% endfor %}',
  '{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}',
  "{% set s = 'ab' %}{% for i in range(64) %}{% set s = s + s %}{% endfor %}{{ s }}",
  '{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}',
  "{{ 'a' * 1000000000 }}",
  '{% for i in range(300000) %}{{ i }}{% endfor %}',
  '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
  '{% if add_generation_prompt %}<|assistant|>{% endif %}',
  '{{ messages[0]["content"] | upper }}',
  "{{ raise_exception('bad role') }}",
  '{% for m in messages %}{% for m2 in messages %}{% for m3 in messages %}{{ m3.content }}{% endfor %}{% endfor %}{% endfor %}',
  '{{ messages[99].content }}',
  '{% for',
  '{{ range(10) | join(",") }}',
];

function templateCase(template: string, label: string): FuzzCase {
  return {
    label,
    size: template.length,
    names: [TEMPLATE_NAME],
    /** templates.ts quotes the Jinja library's own words after the template's name and says so. */
    wrapped: /fuzz\.jinja failed while rendering \(Jinja: /,
    run: () => renderChatTemplate(MESSAGES, { template, tokens: TOKENS, name: TEMPLATE_NAME }),
    check: (r) =>
      typeof r === 'string' && r.length <= 8_000_000 ? null : `rendered ${typeof r} of ${String(r).length}`,
  };
}

export const templateTarget: Target = {
  name: 'chat template (budget)',
  weight: 4,
  edges: TEMPLATE_PARTS.map((p, i) => () => templateCase(p, `edge part ${i}`)),
  random: (rng) => {
    const n = between(rng, 1, 4);
    const parts = Array.from({ length: n }, () => pick(rng, TEMPLATE_PARTS));
    return templateCase(parts.join(''), parts.map((p) => TEMPLATE_PARTS.indexOf(p)).join('+'));
  },
};

// ---------------------------------------------------------------------------------------------------------
// Tokenizer patterns

const TOK_FILE = 'fuzz/patterns/tokenizer.json';
const PATTERNS = [
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  '(a+)+$',
  '(a|a)*b',
  '(\\w+\\s?)*$',
  '(.*a){12}',
  '([a-z]+)*[0-9]',
  '(x+x+)+y',
  '\\s+',
  '[',
  '(?<=a)b',
  '(?:(?:a*)*)*c',
];

function patternCase(rng: Rng | null, pattern: string, where: 'split' | 'replace' | 'chain', label: string): FuzzCase {
  const json = gpt2StyleTokenizerJson() as Record<string, unknown>;
  if (where === 'split') {
    json.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
        json.pre_tokenizer,
      ],
    };
  } else if (where === 'replace') {
    json.normalizer = { type: 'Replace', pattern: { Regex: pattern }, content: ' ' };
  } else {
    const n = rng ? between(rng, 200, 400) : 300;
    json.normalizer = {
      type: 'Sequence',
      normalizers: Array.from({ length: n }, () => ({ type: 'Replace', pattern: { String: 'a' }, content: 'aa' })),
    };
  }
  const text = JSON.stringify(json);
  return {
    label,
    size: text.length,
    names: [TOK_FILE],
    wrapped: /: @huggingface\/tokenizers could not load it: /,
    run: () => {
      const tok = loadHfTokenizer(JSON.parse(text), gpt2StyleTokenizerConfig(), TOK_FILE) as Tokenizer;
      // an accepted tokenizer encodes a hostile-looking text in bounded time
      return tok.encode('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx!' + ' '.repeat(40));
    },
    check: (r) => (Array.isArray(r) && r.every((id) => Number.isSafeInteger(id) && id >= 0) ? null : 'bad ids'),
  };
}

export const patternTarget: Target = {
  name: 'tokenizer patterns (regex cost)',
  weight: 4,
  edges: [
    ...PATTERNS.map((p, i) => () => patternCase(null, p, 'split', `split edge ${i}`)),
    ...PATTERNS.map((p, i) => () => patternCase(null, p, 'replace', `replace edge ${i}`)),
    () => patternCase(null, '', 'chain', 'a Replace chain of 300'),
  ],
  random: (rng) => {
    const where = pick(rng, ['split', 'replace', 'chain'] as const);
    const a = pick(rng, PATTERNS);
    const pattern = chance(rng, 0.3) ? `${a}|${pick(rng, PATTERNS)}` : a;
    return patternCase(rng, pattern, where, `${where} ${JSON.stringify(pattern).slice(0, 60)}`);
  },
};

// ---------------------------------------------------------------------------------------------------------
// PEFT adapters

const AD_CONFIG = 'fuzz/adapter/adapter_config.json';
const AD_WEIGHTS = 'fuzz/adapter/adapter_model.safetensors';
const MODEL: ModelConfig = tinyConfig('llama', { vocab: 64, hidden: 16, layers: 2, heads: 2 });

function adapterFiles(r = 2): { config: Record<string, unknown>; weights: Uint8Array } {
  const tensors: RawTensors = new Map();
  for (const m of linearModules(MODEL).filter((x) => x.short === 'q_proj' || x.short === 'v_proj')) {
    tensors.set(`base_model.model.${m.name}.lora_A.weight`, {
      shape: [r, m.inFeatures],
      data: Float32Array.from({ length: r * m.inFeatures }, (_, i) => ((i % 7) - 3) / 100),
    });
    tensors.set(`base_model.model.${m.name}.lora_B.weight`, {
      shape: [m.outFeatures, r],
      data: Float32Array.from({ length: m.outFeatures * r }, (_, i) => ((i % 5) - 2) / 100),
    });
  }
  return {
    config: {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r,
      lora_alpha: 4,
      target_modules: ['q_proj', 'v_proj'],
      base_model_name_or_path: 'fuzz/base',
    },
    weights: writeSafetensors(tensors, { format: 'pt' }),
  };
}

const TARGET_PATTERNS = [
  '.*\\.(q_proj|v_proj)',
  '(.*)*x',
  '(\\w+\\.)*q_proj!',
  '(a|a)*b',
  'model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj',
  '[',
  '',
];

function adapterCase(config: Record<string, unknown>, weights: Uint8Array, label: string): FuzzCase {
  const text = toJson(config);
  return {
    label,
    size: text.length + weights.length,
    names: [AD_CONFIG, AD_WEIGHTS],
    run: () =>
      parsePeftAdapter(MODEL, { config: text, weights, configName: AD_CONFIG, weightsName: AD_WEIGHTS }).tensors.size,
    check: (n) => (typeof n === 'number' && n > 0 && n % 2 === 0 ? null : `accepted with ${String(n)} tensors`),
  };
}

export const adapterTarget: Target = {
  name: 'PEFT adapter (patterns, values)',
  weight: 4,
  edges: [
    () => {
      const f = adapterFiles();
      return { ...adapterCase(f.config, f.weights, 'valid'), expect: 'accept' };
    },
    ...TARGET_PATTERNS.map((p, i) => () => {
      const f = adapterFiles();
      return adapterCase({ ...f.config, target_modules: p }, f.weights, `target_modules pattern ${i}`);
    }),
  ],
  random: (rng) => {
    const f = adapterFiles(pick(rng, [1, 2, 4]));
    if (chance(rng, 0.4)) {
      const config = { ...f.config };
      if (chance(rng, 0.5)) config.target_modules = pick(rng, TARGET_PATTERNS);
      const m = mutateTree(rng, config, [/target_modules/, /^\.r$/, /lora_alpha/]);
      return adapterCase(config, f.weights, `config ${m.what}`);
    }
    if (chance(rng, 0.5)) {
      const config = { ...f.config };
      const h = hostileValue(rng, false);
      config[pick(rng, ['r', 'lora_alpha', 'target_modules', 'base_model_name_or_path'])] = h.value;
      return adapterCase(config, f.weights, `field = ${h.what}`);
    }
    const m = mutateBytes(rng, f.weights);
    return adapterCase(f.config, m.bytes, `weights ${m.what}`);
  },
};

// ---------------------------------------------------------------------------------------------------------
// URLs: a local server that misbehaves

type Behaviour = 'ok' | 'stall' | 'trickle' | 'endless' | 'short' | 'long' | 'reset' | 'headers-only';
const BEHAVIOURS: Behaviour[] = ['ok', 'stall', 'trickle', 'endless', 'short', 'long', 'reset', 'headers-only'];
const BODY = utf8(JSON.stringify({ model_type: 'llama', hidden_size: 16 }));
const LIMITS = { connectMs: 300, idleMs: 300, maxBytes: 256 * 1024 };

let server: Server | null = null;
let baseUrl = '';
const sockets = new Set<Socket>();

/** Starts the misbehaving server (once); the path's first segment says how to misbehave. */
export async function startHostileServer(): Promise<void> {
  if (server) return;
  server = createServer((req, res) => {
    const how = (req.url ?? '').split('/')[1] as Behaviour;
    const timers: NodeJS.Timeout[] = [];
    res.on('close', () => timers.forEach(clearTimeout));
    if (how === 'stall') return; // never answers
    if (how === 'reset') return req.socket.destroy();
    if (how === 'ok') return res.end(BODY);
    if (how === 'headers-only') {
      res.writeHead(200, { 'content-length': '100' });
      return; // then silence
    }
    if (how === 'short') {
      res.writeHead(200, { 'content-length': String(BODY.length + 50) });
      return res.end(BODY); // ends early
    }
    if (how === 'long') {
      res.writeHead(200, { 'content-length': '4' });
      res.write(BODY);
      return res.end();
    }
    res.writeHead(200); // chunked, no length
    if (how === 'trickle') {
      let n = 0;
      const tick = () => {
        if (n++ > 40 || res.destroyed) return res.end();
        res.write('x');
        timers.push(setTimeout(tick, 500)); // slower than the idle limit
      };
      return tick();
    }
    // endless: a body that never ends, as fast as the client reads
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function stopHostileServer(): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
}

function urlCase(how: Behaviour, label: string): FuzzCase {
  const repo = `${how}/repo`;
  return {
    label,
    size: LIMITS.maxBytes,
    names: [`${baseUrl}/${repo}`, '127.0.0.1'],
    // 'long' sends more than its Content-Length: the declared 4 bytes are the body (HTTP), the rest is ignored.
    expect: how === 'ok' || how === 'long' ? 'accept' : 'reject',
    run: async () => (await hubSource(baseUrl, repo, 'main', fetch, LIMITS).read('config.json')).length,
    check: (n) => {
      const want = how === 'long' ? 4 : BODY.length;
      return n === want ? null : `read ${String(n)} bytes, expected ${want}`;
    },
  };
}

export const urlTarget: Target = {
  name: 'URLs (stall, trickle, endless body)',
  weight: 1,
  edges: BEHAVIOURS.map((b) => () => urlCase(b, b)),
  random: (rng) => {
    const b = pick(rng, BEHAVIOURS);
    return urlCase(b, b);
  },
};

export const hostileTargets: Target[] = [templateTarget, patternTarget, adapterTarget, urlTarget];
