-- COPY ... FROM STDIN, text and CSV (the rows are split by key).

-- construct: COPY FROM STDIN text
COPY events (id, kind, payload, weight) FROM STDIN;
30	copy	row 30	1
31	copy	row 31	2
32	copy	\N	3
33	copy	tab\there	4
\.

COPY customers (id, name, region, tier, balance, joined) FROM STDIN;
50	Rio	n	1	50.00	2024-11-01
51	Sam	\N	2	51.00	\N
52	Tao	e	3	52.50	2024-11-03
\.

COPY accounts (login, customer_id, plan, logins) FROM STDIN;
rex	50	pro	4
uma	51	free	0
\.

COPY events (id, kind, weight) FROM STDIN;
34	copy	1
\.

-- construct: COPY FROM STDIN csv
COPY events (id, kind, payload, weight) FROM STDIN WITH (FORMAT csv);
40,csv,"quoted, with a comma",1
41,csv,,2
42,csv,"line
break",3
\.

COPY customers (id, name, region, tier, balance) FROM STDIN WITH (FORMAT csv, HEADER true);
id,name,region,tier,balance
53,Uli,w,1,53.00
54,Vera,c,2,54.00
\.

COPY devices (device_id, owner, kind, seen_count) FROM STDIN WITH (FORMAT csv, DELIMITER ';');
a0000000-0000-4000-8000-000000000013;tom;phone;1
a0000000-0000-4000-8000-000000000014;sue;laptop;2
\.

COPY products (id, name, price) FROM STDIN WITH (FORMAT csv);
20,nail,0.05
\.

-- construct: COPY error
-- error 23505
COPY events (id, kind) FROM STDIN;
1	dup
\.

-- error 22P02
COPY events (id, kind) FROM STDIN;
notanumber	bad
\.

-- construct: scatter projection
-- must
SELECT id, kind, payload, weight FROM events;

-- must
SELECT id, name, region, tier, balance, joined FROM customers;

-- must
SELECT * FROM accounts;

-- must
SELECT * FROM devices;

-- must
SELECT * FROM products;
