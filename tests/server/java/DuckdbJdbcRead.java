// The DuckDB JDBC driver (what DBeaver's DuckDB connection uses) reading a prediction table from a
// file written by rdl-sql, read-only. Prints `key=value` lines for the Python test to check.
// Usage: java -cp duckdb_jdbc.jar:. DuckdbJdbcRead /path/to/shop.duckdb
import java.sql.*;
import java.util.Properties;

public class DuckdbJdbcRead {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("duckdb.read_only", "true");
        try (Connection conn = DriverManager.getConnection("jdbc:duckdb:" + args[0], props);
             Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT customer_id, prediction, score FROM churn_scores ORDER BY customer_id")) {
            int n = 0;
            double sum = 0;
            while (rs.next()) {
                rs.getBoolean(2);
                sum += rs.getDouble(3);
                n++;
            }
            System.out.println("table_rows=" + n);
            System.out.printf("table_score_sum=%.6f%n", sum);
            try (ResultSet v = st.executeQuery("SELECT library_version FROM pragma_version()")) {
                v.next();
                System.out.println("version=" + v.getString(1));
            }
        }
    }
}
