-- Reads of every shard (scatter-gather): no key fixes the shard.

-- construct: scatter projection
-- must
SELECT * FROM customers;

-- must
SELECT id, name FROM customers;

-- must
SELECT name, upper(name), length(name), balance * 1.1 AS grown FROM customers;

-- must
SELECT id, region IS NULL AS no_region, coalesce(region, '?') FROM customers;

-- must
SELECT customer_id, id, qty * amount AS total FROM orders;

-- must
SELECT * FROM accounts;

-- must
SELECT device_id, owner, kind, seen FROM devices;

-- must
SELECT * FROM events;

-- must
SELECT id, CASE WHEN tier = 1 THEN 'low' WHEN tier = 2 THEN 'mid' ELSE 'high' END AS band FROM customers;

-- must
SELECT id, joined, extract(year FROM joined) AS y, joined + 30 AS later FROM customers;

-- must
SELECT login, customer_id, plan FROM public.accounts;

-- must
SELECT id, (SELECT count(*) FROM products) AS product_count FROM customers;

-- construct: scatter filter
-- must
SELECT id, name FROM customers WHERE tier = 2;

-- must
SELECT id, name, balance FROM customers WHERE balance > 100;

-- must
SELECT id, name FROM customers WHERE region IS NULL;

-- must
SELECT id, name FROM customers WHERE name LIKE '%a%' OR name LIKE 'B%';

-- must
SELECT id FROM customers WHERE joined BETWEEN '2023-05-01' AND '2024-01-31';

-- must
SELECT customer_id, id FROM orders WHERE status = 'paid' AND amount > 50;

-- must
SELECT customer_id, id FROM orders WHERE status IN ('new', 'cancelled');

-- must
SELECT login FROM accounts WHERE plan IS DISTINCT FROM 'free';

-- must
SELECT device_id FROM devices WHERE kind = 'phone';

-- must
SELECT id FROM customers WHERE id > 20;

-- must
SELECT id FROM customers WHERE id <> 1;

-- must
SELECT id FROM customers WHERE id = 1 OR id = 2;

-- must
SELECT id FROM customers WHERE false;

-- must
SELECT id, name FROM customers WHERE region IN (SELECT code FROM regions WHERE zone = 1);

-- must
SELECT id, name FROM customers WHERE EXISTS (SELECT 1 FROM regions r WHERE r.code = customers.region AND r.zone = 2);

-- must
SELECT customer_id, id FROM orders WHERE product_id NOT IN (SELECT id FROM products WHERE price > 50);

-- construct: scatter count/sum/min/max
-- must
SELECT count(*) FROM customers;

-- must
SELECT count(*) FROM orders;

-- must
SELECT count(*) FROM accounts;

-- must
SELECT count(*) FROM devices;

-- must
SELECT count(*) FROM events;

-- must
SELECT count(region) FROM customers;

-- must
SELECT count(*) FROM customers WHERE tier = 3;

-- must
SELECT count(*) FROM customers WHERE id > 1000;

-- must
SELECT sum(balance) FROM customers;

-- must
SELECT sum(tier) FROM customers;

-- must
SELECT sum(qty), sum(amount) FROM orders;

-- must
SELECT sum(amount) FROM orders WHERE status = 'nothing';

-- must
SELECT min(balance), max(balance) FROM customers;

-- must
SELECT min(id), max(id) FROM customers;

-- must
SELECT min(joined), max(joined) FROM customers;

-- must
SELECT count(*), sum(balance), min(tier), max(tier) FROM customers;

-- must
SELECT max(logins), min(logins), sum(logins), count(plan) FROM accounts;

-- must
SELECT min(seen), max(seen), count(seen) FROM devices;

-- must
SELECT count(*) AS n, sum(weight) AS total FROM events WHERE kind = 'click';

-- must
SELECT count(*) FROM orders o JOIN products p ON p.id = o.product_id WHERE p.price < 20;

SELECT min(name), max(name) FROM customers;

SELECT count(DISTINCT region) FROM customers;

SELECT sum(balance) * 2, count(*) + 1 FROM customers;

-- must
SELECT count(*) FILTER (WHERE tier = 1) FROM customers;

SELECT bool_and(balance >= 0), bool_or(tier = 3) FROM customers;

SELECT string_agg(name, ',' ORDER BY name) FROM customers;

SELECT array_agg(id ORDER BY id) FROM events;

-- must
SELECT sum(balance) FROM customers HAVING sum(balance) > 0;

-- construct: scatter avg
-- must
SELECT avg(balance) FROM customers;

-- must
SELECT avg(tier) FROM customers;

-- must
SELECT avg(amount), count(amount) FROM orders;

