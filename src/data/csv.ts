/**
 * RFC 4180 CSV (and tab-separated) reader.
 *
 * - Fields are separated by the delimiter; records by CRLF or LF (a lone CR also ends a record).
 * - A field that starts with `"` is quoted: it runs to the next `"` not followed by another `"`;
 *   `""` inside it is one literal quote; delimiters and line breaks inside it are data
 *   (line breaks inside quoted fields are normalised to LF).
 * - Characters after a closing quote other than a delimiter or line break are an error (reported, and
 *   kept as data so the rest of the file can still be read).
 * - A final line break does not start an empty record; fully empty lines are skipped.
 *
 * Browser-safe: no node: imports.
 */

export interface CsvRecord {
  /** 1-based line on which the record starts. */
  line: number;
  fields: string[];
}

export interface CsvIssue {
  line: number;
  column: number;
  message: string;
}

export interface CsvParseResult {
  records: CsvRecord[];
  issues: CsvIssue[];
}

export function parseCsv(text: string, delimiter = ','): CsvParseResult {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new Error(`invalid CSV delimiter ${JSON.stringify(delimiter)}`);
  }
  const records: CsvRecord[] = [];
  const issues: CsvIssue[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const n = text.length;
  const d = delimiter.charCodeAt(0);
  const QUOTE = 0x22,
    LF = 0x0a,
    CR = 0x0d;
  // Fields are taken as slices of `text` (not built a character at a time): linear time and memory on multi-MB fields.
  while (i < n) {
    const recordLine = line;
    const fields: string[] = [];
    let endOfRecord = false;
    while (!endOfRecord) {
      let field = '';
      if (text.charCodeAt(i) === QUOTE) {
        const quoteLine = line;
        const quoteCol = i - lineStart + 1;
        i++;
        let from = i;
        let closed = false;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === QUOTE) {
            if (text.charCodeAt(i + 1) === QUOTE) {
              field += text.slice(from, i + 1); // one literal quote
              i += 2;
              from = i;
            } else {
              field += text.slice(from, i);
              i++;
              closed = true;
              break;
            }
          } else if (c === CR || c === LF) {
            field += text.slice(from, i) + '\n';
            i += c === CR && text.charCodeAt(i + 1) === LF ? 2 : 1;
            line++;
            lineStart = i;
            from = i;
          } else {
            i++;
          }
        }
        if (!closed) {
          field += text.slice(from, i);
          issues.push({ line: quoteLine, column: quoteCol, message: 'unterminated quoted field (missing closing ")' });
        } else if (i < n && text.charCodeAt(i) !== d && text.charCodeAt(i) !== LF && text.charCodeAt(i) !== CR) {
          issues.push({
            line,
            column: i - lineStart + 1,
            message: `unexpected ${JSON.stringify(text[i])} after a closing quote (quotes inside a field must be doubled: "")`,
          });
          from = i;
          while (i < n && text.charCodeAt(i) !== d && text.charCodeAt(i) !== LF && text.charCodeAt(i) !== CR) i++;
          field += text.slice(from, i);
        }
      } else {
        const from = i;
        let quoted = false;
        for (let c = text.charCodeAt(i); i < n && c !== d && c !== LF && c !== CR; c = text.charCodeAt(++i)) {
          if (c === QUOTE && !quoted) {
            // Once per field: a multi-MB field full of quotes must not become millions of issues.
            issues.push({
              line,
              column: i - lineStart + 1,
              message: 'quote inside an unquoted field (quote the whole field and double the quote: "")',
            });
            quoted = true;
          }
        }
        field = text.slice(from, i);
      }
      fields.push(field);
      if (i >= n) endOfRecord = true;
      else if (text.charCodeAt(i) === d) i++;
      else {
        // line break
        i += text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF ? 2 : 1;
        line++;
        lineStart = i;
        endOfRecord = true;
      }
    }
    if (fields.length === 1 && fields[0] === '') continue; // empty line
    records.push({ line: recordLine, fields });
  }
  return { records, issues };
}
