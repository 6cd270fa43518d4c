// The CS Arena schema and its deterministic generator, on the real primary.
import type { Client } from 'pg';
import { migrate, migrationFiles } from '../src/db/migrate';
import { seed, seedCounts, SeedRefused, ROUNDS_PER_MATCH } from '../src/db/seed';
import { withScratchDatabase } from './support/scratchDatabase';
import { stackConfig } from './support/stack';

const TABLES = ['tiers', 'users', 'user_statistics', 'categories', 'questions', 'question_categories', 'matches', 'rounds', 'round_answers', 'user_problem_banks'];

/** Row count and an order-independent content digest per table. */
async function fingerprint(db: Client): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const table of TABLES) {
    const { rows } = await db.query(
      `SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '-') AS f FROM ${table} t`,
    );
    result[table] = rows[0].f;
  }
  return result;
}

const SCALE = 0.02;

describe('CS Arena database', () => {
  const primary = stackConfig().targets.primary;

  test('migrations create the schema with pgvector and apply only once', async () => {
    await withScratchDatabase(primary, async (db) => {
      expect(await migrate(db)).toEqual(migrationFiles());
      expect(await migrate(db)).toEqual([]);
      const { rows } = await db.query(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'questions'::regclass AND attname = 'embedding'`,
      );
      expect(rows[0].type).toBe('vector(1536)');
      const ext = await db.query(`SELECT extname FROM pg_extension WHERE extname IN ('vector', 'pg_trgm') ORDER BY 1`);
      expect(ext.rows.map((r) => r.extname)).toEqual(['pg_trgm', 'vector']);
    });
  });

  test('the same scale always generates the same data, shaped like the game', async () => {
    const progress: number[] = [];
    const first = await withScratchDatabase(primary, async (db) => {
      await migrate(db);
      const result = await seed(db, { scale: SCALE, onProgress: (p) => progress.push(p.matchesDone) });
      const counts = seedCounts(SCALE);
      expect(result).toMatchObject(counts);
      const print = await fingerprint(db);
      expect(print.matches).toMatch(new RegExp(`^${counts.matches}:`));
      expect(print.rounds).toMatch(new RegExp(`^${counts.matches * ROUNDS_PER_MATCH}:`));
      expect(print.round_answers).toMatch(new RegExp(`^${counts.matches * ROUNDS_PER_MATCH * 2}:`));
      const shape = await db.query(`SELECT
          (SELECT count(*) FROM round_answers WHERE user_answer IS NULL) AS null_answers,
          (SELECT count(*) FROM questions WHERE content ~ '[가-힣]') AS korean_questions,
          (SELECT count(*) FROM questions WHERE content !~ '[가-힣]') AS english_questions,
          (SELECT max(length(ai_feedback)) FROM round_answers) AS longest_feedback,
          (SELECT count(*) FROM users u JOIN user_statistics s ON s.user_id = u.id) AS users_with_stats,
          (SELECT count(*) FROM matches m WHERE m.winner_id NOT IN (m.player1_id, m.player2_id)) AS foreign_winners`);
      const s = shape.rows[0];
      expect(Number(s.null_answers)).toBeGreaterThan(0);
      expect(Number(s.korean_questions)).toBeGreaterThan(0);
      expect(Number(s.english_questions)).toBeGreaterThan(0);
      expect(Number(s.longest_feedback)).toBeGreaterThan(300);
      expect(Number(s.users_with_stats)).toBe(counts.users);
      expect(Number(s.foreign_winners)).toBe(0);
      return print;
    });
    const second = await withScratchDatabase(primary, async (db) => {
      await migrate(db);
      await seed(db, { scale: SCALE });
      return fingerprint(db);
    });
    expect(second).toEqual(first);
    expect(progress.at(-1)).toBe(seedCounts(SCALE).matches);
  });

  test('seeding refuses to mix into existing data unless told to reset', async () => {
    await withScratchDatabase(primary, async (db) => {
      await migrate(db);
      await seed(db, { scale: 0.001 });
      await expect(seed(db, { scale: 0.001 })).rejects.toThrow(
        new SeedRefused('the database already holds 20 users; pass --reset to replace its CS Arena data'),
      );
      await expect(seed(db, { scale: 0.001, ifEmpty: true })).resolves.toBeUndefined();
      await expect(seed(db, { scale: 0.001, reset: true })).resolves.toMatchObject({ users: 20 });
      await expect(seed(db, { scale: 0 })).rejects.toThrow('--scale must be a positive number, got 0');
    });
  });
});
