// Waits until the Kafka broker at HOST:PORT answers a metadata request (the admin client's
// DescribeCluster), which is what "ready" means to scripts/lib/broker.sh: the port being open
// is not enough, a KRaft broker accepts connections before it can serve them.
//
//   java -cp 'LIBS/*' scripts/kafka/Ready.java HOST:PORT SECONDS [PID [BROKERS]]
//
// Exits 0 once the cluster answers with at least BROKERS brokers (default 1; a cluster's node
// waits for all of them: a broker is listed once it is registered and unfenced); 1 when SECONDS
// pass first, or when the process PID (the broker) exits in the meantime. Needs only
// kafka-clients.

import java.time.Duration;
import java.time.Instant;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;

public class Ready {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Ready.java HOST:PORT SECONDS [PID [BROKERS]]");
            System.exit(2);
        }
        String bootstrap = args[0];
        Instant deadline = Instant.now().plusSeconds(Long.parseLong(args[1]));
        Long brokerPid = args.length > 2 && !args[2].isEmpty() ? Long.valueOf(args[2]) : null;
        int wanted = args.length > 3 ? Integer.parseInt(args[3]) : 1;

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // Retry connecting quickly: the broker is expected to come up within seconds.
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "50");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "50");
        props.put(AdminClientConfig.RETRY_BACKOFF_MAX_MS_CONFIG, "200");
        String lastError = "no answer";
        try (Admin admin = Admin.create(props)) {
            while (Instant.now().isBefore(deadline)) {
                if (brokerPid != null && ProcessHandle.of(brokerPid).map(p -> !p.isAlive()).orElse(true)) {
                    System.err.println("the broker (pid " + brokerPid + ") exited before it was ready");
                    System.exit(1);
                }
                try {
                    int brokers = admin.describeCluster(new DescribeClusterOptions().timeoutMs(1000))
                            .nodes()
                            .get()
                            .size();
                    if (brokers >= wanted) {
                        System.exit(0);
                    }
                    lastError = "the cluster answered with " + brokers + " of " + wanted + " brokers";
                } catch (Exception e) {
                    lastError = String.valueOf(e.getCause() != null ? e.getCause() : e);
                }
                Thread.sleep(100);
            }
        }
        System.err.println("the broker at " + bootstrap + " did not answer a metadata request within "
                + args[1] + " s (last: " + lastError + ")");
        System.exit(1);
    }
}
