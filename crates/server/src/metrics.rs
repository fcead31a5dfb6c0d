//! The server's own metrics: a small registry of counters and timing
//! samples that the server's loops record into, read by `/v1/metrics`.
//!
//! **Decision:** a registry of our own rather than the `metrics` crate and
//! its Prometheus exporter. What `/v1/metrics` must serve is Nomad's
//! go-metrics JSON (`Gauges`, `Counters`, `Samples` with count, sum, min,
//! max, mean and deviation) *and* Prometheus text; an exporter gives one
//! of the two, and most figures (broker depth, job summaries, allocations
//! per client) are read from the state when scraped rather than recorded.
//! The registry is a few mutex-guarded maps keyed by (name, labels),
//! touched once per evaluation, plan or write, never per allocation.
//! Names are Nomad's dotted go-metrics names (`nomad.nomad.plan.apply`);
//! the HTTP layer turns dots into underscores for Prometheus.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Labels of one series, sorted by name.
pub type Labels = Vec<(String, String)>;

/// A timing (or other) sample summary, go-metrics style.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Adds one observation.
    pub fn add(&mut self, value: f64) {
        if self.count == 0 || value < self.min {
            self.min = value;
        }
        if self.count == 0 || value > self.max {
            self.max = value;
        }
        self.count += 1;
        self.sum += value;
        self.sum_sq += value * value;
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The sample standard deviation (go-metrics' `Stddev`).
    pub fn stddev(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        let variance = (self.sum_sq - self.sum * self.sum / n) / (n - 1.0);
        variance.max(0.0).sqrt()
    }
}

/// Counters and samples recorded by the server.
///
/// Counters keep a summary of their increments too (go-metrics reports a
/// counter's count, sum, min, max and mean); their value is the sum.
/// Everything is cumulative since the server started, where go-metrics'
/// in-memory sink shows the last 10 s interval.
#[derive(Debug)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, Labels), Summary>>,
    samples: Mutex<BTreeMap<(String, Labels), Summary>>,
    started: std::time::Instant,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            counters: Mutex::default(),
            samples: Mutex::default(),
            started: std::time::Instant::now(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = labels
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    labels.sort();
    labels
}

impl Metrics {
    /// Adds `by` to a counter.
    pub fn incr(&self, name: &str, labels: &[(&str, &str)], by: f64) {
        lock(&self.counters)
            .entry((name.to_string(), owned(labels)))
            .or_default()
            .add(by);
    }

    /// Records one sample.
    pub fn sample(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        lock(&self.samples)
            .entry((name.to_string(), owned(labels)))
            .or_default()
            .add(value);
    }

    /// Records a duration, in milliseconds (go-metrics' unit for timers).
    pub fn time(&self, name: &str, labels: &[(&str, &str)], took: Duration) {
        self.sample(name, labels, took.as_secs_f64() * 1000.0);
    }

    /// Every counter, as (name, labels, summary of its increments).
    pub fn counters(&self) -> Vec<(String, Labels, Summary)> {
        lock(&self.counters)
            .iter()
            .map(|((name, labels), summary)| (name.clone(), labels.clone(), *summary))
            .collect()
    }

    /// How long the registry has been recording.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every sample series.
    pub fn samples(&self) -> Vec<(String, Labels, Summary)> {
        lock(&self.samples)
            .iter()
            .map(|((name, labels), summary)| (name.clone(), labels.clone(), *summary))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_samples_accumulate_per_label_set() {
        let metrics = Metrics::default();
        metrics.incr("a.b", &[("x", "1")], 2.0);
        metrics.incr("a.b", &[("x", "1")], 3.0);
        metrics.incr("a.b", &[("x", "2")], 1.0);
        let counters: Vec<(String, Labels, f64, u64)> = metrics
            .counters()
            .into_iter()
            .map(|(name, labels, summary)| (name, labels, summary.sum, summary.count))
            .collect();
        assert_eq!(
            counters,
            vec![
                ("a.b".to_string(), owned(&[("x", "1")]), 5.0, 2),
                ("a.b".to_string(), owned(&[("x", "2")]), 1.0, 1)
            ]
        );
        for value in [2.0, 4.0, 6.0] {
            metrics.sample("t", &[], value);
        }
        let (_, _, summary) = metrics.samples().pop().expect("one series");
        assert_eq!((summary.count, summary.min, summary.max), (3, 2.0, 6.0));
        assert!((summary.mean() - 4.0).abs() < 1e-9);
        assert!((summary.stddev() - 2.0).abs() < 1e-9);
    }
}
