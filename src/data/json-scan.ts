/**
 * Small JSON helpers the dataset parser needs beyond JSON.parse:
 *  - where each element of a top-level array starts (so row errors can name a line), and
 *  - where a malformed document first goes wrong (line and column), with the same wording in every
 *    JavaScript engine (V8, SpiderMonkey and JavaScriptCore word and place JSON.parse errors differently).
 *
 * Browser-safe: no node: imports.
 */

export interface TextPosition {
  /** 1-based line. */
  line: number;
  /** 1-based column, counted in UTF-16 code units as editors do. */
  column: number;
}

/** Maps character offsets to line/column with a precomputed table of line starts. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }
  position(offset: number): TextPosition {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo] + 1 };
  }
  line(offset: number): number {
    return this.position(offset).line;
  }
}

const isWs = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Offsets of the first character of each element of the top-level JSON array in `text`
 * (which must be valid JSON whose first value is an array). Returns [] if it is not an array.
 */
export function topLevelArrayElementOffsets(text: string): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  if (text[i] !== '[') return out;
  i++;
  let depth = 1;
  let expectValue = true;
  for (; i < text.length && depth > 0; i++) {
    const c = text.charCodeAt(i);
    if (isWs(c)) continue;
    if (depth === 1 && expectValue && c !== 0x5d /* ] */) {
      out.push(i);
      expectValue = false;
    }
    if (c === 0x22 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) {
        if (text.charCodeAt(i) === 0x5c /* \ */) i++;
        i++;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) depth++;
    else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c /* , */ && depth === 1) expectValue = true;
  }
  return out;
}

export interface JsonSyntaxError {
  offset: number;
  message: string;
}

/**
 * Strict JSON (RFC 8259) validator that reports the first error's offset and what was expected there.
 * Returns null when the text is valid JSON. Only used after JSON.parse has failed, so speed is secondary.
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  let i = 0;
  const fail = (message: string, at = i): never => {
    throw { offset: at, message } satisfies JsonSyntaxError;
  };
  const describe = (at: number) => (at >= text.length ? 'end of input' : `${JSON.stringify(text[at])}`);
  const ws = () => {
    while (i < text.length && isWs(text.charCodeAt(i))) i++;
  };
  const literal = (word: string) => {
    for (let k = 0; k < word.length; k++) {
      if (text[i + k] !== word[k]) fail(`invalid literal, expected ${word}`, i + k);
    }
    i += word.length;
  };
  const string = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20)
        fail(
          c === 0x0a
            ? 'unescaped newline inside a string (missing closing quote?)'
            : 'unescaped control character inside a string',
        );
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6)))
            fail('invalid \\u escape, expected 4 hex digits', i + 2);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail(`invalid escape \\${e ?? ''}`, i + 1);
      } else i++;
    }
  };
  const number = () => {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail(`unexpected ${describe(i)}, expected a value`);
    i += m![0].length;
  };
  const key = () => {
    ws();
    if (text[i] !== '"') fail(`unexpected ${describe(i)}, expected a property name in double quotes`);
    string();
    ws();
    if (text[i] !== ':') fail(`unexpected ${describe(i)}, expected ':' after property name`);
    i++;
  };
  /** One JSON value. Iterative (an explicit stack of open containers): any nesting depth, no stack overflow. */
  const value = (): void => {
    const open: ('{' | '[')[] = [];
    for (;;) {
      // A value starts here.
      ws();
      const c = text[i];
      if (c === '{' || c === '[') {
        i++;
        ws();
        if (text[i] === (c === '{' ? '}' : ']'))
          i++; // empty container: a complete value
        else {
          open.push(c);
          if (c === '{') key();
          continue;
        }
      } else if (c === '"') string();
      else if (c === 't') literal('true');
      else if (c === 'f') literal('false');
      else if (c === 'n') literal('null');
      else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) number();
      else fail(`unexpected ${describe(i)}, expected a value`);
      // A value ended: close containers until one continues with ','.
      for (;;) {
        const top = open[open.length - 1];
        if (top === undefined) return;
        ws();
        if (text[i] === ',') {
          i++;
          if (top === '{') key();
          break;
        }
        if (text[i] === (top === '{' ? '}' : ']')) {
          i++;
          open.pop();
          continue;
        }
        fail(
          top === '{'
            ? `unexpected ${describe(i)}, expected ',' or '}' after property value`
            : `unexpected ${describe(i)}, expected ',' or ']' after array element`,
        );
      }
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail(`unexpected ${describe(i)} after the end of the JSON value`);
    return null;
  } catch (e) {
    if (e && typeof e === 'object' && 'offset' in e) return e as JsonSyntaxError;
    throw e;
  }
}
