-- The sharding corpus (loop/corpus_test.go explains the format and the rule).
-- The schema: five sharded tables (integer, text and uuid keys) and two
-- reference tables. Customers and their orders are sharded by the
-- customer's id, so a customer and its orders are on one shard.
--
-- sharded: customers id integer
-- sharded: orders customer_id integer
-- sharded: accounts login text
-- sharded: devices device_id uuid
-- sharded: events id integer
-- reference: regions
-- reference: products

-- construct: DDL create table
-- must
CREATE TABLE regions (code text PRIMARY KEY, name text NOT NULL, zone int4 NOT NULL);

-- must
CREATE TABLE products (id int4 PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL);

-- must
CREATE TABLE customers (
    id int8 PRIMARY KEY,
    name text NOT NULL,
    region text,
    tier int4 NOT NULL DEFAULT 1,
    balance numeric(12,2) NOT NULL DEFAULT 0,
    joined date
);

-- must
CREATE TABLE orders (
    customer_id int8 NOT NULL,
    id int8 NOT NULL,
    product_id int4,
    qty int4 NOT NULL,
    amount numeric(12,2),
    status text NOT NULL DEFAULT 'new',
    PRIMARY KEY (customer_id, id)
);

-- must
CREATE TABLE accounts (login text PRIMARY KEY, customer_id int8, plan text, logins int4 NOT NULL DEFAULT 0);

-- must
CREATE TABLE devices (device_id uuid PRIMARY KEY, owner text, kind text NOT NULL, seen int4);

-- must
CREATE TABLE events (id int8 PRIMARY KEY, kind text NOT NULL, payload text, weight int4);
