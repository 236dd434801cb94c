-- Writes without a key (every shard), reference writes, DDL.

-- construct: update without key
-- must
UPDATE customers SET balance = balance + 1 WHERE tier = 3;

-- must
UPDATE orders SET status = 'archived' WHERE status = 'cancelled';

-- must
UPDATE accounts SET plan = 'free' WHERE plan IS NULL;

-- must
UPDATE devices SET seen = 0 WHERE seen IS NULL;

-- must
UPDATE events SET weight = weight * 2;

-- must
UPDATE customers SET region = 'c' WHERE region IS NULL;

-- must
UPDATE customers SET tier = 9 WHERE id > 10000;

-- must
UPDATE orders SET amount = round(amount * 1.05, 2) WHERE product_id IN (SELECT id FROM products WHERE price < 5);

-- must
UPDATE customers c SET joined = '2022-12-31' FROM regions r WHERE r.code = c.region AND r.zone = 3 AND c.joined IS NULL;

UPDATE customers SET tier = tier + 1 WHERE tier = 1 RETURNING id, tier;

-- must
-- params: paid
UPDATE orders SET qty = qty WHERE status = $1;

-- must
SELECT id, tier, balance, region, joined FROM customers;

-- must
SELECT customer_id, id, status, amount FROM orders;

-- construct: delete without key
-- must
DELETE FROM events WHERE kind = 'test';

-- must
DELETE FROM orders WHERE status = 'archived';

-- must
DELETE FROM devices WHERE kind = 'watch';

-- must
DELETE FROM accounts WHERE logins = 0 AND plan = 'free';

-- must
DELETE FROM events WHERE id > 10000;

DELETE FROM events WHERE kind = 'logout' RETURNING id;

-- must
SELECT * FROM events;

-- must
SELECT login, plan, logins FROM accounts;

-- construct: reference write
-- must
UPDATE products SET price = price + 1 WHERE id = 2;

-- must
UPDATE regions SET zone = 4 WHERE code = 'c';

-- must
INSERT INTO products (id, name, price) VALUES (9, 'ingot', 55.00);

-- must
INSERT INTO products (id, name, price) VALUES (10, 'jack', 60.00), (11, 'knob', 2.20);

-- must
DELETE FROM products WHERE id = 11;

-- must
UPDATE products SET name = upper(name) WHERE price > 50;

-- must
DELETE FROM regions WHERE code = 'zz';

INSERT INTO products (id, name, price) VALUES (12, 'lever', 4.00) RETURNING id, name;

-- must
-- params: 13 | mallet
INSERT INTO products (id, name, price) VALUES ($1, $2, 9.00);

INSERT INTO regions (code, name, zone) SELECT DISTINCT region || '2', 'copy', 9 FROM customers WHERE region IS NOT NULL;

-- must
-- ordered
SELECT id, name, price FROM products ORDER BY id;

-- must
-- ordered
SELECT * FROM regions ORDER BY code;

-- construct: DDL create index
-- must
CREATE INDEX customers_region ON customers (region);

-- must
CREATE INDEX orders_status ON orders (status) WHERE status <> 'paid';

-- must
CREATE UNIQUE INDEX accounts_customer ON accounts (login, customer_id);

-- must
CREATE INDEX IF NOT EXISTS customers_region ON customers (region);

-- must
CREATE INDEX products_name ON products (lower(name));

-- must
SELECT count(*) FROM pg_indexes WHERE tablename IN ('customers', 'orders', 'accounts', 'products');

-- construct: DDL alter table
-- must
ALTER TABLE customers ADD COLUMN email text;

-- must
ALTER TABLE customers ADD COLUMN vip boolean NOT NULL DEFAULT false;

-- must
ALTER TABLE orders ADD COLUMN note text DEFAULT 'none';

-- must
ALTER TABLE regions ADD COLUMN active boolean DEFAULT true;

-- must
ALTER TABLE events ALTER COLUMN payload SET DEFAULT 'empty';

-- must
ALTER TABLE devices RENAME COLUMN seen TO seen_count;

-- must
COMMENT ON TABLE customers IS 'the customers, sharded by id';

-- must
CREATE TABLE scratch (id int4 PRIMARY KEY, v text);

-- must
DROP TABLE scratch;

-- must
CREATE VIEW big_customers AS SELECT id, name FROM customers WHERE balance > 500;

-- must
UPDATE customers SET email = lower(name) || '@example.com' WHERE id = 1;

-- must
UPDATE customers SET vip = true WHERE balance > 1000;

-- must
SELECT id, name, email, vip FROM customers;

-- must
SELECT customer_id, id, note FROM orders WHERE customer_id = 10;

-- must
INSERT INTO orders (customer_id, id, qty, amount) VALUES (10, 1004, 1, 5.00) RETURNING note, status;

