//! Prometheus-format counters: requests by status class, bytes in and out, request time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Server counters, updated without locks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    by_class: [AtomicU64; 5],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    micros: AtomicU64,
}

impl Metrics {
    pub(crate) fn record(&self, status: u16, bytes_in: u64, bytes_out: u64, micros: u64) {
        let class = usize::from(status / 100).saturating_sub(1).min(4);
        if let Some(counter) = self.by_class.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tessera_requests_total Requests answered, by status class.\n# TYPE tessera_requests_total counter\n");
        for (index, counter) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "tessera_requests_total{{class=\"{}xx\"}} {}",
                index + 1,
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tessera_request_bytes_total Request body bytes read.\n# TYPE tessera_request_bytes_total counter\ntessera_request_bytes_total {}",
            self.bytes_in.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tessera_response_bytes_total Response body bytes written.\n# TYPE tessera_response_bytes_total counter\ntessera_response_bytes_total {}",
            self.bytes_out.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tessera_request_seconds_total Time spent answering requests.\n# TYPE tessera_request_seconds_total counter\ntessera_request_seconds_total {:.6}",
            self.micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}
