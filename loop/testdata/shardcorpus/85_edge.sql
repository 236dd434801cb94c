-- Edge cases of keys, placement and merges.

-- construct: key literal forms
-- must
SELECT id, name FROM customers WHERE id = '2';

-- must
SELECT id, name FROM customers WHERE id = ' 2 ';

-- must
SELECT id, name FROM customers WHERE id = '+2';

-- must
SELECT id, name FROM customers WHERE id = 0002;

-- must
SELECT id, name FROM customers WHERE id = 2.0;

-- must
SELECT id, name FROM customers WHERE id = 7.6::int8;

-- must
SELECT id, name FROM customers WHERE id = 1 + 1;

-- must
SELECT id FROM customers WHERE id = 2 AND id = 3;

-- must
SELECT count(*) FROM customers WHERE NOT (id = 2);

-- must
SELECT count(*) FROM customers WHERE id = 2 OR tier = 3;

-- must
SELECT login FROM accounts WHERE login = 'ADA';

-- must
SELECT login FROM accounts WHERE login = 'ada ';

-- must
SELECT login FROM accounts WHERE login = 'a' || 'da';

-- must
SELECT owner FROM devices WHERE device_id = 'a0000000-0000-4000-8000-000000000001'::uuid;

-- must
SELECT id FROM customers WHERE id IN (SELECT 2);

-- must
SELECT id FROM customers WHERE id = (SELECT 3);

-- must
SELECT id FROM customers WHERE id IN (1, NULL);

-- must
SELECT id FROM customers WHERE id = NULL;

-- must
SELECT * FROM Customers WHERE ID = 1;

-- must
SELECT "name" FROM "customers" WHERE "id" = 12;

-- must
SELECT login FROM accounts WHERE login = 'ada'::char(5);

-- error 23502
INSERT INTO events (id, kind) VALUES (NULL, 'nullkey');

-- must
INSERT INTO customers (id, name) VALUES ('46', 'Sid') RETURNING id;

-- must
INSERT INTO customers (id, name) VALUES (' 47 ', 'Tim') RETURNING id;

-- must
SELECT id, name FROM customers WHERE id IN (46, 47);

-- refused
-- error 23505
INSERT INTO customers (id, name) VALUES (1.0, 'dup') RETURNING id;

-- construct: key column of another relation
-- must
SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM products WHERE id = 3);

-- must
SELECT c.id FROM customers c JOIN products p ON p.id = c.tier WHERE p.id = 2;

-- must
SELECT c.id FROM customers c, (SELECT 1 AS id) x WHERE x.id = 1;

-- must
SELECT count(*) FROM customers c JOIN regions r ON r.code = c.region WHERE r.zone = 1;

-- must
SELECT customer_id, id FROM orders customers WHERE customers.id = 1001;

-- must
SELECT c.id FROM orders o JOIN customers c ON c.id = 10 AND o.customer_id = 10 WHERE c.id = 10 AND o.customer_id = 10 AND o.id = 1001;

-- construct: query string of several statements
-- must
SELECT name FROM customers WHERE id = 1; SELECT count(*) FROM regions;

-- must
UPDATE customers SET tier = tier WHERE id = 1; SELECT tier FROM customers WHERE id = 12;

SELECT name FROM customers WHERE id = 1; SELECT name FROM customers WHERE id = 3;

SELECT name FROM customers WHERE id = 1; SELECT count(*) FROM customers;

-- construct: upsert
-- must
INSERT INTO customers (id, name) VALUES (1, 'again') ON CONFLICT (id) DO NOTHING;

-- must
INSERT INTO customers (id, name) VALUES (44, 'Quin') ON CONFLICT (id) DO NOTHING RETURNING id;

-- must
INSERT INTO customers (id, name, tier) VALUES (44, 'Quin', 3) ON CONFLICT (id) DO UPDATE SET tier = excluded.tier RETURNING id, tier;

-- must
SELECT id, name, tier FROM customers WHERE id = 44;

-- refused
INSERT INTO customers (id, name) VALUES (45, 'Rho') ON CONFLICT (id) DO UPDATE SET id = 1045;

-- refused
INSERT INTO customers (id, name) VALUES (44, 'Quin') ON CONFLICT (id) DO UPDATE SET id = 100;

-- must
SELECT id, name FROM customers WHERE id = 100;

-- must
SELECT id, name FROM customers WHERE id = 44;

-- refused
UPDATE customers SET (id, name) = (1002, 'moved') WHERE id = 2;

