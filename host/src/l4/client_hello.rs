//! Reading the server name (SNI) from a TLS ClientHello without answering
//! it: the bytes stay untouched and are forwarded to the backend, which
//! terminates TLS itself.
//!
//! The parsing is rustls's ([`rustls::server::Acceptor`]), fed the bytes
//! as they arrive; no certificate or crypto provider is involved. rustls
//! refuses hellos without `signature_algorithms`, which only pre-TLS 1.2
//! clients omit: such connections count as having no SNI.

use rustls::server::Acceptor;

/// The most a client may send before its ClientHello is complete. Real
/// hellos are under 2 KiB, post-quantum key shares included.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// Incremental ClientHello reader.
pub struct ClientHelloReader {
    acceptor: Acceptor,
    /// How many bytes of the connection's buffer were handed to rustls.
    consumed: usize,
}

/// What the bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloProgress {
    /// A complete ClientHello, with the server name when it carries one.
    Complete(Option<String>),
    /// Not a ClientHello, malformed, or larger than [`MAX_CLIENT_HELLO`].
    NotTls,
    /// Read more.
    NeedMore,
}

// === impl ClientHelloReader ===

impl ClientHelloReader {
    /// A reader at the start of a connection.
    pub fn new() -> Self {
        ClientHelloReader {
            acceptor: Acceptor::default(),
            consumed: 0,
        }
    }

    /// Looks at `received`: every byte the client sent so far (the same
    /// buffer, grown, on each call).
    pub fn advance(&mut self, received: &[u8]) -> HelloProgress {
        // A TLS record of type handshake opens every ClientHello.
        if received.first().is_some_and(|&byte| byte != 0x16) {
            return HelloProgress::NotTls;
        }
        let mut fresh = received.get(self.consumed..).unwrap_or_default();
        while !fresh.is_empty() {
            match self.acceptor.read_tls(&mut fresh) {
                Ok(0) | Err(_) => return HelloProgress::NotTls,
                Ok(_) => {}
            }
        }
        self.consumed = received.len();
        match self.acceptor.accept() {
            Ok(Some(accepted)) => {
                HelloProgress::Complete(accepted.client_hello().server_name().map(str::to_owned))
            }
            Ok(None) if received.len() < MAX_CLIENT_HELLO => HelloProgress::NeedMore,
            Ok(None) | Err(_) => HelloProgress::NotTls,
        }
    }
}

impl Default for ClientHelloReader {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TLS 1.2 ClientHello naming `server_name` (RFC 5246 and
    /// RFC 6066 layout, written out by hand), with the one other extension
    /// rustls insists on (signature_algorithms).
    fn client_hello(server_name: &str) -> Vec<u8> {
        let name = server_name.as_bytes();
        let name_len = name.len() as u16;
        let mut sni = vec![0x00, 0x00]; // extension type: server_name
        sni.extend_from_slice(&(name_len + 5).to_be_bytes()); // extension length
        sni.extend_from_slice(&(name_len + 3).to_be_bytes()); // list length
        sni.push(0x00); // host_name
        sni.extend_from_slice(&name_len.to_be_bytes());
        sni.extend_from_slice(name);
        sni.extend_from_slice(&[0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x08, 0x04]);
        let mut body = vec![0x03, 0x03]; // client_version TLS 1.2
        body.extend_from_slice(&[7; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // one cipher suite
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        body.extend_from_slice(&sni);
        let mut handshake = vec![0x01]; // client_hello
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend_from_slice(&handshake);
        record
    }

    #[test]
    fn reads_the_server_name_byte_by_byte() {
        let hello = client_hello("api.example.com");
        let mut reader = ClientHelloReader::new();
        for end in 1..hello.len() {
            assert_eq!(reader.advance(&hello[..end]), HelloProgress::NeedMore);
        }
        assert_eq!(
            reader.advance(&hello),
            HelloProgress::Complete(Some("api.example.com".to_owned()))
        );
    }

    #[test]
    fn plain_text_and_garbage_are_not_tls() {
        assert_eq!(
            ClientHelloReader::new().advance(b"GET / HTTP/1.1\r\n"),
            HelloProgress::NotTls
        );
        let mut broken = client_hello("a.test");
        broken[5] = 0x02; // server_hello where a client_hello belongs
        assert_eq!(
            ClientHelloReader::new().advance(&broken),
            HelloProgress::NotTls
        );
    }
}
