// A deterministic CS Arena data generator. Rows are computed inside PostgreSQL from their ids
// (hashint8extended, never random()), so the same scale always yields the same database, and
// nothing crosses the network but the statements. Scale 1 is about 100 MB on disk.
import type { Client } from 'pg';

export interface SeedCounts {
  users: number;
  questions: number;
  matches: number;
  problemBankEntries: number;
}

export const ROUNDS_PER_MATCH = 5;
const MATCH_CHUNK = 5_000;

export function seedCounts(scale: number): SeedCounts {
  const at = (base: number) => Math.max(10, Math.round(base * scale));
  return { users: at(20_000), questions: at(5_000), matches: at(20_000), problemBankEntries: at(30_000) };
}

export interface SeedProgress {
  matchesDone: number;
  matchesTotal: number;
  bytesWritten: number;
  elapsedMs: number;
}

// h(id, salt) -> a stable non-negative bigint; pick(arr, id, salt) -> one element of arr.
const HELPERS = `
CREATE FUNCTION pg_temp.h(id bigint, salt bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS $$ SELECT abs(hashint8extended(id, salt)) $$;
CREATE FUNCTION pg_temp.pick(choices text[], id bigint, salt bigint) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$ SELECT choices[1 + pg_temp.h(id, salt) % array_length(choices, 1)] $$;
`;

const KO_TOPICS = `ARRAY['프로세스와 스레드','교착 상태','가상 메모리','페이지 교체','TCP 3-way handshake','해시 테이블','B+트리 인덱스',
  '트랜잭션 격리 수준','정규화','힙 정렬','동적 계획법','캐시 지역성','HTTP/2 멀티플렉싱','DNS 조회','뮤텍스와 세마포어','가비지 컬렉션']`;
const EN_TOPICS = `ARRAY['process vs thread','deadlock','virtual memory','page replacement','the TCP handshake','hash tables',
  'B+ tree indexes','transaction isolation','normalization','heap sort','dynamic programming','cache locality',
  'HTTP/2 multiplexing','DNS resolution','mutexes and semaphores','garbage collection']`;
const KO_FEEDBACK = `ARRAY['핵심 개념은 정확하지만 예시가 부족합니다. ','시간 복잡도 분석이 빠졌습니다. ','정의는 맞지만 장단점 비교가 필요합니다. ',
  '용어를 혼동했습니다: 동시성과 병렬성은 다릅니다. ','훌륭한 답변입니다! 👍 ','부분 점수: 두 번째 조건을 놓쳤습니다. ']`;
const EN_FEEDBACK = `ARRAY['Correct core idea, but no example given. ','The complexity analysis is missing. ',
  'Right definition; compare the trade-offs too. ','Mixes up concurrency and parallelism. ','Excellent answer! 🎉 ',
  'Partial credit: the second condition was missed. ']`;

