-- Transactions.

-- construct: transaction on one shard
-- must
BEGIN;

-- must
UPDATE customers SET balance = balance - 10 WHERE id = 1;

-- must
UPDATE customers SET balance = balance + 10 WHERE id = 12;

-- must
SELECT id, balance FROM customers WHERE id IN (1, 12);

-- must
COMMIT;

-- must
SELECT id, balance FROM customers WHERE id IN (1, 12);

-- must
BEGIN;

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount) VALUES (2, 203, 3, 1, 14.50);

-- must
UPDATE customers SET balance = balance - 14.50 WHERE id = 2;

-- must
SELECT count(*), sum(amount) FROM orders WHERE customer_id = 2;

-- must
COMMIT;

-- must
BEGIN;

-- must
UPDATE customers SET name = 'gone' WHERE id = 3;

-- must
DELETE FROM orders WHERE customer_id = 3;

-- must
ROLLBACK;

SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = 3 AND c.id = 3) FROM customers c WHERE c.id = 3;

-- must
START TRANSACTION ISOLATION LEVEL REPEATABLE READ;

-- must
SELECT login, logins FROM accounts WHERE login = 'jon';

-- must
UPDATE accounts SET logins = logins + 5 WHERE login = 'jon';

-- must
COMMIT;

-- must
BEGIN;

-- must
-- params: 5
SELECT name, balance FROM customers WHERE id = $1;

-- must
-- params: 1.50 | 5
UPDATE customers SET balance = balance + $1 WHERE id = $2;

-- must
-- params: 5 | 503 | 2 | 3 | 43.50
INSERT INTO orders (customer_id, id, product_id, qty, amount) VALUES ($1, $2, $3, $4, $5);

-- must
COMMIT;

-- must
SELECT id, balance FROM customers WHERE id = 5;

-- must
BEGIN;

-- must
UPDATE devices SET seen_count = seen_count + 1 WHERE device_id = 'a0000000-0000-4000-8000-000000000002';

-- must
SAVEPOINT s1;

-- must
UPDATE devices SET seen_count = 1000 WHERE device_id = 'a0000000-0000-4000-8000-000000000002';

-- must
ROLLBACK TO SAVEPOINT s1;

-- must
RELEASE SAVEPOINT s1;

-- must
COMMIT;

-- must
SELECT seen_count FROM devices WHERE device_id = 'a0000000-0000-4000-8000-000000000002';

-- construct: transaction with an error
-- must
BEGIN;

-- must
UPDATE customers SET balance = balance + 1000 WHERE id = 4;

-- must
-- error 22012
SELECT balance / 0 FROM customers WHERE id = 4;

-- must
-- error 25P02
SELECT balance FROM customers WHERE id = 4;

-- must
COMMIT;

-- must
SELECT balance FROM customers WHERE id = 4;

-- must
BEGIN;

-- must
-- error 23505
INSERT INTO customers (id, name) VALUES (4, 'dup');

-- must
ROLLBACK;

-- construct: transaction across shards
-- must
BEGIN;

-- must
UPDATE customers SET balance = balance - 5 WHERE id = 1;

-- must
UPDATE customers SET balance = balance + 5 WHERE id = 3;

-- must
COMMIT;

-- must
SELECT id, balance FROM customers WHERE id IN (1, 3);

-- must
BEGIN;

-- must
UPDATE accounts SET logins = logins + 1 WHERE login = 'ada';

-- must
UPDATE accounts SET logins = logins + 1 WHERE login = 'kim';

-- must
UPDATE accounts SET logins = logins + 1 WHERE login = 'fay';

-- must
COMMIT;

-- must
SELECT login, logins FROM accounts WHERE login IN ('ada', 'kim', 'fay');

-- must
BEGIN;

-- must
INSERT INTO events (id, kind, weight) VALUES (20, 'tx', 1);

-- must
INSERT INTO events (id, kind, weight) VALUES (21, 'tx', 1);

-- must
INSERT INTO events (id, kind, weight) VALUES (22, 'tx', 1);

-- must
COMMIT;

-- must
SELECT id, kind FROM events WHERE kind = 'tx';

-- must
BEGIN;

-- must
UPDATE customers SET tier = tier WHERE id = 10;

-- must
ROLLBACK;

-- construct: transaction with a scatter
-- must
BEGIN;

-- must
SELECT count(*) FROM customers;

-- must
COMMIT;

-- must
BEGIN;

-- must
UPDATE customers SET balance = balance WHERE id = 6;

-- must
SELECT id FROM customers WHERE tier = 2;

-- must
COMMIT;

-- must
BEGIN;

-- must
UPDATE customers SET balance = balance + 1 WHERE tier = 2;

-- must
COMMIT;

-- must
BEGIN;

-- must
UPDATE regions SET zone = zone WHERE code = 'n';

-- must
COMMIT;

-- must
BEGIN;

-- must
CREATE INDEX customers_tier ON customers (tier);

-- must
COMMIT;

-- must
BEGIN;

-- must
COPY events (id, kind, weight) FROM STDIN;
400	txcopy	1
401	txcopy	2
\.

-- must
SELECT count(*), sum(weight) FROM events WHERE kind = 'txcopy';

-- must
ROLLBACK;

-- must
SELECT count(*) FROM events WHERE kind = 'txcopy';

-- must
BEGIN;

-- must
DELETE FROM events WHERE kind = 'nothing matches';

-- must
INSERT INTO events (id, kind) VALUES (402, 'txsplit'), (403, 'txsplit'), (404, 'txsplit');

-- must
SELECT id FROM events WHERE kind = 'txsplit';

-- must
COMMIT;

-- must
BEGIN;

-- must
ALTER TABLE events ADD COLUMN extra int;

-- must
SELECT count(extra) FROM events;

-- must
ROLLBACK;

-- must
BEGIN;

-- must
-- error 23505
INSERT INTO events (id, kind) VALUES (402, 'dup'), (405, 'dup'), (406, 'dup');

-- error 25P02
SELECT count(*) FROM events;

-- must
ROLLBACK;

-- must
SELECT count(*) FROM events WHERE kind IN ('txsplit', 'dup');

-- must
BEGIN;

-- must
-- params: 0
SELECT count(*), sum(weight) FROM events WHERE weight > $1;

-- must
-- params: nothing matches
UPDATE events SET payload = payload WHERE kind = $1;

-- must
-- params: 1
SELECT id FROM events WHERE weight = $1;

-- must
COMMIT;

-- construct: transaction reading a reference table first
-- must
BEGIN;

-- must
SELECT zone FROM regions WHERE code = 'n';

-- must
UPDATE customers SET balance = balance + 1 WHERE id = 7;

-- must
COMMIT;

-- must
SELECT balance FROM customers WHERE id = 7;

-- construct: transaction in one query string
BEGIN; UPDATE customers SET tier = tier WHERE id = 8; COMMIT;

-- must
UPDATE customers SET balance = balance + 2 WHERE id = 8; SELECT balance FROM customers WHERE id = 8;

-- must
SELECT 1; SELECT 2;
