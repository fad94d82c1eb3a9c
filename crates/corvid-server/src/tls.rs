//! TLS on the API listener (`--ssl-keyfile` / `--ssl-certfile`, vLLM's flags): rustls
//! with its ring provider, the certificate chain and key read from PEM files once, at
//! start-up, so a bad file is an error before anything listens.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the API listener's certificate chain and private key live (PEM files).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The private key (`--ssl-keyfile`).
    pub keyfile: PathBuf,
    /// The certificate chain, leaf first (`--ssl-certfile`).
    pub certfile: PathBuf,
}

/// Reads the PEM files into the listener's TLS acceptor (HTTP/1.1 over TLS 1.2 or 1.3).
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let cert_path = files.certfile.display();
    let certs = CertificateDer::pem_file_iter(&files.certfile)
        .with_context(|| format!("cannot read --ssl-certfile {cert_path}"))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--ssl-certfile {cert_path} is not a PEM certificate chain"))?;
    if certs.is_empty() {
        anyhow::bail!("--ssl-certfile {cert_path} holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_file(&files.keyfile).with_context(|| {
        format!(
            "--ssl-keyfile {} is not a readable PEM private key",
            files.keyfile.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the --ssl-certfile certificate does not match the --ssl-keyfile key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files that are missing or not PEM are a start-up error naming the flag.
    #[test]
    fn bad_files_are_clear_errors() {
        let dir = std::env::temp_dir();
        let junk = dir.join(format!("corvid-tls-junk-{}.pem", std::process::id()));
        std::fs::write(&junk, "not a certificate").unwrap();
        for (key, cert, flag) in [
            (
                junk.clone(),
                dir.join("corvid-no-such-cert.pem"),
                "--ssl-certfile",
            ),
            (junk.clone(), junk.clone(), "--ssl-certfile"),
        ] {
            let Err(e) = acceptor(&TlsFiles {
                keyfile: key,
                certfile: cert,
            }) else {
                panic!("bad files accepted")
            };
            assert!(format!("{e:#}").contains(flag), "{e:#}");
        }
        std::fs::remove_file(&junk).unwrap();
    }
}
