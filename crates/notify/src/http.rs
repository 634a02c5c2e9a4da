//! The HTTP channels: SMS through a provider's API (a form or JSON body with configurable
//! field names, basic or bearer authentication) and push through a signed webhook to the
//! issuer's app backend (JSON, `X-Cardguard-Signature: sha256=HEX` = HMAC-SHA256 over the
//! timestamp, a dot and the body, with `X-Cardguard-Timestamp`). One POST per message over
//! hyper, TLS by rustls with the web's root certificates. A 2xx is accepted; a 408, 429 or
//! 5xx is tried again; any other answer is a refusal for good.

use crate::email::SendError;
use bytes::Bytes;
use cardguard_app::config::{BodyFormat, HttpAuth, PushConfig, SmsConfig};
use cardguard_store::OutboxRow;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpConfigError {
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
}

/// POSTs to one endpoint.
struct Endpoint {
    uri: Uri,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

fn retry(message: String) -> SendError {
    SendError {
        permanent: false,
        message,
    }
}

impl Endpoint {
    fn new(field: &'static str, url: &str, timeout_ms: u64) -> Result<Endpoint, HttpConfigError> {
        let bad = |why: &str| HttpConfigError::Invalid {
            field,
            why: why.into(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        if uri.host().is_none() {
            return Err(bad("has no host"));
        }
        let tls = match uri.scheme_str() {
            Some("https") => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(&e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            Some("http") => None,
            _ => return Err(bad("must be http:// or https://")),
        };
        Ok(Endpoint {
            uri,
            tls,
            timeout: Duration::from_millis(timeout_ms.max(1)),
        })
    }

    /// One POST; the status of the answer.
    async fn post(&self, headers: &[(&str, String)], body: Vec<u8>) -> Result<u16, SendError> {
        tokio::time::timeout(self.timeout, self.post_now(headers, body))
            .await
            .map_err(|_| retry(format!("no answer within {} ms", self.timeout.as_millis())))?
    }

    async fn post_now(&self, headers: &[(&str, String)], body: Vec<u8>) -> Result<u16, SendError> {
        let host = self.uri.host().unwrap_or_default();
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| retry(format!("connecting to {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = hyper::Request::post(path).header(
            "host",
            match self.uri.port_u16() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            },
        );
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError {
                permanent: true,
                message: e.to_string(),
            })?;
        let status = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| retry(format!("{host}: {e}")))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| retry(format!("TLS with {host}: {e}")))?;
                send(TokioIo::new(stream), req).await?
            }
            None => send(TokioIo::new(tcp), req).await?,
        };
        Ok(status)
    }
}

async fn send<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<u16, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| retry(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| retry(e.to_string()))?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    driver.abort();
    Ok(status)
}

/// What an answer's status means.
fn accepted(status: u16, what: &str) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(retry(format!("{what} answered {status}"))),
        _ => Err(SendError {
            permanent: true,
            message: format!("{what} answered {status}"),
        }),
    }
}

/// Form encoding of one value (`application/x-www-form-urlencoded`).
fn form_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The SMS channel.
pub struct Sms {
    endpoint: Endpoint,
    cfg: SmsConfig,
}

impl Sms {
    pub fn new(cfg: &SmsConfig) -> Result<Sms, HttpConfigError> {
        let need = |v: &Option<String>, field| {
            v.as_ref().map(|_| ()).ok_or(HttpConfigError::Invalid {
                field,
                why: "is required by its auth".into(),
            })
        };
        match cfg.auth {
            HttpAuth::Basic => {
                need(&cfg.username, "notify.sms.username")?;
                need(&cfg.password, "notify.sms.password")?;
            }
            HttpAuth::Bearer => need(&cfg.token, "notify.sms.token")?,
            HttpAuth::None => {}
        }
        Ok(Sms {
            endpoint: Endpoint::new("notify.sms.url", &cfg.url, cfg.timeout_ms)?,
            cfg: cfg.clone(),
        })
    }

