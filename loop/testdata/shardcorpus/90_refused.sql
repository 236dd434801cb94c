-- Constructs belay cannot answer correctly: each must be refused with
-- 0A000, never answered (an answer could be right on these rows and wrong
-- on others).

-- construct: refused update of the key
-- refused
UPDATE customers SET id = 1000 WHERE id = 1;

-- refused
UPDATE accounts SET login = 'ada2' WHERE login = 'ada';

-- refused
UPDATE customers SET id = id + 1000;

-- construct: refused insert without its key
-- refused
INSERT INTO customers (name) VALUES ('nokey');

-- refused
INSERT INTO events VALUES (70, 'nocols', NULL, 1);

-- refused
INSERT INTO customers (id, name) VALUES ((SELECT 71), 'subq');

-- refused
INSERT INTO customers (id, name) SELECT id + 100, name FROM customers WHERE id = 1;

-- refused
INSERT INTO events (id, kind) SELECT 80 + id, 'copy' FROM products;

-- construct: refused write of a reference table from a sharded one
-- refused
INSERT INTO regions (code, name, zone) SELECT 'x' || id, name, 1 FROM customers WHERE id = 1;

-- refused
UPDATE products SET price = price + 1 WHERE id IN (SELECT product_id FROM orders);

-- refused
DELETE FROM regions WHERE code NOT IN (SELECT region FROM customers WHERE region IS NOT NULL);

-- construct: refused join of sharded tables not on keys
-- refused
SELECT o.id, a.login FROM orders o JOIN accounts a ON a.customer_id = o.customer_id;

-- refused
SELECT a.login FROM accounts a WHERE a.customer_id IN (SELECT id FROM customers WHERE tier = 3);

-- refused
SELECT d.device_id FROM devices d WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.login = d.owner);

-- refused
UPDATE accounts SET plan = 'vip' WHERE customer_id IN (SELECT id FROM customers WHERE balance > 1000);

-- refused
DELETE FROM devices WHERE owner IN (SELECT login FROM accounts WHERE plan = 'free');

-- refused
SELECT count(*) FROM customers c, events e WHERE e.id = c.tier;

-- construct: refused table outside the schema
-- refused
SELECT * FROM big_customers;

-- refused
INSERT INTO scratch_unknown (id) VALUES (1);

-- construct: refused locking read
-- refused
SELECT id FROM customers WHERE tier = 1 FOR UPDATE;

-- construct: refused volatile write
-- refused
SELECT pg_advisory_xact_lock(1), id FROM customers;

-- construct: refused function that may write
-- refused
SELECT setval('no_such_seq', 1);

-- construct: refused COPY TO of a sharded table
-- refused
COPY customers TO STDOUT;

-- construct: refused cursor over a sharded table
-- refused
DECLARE c CURSOR WITH HOLD FOR SELECT id FROM customers;

-- must
FETCH ALL FROM c;

-- must
CLOSE c;

-- construct: refused SQL PREPARE over a sharded table
-- refused
PREPARE by_tier(int4) AS SELECT id FROM customers WHERE tier = $1;

-- must
EXECUTE by_tier(2);

-- refused
PREPARE by_id(int8) AS SELECT id, name FROM customers WHERE id = $1;

-- must
EXECUTE by_id(3);

-- must
EXECUTE by_id(12);

-- construct: CREATE TABLE AS over a sharded table
-- refused
CREATE TABLE customers_copy AS SELECT id, name FROM customers;

-- refused
CREATE MATERIALIZED VIEW upper_tiers AS SELECT id, tier FROM customers WHERE tier > 1;

-- construct: truncate
-- must
TRUNCATE events;

-- must
SELECT count(*) FROM events;

-- must
TRUNCATE regions;

-- must
SELECT count(*) FROM regions;
