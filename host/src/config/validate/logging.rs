//! `[log]` and `[access-log]`: the process's log and the per-request log.

use super::Validator;
use super::raw::{RawAccessLog, RawLog};
use crate::config::*;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn log(&mut self, raw: Option<&RawLog>) -> LogConfig {
        let mut log = LogConfig::default();
        let Some(raw) = raw else { return log };
        if let Some(level) = &raw.level {
            match tracing_subscriber::EnvFilter::builder().parse(level.get_ref()) {
                Ok(_) => log.level = Some(level.get_ref().clone()),
                Err(error) => {
                    self.fail::<()>(
                        "log.level".to_owned(),
                        level.span(),
                        format!("not a log filter ({error}); try `info` or `bascule=debug,info`"),
                    );
                }
            }
        }
        if let Some(format) = &raw.format
            && let Some(format) = self.keyword(
                "log.format".to_owned(),
                format,
                "log format",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )
        {
            log.format = format;
        }
        log
    }

    pub(super) fn access_log(&mut self, raw: &RawAccessLog) -> Option<AccessLogConfig> {
        let format = match &raw.format {
            None => Some(AccessLogFormat::Json),
            Some(format) => self.keyword(
                "access-log.format".to_owned(),
                format,
                "access-log format",
                &[
                    ("json", AccessLogFormat::Json),
                    ("logfmt", AccessLogFormat::Logfmt),
                ],
            ),
        };
        let path = match &raw.path {
            None => Some(None),
            Some(path) if path.get_ref().is_empty() => self.fail(
                "access-log.path".to_owned(),
                path.span(),
                "empty path; leave `path` out to log to stdout",
            ),
            Some(path) => Some(Some(self.source.dir().join(path.get_ref()))),
        };
        let buffer = match &raw.buffer {
            None => Some(DEFAULT_ACCESS_LOG_BUFFER),
            Some(buffer) => self
                .bounded("access-log.buffer".to_owned(), buffer, 16, 1_048_576)
                .map(|n| n as usize),
        };
        let location = FieldLocation {
            span: raw.path.as_ref().map(toml::Spanned::span),
            field: "access-log.path".to_owned(),
        };
        Some(AccessLogConfig {
            format: format?,
            path: path?,
            buffer: buffer?,
            location,
        })
    }
}
