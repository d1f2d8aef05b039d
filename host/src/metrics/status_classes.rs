//! One counter per HTTP status class (`1xx` to `5xx`) for a label set,
//! registered once: counting a response is an index and an increment.

use http::StatusCode;

/// `name{labels..., class}` for each class.
#[derive(Debug)]
pub struct StatusClasses([metrics::Counter; 5]);

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

// === impl StatusClasses ===

impl StatusClasses {
    /// Registers `name` with `labels` and each `class`.
    pub fn new(name: &'static str, labels: &[(&'static str, &str)]) -> Self {
        StatusClasses(CLASSES.map(|class| {
            let mut all: Vec<metrics::Label> = labels
                .iter()
                .map(|(key, value)| metrics::Label::new(*key, (*value).to_owned()))
                .collect();
            all.push(metrics::Label::new("class", class));
            metrics::counter!(name, all)
        }))
    }

    /// Counts one response with `status`.
    pub fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        if let Some(counter) = self.0.get(class) {
            counter.increment(1);
        }
    }
}
