-- Joins, subqueries, CTEs, window functions and set operations.

-- construct: join sharded with reference
-- must
SELECT c.id, c.name, r.name AS region_name FROM customers c JOIN regions r ON r.code = c.region;

-- must
SELECT c.id, r.zone FROM customers c LEFT JOIN regions r ON r.code = c.region;

-- must
SELECT o.customer_id, o.id, p.name, o.qty * p.price AS list_total FROM orders o JOIN products p ON p.id = o.product_id;

-- must
SELECT o.customer_id, o.id, p.name FROM orders o LEFT JOIN products p ON p.id = o.product_id WHERE o.status = 'new';

-- must
SELECT c.id, r.name FROM customers c, regions r WHERE r.code = c.region AND r.zone = 2;

-- must
SELECT c.id, c.name, r.name FROM customers c JOIN regions r ON r.code = c.region WHERE c.id = 4;

-- must
-- ordered
SELECT o.id, p.name, p.price FROM orders o JOIN products p ON p.id = o.product_id WHERE o.customer_id = 10 ORDER BY o.id;

-- must
SELECT c.id, r.name FROM customers c JOIN regions r ON r.code = c.region WHERE c.id IN (1, 2, 3);

-- must
SELECT r.name, count(*) FROM customers c JOIN regions r ON r.code = c.region GROUP BY r.name;

-- must
SELECT p.name, sum(o.qty) FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.name;

-- ordered
-- must
SELECT c.id, r.name FROM customers c JOIN regions r ON r.code = c.region ORDER BY c.id LIMIT 5;

-- construct: join reference preserving rows
-- refused
SELECT r.code, c.id FROM regions r LEFT JOIN customers c ON c.region = r.code AND c.tier = 3;

-- refused
SELECT p.id, o.customer_id, o.id FROM products p LEFT JOIN orders o ON o.product_id = p.id AND o.status = 'cancelled';

-- refused
SELECT r.code, c.id FROM customers c RIGHT JOIN regions r ON r.code = c.region AND c.balance > 1000;

-- refused
SELECT r.code, c.id FROM regions r FULL JOIN customers c ON c.region = r.code AND c.tier = 3;

-- refused
SELECT r.code FROM regions r WHERE EXISTS (SELECT 1 FROM customers c WHERE c.region = r.code AND c.tier = 3);

-- refused
SELECT r.code FROM regions r WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.region = r.code AND c.balance > 1000);

-- refused
SELECT p.name FROM products p WHERE p.id IN (SELECT product_id FROM orders WHERE status = 'shipped');

SELECT r.code, count(c.id) FROM regions r LEFT JOIN customers c ON c.region = r.code GROUP BY r.code;

-- refused
SELECT r.code, (SELECT count(*) FROM customers c WHERE c.region = r.code) AS n FROM regions r;

-- construct: join sharded on keys
-- must
SELECT c.id, c.name, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 1 AND o.customer_id = 1;

-- must
-- params: 10 | 10
SELECT c.name, count(o.id) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1 AND o.customer_id = $2 GROUP BY c.name;

-- must
SELECT a.login, c.name FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE a.login = 'lea' AND c.id = 12;

SELECT c.id, c.name, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 2;

SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id;

SELECT c.name, sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name;

SELECT c.id, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id;

-- construct: join sharded not on keys
-- refused
SELECT c.name, a.login FROM customers c JOIN accounts a ON a.customer_id = c.id;

-- refused
SELECT c.id, d.device_id FROM accounts a JOIN devices d ON d.owner = a.login JOIN customers c ON c.id = a.customer_id;

-- refused
SELECT a.login, d.kind FROM accounts a JOIN devices d ON d.owner = a.login;

-- refused
SELECT o.customer_id, o.id, c.name FROM orders o JOIN customers c ON c.tier = o.qty;

-- refused
SELECT count(*) FROM accounts a JOIN devices d ON d.owner = a.login;

-- refused
SELECT a.login, e.kind FROM accounts a, events e WHERE e.payload = a.login;

-- refused
SELECT c.id, o.id FROM customers c JOIN orders o USING (id);

-- refused
SELECT c1.id, c2.id FROM customers c1 JOIN customers c2 ON c2.tier = c1.tier AND c2.id < c1.id;

-- construct: subquery
-- must
SELECT id, name FROM customers WHERE id = 1 AND balance > (SELECT min(price) FROM products);

-- must
SELECT id, name FROM customers WHERE tier = (SELECT max(zone) FROM regions);

-- must
SELECT s.id, s.name FROM (SELECT id, name FROM customers WHERE id = 2) s;

SELECT id FROM orders WHERE customer_id = 4 AND amount > (SELECT avg(amount) FROM orders WHERE customer_id = 4);

-- must
SELECT s.id, s.n FROM (SELECT id, length(name) AS n FROM customers) s WHERE s.n > 2;

