-- CS Arena's schema: players, their statistics and tiers, the question bank with its
-- categories and embeddings, and the matches -> rounds -> answers history that dominates its size.

-- uuid-ossp is part of a standard PostgreSQL build but missing from some bundles (the local
-- stack's): create it where it exists. Nothing here depends on it; ids use gen_random_uuid().
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp') THEN
    CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
  END IF;
END
$$;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tiers (
  id          smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  min_points  integer NOT NULL,
  max_points  integer,
  icon_url    text,
  CHECK (max_points IS NULL OR max_points > min_points)
);

CREATE TABLE users (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  public_id       uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  email           text NOT NULL UNIQUE,
  nickname        text NOT NULL,
  oauth_provider  text NOT NULL CHECK (oauth_provider IN ('google', 'github', 'kakao')),
  oauth_subject   text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (oauth_provider, oauth_subject)
);

CREATE TABLE user_statistics (
  user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  win_count   integer NOT NULL DEFAULT 0,
  lose_count  integer NOT NULL DEFAULT 0,
  draw_count  integer NOT NULL DEFAULT 0,
  tier_point  integer NOT NULL DEFAULT 0,
  exp_point   integer NOT NULL DEFAULT 0,
  tier_id     smallint REFERENCES tiers (id),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE categories (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  parent_id  integer REFERENCES categories (id),
  name       text NOT NULL,
  UNIQUE (parent_id, name)
);

CREATE TABLE questions (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  content     text NOT NULL,
  type        text NOT NULL CHECK (type IN ('multiple_choice', 'short_answer', 'essay')),
  answer      text NOT NULL,
  difficulty  smallint NOT NULL CHECK (difficulty BETWEEN 1 AND 5),
  embedding   vector(1536),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX questions_content_trgm ON questions USING gin (content gin_trgm_ops);

CREATE TABLE question_categories (
  question_id  bigint NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
  category_id  integer NOT NULL REFERENCES categories (id),
  PRIMARY KEY (question_id, category_id)
);
CREATE INDEX question_categories_category ON question_categories (category_id);

CREATE TABLE matches (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  player1_id   bigint NOT NULL REFERENCES users (id),
  player2_id   bigint NOT NULL REFERENCES users (id),
  winner_id    bigint REFERENCES users (id),
  type         text NOT NULL CHECK (type IN ('ranked', 'casual', 'friendly')),
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz,
  CHECK (player1_id <> player2_id)
);
CREATE INDEX matches_player1 ON matches (player1_id);
CREATE INDEX matches_player2 ON matches (player2_id);

CREATE TABLE rounds (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  match_id     bigint NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
  round_no     smallint NOT NULL,
  question_id  bigint NOT NULL REFERENCES questions (id),
  UNIQUE (match_id, round_no)
);

CREATE TABLE round_answers (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  round_id         bigint NOT NULL REFERENCES rounds (id) ON DELETE CASCADE,
  user_id          bigint NOT NULL REFERENCES users (id),
  user_answer      text,
  score            smallint NOT NULL DEFAULT 0,
  ai_feedback      text,
  grading_status   text NOT NULL CHECK (grading_status IN ('pending', 'graded', 'failed')),
  grading_model    text,
  graded_at        timestamptz,
  answered_at      timestamptz NOT NULL,
  UNIQUE (round_id, user_id)
);
CREATE INDEX round_answers_user ON round_answers (user_id);

CREATE TABLE user_problem_banks (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  question_id    bigint NOT NULL REFERENCES questions (id),
  is_bookmarked  boolean NOT NULL DEFAULT false,
  user_answer    text,
  ai_feedback    text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, question_id)
);
