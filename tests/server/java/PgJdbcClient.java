// A BI tool's calls through the PostgreSQL JDBC driver against `rdl-sql serve`: read a prediction
// table, run a PREDICT (plain and prepared), and the metadata calls (getTables, getColumns) that
// DBeaver, Metabase and Tableau make. Prints `key=value` lines for the Python test to check.
// Usage: java -cp postgresql.jar:. PgJdbcClient jdbc:postgresql://127.0.0.1:PORT/shop user
import java.sql.*;

public class PgJdbcClient {
    public static void main(String[] args) throws Exception {
        try (Connection conn = DriverManager.getConnection(args[0], args[1], "")) {
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery(
                     "SELECT customer_id, prediction, score FROM churn_scores ORDER BY customer_id")) {
                int n = 0;
                double sum = 0;
                long first = -1;
                while (rs.next()) {
                    if (n == 0) first = rs.getLong(1);
                    rs.getBoolean(2);
                    sum += rs.getDouble(3);
                    n++;
                }
                System.out.println("table_rows=" + n);
                System.out.println("table_first=" + first);
                System.out.printf("table_score_sum=%.6f%n", sum);
            }
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("PREDICT USING churn")) {
                ResultSetMetaData md = rs.getMetaData();
                StringBuilder cols = new StringBuilder();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    cols.append(i > 1 ? "," : "").append(md.getColumnName(i)).append(':').append(md.getColumnTypeName(i));
                }
                int n = 0;
                double sum = 0;
                while (rs.next()) {
                    sum += rs.getDouble("score");
                    n++;
                }
                System.out.println("predict_columns=" + cols);
                System.out.println("predict_rows=" + n);
                System.out.printf("predict_score_sum=%.6f%n", sum);
            }
            try (PreparedStatement ps = conn.prepareStatement(
                     "SELECT count(*) FROM (PREDICT USING churn) p WHERE p.score >= ?")) {
                ps.setDouble(1, 0.0);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("prepared_count=" + rs.getLong(1));
                }
            }
            try (Statement st = conn.createStatement()) {
                st.executeQuery("PREDICT USING nope");
                System.out.println("error=none");
            } catch (SQLException e) {
                System.out.println("error_state=" + e.getSQLState());
                System.out.println("error_message=" + e.getMessage().replace('\n', ' '));
            }
            DatabaseMetaData meta = conn.getMetaData();
            StringBuilder tables = new StringBuilder();
            try (ResultSet rs = meta.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.append(tables.length() > 0 ? "," : "").append(rs.getString("TABLE_NAME"));
                }
            }
            System.out.println("tables=" + tables);
            StringBuilder cols = new StringBuilder();
            try (ResultSet rs = meta.getColumns(null, null, "churn_scores", "%")) {
                while (rs.next()) {
                    cols.append(cols.length() > 0 ? "," : "").append(rs.getString("COLUMN_NAME")).append(':')
                        .append(rs.getString("TYPE_NAME"));
                }
            }
            System.out.println("columns=" + cols);
        }
    }
}
