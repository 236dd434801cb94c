// belay's sharded JDBC scenario (cmd/belay TestShardedJDBC): transactions
// across two shards as JDBC sends them (BEGIN with the first statement,
// COMMIT in the extended protocol, statements server-prepared past
// prepareThreshold), and reads of every shard through PreparedStatement.
//
// Run as: java -cp /usr/share/java/postgresql.jar ShardedTx.java JDBC_URL A B
// (A and B: keys of kx on different shards). Prints one line per step.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;

public class ShardedTx {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        long a = Long.parseLong(args[1]), b = Long.parseLong(args[2]);
        try (Connection conn = DriverManager.getConnection(url)) {
            conn.setAutoCommit(false);
            PreparedStatement up = conn.prepareStatement("UPDATE kx SET v = v + ? WHERE aid = ?");
            // Ten transfers of 1 from a to b, each committed: past
            // prepareThreshold (5) the UPDATE is a named server statement.
            for (int i = 0; i < 10; i++) {
                up.setLong(1, -1); up.setLong(2, a); up.executeUpdate();
                up.setLong(1, 1); up.setLong(2, b); up.executeUpdate();
                conn.commit();
            }
            // One rolled back.
            up.setLong(1, -100); up.setLong(2, a); up.executeUpdate();
            up.setLong(1, 100); up.setLong(2, b); up.executeUpdate();
            conn.rollback();
            conn.setAutoCommit(true);
            // Reads of every shard, prepared past the threshold too.
            PreparedStatement sum = conn.prepareStatement("SELECT count(*), sum(v), min(v), max(v) FROM kx WHERE v > ?");
            String last = "";
            for (int i = 0; i < 7; i++) {
                sum.setLong(1, -1000);
                try (ResultSet rs = sum.executeQuery()) {
                    rs.next();
                    last = rs.getLong(1) + " " + rs.getLong(2) + " " + rs.getLong(3) + " " + rs.getLong(4);
                }
            }
            System.out.println("every shard: " + last);
            PreparedStatement one = conn.prepareStatement("SELECT v FROM kx WHERE aid = ?");
            for (long k : new long[] {a, b}) {
                one.setLong(1, k);
                try (ResultSet rs = one.executeQuery()) {
                    rs.next();
                    System.out.println("key " + k + ": " + rs.getLong(1));
                }
            }
        } catch (SQLException e) {
            System.out.println("error: SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
        }
    }
}
