/**
 * No code from strings anywhere in the app, and chat templates (text from a model's tokenizer_config.json, i.e.
 * from whoever published the model) render in @huggingface/jinja's sandbox: they reach only the variables given to
 * them, never JavaScript's globals, prototypes or constructors.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderChatTemplate, type TemplateTokens } from '../src/data/templates';
import { ROOT } from './helpers';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : /\.(ts|tsx|mjs|js)$/.test(n) ? [p] : [];
  });
}

const tokens: TemplateTokens = {
  bosToken: '<s>',
  eosToken: '</s>',
  chatTemplate: null,
  specialTokens: { bos_token: '<s>', eos_token: '</s>' },
};
const messages = [{ role: 'user' as const, content: 'hi' }];

describe('no code from strings', () => {
  it('src/, bin/ and tools/ use no eval, new Function, Function(), or string timers', () => {
    const files = [
      ...sources(path.join(ROOT, 'src')),
      ...sources(path.join(ROOT, 'bin')),
      ...sources(path.join(ROOT, 'tools')),
    ];
    expect(files.length).toBeGreaterThan(50);
    const bad: string[] = [];
    const patterns = [
      /\beval\s*\(/,
      /\bnew\s+Function\s*\(/,
      /(^|[^.\w])Function\s*\(\s*['"`]/,
      /\bset(Timeout|Interval)\s*\(\s*['"`]/,
      /import\s*\(\s*['"`]data:/,
    ];
    for (const f of files) {
      readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$/, '');
          for (const p of patterns) if (p.test(code)) bad.push(`${path.relative(ROOT, f)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(bad).toEqual([]);
  });
});

describe('chat templates are sandboxed', () => {
  const g = globalThis as unknown as Record<string, unknown>;

  it('renders an ordinary template', () => {
    expect(
      renderChatTemplate(messages, {
        template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}',
        tokens,
      }),
    ).toBe('<s>[user] hi');
  });

  const escapes = [
    "{{ messages.constructor.constructor('globalThis.__webtunePwned = 1')() }}",
    "{{ ''.constructor.constructor('globalThis.__webtunePwned = 1')() }}",
    "{{ messages[0].constructor.constructor('globalThis.__webtunePwned = 1')() }}",
    "{% set f = messages.__proto__ %}{{ f.constructor('globalThis.__webtunePwned = 1')() }}",
    "{{ range.constructor('globalThis.__webtunePwned = 1')() }}",
    "{{ bos_token.__proto__.constructor.constructor('globalThis.__webtunePwned = 1')() }}",
    "{{ messages.pop.call.constructor('globalThis.__webtunePwned = 1')() }}",
  ];
  for (const t of escapes) {
    it(`reaches no JavaScript constructor: ${t}`, () => {
      delete g.__webtunePwned;
      let out: string | null = null;
      try {
        out = renderChatTemplate(messages, { template: t, tokens });
      } catch (e) {
        expect((e as Error).message).toMatch(/chat template|cannot parse/);
      }
      expect(g.__webtunePwned).toBeUndefined();
      if (out !== null) expect(out).not.toMatch(/function|native code|\[object/);
    });
  }

  it('sees no globals: process, globalThis, window, self, require are undefined inside a template', () => {
    const out = renderChatTemplate(messages, {
      template:
        '{{ process is defined }}|{{ globalThis is defined }}|{{ window is defined }}|{{ self is defined }}|{{ require is defined }}|{{ Function is defined }}',
      tokens,
    });
    expect(out).toBe('false|false|false|false|false|false');
  });
});
