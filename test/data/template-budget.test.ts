/**
 * Hostile chat templates end with a clear error within their budget instead of looping for minutes or aborting the
 * process; real templates render as before.
 */
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { renderWithBudget, TemplateBudgetError, DEFAULT_TEMPLATE_BUDGET } from '../../src/data/template-budget';
import { renderChatTemplate, TemplateError, type TemplateTokens } from '../../src/data/templates';

const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const tokens: TemplateTokens = {
  bosToken: '<s>',
  eosToken: '</s>',
  chatTemplate: CHATML,
  specialTokens: {},
} as unknown as TemplateTokens;

const render = (template: string) =>
  renderChatTemplate([{ role: 'user', content: 'hi' }], { template, tokens, addGenerationPrompt: true });

/** Runs fn and returns its error and how long it took. */
function timed(fn: () => unknown): { error: Error | null; ms: number } {
  const t0 = performance.now();
  try {
    fn();
    return { error: null, ms: performance.now() - t0 };
  } catch (e) {
    return { error: e as Error, ms: performance.now() - t0 };
  }
}

describe('chat templates under a budget', () => {
  it('a real template renders as before, and its own name is used in messages', () => {
    expect(render(CHATML)).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('range() over a billion items is refused before any list is built', () => {
    const { error, ms } = timed(() => render('{% for i in range(1000000000) %}x{% endfor %}'));
    expect(error).toBeInstanceOf(TemplateError);
    expect(error!.message).toMatch(
      /^the custom chat template: rendering stopped: range\(\) asked for 1,000,000,000 items in all, over the limit of 100,000\./,
    );
    expect(ms).toBeLessThan(1000);
  });

  it('nested loops that multiply are stopped by the range budget', () => {
    const { error, ms } = timed(() =>
      render(
        '{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}',
      ),
    );
    expect(error?.message).toMatch(/rendering stopped: (range\(\) asked for|more than [\d,]+ steps|longer than)/);
    expect(ms).toBeLessThan(5000);
  });

  it('a string that doubles is stopped at the character limit', () => {
    const { error } = timed(() =>
      render(
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
      ),
    );
    expect(error?.message).toMatch(/rendering stopped: a value grew to [\d,]+ characters, over the limit of 4,000,000/);
  });

  it('a list that doubles is stopped at the item limit', () => {
    const { error } = timed(() =>
      render('{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}'),
    );
    expect(error?.message).toMatch(/rendering stopped: a list grew to [\d,]+ items, over the limit of 100,000/);
  });

  it('text that adds up in a loop is stopped before it exhausts memory', () => {
    const big = 'y'.repeat(100_000);
    const { error } = timed(() =>
      renderChatTemplate([{ role: 'user', content: big }], {
        template: '{% for i in range(90000) %}{{ messages[0].content }}{% endfor %}',
        tokens,
      }),
    );
    expect(error?.message).toMatch(/rendering stopped: its blocks produced over 16,000,000 characters/);
  });

  it('the step and time limits hold on their own', () => {
    const t = new Template('{% for i in range(100000) %}{{ i }}{% endfor %}');
    const steps = timed(() => renderWithBudget(t, {}, 'tiny', { ...DEFAULT_TEMPLATE_BUDGET, maxSteps: 1000 }));
    expect(steps.error).toBeInstanceOf(TemplateBudgetError);
    expect(steps.error!.message).toMatch(/^tiny: rendering stopped: more than 1,000 steps/);
    const time = timed(() => renderWithBudget(t, {}, 'slow', { ...DEFAULT_TEMPLATE_BUDGET, maxMs: 1 }));
    expect(time.error?.message).toMatch(/^slow: rendering stopped: longer than 1 ms/);
    // Outside a budgeted rendering the library behaves as it always did.
    expect(t.render({}).length).toBe(488890);
  });

  it('a long conversation is not mistaken for a runaway template', () => {
    const long = 'z'.repeat(5_000_000);
    const text = renderChatTemplate([{ role: 'user', content: long }], { template: CHATML, tokens });
    expect(text.length).toBe(long.length + '<|im_start|>user\n<|im_end|>\n'.length);
  });

  it('a budget error inside a nested rendering does not leak into the outer one', () => {
    const inner = new Template('{% for i in range(10) %}{{ i }}{% endfor %}');
    const outer = new Template('{{ f() }}{% for i in range(5) %}{{ i }}{% endfor %}');
    const text = renderWithBudget(outer, { f: () => renderWithBudget(inner, {}, 'inner') }, 'outer');
    expect(text).toBe('012345678901234');
  });
});
