// belay compatibility scenario for node-postgres (internal/compat).
//
// Run as: node scenario.js CONNECTION_URL N
// Prints one line per step; names and values that depend on the instance
// carry zq<N>, which the test normalizes.
'use strict';

const crypto = require('crypto');
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');
const { Client } = require('pg');
const copyStreams = require('pg-copy-streams');

const [url, idArg] = process.argv.slice(2);
const tag = 'zq' + Number(idArg);

function add(step, value) {
  process.stdout.write(`${step}: ${value}\n`);
}

function state(e) {
  return e && e.code ? 'SQLSTATE ' + e.code : 'error: ' + e;
}

async function expectError(step, fn) {
  try {
    await fn();
    add(step, 'no error');
  } catch (e) {
    add(step, state(e));
  }
}

async function main() {
  const client = new Client({ connectionString: url });
  await client.connect();

  // (a) SET then use.
  await client.query(`SET application_name = 'app_${tag}'`);
  await client.query(`SET myapp.tenant = 'tenant_${tag}'`);
  await client.query(`SET search_path = sp_${tag}, public`);
  add('a.set', 'ok');
  for (const name of ['application_name', 'myapp.tenant', 'search_path']) {
    const r = await client.query('SHOW ' + name);
    add('a.show ' + name, Object.values(r.rows[0])[0]);
  }
  const read = "SELECT current_setting('application_name') AS app, current_setting($1) AS tenant, current_setting('search_path') AS sp";
  for (let i = 1; i <= 20; i++) {
    let r;
    if (i % 2 === 0) {
      await client.query('BEGIN');
      r = await client.query(read, ['myapp.tenant']);
      await client.query('COMMIT');
    } else {
      r = await client.query(read, ['myapp.tenant']);
    }
    add(`a.read ${i}`, `${r.rows[0].app} ${r.rows[0].tenant} ${r.rows[0].sp}`);
  }

  // (b) Named prepared statements (parsed once per connection, then only
  // bound and executed) across transactions; unnamed parameterized queries;
  // then SQL-level PREPARE.
  for (let i = 1; i <= 30; i++) {
    await client.query('BEGIN');
    const r = await client.query({ name: 'q1', text: 'SELECT $1::int + 1000 AS n, $2::text AS s', values: [i, 'v' + i] });
    await client.query('COMMIT');
    add(`b.named ${i}`, `${r.rows[0].n} ${r.rows[0].s}`);
  }
  for (let i = 1; i <= 5; i++) {
    const r = await client.query('SELECT $1::int * 3 AS n', [i]);
    add(`b.unnamed ${i}`, r.rows[0].n);
  }
  for (const q of ['PREPARE p(int) AS SELECT $1 * 2', 'EXECUTE p(21)', 'DEALLOCATE p',
    'PREPARE p(int) AS SELECT $1 * 3', 'EXECUTE p(21)', 'DEALLOCATE p']) {
    const r = await client.query(q);
    add('b.' + q, q.startsWith('EXECUTE') ? Object.values(r.rows[0])[0] : r.command);
  }

  // (c) Temp table across transactions.
  add('c.create', (await client.query('CREATE TEMP TABLE tmp_items (n int, s text)')).command);
  for (let i = 1; i <= 3; i++) {
    await client.query('BEGIN');
    const ins = await client.query("INSERT INTO tmp_items SELECT g, 'item ' || g FROM generate_series($1::int, $2::int) g", [i * 10 - 9, i * 10]);
    await client.query('COMMIT');
    add(`c.insert ${i}`, ins.rowCount);
    const r = await client.query('SELECT count(*)::int AS c, sum(n)::int AS s FROM tmp_items');
    add(`c.select ${i}`, `${r.rows[0].c} ${r.rows[0].s}`);
  }
  add('c.drop', (await client.query('DROP TABLE tmp_items')).command);

  // (d) LISTEN/NOTIFY on this one connection.
  const got = [];
  client.on('notification', (m) => got.push(`${m.channel} ${m.payload}`));
  await client.query(`LISTEN ch_${tag}`);
  add('d.listen', 'ok');
  await client.query(`NOTIFY ch_${tag}, 'hello'`);
  add('d.notify', 'ok');
  for (let waited = 0; got.length === 0 && waited < 10000; waited += 10) {
    await new Promise((r) => setTimeout(r, 10));
  }
  add('d.receive', got.join(', ') || 'nothing');
  await client.query('UNLISTEN *');
  add('d.unlisten', 'ok');

  // (e) Errors.
  await client.query('BEGIN');
  await expectError('e.divide by zero', () => client.query('SELECT 1 / 0'));
  add('e.rollback', (await client.query('ROLLBACK')).command);
  add('e.after rollback', Object.values((await client.query('SELECT 1 AS one')).rows[0])[0]);
  await expectError('e.prepare syntax error', () => client.query({ name: 'bad', text: 'SELEC $1', values: [1] }));
  await expectError('e.execute unknown', () => client.query('EXECUTE nope'));
  add('e.after errors', (await client.query({ name: 'q1', text: 'SELECT $1::int + 1000 AS n, $2::text AS s', values: [2, 'x'] })).rows[0].n);

  // (f) COPY both ways with pg-copy-streams.
  await client.query('CREATE TEMP TABLE copy_items (n int, s text)');
  const into = client.query(copyStreams.from('COPY copy_items (n, s) FROM STDIN'));
  await pipeline(Readable.from((function* rows() {
    for (let i = 1; i <= 1000; i++) yield `${i}\trow ${i}\n`;
  })()), into);
  add('f.copy in', `rows ${into.rowCount}`);
  const out = client.query(copyStreams.to('COPY (SELECT * FROM copy_items ORDER BY n) TO STDOUT'));
  const chunks = [];
  for await (const c of out) chunks.push(c);
  const data = Buffer.concat(chunks);
  const lines = data.toString().split('\n').filter((l) => l !== '');
  const sum = lines.reduce((a, l) => a + Number(l.split('\t')[0]), 0);
  add('f.copy out', `rows ${out.rowCount}: ${lines.length} lines, sum ${sum}, md5 ${crypto.createHash('md5').update(data).digest('hex')}`);
  add('f.drop', (await client.query('DROP TABLE copy_items')).command);
  await client.end();
  add('done', 'pg ' + require('pg/package.json').version);
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`scenario failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
