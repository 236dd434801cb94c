-- Statements whose key is fixed: they run on one shard.

-- construct: key = const
-- must
SELECT id, name, region, tier, balance, joined FROM customers WHERE id = 1;

-- must
SELECT * FROM customers WHERE id = 7;

-- must
SELECT name FROM customers WHERE 12 = id;

-- must
SELECT name, balance * 2 AS twice FROM customers WHERE id = 20 AND tier = 3;

-- must
SELECT count(*) FROM customers WHERE id = 22;

-- must
SELECT * FROM customers WHERE id = 999;

-- must
SELECT count(*), sum(balance) FROM customers WHERE id = 999;

-- must
SELECT id, name FROM customers WHERE id = 5 AND name LIKE 'E%';

-- must
-- ordered
SELECT id, product_id, qty, amount, status FROM orders WHERE customer_id = 4 ORDER BY id;

-- must
-- ordered
SELECT id, amount FROM orders WHERE customer_id = 10 ORDER BY amount DESC LIMIT 2;

-- must
SELECT status, count(*), sum(amount) FROM orders WHERE customer_id = 4 GROUP BY status;

-- must
SELECT avg(amount), max(qty) FROM orders WHERE customer_id = 10;

-- must
SELECT DISTINCT status FROM orders WHERE customer_id = 1;

-- must
SELECT * FROM orders WHERE customer_id = 13 AND amount IS NULL;

-- must
SELECT login, plan, logins FROM accounts WHERE login = 'ada';

-- must
SELECT * FROM accounts WHERE login = 'nobody';

-- must
SELECT login, logins + 1 FROM accounts WHERE login = 'jon' AND logins > 10;

-- must
SELECT * FROM devices WHERE device_id = 'a0000000-0000-4000-8000-000000000001';

-- must
SELECT owner, kind FROM devices WHERE device_id = 'A0000000-0000-4000-8000-000000000005';

-- must
SELECT kind FROM devices WHERE device_id = 'a0000000000040008000000000000008';

-- must
SELECT * FROM devices WHERE device_id = 'a0000000-0000-4000-8000-0000000000ff';

-- must
SELECT * FROM events WHERE id = 3;

-- must
SELECT kind, payload FROM events WHERE id = 6;

-- must
SELECT c.name, c.id FROM customers c WHERE c.id = 8;

-- must
SELECT name FROM public.customers WHERE id = 9;

-- must
SELECT id, name FROM customers WHERE id = 3::int8;

-- construct: key = $n
-- must
-- params: 1
SELECT id, name, balance FROM customers WHERE id = $1;

-- must
-- params: 2
SELECT id, name, balance FROM customers WHERE id = $1;

-- must
-- params: 27
SELECT id, name, balance FROM customers WHERE id = $1;

-- must
-- params: 999
SELECT id, name, balance FROM customers WHERE id = $1;

-- must
-- params: 10 | 2
-- ordered
SELECT id, amount FROM orders WHERE customer_id = $1 AND qty > $2 ORDER BY id;

-- must
-- params: 4 | paid
SELECT count(*) FROM orders WHERE customer_id = $1 AND status = $2;

-- must
-- params: kim
SELECT login, plan FROM accounts WHERE login = $1;

-- must
-- params: xena
SELECT login, plan FROM accounts WHERE login = $1;

-- must
-- params: a0000000-0000-4000-8000-000000000004
SELECT owner, kind, seen FROM devices WHERE device_id = $1;

-- must
-- params: 5
-- prepared
SELECT name, region FROM customers WHERE id = $1;

-- must
-- params: 6
-- prepared
SELECT name, region FROM customers WHERE id = $1;

-- must
-- params: fay
-- prepared
SELECT login, logins FROM accounts WHERE login = $1;

-- must
-- params: a0000000-0000-4000-8000-00000000000a
-- prepared
SELECT owner FROM devices WHERE device_id = $1;

-- must
-- params: 18 | 1
SELECT name FROM customers WHERE id = $1 AND tier = $2;

-- must
-- params: NULL
SELECT name FROM customers WHERE id = $1;

-- construct: key IN (...) one shard
-- must
SELECT id, name FROM customers WHERE id IN (17, 26, 28, 30);

-- must
SELECT id, name FROM customers WHERE id IN (19, 20, 21) AND tier > 1;

-- must
SELECT login FROM accounts WHERE login IN ('jon', 'lea', 'ned');

-- must
SELECT device_id, owner FROM devices WHERE device_id IN ('a0000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000003');

-- must
SELECT customer_id, id, amount FROM orders WHERE customer_id IN (18, 25, 27);

-- must
-- params: 22 | 24
SELECT id, name FROM customers WHERE id IN ($1, $2);

-- must
SELECT count(*) FROM customers WHERE id IN (14, 17);

-- construct: key IN (...) spanning shards
-- must
SELECT id, name FROM customers WHERE id IN (1, 2, 3, 4);

