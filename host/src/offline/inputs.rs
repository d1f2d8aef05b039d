//! The inputs of an offline run: backends (TOML) with a simulated
//! latency and failure rate, and requests or probe outcomes (JSON lines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::OfflineError;

/// One backend as the run shows it, with how it behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedBackend {
    /// Its id (the `name`, or the address).
    pub id: String,
    /// `host:port` as the plugin sees it.
    pub address: String,
    /// Relative weight.
    pub weight: u32,
    /// Operator labels.
    pub metadata: Vec<(String, String)>,
    /// How long it takes to answer.
    pub latency: Duration,
    /// The share of requests it fails, 0 to 1.
    pub failure_rate: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendsFile {
    backends: Vec<RawBackend>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBackend {
    name: Option<String>,
    address: Option<String>,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    latency: Option<String>,
    #[serde(default)]
    failure_rate: f64,
}

fn one() -> u32 {
    1
}

/// The `[[backends]]` of a TOML file.
pub fn read_backends(path: &Path) -> Result<Vec<SimulatedBackend>, OfflineError> {
    let text = read(path)?;
    let input = |line: usize, message: String| OfflineError::Input {
        path: path.to_owned(),
        line,
        message,
    };
    let file: BackendsFile = toml::from_str(&text).map_err(|error| {
        let line = error.span().map_or(0, |span| {
            text[..span.start.min(text.len())].lines().count().max(1)
        });
        input(line, error.message().to_owned())
    })?;
    file.backends
        .into_iter()
        .enumerate()
        .map(|(n, raw)| {
            let id = raw
                .name
                .clone()
                .or_else(|| raw.address.clone())
                .unwrap_or_else(|| format!("backend-{}", n + 1));
            let latency = match &raw.latency {
                None => Duration::from_millis(1),
                Some(text) => humantime::parse_duration(text)
                    .map_err(|e| input(0, format!("backends[{n}].latency: {e}")))?,
            };
            if !(0.0..=1.0).contains(&raw.failure_rate) || raw.weight == 0 {
                return Err(input(
                    0,
                    format!("backends[{n}]: `failure-rate` is 0 to 1 and `weight` at least 1"),
                ));
            }
            Ok(SimulatedBackend {
                address: raw
                    .address
                    .unwrap_or_else(|| format!("192.0.2.{}:80", n + 1)),
                id,
                weight: raw.weight,
                metadata: raw.metadata.into_iter().collect(),
                latency,
                failure_rate: raw.failure_rate,
            })
        })
        .collect()
}

/// Every line of a JSON-lines file as `T` (blank lines and `#` comments
/// skipped), or the first bad line's number and why.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, OfflineError> {
    Ok(read_numbered_jsonl(path)?
        .into_iter()
        .map(|(_, value)| value)
        .collect())
}

/// Like [`read_jsonl`], each value with its 1-based line in the file.
fn read_numbered_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Vec<(usize, T)>, OfflineError> {
    let text = read(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(n, line)| {
            let input = |message: String| OfflineError::Input {
                path: path.to_owned(),
                line: n + 1,
                message,
            };
            serde_json::from_str(line)
                .map(|value| (n + 1, value))
                .map_err(|error| input(error.to_string()))
        })
        .collect()
}

fn read(path: &Path) -> Result<String, OfflineError> {
    std::fs::read_to_string(path).map_err(|source| OfflineError::Read {
        path: path.to_owned(),
        source,
    })
}

/// One request of a requests file: `{"method": "GET", "path": "/a?b",
/// "headers": {"x-canary": "1", "cookie": "canary=1"}, "client":
/// "192.0.2.7:40000"}`, every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLine {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    client: Option<std::net::SocketAddr>,
    #[serde(default)]
    sni: Option<String>,
}

/// A requests file: each request with the line it came from, so a
/// request that cannot be made is named by file and line.
#[derive(Debug, Clone)]
pub struct Requests {
    path: PathBuf,
    lines: Vec<(usize, RequestLine)>,
}

// === impl Requests ===

impl Requests {
    /// Reads a JSON-lines requests file.
    pub fn read(path: &Path) -> Result<Self, OfflineError> {
        Ok(Requests {
            path: path.to_owned(),
            lines: read_numbered_jsonl(path)?,
        })
    }

    /// How many requests it holds.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Each request as balancers and filters see it, beside its line, or
    /// the first that cannot be one, by file and line.
    pub fn views(
        &self,
        protocol: crate::upstream::Protocol,
    ) -> Result<Vec<(&RequestLine, crate::upstream::RequestView)>, OfflineError> {
        self.lines
            .iter()
            .map(|(line, request)| {
                let view = request
                    .view(protocol)
                    .map_err(|message| OfflineError::Input {
                        path: self.path.clone(),
                        line: *line,
                        message,
                    })?;
                Ok((request, view))
            })
            .collect()
    }
}

/// The client when a request names none.
const DEFAULT_CLIENT: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 100),
    40000,
));

// === impl RequestLine ===

impl RequestLine {
    /// The request as balancers and filters see it, or why it cannot be.
    pub fn view(
        &self,
        protocol: crate::upstream::Protocol,
    ) -> Result<crate::upstream::RequestView, String> {
        use std::sync::Arc;
        let http = match protocol {
            crate::upstream::Protocol::Tcp | crate::upstream::Protocol::Udp => None,
            crate::upstream::Protocol::Http => {
                let mut builder = http::Request::builder()
                    .method(self.method.as_deref().unwrap_or("GET"))
                    .uri(self.path.as_deref().unwrap_or("/"));
                for (name, value) in &self.headers {
                    builder = builder.header(name.as_str(), value.as_str());
                }
                let request = builder.body(()).map_err(|e| e.to_string())?;
                Some(Arc::new(request.into_parts().0))
            }
        };
        Ok(crate::upstream::RequestView {
            protocol,
            listener: Arc::from("offline"),
            client: self.client.unwrap_or(DEFAULT_CLIENT),
            sni: self.sni.as_deref().map(Arc::from),
            tls: None,
            http,
        })
    }

    /// `METHOD PATH` for the printed decisions.
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.method.as_deref().unwrap_or("GET"),
            self.path.as_deref().unwrap_or("/")
        )
    }
}
