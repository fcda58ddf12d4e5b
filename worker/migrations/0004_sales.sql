-- Many sales at once (issue 11): which sales exist, and which products each one sells.
--
-- A product is in at most one sale: the engine keeps each sale's units apart, and the books
-- balance per product (PostgreSQL stock = available + held + pending in the one sale that
-- sells it). A product in no row here is in the default sale (the edge's and the tools'
-- FLASH_SALE): a database from before this migration keeps working unchanged.

CREATE TABLE sales (
    -- The engine's sale name (its keys are flash:{name}:…): a token of 1 to 64 characters.
    name TEXT PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._:@-]{1,64}$'),
    -- What shoppers see when they pick a sale.
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sale_products (
    sale TEXT NOT NULL REFERENCES sales (name),
    product_id BIGINT NOT NULL REFERENCES products (id),
    PRIMARY KEY (sale, product_id),
    -- One sale per product.
    UNIQUE (product_id)
);
