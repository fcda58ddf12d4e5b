-- Shoppers who sign in through the shop's own login (a JSON Web Token from its identity
-- provider) are known by the token's subject (`sub`), not by a name they typed: one user per
-- subject. Users of the demo login have none, and the demo login refuses a name that belongs
-- to a shop account.

ALTER TABLE users ADD COLUMN subject text;

CREATE UNIQUE INDEX users_subject ON users (subject) WHERE subject IS NOT NULL;