    /// The request body and its content type for one message.
    pub fn body(&self, to: &str, text: &str) -> (&'static str, Vec<u8>) {
        let c = &self.cfg;
        match c.format {
            BodyFormat::Form => (
                "application/x-www-form-urlencoded",
                format!(
                    "{}={}&{}={}&{}={}",
                    form_value(&c.from_field),
                    form_value(&c.from),
                    form_value(&c.to_field),
                    form_value(to),
                    form_value(&c.text_field),
                    form_value(text)
                )
                .into_bytes(),
            ),
            BodyFormat::Json => {
                let mut m = serde_json::Map::new();
                m.insert(c.from_field.clone(), c.from.clone().into());
                m.insert(c.to_field.clone(), to.into());
                m.insert(c.text_field.clone(), text.into());
                (
                    "application/json",
                    serde_json::Value::Object(m).to_string().into_bytes(),
                )
            }
        }
    }

    pub async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        use base64::Engine as _;
        let (content_type, body) = self.body(&row.recipient, &row.body);
        let mut headers = vec![
            ("content-type", content_type.to_owned()),
            ("idempotency-key", row.key.clone()),
        ];
        match self.cfg.auth {
            HttpAuth::Basic => {
                let pair = format!(
                    "{}:{}",
                    self.cfg.username.as_deref().unwrap_or_default(),
                    self.cfg.password.as_deref().unwrap_or_default()
                );
                headers.push((
                    "authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                ));
            }
            HttpAuth::Bearer => headers.push((
                "authorization",
                format!("Bearer {}", self.cfg.token.as_deref().unwrap_or_default()),
            )),
            HttpAuth::None => {}
        }
        let status = self.endpoint.post(&headers, body).await?;
        accepted(status, "the SMS provider")
    }
}

/// The push channel.
pub struct Push {
    endpoint: Endpoint,
    secret: Vec<u8>,
}

/// The signature of a push body sent at `timestamp` (Unix seconds).
pub fn push_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let out = mac.finalize().into_bytes();
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Push {
    pub fn new(cfg: &PushConfig) -> Result<Push, HttpConfigError> {
        if cfg.secret.len() < 16 {
            return Err(HttpConfigError::Invalid {
                field: "notify.push.secret",
                why: "must be at least 16 characters".into(),
            });
        }
        Ok(Push {
            endpoint: Endpoint::new("notify.push.url", &cfg.url, cfg.timeout_ms)?,
            secret: cfg.secret.as_bytes().to_vec(),
        })
    }

    /// The row's body is the JSON document; it is signed as it goes.
    pub async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let body = row.body.clone().into_bytes();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("idempotency-key", row.key.clone()),
            ("x-cardguard-timestamp", ts.to_string()),
            (
                "x-cardguard-signature",
                push_signature(&self.secret, ts, &body),
            ),
        ];
        let status = self.endpoint.post(&headers, body).await?;
        accepted(status, "the push webhook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_signatures_and_statuses() {
        let cfg: SmsConfig = toml::from_str(
            r#"url = "https://sms.example/v1/messages"
from = "Example Card"
to_field = "To"
text_field = "Body"
from_field = "From""#,
        )
        .unwrap();
        let sms = Sms::new(&cfg).unwrap();
        let (ct, body) = sms.body("+819012345678", "¥4,000 on hold & more");
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "From=Example+Card&To=%2B819012345678&Body=%C2%A54%2C000+on+hold+%26+more"
        );
        let json = SmsConfig {
            format: BodyFormat::Json,
            ..cfg.clone()
        };
        let (ct, body) = Sms::new(&json).unwrap().body("+1555", "hi");
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"From": "Example Card", "To": "+1555", "Body": "hi"})
        );
        let basic = SmsConfig {
            auth: HttpAuth::Basic,
            ..cfg.clone()
        };
        assert!(Sms::new(&basic).is_err(), "basic auth needs its username");
        assert!(Endpoint::new("x", "ftp://sms.example/", 1).is_err());
        // RFC 4231 test case 2 as the MAC: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            push_signature(b"Jefe", 0, b"what do ya want for nothing?").len(),
            "sha256=".len() + 64
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(accepted(202, "x"), Ok(()));
        assert!(!accepted(503, "x").unwrap_err().permanent);
        assert!(!accepted(429, "x").unwrap_err().permanent);
        assert!(accepted(400, "x").unwrap_err().permanent);
    }
}