-- must
SELECT id, name, tier FROM customers WHERE id IN (5, 6, 7, 8, 9, 10) AND tier = 2;

-- must
SELECT login, plan FROM accounts WHERE login IN ('ada', 'eve', 'kim', 'jon');

-- must
SELECT device_id, kind FROM devices WHERE device_id IN ('a0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000005', 'a0000000-0000-4000-8000-00000000000b');

-- must
SELECT customer_id, id FROM orders WHERE customer_id IN (1, 2, 3, 4, 5) AND status = 'paid';

-- must
SELECT id FROM customers WHERE id IN (1, 2, 3, 4, 999, 1000);

-- must
SELECT count(*) FROM customers WHERE id IN (1, 2, 3, 4);

-- must
SELECT sum(amount) FROM orders WHERE customer_id IN (1, 2, 4, 10);

-- must
-- params: 1 | 2 | 3
SELECT id, name FROM customers WHERE id IN ($1, $2, $3);

-- ordered
-- must
SELECT id, name FROM customers WHERE id IN (10, 11, 12, 13) ORDER BY id;

-- construct: key = ANY
-- must
SELECT id, name FROM customers WHERE id = ANY ('{1,2,3}');

-- must
SELECT id, name FROM customers WHERE id = ANY (ARRAY[14, 17]);

-- construct: update by key
-- must
UPDATE customers SET balance = balance + 10 WHERE id = 1;

-- must
UPDATE customers SET tier = 2, region = 'c' WHERE id = 9;

-- must
UPDATE customers SET balance = 0 WHERE id = 999;

-- must
UPDATE orders SET status = 'shipped' WHERE customer_id = 1 AND id = 103;

-- must
UPDATE orders SET amount = amount * 2 WHERE customer_id = 4 AND status = 'paid';

-- must
UPDATE accounts SET logins = logins + 1 WHERE login = 'ada';

-- must
UPDATE devices SET seen = coalesce(seen, 0) + 1 WHERE device_id = 'a0000000-0000-4000-8000-000000000008';

-- must
-- params: 500.00 | 2
UPDATE customers SET balance = $1 WHERE id = $2;

-- must
-- params: 3 | dee
UPDATE accounts SET logins = $1 WHERE login = $2;

-- must
UPDATE customers SET name = name || '!' WHERE id IN (19, 20, 21);

-- must
UPDATE customers SET balance = balance + 1 WHERE id = 3 RETURNING id, balance;

-- must
UPDATE orders SET qty = qty + 1 WHERE customer_id = 5 RETURNING id, qty;

-- construct: update by key spanning shards
-- must
UPDATE customers SET tier = tier + 0 WHERE id IN (1, 2, 3);

-- construct: delete by key
-- must
DELETE FROM events WHERE id = 6;

-- must
DELETE FROM orders WHERE customer_id = 4 AND id = 403;

-- must
DELETE FROM orders WHERE customer_id = 999;

-- must
-- params: 13 | 1302
DELETE FROM orders WHERE customer_id = $1 AND id = $2;

-- must
DELETE FROM accounts WHERE login = 'cyd' RETURNING login, plan;

-- must
-- ordered
SELECT id, status, amount FROM orders WHERE customer_id = 4 ORDER BY id;

-- must
SELECT id, name, tier, region, balance FROM customers WHERE id IN (1, 2, 3, 9);

-- construct: insert returning
-- must
-- params: 39 | Lou | n
INSERT INTO customers (id, name, region) VALUES ($1, $2, $3) RETURNING id, name, tier, balance;

-- must
-- params: 40 | Meg
-- prepared
INSERT INTO customers (id, name) VALUES ($1, $2) RETURNING id, name;

-- must
-- params: 41 | Ned
-- prepared
INSERT INTO customers (id, name) VALUES ($1, $2) RETURNING id, name;

-- must
-- params: oli | 41
INSERT INTO accounts (login, customer_id) VALUES ($1, $2) RETURNING login, plan, logins;

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount) VALUES (39, 3901, 3, 2, 29.00) RETURNING customer_id, id, status;

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (12, 'buy', 'order 3901', 10), (16, 'click', 'faq', 1) RETURNING id, kind;

-- construct: insert rows spanning shards
INSERT INTO events (id, kind, payload, weight) VALUES (8, 'login', 'cyd', 1), (9, 'click', 'home', 2), (10, 'buy', 'order 3', 5) RETURNING id;

-- construct: insert one row
-- must
-- params: 11 | click | NULL | 4
INSERT INTO events (id, kind, payload, weight) VALUES ($1, $2, $3, $4);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (13, 'click', 'search', 2);

-- must
INSERT INTO events (id, kind, weight) VALUES (14, 'login', 1);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (-3, 'test', 'negative key', 0);

-- must
SELECT * FROM events WHERE id = -3;

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (42, 'Ola', 'e', 2, 42.42, '2024-10-01');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (43, 'Pax', 'w', 1, 43.00, '2024-10-02');
