/// The addresses `aegis dev` uses for its local three-node cluster, and that the
/// command-line tools default to. One place, so the tools and the dev cluster agree.
///
/// | node  | RESP (clients)   | HTTP admin       | peers (Raft)     |
/// |-------|------------------|------------------|------------------|
/// | node1 | 127.0.0.1:7001   | 127.0.0.1:8001   | 127.0.0.1:9001   |
/// | node2 | 127.0.0.1:7002   | 127.0.0.1:8002   | 127.0.0.1:9002   |
/// | node3 | 127.0.0.1:7003   | 127.0.0.1:8003   | 127.0.0.1:9003   |
public enum DevDefaults {
    /// The loopback host every dev node binds.
    public static let host = "127.0.0.1"
    /// The node IDs of the dev cluster, in order.
    public static let nodeIDs = ["node1", "node2", "node3"]
    /// The RESP (client) ports, one per node, in `nodeIDs` order.
    public static let respPorts = [7001, 7002, 7003]
    /// The HTTP admin ports, one per node, in `nodeIDs` order.
    public static let adminPorts = [8001, 8002, 8003]
    /// The Raft peer ports, one per node, in `nodeIDs` order.
    public static let peerPorts = [9001, 9002, 9003]
    /// The data folder of the dev cluster, relative to the working directory.
    public static let dataDirectory = ".aegis/dev"

    /// The file in the dev data folder holding the admin token `aegis dev` generated;
    /// the tools read it when no token is given.
    public static let adminTokenFileName = "admin-token"
    /// The folder in the dev data folder with the throw-away CA (`ca.pem`) and the
    /// node certificates; the tools trust its `ca.pem` when no CA is given.
    public static let tlsDirectoryName = "tls"
    /// A file in the dev data folder that says the dev cluster runs without TLS
    /// (`aegis dev --no-tls`): the tools then connect in plaintext by default.
    public static let plaintextMarkerName = "no-tls"

    /// The admin token file of the dev cluster in `root`.
    public static func adminTokenPath(in root: String = dataDirectory) -> String { "\(root)/\(adminTokenFileName)" }
    /// The CA certificate of the dev cluster in `root`.
    public static func caPath(in root: String = dataDirectory) -> String { "\(root)/\(tlsDirectoryName)/ca.pem" }
    /// The plaintext marker of the dev cluster in `root`.
    public static func plaintextMarkerPath(in root: String = dataDirectory) -> String { "\(root)/\(plaintextMarkerName)" }

    /// The RESP address the tools use when `--server` is not given: the first dev node.
    public static var respAddress: String { "\(host):\(respPorts[0])" }
    /// The admin address the tools use when `--admin` is not given: the first dev node.
    public static var adminAddress: String { "\(host):\(adminPorts[0])" }
}
