-- The data, loaded through belay: reference tables (written to every
-- shard), then sharded rows one by one and in multi-row INSERTs whose rows
-- share a shard (their keys are on one shard of 4, so of 2 too), and some
-- whose rows span shards.

-- construct: reference write
-- must
INSERT INTO regions (code, name, zone) VALUES ('n', 'North', 1);

-- must
INSERT INTO regions (code, name, zone) VALUES ('s', 'South', 2), ('e', 'East', 1), ('w', 'West', 2);

-- must
INSERT INTO regions VALUES ('c', 'Center', 3);

-- must
INSERT INTO products (id, name, price) VALUES
    (1, 'anvil', 120.00), (2, 'bolt', 0.25), (3, 'crate', 14.50), (4, 'drill', 89.99),
    (5, 'easel', 35.00), (6, 'funnel', 3.10), (7, 'gauge', 22.75), (8, 'hinge', 1.05);

-- construct: insert one row
-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (1, 'Ada', 'n', 1, 100.00, '2023-01-05');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (2, 'Bea', 's', 2, 250.50, '2023-02-11');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (3, 'Cai', 'e', 3, 0.00, '2023-02-28');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (4, 'Dov', 'w', 1, 75.25, '2023-03-14');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (5, 'Eli', 'c', 2, 980.00, '2023-04-01');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (6, 'Fay', 'n', 3, 12.40, '2023-04-19');

-- must
INSERT INTO customers (name, id, region, joined) VALUES ('Gil', 7, 's', '2023-05-02');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (8, 'Hoa', 'e', 2, 330.00, '2023-05-30');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (9, 'Ida', NULL, 1, 5.00, '2023-06-07');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (10, 'Jon', 'w', 3, 1500.00, '2023-06-21');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (11, 'Kai', 'c', 1, 42.00, NULL);

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (12, 'Lia', 'n', 2, 610.10, '2023-08-08');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (13, 'Mo', 's', 1, 0.99, '2023-09-09');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (14, 'Nia', 'e', 3, 270.00, '2023-10-10');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (15, 'Oto', 'w', 2, 88.80, '2023-11-11');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (16, 'Pia', 'c', 1, 19.95, '2023-12-12');

-- construct: insert rows of one shard
-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES
    (17, 'Quy', 'n', 2, 300.00, '2024-01-03'),
    (26, 'Zed', 's', 1, 45.00, '2024-01-17'),
    (28, 'Abe', 'e', 3, 720.00, '2024-02-02'),
    (30, 'Bo', 'w', 1, 8.00, '2024-02-29');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES
    (19, 'Sol', 'c', 2, 66.60, '2024-03-03'),
    (20, 'Tea', 'n', 3, 1200.00, '2024-03-15'),
    (21, 'Uri', 's', 1, 3.30, '2024-04-04');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES
    (18, 'Rae', 'e', 1, 150.00, '2024-04-20'),
    (23, 'Wes', 'w', 2, 0.00, '2024-05-05'),
    (25, 'Yao', NULL, 3, 555.55, '2024-05-25'),
    (27, 'Ari', 'c', 2, 91.00, '2024-06-06');

-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES
    (22, 'Vi', 'n', 1, 10.00, '2024-06-30'),
    (24, 'Xu', 's', 3, 400.00, '2024-07-07'),
    (29, 'Cy', 'e', 2, 77.00, '2024-07-31');

-- construct: insert rows spanning shards
-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES
    (31, 'Dee', 'w', 1, 31.00, '2024-08-01'),
    (32, 'Eun', 'c', 2, 32.00, '2024-08-02'),
    (33, 'Flo', 'n', 3, 33.00, '2024-08-03');

-- must
INSERT INTO customers (id, name, region) VALUES (34, 'Gus', 's'), (35, 'Hal', 'e');

-- construct: insert returning
-- must
INSERT INTO customers (id, name, region, tier, balance, joined) VALUES (36, 'Ivo', 'w', 2, 36.00, '2024-09-01') RETURNING id, name, tier, balance;

-- must
INSERT INTO customers (id, name) VALUES (37, 'Jae') RETURNING *;

-- must
INSERT INTO customers (id, name, region) VALUES (38, 'Kit', 'c') RETURNING id * 2 AS double_id, upper(name), region IS NULL AS no_region;