-- must
INSERT INTO events (id, kind) VALUES (15, 'view') RETURNING payload;

-- must
SELECT code, active FROM regions;

-- must
SELECT device_id, seen_count FROM devices WHERE device_id = 'a0000000-0000-4000-8000-000000000001';

-- must
SELECT count(*) FROM customers WHERE vip;

-- construct: DDL error
-- must
-- error 42P07
CREATE TABLE customers (id int8);

-- must
-- error 42701
ALTER TABLE customers ADD COLUMN email text;

-- must
-- error 42P01
ALTER TABLE nowhere ADD COLUMN x int;

-- must
-- error 42704
DROP INDEX no_such_index;

-- construct: maintenance outside a transaction
-- must
CREATE INDEX CONCURRENTLY customers_joined ON customers (joined);

-- must
VACUUM ANALYZE customers;

-- must
-- error 42P07
CREATE INDEX CONCURRENTLY customers_joined ON customers (joined);

-- must
DROP INDEX CONCURRENTLY customers_joined;

-- construct: insert rows spanning shards
-- (keys 140 and 142 are on shard 0 of 2, 145, 147 and 159 on shard 1; on 4
-- shards they are on shards 2, 0, 1, 3 and 3)
-- must
INSERT INTO events (id, kind, weight) VALUES (140, 'split', 1), (145, 'split', 2), (147, 'split', 3), (142, 'split', 4), (159, 'split', 5);

-- must
SELECT id, kind, weight FROM events WHERE kind = 'split';

-- must
INSERT INTO customers (id, name, region, tier) VALUES (140, 'Split A', 'n', 2), (145, 'Split B', NULL, 3), (142, 'It''s C', 's', DEFAULT)
    ON CONFLICT (id) DO UPDATE SET name = excluded.name;

-- must
INSERT INTO customers (id, name) VALUES (140, 'Split A2'), (147, 'Split D')
    ON CONFLICT (id) DO UPDATE SET name = excluded.name;

-- must
SELECT id, name, region, tier FROM customers WHERE id BETWEEN 140 AND 159;

-- must
-- error 23505
INSERT INTO events (id, kind, weight) VALUES (148, 'split', 1), (151, 'split', 1), (140, 'dup', 1);

-- must
SELECT count(*), sum(weight) FROM events WHERE kind = 'split';

-- must
-- error 23502
INSERT INTO customers (id, name) VALUES (144, 'ok'), (148, NULL);

-- must
SELECT count(*) FROM customers WHERE id BETWEEN 140 AND 159;

-- must
-- ordered
INSERT INTO events (id, kind, weight) VALUES (149, 'split', 1), (154, 'split', 1) RETURNING id;

-- must
-- ordered
-- params: 160 | ext | 161
INSERT INTO events (id, kind, weight) VALUES ($1, $2, 1), ($3, $2, 2) RETURNING id;

-- must
-- params: ext
UPDATE events SET weight = weight WHERE kind = $1 RETURNING id, kind;

-- must
-- params: 150 | ext | 154
INSERT INTO events (id, kind, weight) VALUES ($1, $2, 1), ($3, $2, 2);

-- must
-- params: 148 | 140 | ext
-- error 23505
INSERT INTO events (id, kind, weight) VALUES ($1, $3, 1), ($2, $3, 1);

-- must
SELECT id, kind, weight FROM events WHERE kind = 'ext';

-- construct: write by key list spanning shards
-- must
UPDATE events SET weight = weight * 10 WHERE id IN (140, 142, 159);

-- must
DELETE FROM events WHERE id IN (145, 147);

-- must
SELECT id, weight FROM events WHERE kind = 'split';

-- must
SELECT id, weight FROM events WHERE id IN (140, 142, 145, 159);

-- must
DELETE FROM customers WHERE id IN (140, 142, 145, 147);

-- construct: writes for several shards with RETURNING
-- must
-- ordered
INSERT INTO events (id, kind, weight) VALUES (501, 'ret', 1), (502, 'ret', 2), (503, 'ret', 3), (504, 'ret', 4), (505, 'ret', 5) RETURNING id, weight;

-- must
UPDATE events SET weight = weight + 10 WHERE kind = 'ret' RETURNING id, weight;

-- must
INSERT INTO regions (code, name, zone) VALUES ('r1', 'Returned', 9) RETURNING code, zone;

-- must
DELETE FROM regions WHERE code = 'r1' RETURNING code;

-- must
-- ordered
INSERT INTO events (id, kind) VALUES (506, 'upsert'), (501, 'upsert'), (507, 'upsert') ON CONFLICT (id) DO UPDATE SET kind = excluded.kind RETURNING id, kind;

-- must
DELETE FROM events WHERE kind IN ('ret', 'upsert') RETURNING id;
