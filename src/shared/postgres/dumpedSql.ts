// Reading the SQL that pg_restore and pg_dumpall write: statements, and the identifiers in them
// (quoted by the tools only where needed).

/** An identifier as the tools write it: "double-quoted" (quotes doubled inside) or a plain lowercase word. */
export const IDENT = String.raw`("(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)`;

/** The name an identifier stands for: a plain word folds to lowercase, as PostgreSQL folds it. */
export function unquote(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident.toLowerCase();
}

/** Splits pg_restore's SQL output into statements (quotes and dollar quotes respected); psql meta-commands (\connect, \restrict) and comments dropped. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let quoteChar: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (quoteChar) {
      current += ch;
      if (ch === quoteChar) quoteChar = undefined; // a doubled quote reopens on the next character
      continue;
    }
    const atStart = current.trim() === '';
    if (atStart && (ch === '\\' || (ch === '-' && sql[i + 1] === '-'))) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      current = '';
      continue;
    }
    // A dollar-quoted body ($$ ... $$, $fn$ ... $fn$) holds semicolons that end nothing.
    const dollar = ch === '$' ? /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64)) : null;
    if (dollar) {
      const close = sql.indexOf(dollar[0], i + dollar[0].length);
      const end = close === -1 ? sql.length : close + dollar[0].length;
      current += sql.slice(i, end);
      i = end - 1;
      continue;
    }
    if (ch === "'" || ch === '"') quoteChar = ch;
    if (ch === ';') {
      statements.push(current.trim());
      current = '';
      continue;
    }
    current += ch;
  }
  if (current.trim() !== '') statements.push(current.trim());
  return statements;
}