-- must
SELECT avg(logins) FROM accounts;

SELECT avg(qty)::numeric(10,2) FROM orders;

-- must
SELECT count(*), avg(weight), sum(weight) FROM events;

-- must
SELECT avg(balance) FROM customers WHERE id > 1000;

-- construct: scatter GROUP BY
-- must
SELECT region, count(*) FROM customers GROUP BY region;

-- must
SELECT tier, count(*), sum(balance), min(balance), max(balance) FROM customers GROUP BY tier;

-- must
SELECT status, count(*), sum(amount) FROM orders GROUP BY status;

-- must
SELECT region, tier, count(*) FROM customers GROUP BY region, tier;

-- must
SELECT plan, sum(logins) FROM accounts GROUP BY plan;

-- must
SELECT kind, count(*), max(seen) FROM devices GROUP BY kind;

-- must
SELECT kind, avg(weight) FROM events GROUP BY kind;

-- must
SELECT product_id, sum(qty) FROM orders GROUP BY product_id;

-- must
SELECT extract(year FROM joined) AS y, count(*) FROM customers GROUP BY 1;

-- must
SELECT customer_id, count(*) FROM orders GROUP BY customer_id;

-- must
SELECT tier, avg(balance) FROM customers GROUP BY tier;

-- ordered
SELECT region, count(*) FROM customers GROUP BY region ORDER BY region NULLS FIRST;

-- ordered
SELECT status, sum(amount) FROM orders GROUP BY status ORDER BY sum(amount) DESC, status;

-- construct: scatter HAVING
-- must
SELECT region, count(*) FROM customers GROUP BY region HAVING count(*) > 3;

-- must
SELECT status, sum(amount) FROM orders GROUP BY status HAVING sum(amount) > 100;

-- must
SELECT tier, max(balance) FROM customers GROUP BY tier HAVING min(balance) < 10;

-- must
SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) >= 2;

-- construct: scatter DISTINCT
-- must
SELECT DISTINCT region FROM customers;

-- must
SELECT DISTINCT tier FROM customers;

-- must
SELECT DISTINCT status FROM orders;

-- must
SELECT DISTINCT plan FROM accounts;

-- must
SELECT DISTINCT region, tier FROM customers;

-- must
SELECT DISTINCT kind FROM devices;

-- ordered
SELECT DISTINCT status FROM orders ORDER BY status;

SELECT DISTINCT ON (region) region, id FROM customers ORDER BY region, id;

-- construct: scatter ORDER BY LIMIT OFFSET
-- ordered
-- must
SELECT id, name FROM customers ORDER BY id;

-- ordered
-- must
SELECT id, name FROM customers ORDER BY id DESC;

-- ordered
-- must
SELECT id, name, balance FROM customers ORDER BY balance DESC, id;

-- ordered
-- must
SELECT id, name FROM customers ORDER BY id LIMIT 5;

-- ordered
-- must
SELECT id, name FROM customers ORDER BY id LIMIT 5 OFFSET 5;

-- ordered
-- must
SELECT id, name FROM customers ORDER BY id OFFSET 30;

-- ordered
-- must
SELECT id, balance FROM customers ORDER BY balance, id LIMIT 3;

-- ordered
-- must
SELECT customer_id, id, amount FROM orders ORDER BY amount DESC NULLS LAST, customer_id, id LIMIT 4;

-- ordered
SELECT login, logins FROM accounts ORDER BY logins DESC, login LIMIT 3;

-- ordered
SELECT name FROM customers ORDER BY name;

-- ordered
-- must
SELECT name FROM customers ORDER BY name COLLATE "C";

-- ordered
-- must
SELECT login, plan FROM accounts ORDER BY plan COLLATE "C" NULLS FIRST, login COLLATE "C" LIMIT 4;

-- ordered
SELECT id, region FROM customers ORDER BY region NULLS FIRST, id;

-- ordered
-- must
SELECT id, joined FROM customers ORDER BY joined DESC NULLS LAST, id LIMIT 6;

-- ordered
-- must
SELECT device_id, kind FROM devices ORDER BY device_id;

-- ordered
-- must
SELECT id, kind FROM events ORDER BY 1;

-- ordered
-- must
SELECT id, name FROM customers WHERE tier = 2 ORDER BY id LIMIT 3 OFFSET 1;

-- ordered
-- must
SELECT id, name FROM customers ORDER BY id FETCH FIRST 2 ROWS ONLY;

-- must
SELECT id FROM customers ORDER BY id LIMIT 0;

-- refused
SELECT count(*) FROM (SELECT id FROM customers ORDER BY id LIMIT 7) s;
