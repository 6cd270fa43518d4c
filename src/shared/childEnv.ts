// What a child process (a PostgreSQL tool, the postmaster pg_ctl starts, an operator's hook) may
// see of the worker's environment. The worker holds the S3 secret, the embeddings API key and every
// target's URL; a child that inherited them all would hand them to whatever it runs in turn.

/** Where to find programs, whose home and temp dir, the locale and the time zone; libpq's TLS file paths. */
const PASSED_THROUGH = ['PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'PGSSLMODE', 'PGSSLROOTCERT'];

/** The passed-through variables of the worker's environment, plus `own`: all a child gets (run it with extendEnv: false). */
export function childEnv(own: Record<string, string | undefined> = {}, worker: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSED_THROUGH) {
    const value = worker[name];
    if (value !== undefined) env[name] = value;
  }
  for (const [name, value] of Object.entries(own)) {
    if (value !== undefined) env[name] = value;
  }
  return env;
}
