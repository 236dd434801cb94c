-- belay compatibility scenario for psql (internal/compat).
-- Run as: psql -X -v ON_ERROR_STOP=0 -v id=N -f scenario.sql CONNSTRING
-- psql's own output is the transcript; every name and value that depends on
-- the instance carries zq<N>, which the test normalizes.
\set VERBOSITY sqlstate
\pset tuples_only on
\pset format unaligned
\set tag zq :id
\set app app_zq :id
\set tenant tenant_zq :id
\set sp sp_zq :id
\set chan ch_zq :id

\echo (a) SET then use
SET application_name = :'app';
SET myapp.tenant = :'tenant';
SET search_path = :"sp", public;
SHOW application_name;
SHOW myapp.tenant;
SHOW search_path;
SELECT format('SELECT %s, current_setting(%L), current_setting(%L), current_setting(%L)', g, 'application_name', 'myapp.tenant', 'search_path') FROM generate_series(1, 20) g \gexec

\echo (b) SQL-level prepared statements across transactions
PREPARE q(int) AS SELECT $1 + 1000;
SELECT format('EXECUTE q(%s)', g) FROM generate_series(1, 30) g \gexec
DEALLOCATE q;
PREPARE p(int) AS SELECT $1 * 2;
EXECUTE p(21);
DEALLOCATE p;
PREPARE p(int) AS SELECT $1 * 3;
EXECUTE p(21);
DEALLOCATE p;

\echo (c) temp table
CREATE TEMP TABLE tmp_items (n int, s text);
INSERT INTO tmp_items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
BEGIN;
INSERT INTO tmp_items VALUES (11, 'item 11');
COMMIT;
SELECT count(*), sum(n), max(s) FROM tmp_items;
SELECT s FROM tmp_items WHERE n = 7;
DROP TABLE tmp_items;

\echo (d) LISTEN/NOTIFY on one connection
LISTEN :"chan";
NOTIFY :"chan", 'hello';
UNLISTEN *;

\echo (e) errors
BEGIN;
SELECT 1 / 0;
SELECT 'ignored';
ROLLBACK;
SELECT 'works after rollback';
PREPARE bad AS SELEC 1;
EXECUTE nope;
SELECT 'works after errors';

\echo (f) COPY
CREATE TEMP TABLE copy_items (n int);
\copy copy_items FROM PROGRAM 'seq 1 1000'
SELECT count(*), sum(n), md5(string_agg(n::text, ',' ORDER BY n)) FROM copy_items;
\copy copy_items TO PROGRAM 'awk ''{ c++; s += $1 } END { print "copied out:", c, "rows, sum", s }'''
DROP TABLE copy_items;
\echo done
