-- COPY ... FROM STDIN, text and CSV (the rows are split by key).

-- construct: COPY FROM STDIN text
-- must
COPY events (id, kind, payload, weight) FROM STDIN;
30	copy	row 30	1
31	copy	row 31	2
32	copy	\N	3
33	copy	tab\there	4
\.

-- must
COPY customers (id, name, region, tier, balance, joined) FROM STDIN;
50	Rio	n	1	50.00	2024-11-01
51	Sam	\N	2	51.00	\N
52	Tao	e	3	52.50	2024-11-03
\.

-- must
COPY accounts (login, customer_id, plan, logins) FROM STDIN;
rex	50	pro	4
uma	51	free	0
\.

-- must
COPY events (id, kind, weight) FROM STDIN;
34	copy	1
\.

-- construct: COPY FROM STDIN csv
-- must
COPY events (id, kind, payload, weight) FROM STDIN WITH (FORMAT csv);
40,csv,"quoted, with a comma",1
41,csv,,2
42,csv,"line
break",3
\.

-- must
COPY customers (id, name, region, tier, balance) FROM STDIN WITH (FORMAT csv, HEADER true);
id,name,region,tier,balance
53,Uli,w,1,53.00
54,Vera,c,2,54.00
\.

-- must
COPY devices (device_id, owner, kind, seen) FROM STDIN WITH (FORMAT csv, DELIMITER ';');
a0000000-0000-4000-8000-000000000013;tom;phone;1
a0000000-0000-4000-8000-000000000014;sue;laptop;2
\.

-- must
COPY products (id, name, price) FROM STDIN WITH (FORMAT csv);
20,nail,0.05
\.

-- must
COPY events (id, kind, payload, weight) FROM STDIN WITH (FORMAT csv, QUOTE '''', ESCAPE '\', FORCE_NULL (payload), NULL 'none');
'300',csv,'it\'s quoted',1
301,csv,'none',2
302,csv,none,3
"303",csv,"double quotes are data here",4
\.

-- must
COPY events (id, kind, payload) FROM STDIN (FORMAT csv, HEADER match);
id,kind,payload
304,matched,"a header, matched"
\.

-- construct: COPY without a column list
-- must
COPY events FROM STDIN;
305	nolist	every column	5
306	nolist	\N	\N
\.

-- construct: COPY with the key last
-- must
COPY events (weight, payload, kind, id) FROM STDIN (DELIMITER '|', NULL 'nil');
7|nil|last|307
nil|x\|y|last|308
\.

-- construct: COPY with a WHERE clause
-- must
COPY events (id, kind, weight) FROM STDIN WHERE weight > 1;
309	where	1
310	where	2
311	where	3
\.

-- construct: COPY into a reference table
-- must
COPY regions (code, name, zone) FROM STDIN;
zz1	Copied one	7
zz2	Copied two	8
\.

-- must
COPY products FROM STDIN (FORMAT csv);
30,bolt,0.10
31,"washer, flat",0.02
\.

-- construct: COPY text key
-- must
COPY accounts (customer_id, login) FROM STDIN (FORMAT csv);
52,vic
53,"wen, jr"
54,ñandú
\.

-- construct: COPY uuid key
-- must
COPY devices (kind, device_id) FROM STDIN;
tablet	a0000000-0000-4000-8000-000000000021
watch	{a0000000-0000-4000-8000-000000000022}
tv	A0000000000040008000000000000023
\.

-- construct: scatter after COPY
-- must
SELECT id, kind, payload, weight FROM events WHERE id >= 300;

-- must
SELECT count(*), sum(zone) FROM regions;

-- must
SELECT device_id, kind FROM devices;

-- construct: COPY error
-- must
-- error 23505
COPY events (id, kind) FROM STDIN;
1	dup
\.

-- must
-- error 22P02
COPY events (id, kind) FROM STDIN;
notanumber	bad
\.

-- must
-- error 22P04
COPY events (id, kind, weight) FROM STDIN;
320	short
\.

-- must
-- error 22P04
COPY events (id, kind) FROM STDIN;
321	extra	column
\.

-- must
-- error 22P04
COPY events (id, kind) FROM STDIN (FORMAT csv);
322,"never closed
\.

-- must
-- error 22P04
COPY events (id, kind) FROM STDIN (FORMAT csv, HEADER match);
identifier,kind
323,mismatched header
\.

-- must
-- error 22P02
COPY devices (device_id, kind) FROM STDIN;
not-a-uuid	phone
\.

-- must
-- error 23502
COPY events (id, kind) FROM STDIN;
324	\N
\.

-- must
-- error 42703
COPY events (id, nope) FROM STDIN;
325	x
\.

-- must
-- error 22023
COPY events (id, kind) FROM STDIN (FORMAT xml);
326	x
\.

-- must
-- error 22P04
COPY events (id, kind) FROM STDIN (FORMAT binary);
327	not binary data
\.

-- construct: refused COPY
-- refused
COPY events (kind, payload) FROM STDIN;
no key	x
\.

-- refused
COPY events FROM '/nonexistent/events.txt';


-- construct: after failed COPYs
-- must
SELECT count(*) FROM events WHERE id >= 320;

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
