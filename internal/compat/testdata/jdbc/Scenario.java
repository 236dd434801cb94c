// belay compatibility scenario for the PostgreSQL JDBC driver (internal/compat).
//
// Run as: java -cp /usr/share/java/postgresql.jar Scenario.java JDBC_URL N
// Prints one line per step; names and values that depend on the instance
// carry zq<N>, which the test normalizes.

import java.io.ByteArrayOutputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;
import org.postgresql.core.BaseConnection;

public class Scenario {
    static void add(String step, Object value) {
        System.out.println(step + ": " + value);
    }

    static String state(SQLException e) {
        return e.getSQLState() != null ? "SQLSTATE " + e.getSQLState() : "error: " + e;
    }

    interface Step {
        void run() throws Exception;
    }

    static void expectError(String step, Step s) throws Exception {
        try {
            s.run();
            add(step, "no error");
        } catch (SQLException e) {
            add(step, state(e));
        }
    }

    static String one(Statement st, String sql) throws SQLException {
        try (ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        String tag = "zq" + Integer.parseInt(args[1]);
        try (Connection conn = DriverManager.getConnection(url)) {
            Statement st = conn.createStatement();

            // (a) SET then use.
            st.execute("SET application_name = 'app_" + tag + "'");
            st.execute("SET myapp.tenant = 'tenant_" + tag + "'");
            st.execute("SET search_path = sp_" + tag + ", public");
            add("a.set", "ok");
            for (String name : new String[] {"application_name", "myapp.tenant", "search_path"}) {
                add("a.show " + name, one(st, "SHOW " + name));
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT current_setting('application_name'), current_setting(?), current_setting('search_path')")) {
                for (int i = 1; i <= 20; i++) {
                    boolean tx = i % 2 == 0;
                    if (tx) conn.setAutoCommit(false);
                    ps.setString(1, "myapp.tenant");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        add("a.read " + i, rs.getString(1) + " " + rs.getString(2) + " " + rs.getString(3));
                    }
                    if (tx) {
                        conn.commit();
                        conn.setAutoCommit(true);
                    }
                }
            }

            // (b) A PreparedStatement executed 30 times, each in its own
            // transaction: past prepareThreshold (5) the driver switches to a
            // named server-side statement. Then SQL-level PREPARE.
            try (PreparedStatement ps = conn.prepareStatement("SELECT ?::int + 1000, ?::text")) {
                for (int i = 1; i <= 30; i++) {
                    conn.setAutoCommit(false);
                    ps.setInt(1, i);
                    ps.setString(2, "v" + i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        add("b.prepared " + i, rs.getInt(1) + " " + rs.getString(2));
                    }
                    conn.commit();
                    conn.setAutoCommit(true);
                }
                add("b.server prepared", ps.unwrap(PGStatement.class).isUseServerPrepare());
            }
            for (String q : new String[] {"PREPARE p(int) AS SELECT $1 * 2", "EXECUTE p(21)", "DEALLOCATE p",
                    "PREPARE p(int) AS SELECT $1 * 3", "EXECUTE p(21)", "DEALLOCATE p"}) {
                if (q.startsWith("EXECUTE")) {
                    add("b." + q, one(st, q));
                } else {
                    st.execute(q);
                    add("b." + q, "ok");
                }
            }

            // (c) Temp table across transactions.
            st.execute("CREATE TEMP TABLE tmp_items (n int, s text)");
            add("c.create", "ok");
            try (PreparedStatement ins = conn.prepareStatement(
                    "INSERT INTO tmp_items SELECT g, 'item ' || g FROM generate_series(?, ?) g")) {
                for (int i = 1; i <= 3; i++) {
                    conn.setAutoCommit(false);
                    ins.setInt(1, i * 10 - 9);
                    ins.setInt(2, i * 10);
                    add("c.insert " + i, ins.executeUpdate());
                    conn.commit();
                    conn.setAutoCommit(true);
                    try (ResultSet rs = st.executeQuery("SELECT count(*), sum(n) FROM tmp_items")) {
                        rs.next();
                        add("c.select " + i, rs.getLong(1) + " " + rs.getLong(2));
                    }
                }
            }
            st.execute("DROP TABLE tmp_items");
            add("c.drop", "ok");

            // (d) LISTEN/NOTIFY on this one connection.
            PGConnection pgc = conn.unwrap(PGConnection.class);
            st.execute("LISTEN ch_" + tag);
            add("d.listen", "ok");
            st.execute("NOTIFY ch_" + tag + ", 'hello'");
            add("d.notify", "ok");
            PGNotification[] ns = pgc.getNotifications(10000);
            StringBuilder got = new StringBuilder();
            for (PGNotification n : ns == null ? new PGNotification[0] : ns) {
                got.append(got.length() > 0 ? ", " : "").append(n.getName()).append(' ').append(n.getParameter());
            }
            add("d.receive", got.length() > 0 ? got : "nothing");
            st.execute("UNLISTEN *");
            add("d.unlisten", "ok");

            // (e) Errors.
            conn.setAutoCommit(false);
            expectError("e.divide by zero", () -> one(st, "SELECT 1 / 0"));
            conn.rollback();
            conn.setAutoCommit(true);
            add("e.after rollback", one(st, "SELECT 1"));
            expectError("e.prepare syntax error", () -> {
                try (PreparedStatement bad = conn.prepareStatement("SELEC ?")) {
                    bad.setInt(1, 1);
                    bad.executeQuery();
                }
            });
            expectError("e.execute unknown", () -> st.execute("EXECUTE nope"));
            add("e.after errors", one(st, "SELECT 2"));

            // (f) COPY both ways with CopyManager.
            st.execute("CREATE TEMP TABLE copy_items (n int, s text)");
            CopyManager cm = new CopyManager(conn.unwrap(BaseConnection.class));
            StringBuilder in = new StringBuilder();
            for (int i = 1; i <= 1000; i++) in.append(i).append("\trow ").append(i).append('\n');
            add("f.copy in", cm.copyIn("COPY copy_items (n, s) FROM STDIN", new StringReader(in.toString())));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            long rows = cm.copyOut("COPY (SELECT * FROM copy_items ORDER BY n) TO STDOUT", out);
            byte[] data = out.toByteArray();
            long lines = 0, sum = 0;
            for (String line : new String(data, StandardCharsets.UTF_8).split("\n")) {
                if (line.isEmpty()) continue;
                lines++;
                sum += Long.parseLong(line.substring(0, line.indexOf('\t')));
            }
            StringBuilder md5 = new StringBuilder();
            for (byte b : MessageDigest.getInstance("MD5").digest(data)) md5.append(String.format("%02x", b));
            add("f.copy out", "rows " + rows + ": " + lines + " lines, sum " + sum + ", md5 " + md5);
            st.execute("DROP TABLE copy_items");
            add("f.drop", "ok");
            add("done", "pgjdbc " + conn.getMetaData().getDriverVersion());
        }
    }
}