SELECT id, name FROM customers WHERE balance > (SELECT avg(balance) FROM customers);

SELECT id, name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'new');

SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > 100);

SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders);

SELECT max(n) FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) s;

-- refused
SELECT count(*) FROM (SELECT DISTINCT region FROM customers) s;

-- refused
SELECT s.region FROM (SELECT region, count(*) AS n FROM customers GROUP BY region) s WHERE s.n > 2;

-- refused
SELECT * FROM (SELECT id, name FROM customers ORDER BY balance DESC, id LIMIT 3) top3;

SELECT c.id, x.total FROM customers c, LATERAL (SELECT sum(amount) AS total FROM orders o WHERE o.customer_id = c.id) x;

-- refused
SELECT r.code, (SELECT max(balance) FROM customers c WHERE c.region = r.code) FROM regions r;

-- must
SELECT id FROM customers WHERE balance > ALL (SELECT price FROM products);

-- construct: CTE
WITH one AS (SELECT id, name FROM customers WHERE id = 5) SELECT * FROM one;

-- must
WITH r AS (SELECT code FROM regions WHERE zone = 1) SELECT code FROM r;

WITH big AS (SELECT id, balance FROM customers WHERE balance > 300) SELECT id FROM big;

WITH t AS (SELECT tier, count(*) AS n FROM customers GROUP BY tier) SELECT tier, n FROM t;

WITH o AS (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id) SELECT c.id, o.total FROM customers c JOIN o ON o.customer_id = c.id;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT c.id FROM customers c JOIN n ON n.i = c.id;

WITH moved AS (UPDATE customers SET tier = tier WHERE id = 1 RETURNING id) SELECT id FROM moved;

WITH x AS (SELECT count(*) AS n FROM customers) SELECT n FROM x;

-- construct: window function
-- must
-- ordered
SELECT id, amount, sum(amount) OVER (ORDER BY id) FROM orders WHERE customer_id = 10 ORDER BY id;

-- must
SELECT id, row_number() OVER (ORDER BY id) FROM customers WHERE id = 3;

SELECT id, row_number() OVER (ORDER BY id) FROM customers;

SELECT id, rank() OVER (PARTITION BY tier ORDER BY balance DESC, id) FROM customers;

SELECT customer_id, id, sum(amount) OVER (PARTITION BY customer_id) FROM orders;

SELECT id, count(*) OVER () FROM customers;

SELECT id, balance - avg(balance) OVER () FROM customers;

SELECT id, lag(id) OVER (ORDER BY id) FROM events;

SELECT tier, sum(count(*)) OVER () FROM customers GROUP BY tier;

-- construct: set operation
-- must
SELECT code FROM regions UNION SELECT code FROM regions WHERE zone = 1;

SELECT id, name FROM customers WHERE id = 1 UNION ALL SELECT id, name FROM customers WHERE id = 1;

SELECT region FROM customers UNION SELECT code FROM regions;

SELECT region FROM customers UNION ALL SELECT code FROM regions;

SELECT id FROM customers UNION SELECT customer_id FROM orders;

SELECT id FROM customers EXCEPT SELECT customer_id FROM orders;

SELECT id FROM customers INTERSECT SELECT customer_id FROM orders;

SELECT tier FROM customers UNION SELECT zone FROM regions;

SELECT name FROM customers WHERE tier = 1 UNION ALL SELECT name FROM customers WHERE tier = 3;

SELECT login FROM accounts EXCEPT ALL SELECT owner FROM devices;

-- ordered
SELECT id FROM customers WHERE id < 5 UNION SELECT id FROM events ORDER BY 1;

-- construct: reference read
-- must
SELECT * FROM regions;

-- must
-- ordered
SELECT code, name, zone FROM regions ORDER BY code;

-- must
SELECT zone, count(*) FROM regions GROUP BY zone;

-- must
SELECT count(*), sum(price), avg(price), min(price), max(price) FROM products;

-- must
-- ordered
SELECT DISTINCT zone FROM regions ORDER BY zone;

-- must
-- ordered
SELECT name, price FROM products ORDER BY price DESC LIMIT 3;

-- must
SELECT p.name, r.name FROM products p CROSS JOIN regions r WHERE p.id < 3 AND r.zone = 1;

-- must
-- params: 2
SELECT name FROM products WHERE id = $1;

-- must
-- params: 1
SELECT code FROM regions WHERE zone = $1;

-- must
WITH z AS (SELECT zone, count(*) AS n FROM regions GROUP BY zone) SELECT * FROM z WHERE n > 1;

-- must
SELECT code, row_number() OVER (ORDER BY code) FROM regions;

-- must
SELECT 1 AS one, 'two' AS two, 3.0 AS three;

-- must
SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'customers';
