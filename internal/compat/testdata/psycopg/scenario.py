"""belay compatibility scenario for psycopg 3 (internal/compat).

Run as: /usr/bin/python3 scenario.py CONNINFO N
Prints one line per step; names and values that depend on the instance carry
zq<N>, which the test normalizes.
"""
import hashlib
import sys

import psycopg
from psycopg import sql


def state(e):
    if isinstance(e, psycopg.Error) and e.sqlstate:
        return "SQLSTATE " + e.sqlstate
    return "error: " + repr(e)


def add(step, value):
    print(f"{step}: {value}")


def main():
    conninfo, n = sys.argv[1], int(sys.argv[2])
    tag = f"zq{n}"
    # prepare_threshold=0: psycopg prepares every query on the server at
    # its first execution, as named statements (_pg3_0, ...).
    conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=0)

    # (a) SET then use.
    for name, value in (("application_name", f"app_{tag}"), ("myapp.tenant", f"tenant_{tag}")):
        conn.execute(sql.SQL("SET {} = {}").format(sql.SQL(name), sql.Literal(value)))
        add("a.set " + name, "ok")
    conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(f"sp_{tag}")))
    add("a.set search_path", "ok")
    for name in ("application_name", "myapp.tenant", "search_path"):
        add("a.show " + name, conn.execute("SHOW " + name).fetchone()[0])
    q = "SELECT current_setting('application_name'), current_setting(%s), current_setting('search_path')"
    for i in range(1, 21):
        if i % 2 == 0:
            with conn.transaction():
                row = conn.execute(q, ("myapp.tenant",)).fetchone()
        else:
            row = conn.execute(q, ("myapp.tenant",)).fetchone()
        add(f"a.read {i}", " ".join(row))

    # (b) Server-side prepared statements across transactions, then SQL-level.
    cur = conn.cursor()
    for i in range(1, 31):
        with conn.transaction():
            cur.execute("SELECT %s::int + 1000, %s::text", (i, f"v{i}"), prepare=True)
            add(f"b.prepared {i}", cur.fetchone())
    for i in range(1, 6):
        cur.execute("SELECT %s::int * 3", (i,), prepare=False)
        add(f"b.unprepared {i}", cur.fetchone())
    for q in ("PREPARE p(int) AS SELECT $1 * 2", "EXECUTE p(21)", "DEALLOCATE p",
              "PREPARE p(int) AS SELECT $1 * 3", "EXECUTE p(21)", "DEALLOCATE p"):
        cur.execute(q, prepare=False)
        add("b." + q, cur.fetchone() if q.startswith("EXECUTE") else cur.statusmessage)

    # (c) Temp table across transactions.
    cur.execute("CREATE TEMP TABLE tmp_items (n int, s text)")
    add("c.create", cur.statusmessage)
    for i in range(1, 4):
        with conn.transaction():
            cur.execute("INSERT INTO tmp_items SELECT g, 'item ' || g FROM generate_series(%s::int, %s::int) g",
                        (i * 10 - 9, i * 10))
            add(f"c.insert {i}", cur.statusmessage)
        add(f"c.select {i}", conn.execute("SELECT count(*), sum(n) FROM tmp_items").fetchone())
    cur.execute("DROP TABLE tmp_items")
    add("c.drop", cur.statusmessage)

    # (d) LISTEN/NOTIFY on this one connection. psycopg 3.1 hands a
    # notification that arrives while a query runs (as one from NOTIFY on
    # the same connection does) to the notify handlers; conn.notifies() only
    # yields those that arrive while it waits.
    got = []
    conn.add_notify_handler(got.append)
    ch = f"ch_{tag}"
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ch)))
    add("d.listen", "ok")
    conn.execute(sql.SQL("NOTIFY {}, 'hello'").format(sql.Identifier(ch)))
    add("d.notify", "ok")
    if not got:
        conn.execute("SELECT 1")  # a notification may trail the NOTIFY's reply
    add("d.receive", " ".join(f"{x.channel} {x.payload}" for x in got) or "nothing")
    conn.execute("UNLISTEN *")
    add("d.unlisten", "ok")

    # (e) Errors.
    try:
        with conn.transaction():
            conn.execute("SELECT 1 / 0")
        add("e.divide by zero", "no error")
    except psycopg.Error as e:
        add("e.divide by zero", state(e))
    add("e.after rollback", conn.execute("SELECT 1").fetchone()[0])
    try:
        cur.execute("SELEC %s", (1,), prepare=True)
        add("e.prepare syntax error", "no error")
    except psycopg.Error as e:
        add("e.prepare syntax error", state(e))
    try:
        conn.execute("EXECUTE nope")
        add("e.execute unknown", "no error")
    except psycopg.Error as e:
        add("e.execute unknown", state(e))
    add("e.after errors", conn.execute("SELECT 2").fetchone()[0])

    # (f) COPY both ways.
    cur.execute("CREATE TEMP TABLE copy_items (n int, s text)")
    with cur.copy("COPY copy_items (n, s) FROM STDIN") as copy:
        for i in range(1, 1001):
            copy.write_row((i, f"row {i}"))
    add("f.copy in", f"{cur.statusmessage} rows {cur.rowcount}")
    data = bytearray()
    with cur.copy("COPY (SELECT * FROM copy_items ORDER BY n) TO STDOUT") as copy:
        for chunk in copy:
            data += chunk
    lines = data.decode().splitlines()
    total = sum(int(line.split("\t")[0]) for line in lines)
    add("f.copy out", f"{len(lines)} lines, sum {total}, md5 {hashlib.md5(data).hexdigest()}")
    cur.execute("DROP TABLE copy_items")
    add("f.drop", cur.statusmessage)
    conn.close()
    add("done", "psycopg " + psycopg.__version__)


if __name__ == "__main__":
    main()