-- construct: scatter merge edges
-- must
SELECT min(id), max(id), sum(id), count(*) FROM customers WHERE id < 0;

-- must
SELECT avg(id) FROM customers WHERE id < 0;

-- must
SELECT tier, count(*) FROM customers WHERE id > 1000 GROUP BY tier;

-- must
SELECT count(*), count(amount), sum(amount) FROM orders;

-- ordered
-- must
SELECT name FROM customers ORDER BY balance DESC, id LIMIT 4;

-- ordered
-- must
SELECT id, balance FROM customers ORDER BY balance * -1, id LIMIT 4;

-- ordered
-- must
SELECT id, id FROM customers ORDER BY id LIMIT 2;

-- ordered
-- must
SELECT DISTINCT tier FROM customers ORDER BY tier LIMIT 2;

-- ordered
-- must
SELECT id FROM customers ORDER BY id LIMIT 3 OFFSET 100;

-- ordered
-- must
SELECT tier, count(*) AS n FROM customers GROUP BY tier ORDER BY n DESC, tier LIMIT 2;

-- must
SELECT region FROM customers GROUP BY region HAVING max(balance) > 500;

-- must
SELECT tier, count(*), avg(balance), sum(balance) FROM customers GROUP BY tier HAVING avg(balance) > 100;

-- refused
SELECT count(*) FROM regions r WHERE EXISTS (SELECT 1 FROM customers c WHERE c.region = r.code);

-- refused
SELECT r.code, count(*) FROM regions r LEFT JOIN customers c ON c.region = r.code AND c.tier = 3 GROUP BY r.code;

-- must
SELECT sum(p.price) FROM products p JOIN orders o ON o.product_id = p.id;

-- must
SELECT DISTINCT r.zone FROM customers c JOIN regions r ON r.code = c.region;

-- ordered
SELECT c.id, p.name FROM orders o JOIN customers c ON false JOIN products p ON p.id = o.product_id ORDER BY 1, 2;

SELECT sum(tier::float8 / 4) FROM customers;

-- must
SELECT min(tier::float8 / 4), max(balance::float8), count(balance::float8) FROM customers;

-- must
SELECT sum(balance / 3), min(balance / 7), max(balance / 7) FROM customers;

-- must
SELECT sum(id), sum(tier), sum(tier::int2), sum(balance::numeric) FROM customers;

-- must
SELECT count(*) FROM customers WHERE balance::text LIKE '%0';

-- must
SELECT count(*) FROM customers HAVING count(*) > 30;

-- must
SELECT tier, count(*) FROM customers GROUP BY tier HAVING count(*) > 10;

-- must
SELECT tier, sum(balance) FROM customers GROUP BY tier HAVING sum(balance) > 2000;

-- refused
SELECT max(n) FROM (SELECT tier, count(*) AS n FROM customers GROUP BY tier) s;

-- refused
SELECT count(*) FROM (SELECT tier FROM customers GROUP BY tier) s;

SELECT count(DISTINCT tier) FROM customers;

-- construct: scatter extended protocol
-- must
-- params: 2
SELECT id, name FROM customers WHERE tier = $1;

-- must
-- params: 2
SELECT count(*) FROM customers WHERE tier = $1;

-- must
-- params: 2
-- prepared
SELECT id FROM customers WHERE tier = $1;

-- construct: session state
-- must
SET TimeZone = 'UTC';

-- must
SHOW TimeZone;

-- must
SET search_path = public;

-- must
SELECT id, name FROM customers WHERE id = 10;

-- must
RESET search_path;

-- must
SELECT current_setting('search_path');

-- construct: scatter extended protocol
-- must
-- params: 1
SELECT tier, count(*), sum(balance), min(joined), max(joined) FROM customers WHERE tier >= $1 GROUP BY tier;

-- must
-- params: 1
-- prepared
SELECT avg(balance), count(*) FROM customers WHERE tier >= $1;

-- must
-- params: 0
-- ordered
SELECT id, name FROM customers WHERE tier > $1 ORDER BY id DESC LIMIT 3;

-- must
-- params: 1
SELECT DISTINCT region FROM customers WHERE tier >= $1;

-- must
-- ordered
-- params: 3
SELECT id FROM customers ORDER BY id LIMIT $1;

-- must
-- ordered
-- params: 2 | 1
SELECT id, name FROM customers WHERE tier >= 1 ORDER BY id DESC LIMIT $1 OFFSET $2;

-- must
-- params: -1
-- error 2201W
SELECT id FROM customers ORDER BY id LIMIT $1;
