-- Run by the postgres image once, when its data volume is first initialized. The image creates
-- the `temporal` database itself (the database named after POSTGRES_USER); Temporal's visibility
-- store needs a second one. Creating it here, not with `temporal-sql-tool create`, keeps the
-- schema job idempotent: CREATE DATABASE has no IF NOT EXISTS in PostgreSQL.
CREATE DATABASE temporal_visibility;