-- construct: insert rows of one shard
-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (1, 101, 1, 1, 120.00, 'paid'), (1, 102, 2, 40, 10.00, 'paid'), (1, 103, 3, 2, 29.00, 'new');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (2, 201, 4, 1, 89.99, 'paid'), (2, 202, 6, 10, 31.00, 'shipped');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (3, 301, 5, 2, 70.00, 'new');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (4, 401, 7, 3, 68.25, 'paid'), (4, 402, 8, 100, 105.00, 'shipped'), (4, 403, 1, 1, 120.00, 'cancelled'), (4, 404, 2, 8, 2.00, 'paid');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (5, 501, 3, 4, 58.00, 'paid'), (5, 502, 4, 2, 179.98, 'paid');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount) VALUES (6, 601, 5, 1, 35.00);

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (8, 801, 6, 3, 9.30, 'shipped'), (8, 802, 7, 1, 22.75, 'paid');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (10, 1001, 1, 5, 600.00, 'paid'), (10, 1002, 4, 3, 269.97, 'paid'), (10, 1003, 8, 20, 21.00, 'new');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (12, 1201, 2, 100, 25.00, 'paid');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (13, 1301, 3, 1, 14.50, 'cancelled'), (13, 1302, NULL, 1, NULL, 'new');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (14, 1401, 5, 3, 105.00, 'paid'), (17, 1701, 6, 2, 6.20, 'paid'), (26, 2601, 7, 4, 91.00, 'shipped');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (19, 1901, 8, 7, 7.35, 'paid'), (20, 2001, 1, 2, 240.00, 'paid'), (20, 2002, 3, 3, 43.50, 'new');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (18, 1801, 4, 1, 89.99, 'shipped'), (25, 2501, 2, 12, 3.00, 'paid'), (27, 2701, 5, 1, 35.00, 'paid');

-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (22, 2201, 6, 9, 27.90, 'paid'), (24, 2401, 7, 2, 45.50, 'new'), (29, 2901, 1, 1, 120.00, 'paid');

-- construct: insert rows spanning shards
-- must
INSERT INTO orders (customer_id, id, product_id, qty, amount, status) VALUES
    (15, 1501, 2, 4, 1.00, 'paid'), (16, 1601, 3, 1, 14.50, 'paid');

-- construct: insert one row
-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('ada', 1, 'pro', 12);

-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('bob', 2, 'free', 3);

-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('cyd', 3, 'free', 0);

-- must
INSERT INTO accounts (login, customer_id, plan) VALUES ('eve', 5, 'team');

-- construct: insert rows of one shard
-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('jon', 10, 'pro', 40), ('lea', 12, 'team', 7), ('ned', 14, NULL, 1);

-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('hal', 8, 'free', 2), ('ivy', 9, 'pro', 19), ('kim', 11, 'free', 5);

-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('dee', 4, 'pro', 8), ('tom', 20, 'free', 0);

-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('fay', 6, 'team', 22), ('gus', 7, 'free', 1), ('sue', 19, 'pro', 9);

-- construct: insert rows spanning shards
-- must
INSERT INTO accounts (login, customer_id, plan, logins) VALUES ('max', 13, 'free', 2), ('pam', 16, 'pro', 6);

-- construct: insert one row
-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES ('a0000000-0000-4000-8000-000000000001', 'ada', 'phone', 10);

-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES ('a0000000-0000-4000-8000-000000000005', 'bob', 'laptop', 3);

-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES ('A0000000-0000-4000-8000-000000000008', 'cyd', 'phone', NULL);

-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES ('{a0000000-0000-4000-8000-00000000000b}', 'eve', 'tablet', 7);

-- construct: insert rows of one shard
-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES
    ('a0000000-0000-4000-8000-000000000002', 'jon', 'phone', 1),
    ('a0000000-0000-4000-8000-000000000003', 'jon', 'laptop', 2),
    ('a0000000-0000-4000-8000-000000000004', 'lea', 'watch', 30);

-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES
    ('a0000000-0000-4000-8000-000000000006', 'hal', 'phone', 4),
    ('a0000000-0000-4000-8000-00000000000a', 'ivy', 'laptop', 5);

-- construct: insert rows spanning shards
-- must
INSERT INTO devices (device_id, owner, kind, seen) VALUES
    ('a0000000-0000-4000-8000-000000000009', 'kim', 'phone', 6),
    ('a0000000-0000-4000-8000-00000000000c', 'dee', 'tablet', 8);

-- construct: insert one row
-- must
INSERT INTO events (id, kind, payload, weight) VALUES (1, 'login', 'ada', 1);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (2, 'login', 'bob', 1);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (3, 'click', 'home', 2);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (4, 'click', 'cart', 3);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (5, 'buy', 'order 101', 10);

-- must
INSERT INTO events (id, kind, payload, weight) VALUES (6, 'logout', NULL, 0);
