-- Errors: belay gives the SQLSTATE the plain PostgreSQL gives.

-- construct: error unique violation
-- must
-- error 23505
INSERT INTO customers (id, name) VALUES (1, 'again');

-- must
-- error 23505
INSERT INTO accounts (login, customer_id) VALUES ('ada', 1);

-- must
-- error 23505
INSERT INTO devices (device_id, kind) VALUES ('a0000000-0000-4000-8000-000000000001', 'dup');

-- must
-- error 23505
INSERT INTO orders (customer_id, id, qty) VALUES (1, 101, 1), (1, 999901, 1);

-- must
-- error 23505
-- params: 2 | dup
INSERT INTO customers (id, name) VALUES ($1, $2);

-- must
-- error 23505
INSERT INTO regions (code, name, zone) VALUES ('n', 'North again', 1);

-- must
SELECT count(*) FROM orders WHERE customer_id = 1;

-- construct: error not null
-- must
-- error 23502
INSERT INTO customers (id, name) VALUES (60, NULL);

-- must
UPDATE customers SET name = NULL WHERE id = 60;

-- must
-- error 23502
UPDATE customers SET name = NULL WHERE id = 2;

-- construct: error division by zero
-- must
-- error 22012
SELECT 1 / 0 FROM customers WHERE id = 1;

-- must
-- error 22012
SELECT balance / (tier - tier) FROM customers WHERE id = 2;

-- must
-- error 22012
SELECT id, 10 / (id - 5) FROM customers;

-- must
-- error 22012
UPDATE customers SET balance = balance / 0 WHERE id = 1;

-- must
-- error 22012
UPDATE customers SET balance = balance / 0 WHERE tier = 2;

-- must
-- error 22012
SELECT 1 / 0;

-- error 22012
-- must
SELECT sum(1 / (tier - 1)) FROM customers;

-- construct: error unknown column
-- must
-- error 42703
SELECT nope FROM customers WHERE id = 1;

-- must
-- error 42703
SELECT nope FROM customers;

-- must
-- error 42703
UPDATE customers SET nope = 1 WHERE id = 1;

-- must
-- error 42703
UPDATE customers SET nope = 1;

-- must
-- error 42703
SELECT login, nope FROM accounts WHERE login = 'ada';

-- must
-- error 42703
-- params: 1
SELECT nope FROM customers WHERE id = $1;

-- must
-- error 42703
SELECT count(nope) FROM customers;

-- must
-- error 42703
INSERT INTO customers (id, nope) VALUES (61, 1);

-- construct: error bad value
-- must
-- error 22P02
SELECT * FROM customers WHERE id = 'abc';

-- must
-- error 22P02
SELECT * FROM devices WHERE device_id = 'not-a-uuid';

-- must
-- error 22P02
-- params: xyz
SELECT * FROM customers WHERE id = $1;

-- must
SELECT * FROM customers WHERE id = 99999999999999999999;

-- must
-- error 22P02
INSERT INTO customers (id, name) VALUES ('x', 'bad');

-- must
-- error 22P02
INSERT INTO devices (device_id, kind) VALUES ('zz', 'bad');

-- must
-- error 22007
INSERT INTO customers (id, name, joined) VALUES (62, 'Bad', 'not a date');

-- must
-- error 22003
INSERT INTO customers (id, name, tier) VALUES (63, 'Big', 99999999999);

-- construct: error unknown table
-- error 42P01
SELECT * FROM nowhere;

-- error 42P01
SELECT * FROM nowhere WHERE id = 1;

-- construct: error syntax
-- error 42601
SELECT FROM WHERE;

-- error 42601
SELEC id FROM customers;

-- construct: error check and foreign data
-- must
ALTER TABLE customers ADD CONSTRAINT balance_sane CHECK (balance > -100000);

-- must
-- error 23514
UPDATE customers SET balance = -200000 WHERE id = 5;

-- must
-- error 23514
INSERT INTO customers (id, name, balance) VALUES (64, 'Neg', -200000);

-- must
-- error 42883
SELECT no_such_function(id) FROM customers WHERE id = 1;

-- must
-- error 42804
SELECT id FROM customers WHERE id = 1 AND name;

-- must
-- error 21000
SELECT (SELECT code FROM regions) FROM customers WHERE id = 1;

-- must
-- error 22012
SELECT 1 / 0 FROM regions;

-- must
SELECT count(*) FROM customers;
