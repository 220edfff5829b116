//! A PKI made at test time: a CA, a leaf certificate it signs, and rustls configs.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA and one leaf certificate it signed, for `localhost`, `127.0.0.1` and `::1`
/// unless other names are given.
///
/// Configs use rustls' ring provider explicitly, so they work whatever other provider a
/// dependency enables. Two `TestPki`s have unrelated CAs: a client built from one rejects a
/// server built from the other, which is how a test shows that verification happens.
#[derive(Debug)]
pub struct TestPki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

impl TestPki {
    /// A new CA and a leaf for `localhost`, `127.0.0.1` and `::1`.
    ///
    /// # Panics
    /// If key generation or signing fails (it does not with valid names).
    pub fn new() -> Self {
        Self::with_names(&["localhost", "127.0.0.1", "::1"])
    }

    /// A new CA and a leaf whose subject alternative names are `names` (DNS names or IPs).
    ///
    /// # Panics
    /// If a name is not a valid DNS name or IP address.
    pub fn with_names(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .unwrap_or_else(|e| panic!("CA params: {e}"));
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "beamline test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().unwrap_or_else(|e| panic!("leaf key: {e}"));
        let mut leaf_params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("leaf names {names:?}: {e}"));
        leaf_params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .unwrap_or_else(|e| panic!("leaf certificate: {e}"));

        TestPki {
            ca_der: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            leaf_der: leaf_cert.der().clone(),
            leaf_pem: leaf_cert.pem(),
            key_der: leaf_key.serialize_der(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// The rustls crypto provider every config here uses (ring).
    pub fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The CA certificate, PEM (to hand to `openssl s_client -CAfile`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The leaf's chain (leaf, then CA), DER.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.leaf_der.clone(), self.ca_der.clone()]
    }

    /// The leaf certificate followed by the CA certificate, PEM (a server's cert file).
    pub fn cert_chain_pem(&self) -> String {
        format!("{}{}", self.leaf_pem, self.ca_pem)
    }

    /// The leaf's private key, DER (PKCS#8).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The leaf's private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server config presenting the leaf, no client authentication, no ALPN.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config_with_alpn(&[])
    }

    /// A server config presenting the leaf and offering `alpn` protocols.
    ///
    /// # Panics
    /// If rustls rejects the generated key or certificate (it does not).
    pub fn server_config_with_alpn(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("protocol versions: {e}"))
            .with_no_client_auth()
            .with_single_cert(self.cert_chain(), self.key_der())
            .unwrap_or_else(|e| panic!("server certificate: {e}"));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A client config that trusts this CA only.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_with_alpn(&[])
    }

    /// A client config that trusts this CA only and offers `alpn` protocols.
    ///
    /// # Panics
    /// If rustls rejects the generated CA certificate (it does not).
    pub fn client_config_with_alpn(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der())
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        let mut config = ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("protocol versions: {e}"))
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// Runs a blocking rustls handshake over loopback and echoes one message.
    fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<Vec<u8>, rustls::Error> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_thread = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(server).unwrap();
            let mut tls = rustls::Stream::new(&mut conn, &mut sock);
            let mut buf = [0u8; 5];
            if tls.read_exact(&mut buf).is_ok() {
                let _ = tls.write_all(&buf);
            }
        });
        let mut sock = TcpStream::connect(addr).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(client, name).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let result = tls.write_all(b"hello").and_then(|()| {
            let mut buf = vec![0u8; 5];
            tls.read_exact(&mut buf).map(|()| buf)
        });
        drop(sock);
        server_thread.join().unwrap();
        result.map_err(|e| {
            e.into_inner()
                .and_then(|inner| inner.downcast::<rustls::Error>().ok())
                .map_or(rustls::Error::General("io error".into()), |b| *b)
        })
    }

    #[test]
    fn a_client_trusting_the_ca_talks_to_the_server() {
        let pki = TestPki::new();
        let echoed = handshake(pki.server_config(), pki.client_config()).unwrap();
        assert_eq!(echoed, b"hello");
    }

    #[test]
    fn a_client_trusting_another_ca_is_refused() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let err = handshake(pki.server_config(), other.client_config()).unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
    }

    #[test]
    fn pem_forms_are_pem() {
        let pki = TestPki::new();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pki.cert_chain_pem().matches("BEGIN CERTIFICATE").count(), 2);
        assert!(pki.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
