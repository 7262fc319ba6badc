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
  while (i < n) {
    const recordLine = line;
    const fields: string[] = [];
    let endOfRecord = false;
    while (!endOfRecord) {
      let field = '';
      if (text[i] === '"') {
        const quoteLine = line;
        const quoteCol = i - lineStart + 1;
        i++;
        let closed = false;
        while (i < n) {
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
            } else {
              i++;
              closed = true;
              break;
            }
          } else if (c === '\r' || c === '\n') {
            field += '\n';
            i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
            line++;
            lineStart = i;
          } else {
            field += c;
            i++;
          }
        }
        if (!closed) {
          issues.push({ line: quoteLine, column: quoteCol, message: 'unterminated quoted field (missing closing ")' });
        } else if (i < n && text[i] !== delimiter && text[i] !== '\n' && text[i] !== '\r') {
          issues.push({ line, column: i - lineStart + 1, message: `unexpected ${JSON.stringify(text[i])} after a closing quote (quotes inside a field must be doubled: "")` });
          while (i < n && text[i] !== delimiter && text[i] !== '\n' && text[i] !== '\r') field += text[i++];
        }
      } else {
        while (i < n && text[i] !== delimiter && text[i] !== '\n' && text[i] !== '\r') {
          if (text[i] === '"') {
            issues.push({ line, column: i - lineStart + 1, message: 'quote inside an unquoted field (quote the whole field and double the quote: "")' });
          }
          field += text[i++];
        }
      }
      fields.push(field);
      if (i >= n) endOfRecord = true;
      else if (text[i] === delimiter) i++;
      else {
        // line break
        i += text[i] === '\r' && text[i + 1] === '\n' ? 2 : 1;
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