function seedReferenceData(counts: SeedCounts): string[] {
  return [
    `INSERT INTO tiers (name, min_points, max_points, icon_url) VALUES
       ('Bronze', 0, 1000, 'https://cdn.cs-arena.dev/tiers/bronze.png'),
       ('Silver', 1000, 2000, 'https://cdn.cs-arena.dev/tiers/silver.png'),
       ('Gold', 2000, 3000, 'https://cdn.cs-arena.dev/tiers/gold.png'),
       ('Platinum', 3000, 4000, 'https://cdn.cs-arena.dev/tiers/platinum.png'),
       ('Diamond', 4000, 5000, 'https://cdn.cs-arena.dev/tiers/diamond.png'),
       ('Master', 5000, NULL, NULL)`,
    `INSERT INTO categories (name) SELECT unnest(ARRAY['운영체제','네트워크','데이터베이스','자료구조','알고리즘','컴퓨터구조','보안','소프트웨어공학'])`,
    `INSERT INTO categories (parent_id, name)
       SELECT p.id, p.name || ' · ' || s FROM categories p, unnest(ARRAY['기초','심화','면접']) s WHERE p.parent_id IS NULL`,
    `INSERT INTO users (email, nickname, oauth_provider, oauth_subject, created_at, public_id)
       SELECT 'player' || i || '@cs-arena.dev',
              CASE WHEN pg_temp.h(i, 1) % 3 = 0 THEN '코딩왕' || i
                   WHEN pg_temp.h(i, 1) % 3 = 1 THEN 'byte_' || i
                   ELSE '⚡' || i END,
              (ARRAY['google','github','kakao'])[1 + pg_temp.h(i, 2) % 3],
              md5(i::text),
              timestamptz '2025-01-01' + (pg_temp.h(i, 3) % 31536000) * interval '1 second',
              md5('user' || i)::uuid
         FROM generate_series(1, ${counts.users}) i`,
    `INSERT INTO questions (content, type, answer, difficulty, created_at, updated_at)
       SELECT CASE WHEN pg_temp.h(i, 4) % 2 = 0
                   THEN pg_temp.pick(${KO_TOPICS}, i, 5) || '에 대해 설명하고, 실제 시스템에서 어떤 문제가 생길 수 있는지 서술하시오. (#' || i || ')'
                   ELSE 'Explain ' || pg_temp.pick(${EN_TOPICS}, i, 5) || ' and describe where it fails in practice. (#' || i || ')'
              END || CASE WHEN pg_temp.h(i, 6) % 20 = 0 THEN repeat(' 조건: 시간 제한 1초, 메모리 256MB.', 40) ELSE '' END,
              (ARRAY['multiple_choice','short_answer','essay'])[1 + pg_temp.h(i, 7) % 3],
              'Answer #' || i || ': ' || pg_temp.pick(${EN_TOPICS}, i, 8),
              1 + pg_temp.h(i, 9) % 5,
              timestamptz '2025-01-01' + (i % 365) * interval '1 day',
              timestamptz '2025-01-01' + (i % 365) * interval '1 day'
         FROM generate_series(1, ${counts.questions}) i`,
    `INSERT INTO question_categories (question_id, category_id)
       SELECT q.id, c.id FROM questions q
         JOIN categories c ON c.id = 1 + pg_temp.h(q.id, 10) % (SELECT count(*) FROM categories)
                           OR (pg_temp.h(q.id, 11) % 3 = 0 AND c.id = 1 + pg_temp.h(q.id, 12) % (SELECT count(*) FROM categories))`,
    `INSERT INTO user_problem_banks (user_id, question_id, is_bookmarked, user_answer, ai_feedback, created_at)
       SELECT DISTINCT ON (u, q) u, q, pg_temp.h(i, 13) % 4 = 0,
              CASE WHEN pg_temp.h(i, 14) % 10 = 0 THEN NULL ELSE 'My answer about ' || pg_temp.pick(${EN_TOPICS}, i, 15) END,
              CASE WHEN pg_temp.h(i, 16) % 5 = 0 THEN NULL ELSE pg_temp.pick(${KO_FEEDBACK}, i, 17) END,
              timestamptz '2025-06-01' + i * interval '13 minutes'
         FROM generate_series(1, ${counts.problemBankEntries}) i,
              LATERAL (SELECT 1 + pg_temp.h(i, 18) % ${counts.users} AS u, 1 + pg_temp.h(i, 19) % ${counts.questions} AS q) pair
        ORDER BY u, q, i`,
  ];
}

/** Matches [first, last] with their rounds and both players' answers. Ids are derived, so chunks are independent. */
function seedMatchChunk(counts: SeedCounts, first: number, last: number): string[] {
  const r = ROUNDS_PER_MATCH;
  return [
    `INSERT INTO matches (id, player1_id, player2_id, winner_id, type, started_at, finished_at) OVERRIDING SYSTEM VALUE
       SELECT m, p1, p2,
              CASE pg_temp.h(m, 22) % 5 WHEN 0 THEN NULL WHEN 1 THEN p2 ELSE p1 END,
              (ARRAY['ranked','ranked','casual','friendly'])[1 + pg_temp.h(m, 23) % 4],
              timestamptz '2025-06-01' + m * interval '37 seconds',
              CASE WHEN pg_temp.h(m, 24) % 50 = 0 THEN NULL ELSE timestamptz '2025-06-01' + m * interval '37 seconds' + interval '6 minutes' END
         FROM generate_series(${first}, ${last}) m,
              LATERAL (SELECT 1 + pg_temp.h(m, 20) % ${counts.users} AS p1) a,
              LATERAL (SELECT 1 + (p1 + pg_temp.h(m, 21) % (${counts.users} - 1)) % ${counts.users} AS p2) b`,
    `INSERT INTO rounds (id, match_id, round_no, question_id) OVERRIDING SYSTEM VALUE
       SELECT (m - 1) * ${r} + n, m, n, 1 + pg_temp.h((m - 1) * ${r} + n, 25) % ${counts.questions}
         FROM generate_series(${first}, ${last}) m, generate_series(1, ${r}) n`,
    `INSERT INTO round_answers (id, round_id, user_id, user_answer, score, ai_feedback, grading_status, grading_model, graded_at, answered_at)
       OVERRIDING SYSTEM VALUE
       SELECT a, rd.id, CASE WHEN p = 1 THEN mt.player1_id ELSE mt.player2_id END,
              CASE WHEN pg_temp.h(a, 26) % 20 = 0 THEN NULL
                   WHEN pg_temp.h(a, 27) % 2 = 0 THEN pg_temp.pick(${KO_TOPICS}, a, 28) || '는 자원을 관리하는 방식의 차이입니다.'
                   ELSE 'It is about ' || pg_temp.pick(${EN_TOPICS}, a, 28) || ', mostly.' END,
              (pg_temp.h(a, 29) % 101)::smallint,
              CASE WHEN g.status = 'graded' THEN
                     pg_temp.pick(${KO_FEEDBACK}, a, 30) || pg_temp.pick(${EN_FEEDBACK}, a, 31)
                     || CASE WHEN pg_temp.h(a, 32) % 25 = 0 THEN repeat(pg_temp.pick(${KO_FEEDBACK}, a, 33), 12) ELSE '' END
                   ELSE NULL END,
              g.status,
              CASE WHEN g.status = 'pending' THEN NULL ELSE (ARRAY['gpt-4o-mini','gpt-4.1-mini'])[1 + pg_temp.h(a, 34) % 2] END,
              CASE WHEN g.status = 'graded' THEN mt.started_at + interval '7 minutes' END,
              mt.started_at + rd.round_no * interval '50 seconds'
         FROM matches mt
         JOIN rounds rd ON rd.match_id = mt.id
         CROSS JOIN generate_series(1, 2) p
         CROSS JOIN LATERAL (SELECT (rd.id - 1) * 2 + p AS a) ids
         CROSS JOIN LATERAL (SELECT CASE pg_temp.h(ids.a, 35) % 40 WHEN 0 THEN 'pending' WHEN 1 THEN 'failed' ELSE 'graded' END AS status) g
        WHERE mt.id BETWEEN ${first} AND ${last}`,
  ];
}

