-- Usernames are unique whatever their case: `Alice`, `alice` and `ALICE` are one account,
-- shown as first written. Usernames are ASCII (the edge refuses anything else), so lower()
-- is the same under every collation.
--
-- A database from before may hold names that differ only in case, each its own user with
-- its own orders. None is merged or dropped: the oldest (lowest id) keeps its name, and
-- each later one is renamed `<name>-<id>` (cut to fit 64 characters), which the unique index
-- below then accepts; signing in as the name reaches the oldest. (Should a renamed name be
-- taken already, the index refuses and the migration rolls back whole, to be resolved by
-- hand.)

UPDATE users AS later
SET username = left(later.username, 63 - length(later.id::text)) || '-' || later.id
WHERE EXISTS (
    SELECT 1 FROM users AS older
    WHERE lower(older.username) = lower(later.username) AND older.id < later.id
);

CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- The case-sensitive constraint is implied by the index above; keeping both would cost
-- every new user a second index entry.
ALTER TABLE users DROP CONSTRAINT users_username_key;
