//! PROXY protocol on real connections: the exact bytes a backend receives
//! (v1 and v2; TCP4, TCP6, UNKNOWN; the authority TLV), and a downstream
//! balancer's header accepted only from a trusted source.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::rustls;

use crate::support::*;
use crate::tcp_backends::*;

/// The v2 signature, from the spec (section 2.2).
const SIGNATURE: &[u8; 12] = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A";

/// Connects from `source` (an address on loopback), sends `bytes`, closes
/// its write side, and returns what it read back and its own address.
async fn send_from(source: &str, to: SocketAddr, bytes: &[u8]) -> (Vec<u8>, SocketAddr) {
    let source = SocketAddr::new(source.parse().unwrap(), 0);
    let socket = match source {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(source).unwrap();
    let mut stream: TcpStream = socket.connect(to).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    (read_to_end(&mut stream).await, local)
}

fn listener(name: &str, address: &str, pool: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"{name}\"\naddress = \"{address}\"\nmode = \"tcp\"\n{extra}\n  [[listeners.routes]]\n  pool = \"{pool}\"\n\n"
    )
}

fn recorder_pools(recorder: &ByteRecorder) -> String {
    let backend = backend_toml("recorder", recorder.address());
    format!(
        "[pools.v1]\nbalancer = \"builtin:round-robin\"\nproxy-protocol = \"v1\"\nbackends = [{backend}]\n\n\
         [pools.v2]\nbalancer = \"builtin:round-robin\"\nproxy-protocol = \"v2\"\nbackends = [{backend}]\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n"
    )
}

fn port(address: SocketAddr) -> [u8; 2] {
    address.port().to_be_bytes()
}

#[tokio::test]
async fn headers_sent_to_backends_follow_the_spec_layout() {
    let recorder = ByteRecorder::start().await;
    let config = [
        listener("v1-4", "127.0.0.1:0", "v1", ""),
        listener("v2-4", "127.0.0.1:0", "v2", ""),
        listener("v1-6", "[::1]:0", "v1", ""),
        listener("v2-6", "[::1]:0", "v2", ""),
        recorder_pools(&recorder),
    ]
    .concat();
    let bascule = Bascule::start(&config);

    let (reply, client) = send_from("127.0.0.1", bascule.addr("v1-4"), b"hello").await;
    let proxy = bascule.addr("v1-4");
    let v1_tcp4 = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\nhello",
        client.port(),
        proxy.port()
    );
    assert_eq!(recorder.wait_for(1).await[0], v1_tcp4.as_bytes());
    // The backend's answer came back through the proxy.
    assert_eq!(reply, format!("got {}\n", v1_tcp4.len()).as_bytes());

    let (_, client) = send_from("127.0.0.1", bascule.addr("v2-4"), b"hello").await;
    let proxy = bascule.addr("v2-4");
    let mut v2_tcp4 = SIGNATURE.to_vec();
    v2_tcp4.extend_from_slice(&[0x21, 0x11, 0x00, 12, 127, 0, 0, 1, 127, 0, 0, 1]);
    v2_tcp4.extend_from_slice(&port(client));
    v2_tcp4.extend_from_slice(&port(proxy));
    v2_tcp4.extend_from_slice(b"hello");
    assert_eq!(recorder.wait_for(2).await[1], v2_tcp4);

    let (_, client) = send_from("::1", bascule.addr("v1-6"), b"hello").await;
    let proxy = bascule.addr("v1-6");
    let v1_tcp6 = format!(
        "PROXY TCP6 ::1 ::1 {} {}\r\nhello",
        client.port(),
        proxy.port()
    );
    assert_eq!(recorder.wait_for(3).await[2], v1_tcp6.as_bytes());

    let (_, client) = send_from("::1", bascule.addr("v2-6"), b"hello").await;
    let proxy = bascule.addr("v2-6");
    let loopback6 = std::net::Ipv6Addr::LOCALHOST.octets();
    let mut v2_tcp6 = SIGNATURE.to_vec();
    v2_tcp6.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
    v2_tcp6.extend_from_slice(&loopback6);
    v2_tcp6.extend_from_slice(&loopback6);
    v2_tcp6.extend_from_slice(&port(client));
    v2_tcp6.extend_from_slice(&port(proxy));
    v2_tcp6.extend_from_slice(b"hello");
    assert_eq!(recorder.wait_for(4).await[3], v2_tcp6);
}

