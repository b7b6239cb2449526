// Readiness probe for kafka-local.sh when the Python confluent_kafka package is
// not importable. Run in Java's single-file source mode:
//   java -cp 'JARS/*' ReadyCheck.java 127.0.0.1:19092 [expectedNodeId]
// Exits 0 when a metadata (DescribeCluster) request lists the expected broker.
import java.util.Collection;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.Node;

public class ReadyCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        int expected = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("request.timeout.ms", "5000");
        p.put("default.api.timeout.ms", "5000");
        try (Admin admin = Admin.create(p)) {
            Collection<Node> nodes = admin.describeCluster().nodes().get(6, TimeUnit.SECONDS);
            for (Node n : nodes) {
                if (n.id() == expected) {
                    System.out.println("ready: broker " + n);
                    return;
                }
            }
            System.err.println("broker " + expected + " not in metadata: " + nodes);
            System.exit(1);
        }
    }
}