// Statistics follow from the matches, so they agree with them.
const USER_STATISTICS =
  `INSERT INTO user_statistics (user_id, win_count, lose_count, draw_count, tier_point, exp_point, tier_id, updated_at)
     SELECT u.id, coalesce(w.n, 0), coalesce(p.n, 0) - coalesce(w.n, 0) - coalesce(d.n, 0), coalesce(d.n, 0),
            least(5999, coalesce(w.n, 0) * 25), coalesce(p.n, 0) * 10,
            (SELECT t.id FROM tiers t WHERE least(5999, coalesce(w.n, 0) * 25) >= t.min_points ORDER BY t.min_points DESC LIMIT 1),
            timestamptz '2026-01-01'
       FROM users u
       LEFT JOIN (SELECT winner_id AS id, count(*) AS n FROM matches WHERE winner_id IS NOT NULL GROUP BY 1) w USING (id)
       LEFT JOIN (SELECT x AS id, count(*) AS n FROM matches, LATERAL (VALUES (player1_id), (player2_id)) v(x) GROUP BY 1) p USING (id)
       LEFT JOIN (SELECT x AS id, count(*) AS n FROM matches, LATERAL (VALUES (player1_id), (player2_id)) v(x) WHERE winner_id IS NULL GROUP BY 1) d USING (id)`;

const SEQUENCED_TABLES = ['matches', 'rounds', 'round_answers'];

export class SeedRefused extends Error {
  override name = 'SeedRefused';
}

export async function seed(
  client: Client,
  options: { scale: number; reset?: boolean; ifEmpty?: boolean; onProgress?: (p: SeedProgress) => void },
): Promise<(SeedCounts & { bytes: number; elapsedMs: number }) | undefined> {
  if (!(options.scale > 0)) throw new SeedRefused(`--scale must be a positive number, got ${options.scale}`);
  const counts = seedCounts(options.scale);
  const existing = Number((await client.query('SELECT count(*) AS n FROM users')).rows[0].n);
  if (existing > 0 && options.ifEmpty && !options.reset) return undefined; // already seeded: left as it is
  if (existing > 0 && !options.reset) {
    throw new SeedRefused(`the database already holds ${existing} users; pass --reset to replace its CS Arena data`);
  }
  const started = Date.now();
  const sizeNow = async () => Number((await client.query('SELECT pg_database_size(current_database()) AS b')).rows[0].b);
  if (options.reset) {
    await client.query(
      'TRUNCATE tiers, users, user_statistics, categories, questions, question_categories, matches, rounds, round_answers, user_problem_banks RESTART IDENTITY',
    );
  }
  const startSize = await sizeNow();
  // The generator's ids are consistent by construction; skipping per-row foreign-key triggers
  // roughly doubles its speed. Only a superuser may, so others simply pay for the checks.
  await client.query('SET session_replication_role = replica').catch(() => undefined);
  await client.query(HELPERS);
  for (const sql of seedReferenceData(counts)) await client.query(sql);
  for (let first = 1; first <= counts.matches; first += MATCH_CHUNK) {
    const last = Math.min(counts.matches, first + MATCH_CHUNK - 1);
    await client.query('BEGIN');
    for (const sql of seedMatchChunk(counts, first, last)) await client.query(sql);
    await client.query('COMMIT');
    options.onProgress?.({
      matchesDone: last,
      matchesTotal: counts.matches,
      bytesWritten: (await sizeNow()) - startSize,
      elapsedMs: Date.now() - started,
    });
  }
  await client.query(USER_STATISTICS);
  for (const table of SEQUENCED_TABLES) {
    await client.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT coalesce(max(id), 0) + 1 FROM ${table}), false)`, [
      table,
    ]);
  }
  await client.query('RESET session_replication_role');
  await client.query('DROP FUNCTION pg_temp.pick(text[], bigint, bigint), pg_temp.h(bigint, bigint)');
  await client.query('ANALYZE');
  return { ...counts, bytes: (await sizeNow()) - startSize, elapsedMs: Date.now() - started };
}