/// A real ClientHello for `name`, as rustls would send it.
pub fn client_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut bytes = Vec::new();
    connection.write_tls(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn unknown_origins_and_the_authority_tlv() {
    let recorder = ByteRecorder::start().await;
    let trusted = "accept-proxy-protocol-from = [\"127.0.0.1\"]";
    let sni = "[[listeners]]\nname = \"sni\"\naddress = \"127.0.0.1:0\"\nmode = \"tcp\"\n\n  [[listeners.routes]]\n  sni = \"tlv.test\"\n  pool = \"v2\"\n\n";
    let config = [
        listener("unknown-v1", "127.0.0.1:0", "v1", trusted),
        listener("unknown-v2", "127.0.0.1:0", "v2", trusted),
        sni.to_owned(),
        recorder_pools(&recorder),
    ]
    .concat();
    let bascule = Bascule::start(&config);

    // A downstream balancer that does not know the origin says UNKNOWN;
    // the next hop is told the same.
    send_from(
        "127.0.0.1",
        bascule.addr("unknown-v1"),
        b"PROXY UNKNOWN\r\nhello",
    )
    .await;
    assert_eq!(recorder.wait_for(1).await[0], b"PROXY UNKNOWN\r\nhello");
    send_from(
        "127.0.0.1",
        bascule.addr("unknown-v2"),
        b"PROXY UNKNOWN\r\nhello",
    )
    .await;
    let mut v2_unknown = SIGNATURE.to_vec();
    v2_unknown.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
    v2_unknown.extend_from_slice(b"hello");
    assert_eq!(recorder.wait_for(2).await[1], v2_unknown);

    // The server name read from the ClientHello travels as PP2_TYPE_AUTHORITY.
    let hello = client_hello("tlv.test");
    let (_, client) = send_from("127.0.0.1", bascule.addr("sni"), &hello).await;
    let proxy = bascule.addr("sni");
    let mut v2_tlv = SIGNATURE.to_vec();
    v2_tlv.extend_from_slice(&[0x21, 0x11, 0x00, 12 + 3 + 8, 127, 0, 0, 1, 127, 0, 0, 1]);
    v2_tlv.extend_from_slice(&port(client));
    v2_tlv.extend_from_slice(&port(proxy));
    v2_tlv.extend_from_slice(&[0x02, 0x00, 0x08]);
    v2_tlv.extend_from_slice(b"tlv.test");
    v2_tlv.extend_from_slice(&hello);
    assert_eq!(recorder.wait_for(3).await[2], v2_tlv);
}

#[tokio::test]
async fn downstream_headers_are_accepted_only_from_trusted_sources() {
    let recorder = ByteRecorder::start().await;
    let config = [
        listener(
            "edge",
            "127.0.0.1:0",
            "v1",
            "accept-proxy-protocol-from = [\"127.0.0.1/32\"]",
        ),
        recorder_pools(&recorder),
    ]
    .concat();
    let bascule = Bascule::start(&config);
    let edge = bascule.addr("edge");
    let forged = b"PROXY TCP4 203.0.113.9 198.51.100.1 4000 443\r\nhi";

    // From the trusted balancer: its client's addresses go on to the backend.
    let (reply, _) = send_from("127.0.0.1", edge, forged).await;
    assert_eq!(reply, b"got 48\n");
    assert_eq!(recorder.wait_for(1).await[0], forged);

    // From anywhere else: the same header closes the connection before a
    // byte of it reaches the backend.
    let (reply, client) = send_from("127.0.0.2", edge, forged).await;
    assert!(reply.is_empty(), "{reply:?}");
    let ours = format!(
        "PROXY TCP4 127.0.0.2 127.0.0.1 {} {}\r\n",
        client.port(),
        edge.port()
    );
    assert_eq!(recorder.wait_for(2).await[1], ours.as_bytes());
    let untrusted = bascule
        .metric(
            "bascule_tcp_connections_closed_total",
            &["reason=\"untrusted-proxy-header\""],
        )
        .await;
    assert_eq!(untrusted, 1.0);

    // An untrusted client without a header is served as itself.
    let (reply, client) = send_from("127.0.0.2", edge, b"hi").await;
    let plain = format!(
        "PROXY TCP4 127.0.0.2 127.0.0.1 {} {}\r\nhi",
        client.port(),
        edge.port()
    );
    assert_eq!(recorder.wait_for(3).await[2], plain.as_bytes());
    assert_eq!(reply, format!("got {}\n", plain.len()).as_bytes());

    // A trusted source with a malformed header is closed and counted.
    let (reply, _) = send_from(
        "127.0.0.1",
        edge,
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhi",
    )
    .await;
    assert!(reply.is_empty());
    let malformed = bascule
        .metric(
            "bascule_proxy_protocol_errors_total",
            &["kind=\"malformed-v1\""],
        )
        .await;
    assert_eq!(malformed, 1.0);
    assert_eq!(
        recorder.received().len(),
        3,
        "a malformed header reached a backend"
    );
}
