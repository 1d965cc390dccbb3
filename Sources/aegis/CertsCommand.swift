import AegisTLS
import ArgumentParser
import Foundation

/// `aegis certs`: a cluster CA and the certificates of its nodes and clients.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create a cluster CA and node or client certificates (ECDSA P-256, PEM).",
        discussion: """
            Nodes authenticate each other with mutual TLS: a node certificate names the node ID \
            (and the hosts clients use to reach it) and is signed by the cluster CA. Keep \
            ca-key.pem off the nodes; copy each node its own directory (ca.pem, <id>.pem, \
            <id>-key.pem). Replace the files and send SIGHUP to rotate without a restart.

              aegis certs create --out certs --nodes node1,node2,node3 --hosts 127.0.0.1,localhost
              aegis certs ca --out certs/ca
              aegis certs node --ca certs/ca --id node4 --host 10.0.0.4 --out certs/node4
              aegis certs client --ca certs/ca --name ops --out certs/ops
              aegis certs show certs/node1/node1.pem
            """,
        subcommands: [CreateCommand.self, CACommand.self, NodeCommand.self, ClientCommand.self, ShowCommand.self])

    /// Options shared by the commands that write files.
    struct WriteOptions: ParsableArguments {
        @Option(help: "Validity of issued node and client certificates, in days.") var days: Int = 365
        @Flag(help: "Overwrite existing files.") var force = false

        var validity: Duration { .seconds(Int64(days) * 86_400) }
    }

    /// `aegis certs create`: a CA and one certificate per node, in one go.
    struct CreateCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a CA (OUT/ca) and a certificate for each node (OUT/<id>).")

        @Option(help: "Directory to write into.") var out: String
        @Option(help: "Node IDs, comma-separated.", transform: splitList) var nodes: [String]
        @Option(help: "Hosts (IP addresses or DNS names) every node certificate also names, comma-separated.",
                transform: splitList) var hosts: [String] = ["127.0.0.1", "localhost"]
        @Option(help: "Common name of the CA.") var caName = "Aegis cluster CA"
        @Option(help: "Validity of the CA, in days.") var caDays: Int = 3650
        @OptionGroup var options: WriteOptions

        func run() throws {
            guard !nodes.isEmpty else { throw ValidationError("--nodes needs at least one node ID") }
            let ca = try CertificateAuthority.create(commonName: caName, validity: .seconds(Int64(caDays) * 86_400))
            let caDirectory = path(out, "ca")
            printWritten(try ca.write(to: caDirectory, overwrite: options.force), key: "CA")
            for node in nodes {
                let issued = try ca.issue(nodeID: node, hosts: hosts, validity: options.validity)
                let files = try issued.write(to: path(out, node), overwrite: options.force)
                printWritten(files, name: node, summary: issued.summary)
            }
            print("Keep \(path(caDirectory, AegisTLS.caKeyFileName)) safe and off the nodes; it signs new certificates.")
        }
    }

    /// `aegis certs ca`: a new CA.
    struct CACommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ca", abstract: "Create a cluster CA (ca.pem, ca-key.pem).")

        @Option(help: "Directory to write into.") var out: String
        @Option(help: "Common name of the CA.") var name = "Aegis cluster CA"
        @Option(help: "Validity of the CA, in days.") var days: Int = 3650
        @Flag(help: "Overwrite existing files.") var force = false

        func run() throws {
            let ca = try CertificateAuthority.create(commonName: name, validity: .seconds(Int64(days) * 86_400))
            printWritten(try ca.write(to: out, overwrite: force), key: "CA")
            print("  expires   \(ca.summary.notValidAfter)")
        }
    }

    /// `aegis certs node`: a node certificate from an existing CA.
    struct NodeCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "node", abstract: "Issue a node certificate (its SAN names the node ID and the hosts).")

        @Option(help: "Directory of the CA (ca.pem, ca-key.pem).") var ca: String
        @Option(help: "The node ID.") var id: String
        @Option(help: "A host (IP address or DNS name) clients use to reach the node; repeatable.") var host: [String] = []
        @Option(help: "Directory to write into (default: ./<id>).") var out: String?
        @OptionGroup var options: WriteOptions

        func run() throws {
            let authority = try CertificateAuthority.load(from: ca)
            let issued = try authority.issue(nodeID: id, hosts: host, validity: options.validity)
            printWritten(try issued.write(to: out ?? id, overwrite: options.force), name: id, summary: issued.summary)
        }
    }

    /// `aegis certs client`: a client certificate from an existing CA.
    struct ClientCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "client", abstract: "Issue a client certificate (TLS client authentication only).")

        @Option(help: "Directory of the CA (ca.pem, ca-key.pem).") var ca: String
        @Option(help: "The client's name.") var name: String
        @Option(help: "Directory to write into (default: ./<name>).") var out: String?
        @OptionGroup var options: WriteOptions

        func run() throws {
            let authority = try CertificateAuthority.load(from: ca)
            let issued = try authority.issueClient(name: name, validity: options.validity)
            printWritten(try issued.write(to: out ?? name, overwrite: options.force), name: name, summary: issued.summary)
        }
    }

    /// `aegis certs show`: what a certificate file says.
    struct ShowCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Print the subject, names, issuer and validity of the certificates in a PEM file.")

        @Argument(help: "A PEM certificate file.") var file: String

        func run() throws {
            for summary in try CertificateSummary.read(path: file) {
                print("subject   \(summary.subject)\(summary.isCertificateAuthority ? "  (CA)" : "")")
                print("issuer    \(summary.issuer)")
                print("names     \(summary.alternativeNames.isEmpty ? "(none)" : summary.alternativeNames.joined(separator: ", "))")
                print("valid     \(summary.notValidBefore) to \(summary.notValidAfter) (\(String(format: "%.1f", summary.daysLeft())) days left)")
            }
        }
    }
}

private func splitList(_ text: String) -> [String] {
    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

private func path(_ directory: String, _ name: String) -> String {
    URL(fileURLWithPath: directory).appendingPathComponent(name).path
}

private func printWritten(_ paths: [String], key: String) {
    print("\(key):")
    for path in paths { print("  wrote     \(path)") }
}

private func printWritten(_ files: TLSFiles, name: String, summary: CertificateSummary) {
    print("\(name):")
    print("  CA        \(files.caPath)")
    print("  cert      \(files.certificatePath)")
    print("  key       \(files.keyPath)   (mode 0600)")
    print("  names     \(summary.alternativeNames.joined(separator: ", "))")
    print("  expires   \(summary.notValidAfter)")
}
